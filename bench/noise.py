"""How fast is qhess's noisy (density-matrix) Hessian, next to PennyLane on default.mixed?

Expected hardware: a CPU (the reference run is a shared 2-core x86 container); the script
runs unchanged on a GPU, where JAX's default device is used for qhess.

Workload (the anchor of issue 12): the hardware-efficient ansatz on ``n`` wires and ``L``
layers — per layer ``RY`` and ``RZ`` on every wire, then ``CNOT(i, i+1)`` each followed by
``DepolarizingChannel(0.01)`` on its target — measured as ``expval(sum_i Z_i Z_{i+1})``,
float64; the full Hessian with respect to the ``P = 2 n L`` gate arguments (the channel
parameters are fixed, not differentiated).

Methods, per case:

- ``qhess``: ``jax.jit(qhess.hessian(f))`` (defaults: the diagonal off-diagonal rule and
  the cost model's choice of prefix-shared or independent evaluation), simulated as a
  density matrix of ``n`` wires (a ``2n``-wire vector on the statevector kernel);
- ``pennylane``: ``qml.gradients.param_shift_hessian`` of the same tape (channel
  parameters non-trainable), its tapes run with ``qml.execute(..., default.mixed,
  diff_method=None)``, then its post-processing: PennyLane's product rule and tape count.

Reported: circuits (qhess: ``len(hessian_tapes(tape, off_diagonal_rule="diagonal"))``;
PennyLane: its tape count), the first call (trace + compile + run) and the minimum of
the timed calls, the ratio ``t_pennylane / t_qhess`` (both minima, the same process, the
same machine state), and ``max |H_qhess - H_pennylane|``. Timed calls are interleaved
over the methods until each has ``--repeat`` of them or ``--budget`` seconds have passed
(at least one). With ``--memory-case`` (default ``10x2``) qhess alone runs that case in a
fresh subprocess and reports its time and peak resident memory (``ru_maxrss``).

Run (from the repository root; ``PYTHONPATH=.`` in a worktree)::

    python bench/noise.py                 # 4x2 and 6x2 against PennyLane, then 10x2 alone
    python bench/noise.py --quick         # 3x1 and 4x1, no memory case, < 1 min
    python bench/noise.py --cases 4x2 --memory-case none
    python bench/noise.py --adjoint 10x2  # the noisy adjoint method: 10x2 alone, 6x2 vs shifts

Output: a line per method and a Markdown table on stdout; JSON at
``bench/results/noise-<date>-<host>.json`` (``--out`` for another path).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import qhess  # noqa: E402

P_DEPOL = 0.01


def qhess_circuit(n: int, layers: int):
  @qhess.circuit(wires=n)
  def f(x):
    k = 0
    for _ in range(layers):
      for w in range(n):
        qhess.RY(x[k], wires=w)
        qhess.RZ(x[k + 1], wires=w)
        k += 2
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
        qhess.DepolarizingChannel(P_DEPOL, wires=w + 1)
    obs = qhess.Z(0) @ qhess.Z(1)
    for w in range(1, n - 1):
      obs = obs + qhess.Z(w) @ qhess.Z(w + 1)
    return qhess.expval(obs)
  return f


def pennylane_tape(qml, n: int, layers: int, x):
  ops, k, trainable, idx = [], 0, [], 0
  for _ in range(layers):
    for w in range(n):
      ops += [qml.RY(float(x[k]), wires=w), qml.RZ(float(x[k + 1]), wires=w)]
      trainable += [idx, idx + 1]
      idx += 2
      k += 2
    for w in range(n - 1):
      ops += [qml.CNOT(wires=(w, w + 1)), qml.DepolarizingChannel(P_DEPOL, wires=w + 1)]
      idx += 1  # the channel's parameter: not trainable
  obs = qml.Hamiltonian([1.0] * (n - 1), [qml.Z(w) @ qml.Z(w + 1) for w in range(n - 1)])
  tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
  tape.trainable_params = trainable
  return tape


def run_case(n: int, layers: int, repeat: int, budget: float, with_pennylane: bool) -> dict:
  x = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, 2 * n * layers))
  f = qhess_circuit(n, layers)
  h = jax.jit(qhess.hessian(f))
  out = {"case": f"{n}x{layers}", "n_wires": n, "layers": layers, "n_params": int(x.size),
         "circuits_qhess": len(qhess.hessian_tapes(
             f.tape(x), off_diagonal_rule="diagonal")[0])}
  t0 = time.perf_counter()
  h_q = np.asarray(jax.block_until_ready(h(x)))
  out["qhess_first_s"] = time.perf_counter() - t0
  methods = {"qhess": lambda: jax.block_until_ready(h(x))}
  if with_pennylane:
    import pennylane as qml
    dev = qml.device("default.mixed", wires=n)
    tape = pennylane_tape(qml, n, layers, np.asarray(x))

    def pl():
      tapes, fn = qml.gradients.param_shift_hessian(tape)
      return np.asarray(fn(qml.execute(tapes, dev, diff_method=None)), dtype=float), len(tapes)

    t0 = time.perf_counter()
    h_pl, out["circuits_pennylane"] = pl()
    out["pennylane_first_s"] = time.perf_counter() - t0
    out["max_abs_diff"] = float(np.max(np.abs(h_q - h_pl)))
    methods["pennylane"] = pl
  times = {m: [] for m in methods}
  start = time.perf_counter()
  while True:
    for m, fn in methods.items():
      t = time.perf_counter()
      fn()
      times[m].append(time.perf_counter() - t)
    done = min(len(v) for v in times.values())
    if done >= repeat or time.perf_counter() - start > budget:
      break
  for m, v in times.items():
    out[f"{m}_min_s"] = min(v)
    out[f"{m}_repeats"] = len(v)
  if with_pennylane:
    out["ratio_pennylane_over_qhess"] = out["pennylane_min_s"] / out["qhess_min_s"]
  for m in methods:
    print(f"{out['case']}: {m:9s} min {out[f'{m}_min_s']:.4g} s over {len(times[m])} "
          f"(first {out[f'{m}_first_s']:.3g} s)", flush=True)
  return out


def memory_case(case: str, evaluation: str = "auto", progress: bool = False) -> dict:
  """``case`` in a fresh process: qhess only, time and peak resident memory."""
  code = (
      "import json, resource, sys, time; sys.argv = ['x']; import bench.noise as b; "
      "import jax, jax.numpy as jnp, numpy as np, qhess; "
      f"n, l = {case.split('x')[0]}, {case.split('x')[1]}; "
      "x = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, 2 * n * l)); "
      f"h = jax.jit(qhess.hessian(b.qhess_circuit(n, l), evaluation={evaluation!r}, "
      f"progress={progress})); t0 = time.perf_counter(); "
      "H = jax.block_until_ready(h(x)); t1 = time.perf_counter(); "
      "jax.block_until_ready(h(x)); t2 = time.perf_counter(); "
      "print(json.dumps({'first_s': t1 - t0, 'second_s': t2 - t1, "
      "'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(pathlib.Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
  # stderr passes through: progress reports (progress=True) show while the case runs
  res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                       env=env, check=True)
  out = json.loads(res.stdout.strip().splitlines()[-1])
  out["case"], out["evaluation"] = case, evaluation
  print(f"{case} ({evaluation}): qhess first call {out['first_s']:.1f} s, second "
        f"{out['second_s']:.1f} s, peak RSS {out['peak_rss_mib']:.0f} MiB", flush=True)
  return out


def adjoint_cases(case: str, compare: str) -> dict:
  """The noisy adjoint method (`evaluation="adjoint"`, the default's choice for noisy
  circuits when it pays): ``case`` in a fresh process (first call, warm call, peak RSS,
  with progress reports), and at ``compare`` its Hessian and warm time against the shift
  rules (``"shared"``, the default before) in this process."""
  mem = memory_case(case, "auto", progress=True)
  n, layers = map(int, compare.split("x"))
  x = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, 2 * n * layers))
  f = qhess_circuit(n, layers)
  row = {"case": compare}
  hs = {}
  for ev in ("adjoint", "shared"):
    h = jax.jit(qhess.hessian(f, evaluation=ev))
    t0 = time.perf_counter()
    hs[ev] = np.asarray(jax.block_until_ready(h(x)))
    row[f"{ev}_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(h(x))
    row[f"{ev}_warm_s"] = time.perf_counter() - t0
    print(f"{compare}: {ev:8s} first {row[f'{ev}_first_s']:.2f} s, warm "
          f"{row[f'{ev}_warm_s']:.3f} s", flush=True)
  row["max_abs_diff"] = float(np.max(np.abs(hs["adjoint"] - hs["shared"])))
  print(f"{compare}: max |H_adjoint - H_shared| = {row['max_abs_diff']:.1e}", flush=True)
  return {"anchor": mem, "compare": row}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cases", nargs="*", default=["4x2", "6x2"])
  parser.add_argument("--memory-case", default="10x2", help="'none' to skip")
  parser.add_argument("--repeat", type=int, default=5)
  parser.add_argument("--budget", type=float, default=120.0, help="seconds per case")
  parser.add_argument("--no-pennylane", action="store_true")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=None)
  parser.add_argument("--adjoint", default=None, metavar="CASE",
                      help="the noisy adjoint method alone: CASE (e.g. 10x2) in a fresh "
                      "process, and a comparison with the shift rules at --compare")
  parser.add_argument("--compare", default="6x2")
  args = parser.parse_args()
  if args.adjoint:
    header = {"date": datetime.date.today().isoformat(), "host": socket.gethostname(),
              "platform": platform.platform(), "jax": jax.__version__,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    print(header, flush=True)
    out = adjoint_cases(args.adjoint, args.compare)
    path = pathlib.Path(args.out or pathlib.Path(__file__).parent / "results" /
                        f"noise-adjoint-{header['date']}-{header['host']}.json")
    path.write_text(json.dumps({"header": header, **out}, indent=1))
    print(f"wrote {path}")
    return
  if args.quick:
    args.cases, args.memory_case, args.repeat = ["3x1", "4x1"], "none", 3
  try:
    import pennylane  # noqa: F401
    with_pl = not args.no_pennylane
  except ImportError:
    with_pl = False
  header = {"date": datetime.date.today().isoformat(), "host": socket.gethostname(),
            "platform": platform.platform(), "device": str(jax.devices()[0]),
            "jax": jax.__version__, "qhess_source": qhess.__file__, "dtype": "float64",
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
  if with_pl:
    header["pennylane"] = pennylane.__version__
  print(header, flush=True)
  rows = []
  for case in args.cases:
    n, layers = map(int, case.split("x"))
    rows.append(run_case(n, layers, args.repeat, args.budget, with_pl))
  mem = None if args.memory_case == "none" else memory_case(args.memory_case)
  print("\n| case | P | circuits qhess | circuits PL | qhess first (s) | qhess min (s) | "
        "PL min (s) | PL / qhess | max abs diff |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['case']} | {r['n_params']} | {r['circuits_qhess']} | "
          f"{r.get('circuits_pennylane', '-')} | {r['qhess_first_s']:.2f} | "
          f"{r['qhess_min_s']:.4f} | {r.get('pennylane_min_s', float('nan')):.2f} | "
          f"{r.get('ratio_pennylane_over_qhess', float('nan')):.0f} | "
          f"{r.get('max_abs_diff', float('nan')):.1e} |")
  tag = "quick-" if args.quick else ""
  path = pathlib.Path(args.out or pathlib.Path(__file__).parent / "results" /
                      f"noise-{tag}{header['date']}-{header['host']}.json")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({"header": header, "cases": rows, "memory_case": mem}, indent=1))
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
