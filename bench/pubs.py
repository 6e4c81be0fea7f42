"""How long does preparing a Hessian's circuits for IBM hardware take: Sampler V2 PUBs
(``qhess.to_sampler_pubs``) against transpiling the bound circuits one by one?

Expected hardware: a CPU (the reference run is a shared 2-core x86 container); Qiskit's
transpiler runs on the host, single-threaded here.

Workload: the hardware-efficient ansatz of ``bench/kernel.py`` on ``n`` wires, ``L``
layers (per layer ``RY`` and ``RZ`` on every wire, then ``CNOT(i, i+1)``; ``P = 2 n L``
gate arguments), its experiments from ``qhess.hessian_experiments(f, shots=1000)``
(the product rule: ``1 + P + 2P(P-1)`` shifted points per measurement group), for two
observables: ``sum_i Z_i Z_{i+1}`` (one measurement group) and that plus
``sum_i X_i`` (two groups). The target is a 127-qubit fake backend
(``qiskit_ibm_runtime.fake_provider.FakeSherbrooke``), optimization level 1, fixed
transpiler seed.

Methods, per observable, in one process:

- ``pubs``: ``qhess.to_sampler_pubs(experiments, backend, seed_transpiler=1)``: one
  parametrized circuit per group, transpiled once by the preset pass manager (built
  inside the call), then the parameter arrays of the points;
- ``one_by_one``: the preset pass manager built once, then for every experiment
  ``pm.run(qhess.to_qiskit(experiment.tape))``: the bound circuit exported and
  transpiled.

Both count the circuits their pass manager runs (``pm.run`` wrapped). Timing: wall clock
(``time.perf_counter``); one warm-up transpile on the backend first (its target and
caches), then ``pubs`` ``--repeat`` times (median) and ``one_by_one`` once. The
experiments are built before either (``hessian_experiments``' time is listed apart).

Run (from the repository root; qhess need not be installed)::

    python bench/pubs.py              # 6 wires x 2 layers (P = 24), ~30 s on 2 cores
    python bench/pubs.py --quick      # 3 x 1, a few seconds
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

import common
from common import qhess
from kernel import hea_circuit
import numpy as np


def _counting(pm, calls: list):
  """``pm`` with its ``run`` counting the circuits it transpiles into ``calls``."""
  run = pm.run
  pm.run = lambda circuit, *a, **k: calls.append(1) or run(circuit, *a, **k)
  return pm


def _measure(f, x, backend, repeat: int) -> dict:
  import qiskit.transpiler as transpiler  # pylint: disable=import-outside-toplevel
  (experiments, _), t_exp = common.timed(lambda: qhess.hessian_experiments(f, shots=1000)(x))
  make = transpiler.generate_preset_pass_manager
  pub_calls: list = []
  transpiler.generate_preset_pass_manager = lambda *a, **k: _counting(make(*a, **k),
                                                                      pub_calls)
  try:
    times = []
    for _ in range(repeat):
      pub_calls.clear()
      pubs, t = common.timed(lambda: qhess.to_sampler_pubs(experiments, backend,
                                                           seed_transpiler=1))
      times.append(t)
  finally:
    transpiler.generate_preset_pass_manager = make
  one_calls: list = []

  def one_by_one():
    pm = _counting(make(1, backend=backend, seed_transpiler=1), one_calls)
    return [pm.run(qhess.to_qiskit(e.tape)) for e in experiments]

  _, t_one = common.timed(one_by_one)
  t_pubs = statistics.median(times)
  return {"experiments": len(experiments), "groups": len({e.group for e in experiments}),
          "pubs": len(pubs), "rows": int(sum(len(r) for r in pubs.rows)),
          "hessian_experiments_s": t_exp, "pubs_s": t_pubs, "pubs_min_s": min(times),
          "pubs_transpiles": len(pub_calls), "one_by_one_s": t_one,
          "one_by_one_transpiles": len(one_calls), "ratio": t_pubs / t_one}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--wires", type=int, default=6)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--repeat", type=int, default=5)
  parser.add_argument("--quick", action="store_true", help="3 wires x 1 layer, 2 repeats")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args()
  if args.quick:
    args.wires, args.layers, args.repeat = 3, 1, 2
  from qiskit_ibm_runtime.fake_provider import FakeSherbrooke  # pylint: disable=C0415
  import qiskit  # pylint: disable=import-outside-toplevel
  backend = FakeSherbrooke()
  warm = qiskit.QuantumCircuit(2)
  warm.cx(0, 1)
  qiskit.transpile(warm, backend, optimization_level=1, seed_transpiler=1)
  n, layers = args.wires, args.layers
  x = np.random.default_rng(n * 1000 + layers).uniform(0, 2 * np.pi, 2 * n * layers)
  zz = hea_circuit(n, layers)
  obs = qhess.X(0)
  for w in range(n - 1):
    obs = obs + qhess.Z(w) @ qhess.Z(w + 1) + qhess.X(w + 1)
  ops = zz.tape(x).operations  # the HEA's gates, measuring sum ZZ + sum X

  @qhess.circuit(wires=n)
  def zz_x(p):
    for op in ops:
      getattr(qhess, op.name)(*(p[i] for i in op.param_index), wires=op.wires)
    return qhess.expval(obs)

  rows = {}
  for name, f in (("sum ZZ", zz), ("sum ZZ + sum X", zz_x)):
    rows[name] = _measure(f, x, backend, args.repeat)
    print(name, rows[name])
  meta = common.machine_meta("Sampler V2 PUBs vs one-by-one transpiles", "cpu", "float64")
  meta.update(qiskit=qiskit.__version__, backend=f"{backend.name} ({backend.num_qubits} "
              "qubits)", case=f"{n}x{layers}", n_params=2 * n * layers)
  out = common.default_out(args.out, "pubs", args.quick, meta).with_suffix(".md")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(_markdown(meta, rows))
  print(f"wrote {out}")


def _markdown(meta: dict, rows: dict) -> str:
  lines = [
      f"# Sampler V2 PUBs vs one-by-one transpiles ({meta['date']}, {meta['host']}, "
      f"{meta['cpu_count']} cores)", "",
      f"HEA {meta['case']} (P = {meta['n_params']}), `hessian_experiments(shots=1000)`, "
      f"target {meta['backend']}, optimization level 1, Qiskit {meta['qiskit']}. "
      "`python bench/pubs.py` (see its docstring); wall seconds, `pubs` the median of "
      "its repeats, `one_by_one` one run (same process).", "",
      "| observable | groups | experiments | PUBs (rows) | PUBs s | transpiles | "
      "one by one s | transpiles | PUBs / one by one | hessian_experiments s |",
      "|---|---|---|---|---|---|---|---|---|---|"]
  for name, r in rows.items():
    lines.append(
        f"| {name} | {r['groups']} | {r['experiments']} | {r['pubs']} ({r['rows']}) | "
        f"{r['pubs_s']:.3f} | {r['pubs_transpiles']} | {r['one_by_one_s']:.2f} | "
        f"{r['one_by_one_transpiles']} | 1/{1 / r['ratio']:.0f} | "
        f"{r['hessian_experiments_s']:.2f} |")
  lines += ["", "Target (issue 22): PUBs ≤ 1/20 of the one-by-one time.", ""]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
