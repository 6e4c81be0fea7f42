"""Wide registers: time and peak memory of one Hessian per evaluation method, each alone.

Question: at 20 wires (a 16 MiB state per circuit), what does one exact Hessian cost with
each evaluation method — the default (the cost model's choice: prefix-shared or
independent), ``"independent"`` and ``"adjoint"`` — in time to the first result, time of
a second call, and peak resident memory?

Workload: the hardware-efficient ansatz of ``bench/kernel.py`` (``hea_circuit``: RY·RZ on
every wire, a CNOT ladder, ``expval(Σ Z_i Z_{i+1})``), ``n`` wires × ``L`` layers, float64,
the full Hessian of the ``P = 2nL`` gate arguments.

Each (case, method) runs in a fresh process (``--worker``), so that peak memory
(``ru_maxrss``: the whole process, XLA's compilation included) belongs to one method: the
first call (trace + compile + run, wall seconds), then a second call (wall and CPU
seconds). The parent checks that the methods' Hessians agree (they are exact: to ~1e-12),
and, for cases up to ``--jax-max-wires`` wires, against ``jax.hessian`` through the same
simulator.

Run (from the repository root)::

    python bench/scaling.py                  # 20x1: default, independent, adjoint
    python bench/scaling.py --quick          # 10x1, < 1 min
    python bench/scaling.py --cases 16x1 20x1 --methods default adjoint

Output: a line per method as it finishes; JSON and a Markdown table at
``bench/results/scaling-<date>-<host>.json`` / ``.md`` (``--out`` for another path).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

import common  # before qhess: makes it importable from a checkout
import jax
import jax.numpy as jnp
import qhess
from kernel import hea_circuit

jax.config.update("jax_enable_x64", True)

METHODS = {"default": {}, "shared": {"evaluation": "shared"},
           "independent": {"evaluation": "independent"},
           "adjoint": {"evaluation": "adjoint"},
           # 10,000 shots per circuit, standard errors too (a key per call).
           "sampled": {"shots": 10_000, "return_stderr": True}}


def worker(spec: dict) -> None:
  """One method on one case, in this (fresh) process; prints one RESULT line."""
  if spec.get("cache_dir"):  # qhess's program cache and JAX's, every program kept
    qhess.enable_compilation_cache(spec["cache_dir"])
  n, layers = common.parse_case(spec["case"])
  if spec.get("family"):
    import families  # pylint: disable=import-outside-toplevel
    fam = families.FAMILIES[spec["family"]](n, layers, 0, device=None)
    circuit, x = fam.circuit, jnp.asarray(fam.params)
  else:
    x = jnp.asarray(np.random.default_rng(0).uniform(-np.pi, np.pi, 2 * n * layers))
    circuit = hea_circuit(n, layers)
  if spec["method"] == "jax_hessian":
    fn = jax.jit(jax.hessian(circuit))
  elif spec["method"] == "sampled":
    sampled = qhess.hessian(circuit, **METHODS["sampled"])
    fn = lambda x: sampled(x, key=jax.random.key(0))[0]  # noqa: E731
  else:
    fn = qhess.hessian(circuit, **METHODS[spec["method"]])
  events: dict[str, list[float]] = {}  # JAX's compile-time events of the first call
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **_: events.setdefault(name, []).append(secs))
  t0 = time.perf_counter()
  h = jax.block_until_ready(fn(x))
  first = time.perf_counter() - t0
  breakdown = {  # traces nest (the largest is the outermost); lowerings and compiles add
      "trace_s": max(events.get("/jax/core/compile/jaxpr_trace_duration", [0.0])),
      "lower_s": sum(events.get("/jax/core/compile/jaxpr_to_mlir_module_duration", [])),
      "xla_s": sum(events.get("/jax/core/compile/backend_compile_duration", [])),
      "xla_programs": len(events.get("/jax/core/compile/backend_compile_duration", []))}
  c0, t0 = time.process_time(), time.perf_counter()
  h = jax.block_until_ready(fn(x))
  row = {"case": spec["case"], "family": spec.get("family") or "hea",
         "method": spec["method"], "n_params": int(x.size),
         "first_call_s": first, **breakdown, "second_call_s": time.perf_counter() - t0,
         "second_call_cpu_s": time.process_time() - c0,
         "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         "hessian": np.asarray(h).tolist()}
  print(common.RESULT + json.dumps(row), flush=True)


def run_method(case: str, method: str, timeout: float | None,
               cache_dir: str | None = None, family: str | None = None) -> dict:
  """``method`` on ``case`` in a fresh process: its row, or a row saying why not."""
  spec = {"case": case, "method": method, "cache_dir": cache_dir, "family": family}
  w = common.Worker(pathlib.Path(__file__), spec, timeout)
  rows = [row for kind, row in w.results() if kind == "result"]
  error = w.finish()
  if error or not rows:
    print(f"{case} {method}: {error or 'no result'}", flush=True)
    return {"case": case, "family": family or "hea", "method": method,
            "status": error or "no result"}
  row = dict(rows[0], status="ok", cache=cache_dir is not None)
  print(f"{family or 'hea'} {case} {method:12s} first {row['first_call_s']:.3g} s, second "
        f"{row['second_call_s']:.3g} s ({row['second_call_cpu_s']:.3g} CPU s), peak RSS "
        f"{row['peak_rss_mib']:6.0f} MiB", flush=True)
  return row


def compare(rows: list[dict]) -> None:
  """Adds ``max_abs_diff`` (against the first method that ran, or jax.hessian) to rows."""
  by_case: dict[tuple, list[dict]] = {}
  for r in rows:
    if r["status"] == "ok":
      by_case.setdefault((r["family"], r["case"]), []).append(r)
  for case_rows in by_case.values():
    ref = next((r for r in case_rows if r["method"] == "jax_hessian"),
               next(r for r in case_rows if not r["method"].startswith("sampled")))
    for r in case_rows:
      r["reference"] = ref["method"]
      r["max_abs_diff"] = float(np.max(np.abs(np.asarray(r["hessian"]) -
                                                np.asarray(ref["hessian"]))))


def markdown(rows: list[dict], meta: dict) -> str:
  lines = [f"# Wide registers, one Hessian per method ({meta['date']}, {meta['device']}, "
           f"{meta['cpu_count']} CPUs, JAX {meta['jax_version']}, float64)", "",
           f"Load average before the run: {meta['load_average']}.", "",
           common.source_line(meta["qhess"]), "",
           "Each row a fresh process: first call (trace + compile + run) and second call in "
           "wall seconds, the second also in CPU seconds; peak RSS of the whole process.", "",
           "Sampled: 10,000 shots per circuit with standard errors; its difference from "
           "the exact Hessian is statistical.", "",
           "The first call's parts, from JAX's compile events: trace (the outermost "
           "jaxpr trace: recording, planning, building the program), lower (jaxpr to "
           "MLIR), XLA (backend compiles, with their count; a compilation-cache read "
           "compiles nothing); the rest is running it, loading cached programs and "
           "Python around them.", "",
           "| circuit | case | P | method | first call s | trace s | lower s "
           "| XLA s (programs) | second call s | second call CPU s | peak RSS MiB "
           "| max abs diff (vs) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if r["status"] != "ok":
      lines.append(f"| {r['family']} | {r['case']} | | {r['method']} | {r['status']} "
                   "| | | | | | | |")
      continue
    lines.append(
        f"| {r['family']} | {r['case']} | {r['n_params']} | {r['method']} "
        f"| {r['first_call_s']:.3g} | {r['trace_s']:.2g} | {r['lower_s']:.2g} "
        f"| {r['xla_s']:.3g} ({r['xla_programs']}) | "
        f"{r['second_call_s']:.3g} | {r['second_call_cpu_s']:.3g} | "
        f"{r['peak_rss_mib']:.0f} | {r['max_abs_diff']:.1e} ({r['reference']}) |")
  return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="case 10x1 (< 1 min)")
  parser.add_argument("--cases", nargs="+", default=["20x1"], help="NxL (default 20x1)")
  parser.add_argument("--methods", nargs="+", default=list(METHODS),
                      choices=[*METHODS, "jax_hessian"])
  parser.add_argument("--jax-max-wires", type=int, default=12,
                      help="also time jax.hessian up to this many wires (default 12)")
  parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per method")
  parser.add_argument("--families", nargs="+", default=None,
                      help="circuits of bench/families.py instead of the HEA")
  parser.add_argument("--compilation-cache", action="store_true",
                      help="also run each method twice more with "
                           "qhess.enable_compilation_cache (a fresh folder): filled, then read")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.worker:
    return worker(json.loads(args.worker))
  if args.quick:
    args.cases = ["10x1"]
  meta = common.machine_meta(__doc__.split("\n")[0], common.device_name(), "float64")
  meta["qhess"] = common.qhess_version()
  meta["load_average"] = [round(v, 2) for v in os.getloadavg()]
  print(common.source_line(meta["qhess"]), flush=True)
  circuits = args.families or [None]
  jobs = [(f, case, m) for f in circuits for case in args.cases for m in args.methods]
  jobs += [(f, case, "jax_hessian") for f in circuits for case in args.cases
           if common.parse_case(case)[0] <= args.jax_max_wires
           and "jax_hessian" not in args.methods]
  if args.compilation_cache:  # each fills a fresh cache, then a later process reads it
    jobs += [(f, case, (m, k)) for f, case, m in jobs if m != "jax_hessian"
             for k in ("filled", "read")]
  items, _ = common.progress(jobs, desc="fresh processes")
  rows, cache_dirs = [], {}
  for f, case, m in items:
    if isinstance(m, tuple):
      import tempfile  # pylint: disable=import-outside-toplevel
      cache_dir = cache_dirs.setdefault((f, case, m[0]), tempfile.mkdtemp())
      rows.append(run_method(case, m[0], args.timeout, cache_dir, f))
      rows[-1]["method"] = f"{m[0]}, compilation cache {m[1]}"
    else:
      rows.append(run_method(case, m, args.timeout, family=f))
  compare(rows)
  out = common.default_out(args.out, "scaling", args.quick, meta)
  for r in rows:
    r.pop("hessian", None)
  common.write_results(out, {"meta": meta, "rows": rows}, markdown(rows, meta))


if __name__ == "__main__":
  sys.exit(main())
