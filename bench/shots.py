"""How fast is qhess's sampled (finite-shot) Hessian, next to the exact one?

Expected hardware: a CPU (the reference run is a shared 2-core x86 container); the script
runs unchanged on a GPU, where JAX's default device is used.

Workload: the hardware-efficient ansatz of ``bench/kernel.py`` on ``n`` wires, ``L``
layers — per layer ``RY`` and ``RZ`` on every wire, then ``CNOT(i, i+1)`` — measured as
``expval(sum_i Z_i Z_{i+1})`` (one measurement group: all terms commute qubit-wise),
float64; the full Hessian with respect to the ``P = 2 n L`` parameters. Cases
``n = 4, 6, 8`` with 1 and 2 layers.

Methods, per case:

- ``exact``: ``jax.jit(qhess.hessian(f))`` (default off-diagonal rule, the diagonal rule);
- ``shots=1000``, ``shots=100000``: ``jax.jit(qhess.hessian(f, shots=N))`` called with
  ``key=`` (the product rule, the default with shots); every circuit gets ``N`` shots.

``circuits`` is the number of circuits one Hessian runs: for ``exact``
``len(qhess.hessian_tapes(tape, off_diagonal_rule="diagonal")[0])``; sampled, the
product rule's shifted points times the measurement groups (1 here). ``shots`` is
``circuits x N``, the shots of one Hessian. Throughput: circuits/s, and for the sampled
methods circuits x shots per second (shots per second in total); the sampled multinomial
costs ``O(2**n)`` per circuit whatever ``N`` (binomial splitting), so circuits/s should
hardly depend on ``N``. ``ratio`` is the median time over ``exact``'s median time (the
product rule runs more circuits than exact evaluation's diagonal rule; both counts are
listed). ``max_abs_err`` is the largest ``|H_sampled - H_exact|`` of the warm-up call, a
sanity check (it shrinks about like ``1/sqrt(N)``).

Timing: per case, one warm-up call per method (trace + XLA compile + one run; its time is
``first_call_s``), then timed calls ``jax.block_until_ready(fn(x, key=k))`` with a new key
each time, interleaved over the methods, until each has ``--repeat`` of them or at least
3 and ``--budget`` seconds. Median, min and max are reported. Everything runs in this
process (the cases are small).

Run (from the repository root; qhess need not be installed)::

    python bench/shots.py            # 4x1 4x2 6x1 6x2 8x1 8x2, < 3 min on 2 cores
    python bench/shots.py --quick    # 4x1 only, 3 repeats, < 30 s
    python bench/shots.py --cases 10x1 --shots 1000 1000000

Output: a line per method and a Markdown table on stdout; JSON and the table as Markdown
at ``bench/results/shots-<date>-<host>.{json,md}`` (``--out`` for the JSON path;
``--quick`` writes ``shots-quick-...``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import time

import jax
import numpy as np

import common
import qhess
from kernel import hea_circuit

_DEFAULT_CASES = ("4x1", "4x2", "6x1", "6x2", "8x1", "8x2")
_QUICK_CASES = ("4x1",)
_DEFAULT_SHOTS = (1000, 100_000)


def _series(fns: dict, x, repeat_max: int, budget_s: float) -> dict[str, list[float]]:
  """Interleaved timed calls (see the module docs); a new key per call."""
  times = {name: [] for name in fns}
  key = jax.random.key(1)
  i = 0
  while True:
    open_ = [name for name, t in times.items()
             if not (len(t) >= repeat_max or (len(t) >= 3 and sum(t) >= budget_s))]
    if not open_:
      return times
    for name in open_:
      k = jax.random.fold_in(key, i)
      i += 1
      t0 = time.perf_counter()
      jax.block_until_ready(fns[name](x, k))
      times[name].append(time.perf_counter() - t0)


def bench_case(n: int, layers: int, shots: tuple[int, ...], repeat_max: int,
               budget_s: float, say=print, seed: int = 0) -> dict:
  """Times one case; returns its record with one row per method."""
  f = hea_circuit(n, layers)
  p = 2 * n * layers
  x = jax.device_put(np.random.default_rng(seed + n).uniform(0, 2 * np.pi, p))
  tape = f.tape(x)
  n_exact = len(qhess.hessian_tapes(tape, off_diagonal_rule="diagonal")[0])
  n_groups = len(common.measurement_groups(tape.raw_measurements).groups)
  n_sampled = len(qhess.hessian_tapes(tape, off_diagonal_rule="product")[0]) * n_groups

  exact_fn = jax.jit(qhess.hessian(f))
  fns = {"exact": lambda x_, k: exact_fn(x_)}
  for s in shots:
    fn = jax.jit(qhess.hessian(f, shots=s))
    fns[f"shots={s}"] = lambda x_, k, fn=fn: fn(x_, key=k)

  rows, h_exact = {}, None
  for name, fn in fns.items():
    t0 = time.perf_counter()
    h = jax.block_until_ready(fn(x, jax.random.key(0)))
    rows[name] = {"first_call_s": time.perf_counter() - t0}
    if name == "exact":
      h_exact = np.asarray(h)
    else:
      rows[name]["max_abs_err"] = float(np.max(np.abs(np.asarray(h) - h_exact)))
  times = _series(fns, x, repeat_max, budget_s)
  t_exact = statistics.median(times["exact"])
  for name, t in times.items():
    med = statistics.median(t)
    s = None if name == "exact" else int(name.split("=")[1])
    circuits = n_exact if s is None else n_sampled
    row = rows[name]
    row.update({"method": name, "shots_per_circuit": s, "circuits": circuits,
                "shots": None if s is None else circuits * s, "median_s": med,
                "min_s": min(t), "max_s": max(t), "repeat": len(t), "times_s": t,
                "circuits_per_s": circuits / med,
                "circuit_shots_per_s": None if s is None else circuits * s / med,
                "ratio_to_exact": med / t_exact})
    say(f"device={common.device_name()} jax={jax.__version__} case={n}x{layers} P={p} "
        f"{name}: median {1e3 * med:.4g} ms (R={len(t)}), {circuits} circuits, "
        + ("" if s is None else f"{circuits * s / med:.3g} circuit-shots/s, ")
        + f"{circuits / med:.3g} circuits/s, x{med / t_exact:.3g} of exact")
  return {"case": f"{n}x{layers}", "n_qubits": n, "layers": layers, "n_params": p,
          "n_gates": (3 * n - 1) * layers, "measurement_groups": n_groups,
          "methods": [rows[name] for name in fns]}


def markdown_table(cases: list[dict]) -> str:
  lines = ["| case | P | method | median ms | circuits | shots | circuits/s "
           "| circuits×shots/s | ratio to exact | max abs err |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
  for c in cases:
    for r in c["methods"]:
      shots = "—" if r["shots"] is None else f"{r['shots']:.3g}"
      rate = "—" if r["circuit_shots_per_s"] is None else f"{r['circuit_shots_per_s']:.3g}"
      err = f"{r['max_abs_err']:.2g}" if "max_abs_err" in r else "—"
      lines.append(
          f"| {c['case']} | {c['n_params']} | {r['method']} | {1e3 * r['median_s']:.4g} "
          f"| {r['circuits']} | {shots} | {r['circuits_per_s']:.3g} | {rate} "
          f"| {r['ratio_to_exact']:.3g} | {err} |")
  return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true",
                 help="case 4x1 only, 3 repeats, 0.5 s per method (< 30 s)")
  p.add_argument("--cases", nargs="+", help="NxL cases (default 4x1 4x2 6x1 6x2 8x1 8x2)")
  p.add_argument("--shots", type=int, nargs="+", help="shots per circuit (default 1000 "
                 "100000)")
  p.add_argument("--repeat", type=int, default=None,
                 help="most timed calls per method (default 10; 3 with --quick)")
  p.add_argument("--budget", type=float, default=None,
                 help="timed seconds aimed at per method (default 2; 0.5 with --quick)")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="JSON path (default bench/results/shots-<date>-<host>.json)")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  cases = [common.parse_case(c) for c in (args.cases or (_QUICK_CASES if args.quick
                                                         else _DEFAULT_CASES))]
  shots = tuple(args.shots or _DEFAULT_SHOTS)
  repeat_max = args.repeat or (3 if args.quick else 10)
  budget_s = args.budget if args.budget is not None else (0.5 if args.quick else 2.0)
  meta = {
      **common.machine_meta("How fast is qhess's sampled Hessian, next to the exact one?",
                            common.device_name(), "float64"),
      "shots_per_circuit": list(shots), "repeat_max": repeat_max, "budget_s": budget_s,
      "qhess": common.qhess_version(),
      "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
  }
  print(f"# qhess sampled vs exact Hessian, HEA, device={meta['device']} "
        f"({os.cpu_count()} cores) jax={jax.__version__} float64, shots {shots}")
  q = meta["qhess"]
  print(common.source_line(q))
  bar, say = common.progress(cases, desc="cases", unit="case")
  results = []
  for n, layers in bar:
    if hasattr(bar, "set_postfix_str"):
      bar.set_postfix_str(f"{n}x{layers}")
    record = bench_case(n, layers, shots, repeat_max, budget_s, say=say)
    record["loadavg"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results.append(record)
  if hasattr(bar, "close"):
    bar.close()

  table = markdown_table(results)
  header = (f"qhess sampled vs exact Hessian — HEA, float64; device {meta['device']} "
            f"({os.cpu_count()} cores), JAX {jax.__version__}, {meta['date']}, host "
            f"{meta['host']}, qhess {q['commit'] and q['commit'][:10]}")
  print(f"\n{header}\n\n{table}")
  common.write_results(common.default_out(args.out, "shots", args.quick, meta),
                       {"meta": meta, "cases": results}, f"{header}\n\n{table}\n")


if __name__ == "__main__":
  main()
