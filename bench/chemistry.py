"""Chemistry: LiH's exact Hessian against jax.hessian through PennyLane, and circuit counts.

Questions (issue 21): on LiH (2 electrons in 5 orbitals: 10 qubits, 24 parameters,
AllSinglesDoubles, the 276-term ``qml.qchem`` Hamiltonian of ``notebooks/chemistry.ipynb``,
coefficients as data), how long does qhess's exact Hessian take warm and on its first
call (a fresh process, import and Hamiltonian excluded), next to ``jax.hessian`` of the
JAX-interface QNode on ``default.qubit``; do the Hessians agree (jax.hessian, and
PennyLane's ``param_shift_hessian`` on ``lightning.qubit``); and how many circuits do
H2O (8 qubits: 4 electrons in 4 orbitals, 26 parameters) and LiH take, qhess against
PennyLane's ``param_shift_hessian``, with AllSinglesDoubles and UCCSD?

Expected hardware: this project's 2-core CPU VM (about 4 minutes: two fresh processes for
the first calls, one for the warm calls, ~40 s of lightning.qubit). Needs PennyLane
(``pip install "qhess[pennylane]"``). ``--quick`` skips the first calls and lightning.

    python bench/chemistry.py [--repeat 7] [--quick] [--out bench/results/NAME.md]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import common  # noqa: F401  (qhess from this checkout; machine facts)

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import pennylane as qml  # noqa: E402
from pennylane import numpy as pnp  # noqa: E402

import qhess  # noqa: E402

TOL = 1e-10


# ------------------------------------------------------------------ the molecules


def lih_hamiltonian():
  """LiH at R = 3.0 bohr, 2 active electrons in 5 active orbitals: (words, coefficients)."""
  geometry = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  h, n = qml.qchem.molecular_hamiltonian(["Li", "H"], geometry, method="dhf",
                                         active_electrons=2, active_orbitals=5)
  words = list(h.pauli_rep)
  return n, words, jnp.array([np.real(h.pauli_rep[w]) for w in words])


def ansatz(n_qubits, n_electrons, template):
  """``(apply(theta), P)``: AllSinglesDoubles or UCCSD from the Hartree-Fock state."""
  hf = qml.qchem.hf_state(n_electrons, n_qubits)
  singles, doubles = qml.qchem.excitations(n_electrons, n_qubits)

  def apply(theta):
    if template == "AllSinglesDoubles":
      qml.AllSinglesDoubles(theta, wires=range(n_qubits), hf_state=hf, singles=singles,
                            doubles=doubles)
    else:
      s_wires, d_wires = qml.qchem.excitations_to_wires(singles, doubles)
      qml.UCCSD(theta, wires=range(n_qubits), s_wires=s_wires, d_wires=d_wires,
                init_state=hf)
  return apply, len(singles) + len(doubles)


def lih_setup():
  """LiH's QNodes (autograd and JAX interfaces), qhess circuit, θ and coefficients."""
  n, words, c = lih_hamiltonian()
  apply, p = ansatz(n, 2, "AllSinglesDoubles")
  ops = [w.operation() for w in words]

  def energy(theta, coeffs):
    apply(theta)
    return qml.expval(qml.Hamiltonian(coeffs, ops))

  dev = qml.device("default.qubit", wires=n)
  theta = jnp.asarray(np.random.default_rng(0).normal(scale=0.1, size=p))
  return dict(n=n, words=len(words), p=p, c=c, theta=theta, energy=energy,
              qnode=qml.qnode(dev)(energy), qnode_jax=qml.qnode(dev, interface="jax")(energy),
              circuit=qhess.from_pennylane(qml.qnode(dev)(energy)))


def methods(s):
  """The timed Hessians, each a jitted function of (θ, c)."""
  return {
      "qhess default": jax.jit(qhess.hessian(s["circuit"])),
      'qhess evaluation="shared"': jax.jit(qhess.hessian(s["circuit"], evaluation="shared")),
      'qhess evaluation="adjoint"': jax.jit(qhess.hessian(s["circuit"], evaluation="adjoint")),
      'qhess evaluation="independent"': jax.jit(
          qhess.hessian(s["circuit"], evaluation="independent")),
      "jax.hessian, default.qubit": jax.jit(jax.hessian(s["qnode_jax"])),
  }


# ------------------------------------------------------------------ workers


def first_call_worker(name: str) -> dict:
  """A fresh process: one method's first call (trace, compile, run), wall and CPU s."""
  s = lih_setup()
  fn = methods(s)[name]
  wall, cpu = time.perf_counter(), time.process_time()
  jax.block_until_ready(fn(s["theta"], s["c"]))
  out = {"method": name, "first_wall_s": time.perf_counter() - wall,
         "first_cpu_s": time.process_time() - cpu}
  wall = time.perf_counter()
  jax.block_until_ready(fn(s["theta"], s["c"]))
  out["second_wall_s"] = time.perf_counter() - wall
  if name == "qhess default":
    out["auto_runs"] = qhess.evaluation_method(qhess.hessian, s["circuit"])(s["theta"], s["c"])
  return out


def warm_worker(repeat: int, lightning: bool) -> dict:
  """One process: every method compiled, then `repeat` rounds of interleaved calls."""
  s = lih_setup()
  fns = methods(s)
  hessians = {name: np.asarray(jax.block_until_ready(fn(s["theta"], s["c"])))
              for name, fn in fns.items()}
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeat):
    for name, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(s["theta"], s["c"]))
      times[name].append(time.perf_counter() - t)
  ref = hessians["jax.hessian, default.qubit"]
  out = {"load_after": os.getloadavg(), "n": s["n"], "words": s["words"], "p": s["p"],
         "auto_runs": qhess.evaluation_method(qhess.hessian, s["circuit"])(s["theta"], s["c"]),
         "warm": {name: {"median_s": float(np.median(v)), "min_s": float(np.min(v))}
                  for name, v in times.items()},
         "max_abs_diff_vs_jax": {name: float(np.max(np.abs(h - ref)))
                                 for name, h in hessians.items()}}
  if lightning:
    qnode = qml.qnode(qml.device("lightning.qubit", wires=s["n"]),
                      diff_method="parameter-shift")(s["energy"])
    t = time.perf_counter()
    h_pl = np.array(qml.gradients.param_shift_hessian(qnode)(
        pnp.array(np.asarray(s["theta"]), requires_grad=True),
        pnp.array(np.asarray(s["c"]), requires_grad=False)), dtype=float)
    out["lightning_param_shift_s"] = time.perf_counter() - t
    out["max_abs_diff_vs_param_shift"] = float(np.max(np.abs(hessians["qhess default"] - h_pl)))
  return out


def run_worker(args: list[str]) -> dict:
  proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True,
                        text=True, check=False)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------ counts


def counts(n_qubits: int, n_electrons: int, template: str, hamiltonian=None) -> dict:
  """PennyLane's param_shift_hessian tapes and qhess's circuits for one ansatz.

  Without a Hamiltonian the measurement is ``Σ_i Z_i`` (every wire: nothing outside the
  light cone); the counts depend on the ansatz and the measured wires only."""
  apply, p = ansatz(n_qubits, n_electrons, template)
  if hamiltonian is None:
    ops, coeffs = [qml.Z(w) for w in range(n_qubits)], jnp.ones(n_qubits)
  else:
    ops, coeffs = [w.operation() for w in hamiltonian[0]], hamiltonian[1]

  def energy(theta, c):
    apply(theta)
    return qml.expval(qml.Hamiltonian(c, ops))

  qnode = qml.qnode(qml.device("default.qubit", wires=n_qubits))(energy)
  theta = jnp.asarray(np.random.default_rng(1).normal(scale=0.1, size=p))
  pl_tapes, _ = qml.gradients.param_shift_hessian(qml.workflow.construct_tape(qnode)(
      pnp.array(np.asarray(theta), requires_grad=True),
      pnp.array(np.asarray(coeffs), requires_grad=False)))
  circuit = qhess.from_pennylane(qnode)
  tape = circuit.tape(theta, coeffs)
  return {
      "P": p, "gate arguments": tape.num_params,
      "PennyLane param_shift_hessian": len(pl_tapes),
      "qhess hessian_tapes, product rule": len(qhess.hessian_tapes(tape)[0]),
      "qhess hessian_tapes, diagonal rule": len(
          qhess.hessian_tapes(tape, off_diagonal_rule="diagonal")[0]),
      "qhess.hessian (default), count_circuits": qhess.optimize.count_circuits(
          qhess.hessian, circuit)(theta, coeffs).points,
  }


# ------------------------------------------------------------------ report


def markdown(meta: dict, first: list[dict], warm: dict | None, table: dict) -> str:
  lines = [f"# Chemistry: LiH's exact Hessian and circuit counts ({meta['date']}, "
           f"{meta['device']}, {meta['cpu_count']} CPUs, JAX {meta['jax_version']}, "
           f"PennyLane {meta['pennylane']}, float64)", "",
           common.source_line(meta["qhess"]), "",
           f"`python bench/chemistry.py {' '.join(meta['argv'])}`; load average before the "
           f"run: {[round(v, 2) for v in meta['load_before']]}.", ""]
  if first:
    lines += ["## LiH: first call (a fresh process each; import, Hamiltonian and QNode "
              "construction excluded)", "",
              "| method | first call wall s | first call CPU s | second call s |",
              "|---|---|---|---|"]
    for r in first:
      lines.append(f"| {r['method']} | {r['first_wall_s']:.1f} | {r['first_cpu_s']:.1f} | "
                   f"{r['second_wall_s']:.4f} |")
    runs = [r["auto_runs"] for r in first if "auto_runs" in r]
    lines += ["", f"qhess's default (`evaluation=\"auto\"`) runs `{runs[0]}` here." if runs
              else "", ""]
  if warm:
    ref = warm["warm"]["jax.hessian, default.qubit"]["median_s"]
    lines += [f"## LiH: warm calls ({warm['n']} qubits, {warm['words']} Pauli words, "
              f"P = {warm['p']}; one process, {meta['repeat']} interleaved rounds)", "",
              "| method | median s | min s | jax.hessian / method (medians) | "
              "max abs diff vs jax.hessian |", "|---|---|---|---|---|"]
    for name, t in warm["warm"].items():
      lines.append(f"| {name} | {t['median_s']:.4f} | {t['min_s']:.4f} | "
                   f"{ref / t['median_s']:.1f}x | "
                   f"{warm['max_abs_diff_vs_jax'][name]:.1e} |")
    lines += ["", f"qhess's default runs `{warm['auto_runs']}`. Load average after the warm "
              f"calls: {[round(v, 2) for v in warm['load_after']]}."]
    if "lightning_param_shift_s" in warm:
      lines += [f"PennyLane `param_shift_hessian` on `lightning.qubit`: "
                f"{warm['lightning_param_shift_s']:.0f} s; max abs diff from qhess's "
                f"default {warm['max_abs_diff_vs_param_shift']:.1e}."]
    lines.append("")
  keys = list(next(iter(table.values())).keys())
  lines += ["## Circuit counts", "",
            "| molecule, ansatz | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|"]
  for label, row in table.items():
    lines.append(f"| {label} | " + " | ".join(str(row[k]) for k in keys) + " |")
  lines += ["", "H2O: 8 qubits (4 electrons in 4 spatial orbitals), measured `Σ_i Z_i` (the "
            "counts depend on the ansatz and the measured wires, not on the Hamiltonian's "
            "coefficients); LiH: its Hamiltonian.", ""]
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeat", type=int, default=7, help="warm rounds (default 7)")
  parser.add_argument("--quick", action="store_true",
                      help="counts and warm calls only (3 rounds, no lightning, no first calls)")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="Markdown file")
  parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    kind, *rest = args.worker
    result = (first_call_worker(rest[0]) if kind == "first"
              else warm_worker(int(rest[0]), rest[1] == "1"))
    print("RESULT " + json.dumps(result), flush=True)
    return
  meta = common.machine_meta(__doc__.splitlines()[0], common.device_name(), "float64")
  meta.update(qhess=common.qhess_version(), pennylane=qml.__version__,
              load_before=os.getloadavg(), repeat=3 if args.quick else args.repeat)
  first = [] if args.quick else [run_worker(["first", m]) for m in
                                 ("qhess default", "jax.hessian, default.qubit")]
  warm = run_worker(["warm", str(meta["repeat"]), "0" if args.quick else "1"])
  n, words, c = lih_hamiltonian()
  table = {
      "H2O, AllSinglesDoubles": counts(8, 4, "AllSinglesDoubles"),
      "H2O, UCCSD": counts(8, 4, "UCCSD"),
      "LiH, AllSinglesDoubles": counts(n, 2, "AllSinglesDoubles", (words, c)),
  }
  for row in table.values():
    assert row["qhess hessian_tapes, product rule"] <= row["PennyLane param_shift_hessian"]
    assert row["qhess hessian_tapes, diagonal rule"] < row["PennyLane param_shift_hessian"]
  assert all(d <= TOL for d in warm["max_abs_diff_vs_jax"].values())
  assert warm.get("max_abs_diff_vs_param_shift", 0.0) <= TOL
  text = markdown(meta, first, warm, table)
  print(text)
  if args.out:
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "first_call": first, "warm": warm, "counts": table}, indent=1,
        default=str))


if __name__ == "__main__":
  main()
