"""How fast is qhess's parameter-shift Hessian, against autodiff and PennyLane? (the cases)

The HEA scaling benchmark of ``python bench/run.py`` (without ``--families``), and the
parent side that it and the families benchmark (`bench/families.py`) share: the worker
processes (``run.py --worker``, `bench/hessians.py`), their result lines, the progress
output and the JSON ``meta`` of both.

Expected hardware: a CPU (the reference run is a shared 2-core x86 container); the script
runs unchanged on a GPU, where JAX's default device is used (PennyLane's devices always
run on the host).

Workload: the hardware-efficient ansatz on ``n`` wires, ``L`` layers — per layer ``RY``
and ``RZ`` on every wire, then ``CNOT(i, i+1)`` for ``i = 0 .. n-2`` — measured as
``expval(sum_i Z_i Z_{i+1})``, float64 (complex128 states); the full Hessian with respect
to a flat parameter vector of ``P = 2 n L`` entries (every entry a gate argument, so the
Hessian w.r.t. the inputs is the gate-argument Hessian). ``n_gates = (3n - 1) L``. Cases:
``n = 4, 6, 8, 10, 12`` with 2 layers, ``n = 14, 16`` with 1 layer, and ``P = 200`` as
4 wires x 25 layers (275 gates; more wires would make 79,801 circuits of 2**n amplitudes
too slow for this machine).

Methods, all measured in the same (fresh) worker process per case:

- ``qhess_default``: ``jax.jit(qhess.hessian(f))``;
- ``qhess_product``, ``qhess_diagonal``: the same with ``off_diagonal_rule="product"``
  (4 circuits per mixed entry, PennyLane's rule) / ``"diagonal"`` (3 per mixed entry);
- ``qhess_independent``: ``evaluation="independent"`` with the product rule: every
  shifted circuit evaluated from the start in one vmap (the baseline for prefix
  sharing and the diagonal rule; single-wire gate fusion is on in every mode);
- ``qhess_adjoint``: ``evaluation="adjoint"``: row i is the first-order shift rule of
  argument i applied to adjoint-method gradients of the shifted circuits (2R_i circuits
  per row; simulator only, not a hardware method);
- ``jax_hessian``: ``jax.jit(jax.hessian(f))``, autodiff through qhess's own simulator —
  the baseline, and the reference for the correctness check;
- ``pl_default.qubit``, ``pl_lightning.qubit`` (when PennyLane is installed):
  ``qml.gradients.param_shift_hessian`` at tape level with NumPy parameters (its jax
  interface does not work with current JAX): a ``QuantumScript`` of the same circuit,
  ``tapes, fn = param_shift_hessian(tape)``, ``fn(qml.execute(tapes, dev,
  diff_method=None))``; each timed call includes the tape transform and the
  post-processing. Only for ``n <= 10`` (``--pl-max-wires``) and when the call, predicted
  from the previous case's time per gate application, stays under ``--pl-limit`` seconds
  (default 20); a row says why it was skipped.

Timing: first every method's warm-up call, in order (for the jitted methods: trace + XLA
compile + one run; ``compile_s`` is that call minus the fastest timed call); then timed
calls ``jax.block_until_ready(fn(x))`` interleaved, one per method per round (so a change
in the machine's load, or a first-in-process effect, does not favour one method), until a
method has ``--repeat`` of them, or at least 3 and ``--budget`` seconds spent; a call so
slow that one more would exceed ``3 x budget`` ends its series early (so slow methods have
1-2 timed calls; the JSON lists every time). Median, min and max are reported; ratios
``t / t(qhess_default)`` use the medians (above 1: qhess's default is faster).
``n_circuits`` is ``len(qhess.hessian_tapes(f.tape(x), off_diagonal_rule=rule)[0])``
(for PennyLane: its number of tapes); circuits/s and gate applications/s
(``n_circuits * n_gates / t``) use the median; the gate count is nominal (every circuit
run from ``|0...0>``): qhess's default prefix-shared evaluation applies fewer gates.
``jax_hessian`` runs no circuits, so those columns are empty for it.

Correctness, once per case: each method's Hessian against ``jax_hessian``'s,
max |difference| <= 1e-8 (``--atol``); a mismatch is reported, never an error.

Threads: the workers run with one OpenMP/OpenBLAS/MKL thread (``--blas-threads``; XLA's
own thread pool is not affected). On the reference machine, 2 cores shared with other
jobs, multi-threaded OpenBLAS made PennyLane's ``default.qubit`` bimodal and up to 6x
slower (1.4 s or 9 s per Hessian at 6 wires), and ``lightning.qubit`` after it up to 30x
slower (0.75 s vs 12-24 s at 8 wires); one thread is PennyLane's best case there.

Each case runs in a fresh worker process (``--case-timeout`` seconds; what it finished
before a timeout is kept, and later cases with more work — circuits x gates x 2**n — are
skipped). The load average is recorded before every case: the machine may be shared.

Run (from the repository root; qhess need not be installed)::

    python bench/run.py                # the cases above, ~10 min on 2 cores
    python bench/run.py --quick        # n = 4, 6 (1 layer), 1-2 repeats, no PennyLane, < 60 s
    python bench/run.py --cases 18x1 20x1 --no-pennylane

Output: a line per method and a Markdown table on stdout; JSON at
``bench/results/hessian-<date>-<host>.json`` (``--out`` to change it; ``--quick`` writes
``hessian-quick-...``), the table as ``.md`` and, when matplotlib is installed, a PNG plot
(time vs P, log-log, one line per method) with the same stem.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import sys
import time

import jax
import numpy as np

import common
from kernel import hea_circuit

DEFAULT_CASES = ("4x2", "6x2", "8x2", "10x2", "12x2", "14x1", "16x1", "4x25")
QUICK_CASES = ("4x1", "6x1")
QHESS_METHODS = ("qhess_default", "qhess_product", "qhess_diagonal", "qhess_independent",
                 "qhess_adjoint")
PL_DEVICES = ("default.qubit", "lightning.qubit")
# Thread counts of the BLAS / OpenMP pools NumPy and PennyLane use (not XLA's).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def case_info(n: int, layers: int) -> dict:
  """The static numbers of one case (known without running anything)."""
  p = 2 * n * layers
  return {"case": f"{n}x{layers}", "n_qubits": n, "layers": layers, "n_params": p,
          "n_gates": (3 * n - 1) * layers,
          # default rule, single-frequency gates: 1 + P + 2P(P-1) before merging
          "work_estimate": (1 + p + 2 * p * (p - 1)) * (3 * n - 1) * layers * 2**n}


def build(n: int, layers: int, seed: int):
  """``(circuit, x, n_gates)`` of the case ``n`` x ``layers``."""
  info = case_info(n, layers)
  x = np.random.default_rng(seed + 1000 * n + layers).uniform(0, 2 * np.pi,
                                                               info["n_params"])
  return hea_circuit(n, layers), x, info["n_gates"]


# ------------------------------------------------- shared with the families benchmark


def setup(args) -> tuple[dict, dict]:
  """``(versions, worker_env)``: PennyLane's versions (None: not installed), and the
  workers' environment (``--blas-threads`` BLAS / OpenMP threads)."""
  versions = {}
  for pkg in ("pennylane", "pennylane_lightning"):
    try:
      versions[pkg] = importlib.metadata.version(pkg.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
      versions[pkg] = None
  env = dict(os.environ)
  if args.blas_threads:
    env.update({v: str(args.blas_threads) for v in THREAD_VARS})
  return versions, env


def hessian_meta(question: str, args, versions: dict, worker_env: dict) -> dict:
  """The run's facts that both benchmarks record (machine, versions, qhess, load)."""
  # The parent never touches a JAX backend (on a GPU it would hold the memory the
  # workers need); the device name comes back from the workers.
  return {
      **common.machine_meta(question, "?", "float64"),
      "pennylane_version": versions["pennylane"],
      "pennylane_lightning_version": versions["pennylane_lightning"],
      "blas_threads": args.blas_threads,
      "worker_thread_env": {v: worker_env.get(v) for v in THREAD_VARS},
      "pl_max_wires": args.pl_max_wires, "qhess": common.qhess_version(),
      "loadavg_start": list(os.getloadavg()),
  }


def print_header(title: str, meta: dict, versions: dict, use_pl: bool) -> None:
  print(f"# qhess Hessian benchmark, {title}, jax={jax.__version__} dtype=float64, "
        f"{os.cpu_count()} cores, load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
  print(common.source_line(meta["qhess"]))
  print(f"# PennyLane {versions['pennylane']}, lightning {versions['pennylane_lightning']}"
        f"{'' if use_pl else ' (not run)'}")


def summary_header(meta: dict, versions: dict, lightning: bool) -> str:
  """The line above the results table (and in the Markdown file)."""
  pl = f"PennyLane={versions['pennylane']}" + (
      f" lightning={versions['pennylane_lightning']};" if lightning else "")
  return (f"device={meta['device']} ({os.cpu_count()} cores) jax={jax.__version__} "
          f"dtype=float64 {pl} load average at start {meta['loadavg_start'][0]:.2f}, "
          f"at end {meta['loadavg_end'][0]:.2f}")


def spawn(spec, timeout: float | None, env: dict) -> common.Worker:
  """``python bench/run.py --worker <spec>`` (`hessians.work`) in a fresh process."""
  return common.Worker(common.HERE / "run.py", spec, timeout, env)


def stream(worker: common.Worker, meta: dict, bar, warmed: set, label: str = ""):
  """The worker's result lines as ``(family, method, row)`` (family None for a case).

  Warm-up lines go into ``warmed`` (as ``(family, method)``) and the progress bar: one
  step per warm-up, one per result, two for a result without a warm-up.
  """
  for kind, r in worker.results():
    m, family = r.pop("method"), r.pop("family", None)
    if kind == "warm":
      warmed.add((family, m))
      if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"{family or label} {m} warm-up {r['first_call_s']:.1f} s")
      continue
    if m != "_info":
      meta["device"] = r.get("device", meta["device"])
      if bar is not None:
        bar.update(1 if (family, m) in warmed else 2)
    yield family, m, r


def fill_missing(got: dict, methods: list[str], why: str | None, warmed: set,
                 family: str | None, bar) -> None:
  """A status for every method the worker did not report (it failed or timed out)."""
  for m in methods:
    if m not in got:
      got[m] = {"status": why or "missing"}
      if bar is not None:
        bar.update(1 if (family, m) in warmed else 2)


def finish_methods(got: dict, methods: list[str], atol: float, say, where: str) -> dict:
  """``got`` in the order of ``methods``, with ratios to the default; warns of mismatches."""
  got = {m: got[m] for m in methods}
  base = got.get("qhess_default", {})
  for m, r in got.items():
    if r.get("status") == "ok" and base.get("status") == "ok":
      r["ratio_to_default"] = r["median_s"] / base["median_s"]
    if r.get("matches_jax") is False:
      say(f"WARNING {where} {m}: Hessian differs from jax.hessian by "
          f"{r['max_abs_diff_vs_jax']:.2e} > {atol:g}")
  return got


def result_line(meta: dict, where: str, m: str, r: dict, extra: str = "") -> str:
  """The progress line of a method's result row (``extra`` after its times)."""
  tag = (f"device={meta['device']} jax={jax.__version__} dtype=float64 {where} "
         f"n_circuits={r.get('n_circuits')} {m}")
  if r["status"] != "ok":
    return f"{tag}: {r['status']}"
  comp = "" if r["compile_s"] is None else f"compile {r['compile_s']:.2f} s, "
  return (f"{tag}: {comp}median {common.fmt_ms(r['median_s'])} ms "
          f"[{common.fmt_ms(r['min_s'])}, {common.fmt_ms(r['max_s'])}] (R={r['repeat']})"
          f"{extra}")


def written_by() -> str:
  return f"Written by `python bench/run.py {' '.join(sys.argv[1:])}`."


# ------------------------------------------------------------------------ the cases


def _pl_skip(case: dict, pl_devices: list[str], args, pl_last: dict) -> dict:
  """Why a PennyLane device is not run on this case (too wide, or predicted too slow)."""
  skip = {}
  for d in pl_devices:
    m = f"pl_{d}"
    if case["n_qubits"] > args.pl_max_wires:
      skip[m] = f"skipped (n > {args.pl_max_wires})"
    elif d in pl_last:  # predict from the last case's time per gate application
      p = case["n_params"]
      t = case["n_gates"] * (1 + p + 2 * p * (p - 1)) / pl_last[d]
      if t > args.pl_limit:
        skip[m] = f"skipped (predicted {t:.0f} s > {args.pl_limit:g} s)"
  return skip


def _run_case(case: dict, spec: dict, meta: dict, env: dict, bar, say,
              pl_last: dict) -> str | None:
  """One case in a worker: its rows into ``case["methods"]``; why it ended badly, if so."""
  worker = spawn(spec, meta["case_timeout_s"] or None, env)
  warmed = set()
  for _, m, r in stream(worker, meta, bar, warmed, case["case"]):
    case["methods"][m] = r
    ok = r["status"] == "ok"
    if ok and m.startswith("pl_") and r["n_circuits"]:
      pl_last[m[3:]] = r["n_circuits"] * case["n_gates"] / r["median_s"]
    gate = ("" if not ok or r.get("gate_apps_per_s") is None else
            f", {r['circuits_per_s']:.4g} circuits/s, "
            f"{r['gate_apps_per_s']:.4g} gate apps/s")
    say(result_line(meta, f"n_qubits={case['n_qubits']} n_params={case['n_params']}", m, r,
                    gate))
  why = worker.finish()
  fill_missing(case["methods"], spec["methods"], why, warmed, None, bar)
  return why


def _run_cases(cases: list, pl_devices: list[str], args, meta: dict, env: dict) -> list:
  """Every case in its own worker; a timed-out case skips the later ones with more work."""
  methods = meta["methods"]
  bar, say = common.progress(total=2 * len(cases) * len(methods), desc="warm-ups + timings")
  rows, gave_up, pl_last = [], None, {}
  for n, layers in cases:
    case = case_info(n, layers)
    case["loadavg"] = list(os.getloadavg())
    case["methods"] = {}
    if bar is not None:
      bar.set_postfix_str(case["case"])
    where = f"n_qubits={n} n_params={case['n_params']}"
    if gave_up is not None and case["work_estimate"] >= gave_up[1]:
      for m in methods:
        case["methods"][m] = {"status": f"skipped ({gave_up[0]} timed out)"}
      if bar is not None:
        bar.update(2 * len(methods))
    else:
      spec = {"n": n, "layers": layers, "methods": methods, "budget_s": meta["budget_s"],
              "repeat_max": meta["repeat_max"], "atol": meta["atol"],
              "pl_skip": _pl_skip(case, pl_devices, args, pl_last)}
      why = _run_case(case, spec, meta, env, bar, say, pl_last)
      if why == "timed out":
        gave_up = (case["case"], case["work_estimate"])
        say(f"device={meta['device']} {where}: case timed out after "
            f"{meta['case_timeout_s']:g} s")
      elif why:
        say(f"{where}: worker {why}")
    case["methods"] = finish_methods(case["methods"], methods, meta["atol"], say, where)
    rows.append(case)
  if bar is not None:
    bar.close()
  return rows


def run(args) -> None:
  """The HEA scaling benchmark (``run.py`` without ``--families``): JSON, table, plot."""
  versions, env = setup(args)
  cases = [common.parse_case(c) for c in (args.cases or (
      QUICK_CASES if args.quick else DEFAULT_CASES))]
  use_pl = not (args.quick or args.no_pennylane) and versions["pennylane"] is not None
  pl_devices = [d for d in PL_DEVICES if use_pl and (
      d != "lightning.qubit" or versions["pennylane_lightning"] is not None)]
  meta = {
      **hessian_meta("How fast is qhess's parameter-shift Hessian, against autodiff and "
                     "PennyLane?", args, versions, env),
      "methods": [*QHESS_METHODS, "jax_hessian", *(f"pl_{d}" for d in pl_devices)],
      "budget_s": args.budget or (0.5 if args.quick else 4.0),
      "repeat_max": args.repeat or (2 if args.quick else 15),
      "case_timeout_s": args.case_timeout if args.case_timeout is not None else (
          60.0 if args.quick else 360.0),
      "atol": args.atol or 1e-8, "pl_limit_s": args.pl_limit,
      "workload": "HEA: per layer RY, RZ on every wire, then CNOT(i, i+1); "
                  "expval(sum_i Z_i Z_{i+1}); full Hessian w.r.t. the flat parameters",
  }
  print_header("HEA", meta, versions, use_pl)
  t_start = time.perf_counter()
  rows = _run_cases(cases, pl_devices, args, meta, env)
  meta["loadavg_end"] = list(os.getloadavg())
  meta["wall_s"] = time.perf_counter() - t_start

  header = summary_header(meta, versions, lightning=False)
  table = markdown_table(rows)
  print(f"\n{header}\n\n{table}")
  q = meta["qhess"]
  md = (f"# Hessian benchmark, {meta['date']}, {meta['host']}\n\n{header}; qhess commit "
        f"{q['commit']}{' (dirty)' if q['dirty'] else ''}. Ratios: median time "
        "over qhess_default's median (above 1: qhess_default is faster). "
        f"{written_by()}\n\n{table}\n")
  common.write_results(common.default_out(args.out, "hessian", args.quick, meta),
                       {"meta": meta, "cases": rows}, md,
                       lambda png: plot(rows, meta, png))


# ------------------------------------------------------------------------ the report
def markdown_table(cases: list[dict]) -> str:
  head = ("| n_qubits | layers | n_params | method | n_circuits | compile s | median ms "
          "| min–max ms | R | circuits/s | gate apps/s | t / t(qhess_default) "
          "| max abs diff vs jax |")
  lines = [head, "|" + "---:|" * 3 + ":---|" + "---:|" * 9]
  for c in cases:
    start = f"| {c['n_qubits']} | {c['layers']} | {c['n_params']} "
    for method, r in c["methods"].items():
      if r.get("status") != "ok":
        lines.append(start + f"| {method} | {r.get('status')} |" + " |" * 8)
        continue
      err = r.get("max_abs_diff_vs_jax")
      lines.append(
          start + f"| {method} | {r['n_circuits'] or ''} | {common.fmt_s(r['compile_s'])} "
          f"| {common.fmt_ms(r['median_s'])} "
          f"| {common.fmt_ms(r['min_s'])}–{common.fmt_ms(r['max_s'])} "
          f"| {r['repeat']} | {common.fmt_s(r.get('circuits_per_s'))} "
          f"| {common.fmt_s(r.get('gate_apps_per_s'))} | {common.fmt_s(r.get('ratio_to_default'))} "
          f"| {'' if err is None else f'{err:.1e}'}"
          f"{'' if r.get('matches_jax', True) else ' MISMATCH'} |")
  return "\n".join(lines)


_STYLE = {"qhess_default": ("C0", "o"), "qhess_product": ("C1", "s"),
          "qhess_diagonal": ("C2", "^"), "jax_hessian": ("C3", "D"),
          "pl_default.qubit": ("C4", "v"), "pl_lightning.qubit": ("C5", "P"),
          "qhess_independent": ("C6", "x"), "qhess_adjoint": ("C7", "*")}


def plot(cases: list[dict], meta: dict, path: pathlib.Path) -> bool:
  """Median time vs P (log-log) per method; False when matplotlib is missing."""
  plt = common.pyplot()
  if plt is None:
    return False
  fig, ax = plt.subplots(figsize=(9, 6), constrained_layout=True)
  methods = [m for m in _STYLE if any(c["methods"].get(m, {}).get("status") == "ok"
                                      for c in cases)]
  layer_counts = sorted({c["layers"] for c in cases})
  lines = ["-", "--", ":", "-."]
  for m in methods:
    color, marker = _STYLE[m]
    label = m
    for k, layers in enumerate(layer_counts):
      pts = sorted((c["n_params"], c["methods"][m]["median_s"]) for c in cases
                   if c["layers"] == layers and c["methods"].get(m, {}).get("status") == "ok")
      if pts:
        ax.loglog(*zip(*pts), ls=lines[k % len(lines)], marker=marker, color=color,
                  label=label)
        label = None
  by_p = {}
  for c in cases:  # label each case at the bottom
    by_p.setdefault(c["n_params"], []).append(c["case"])
  for p, names in by_p.items():
    ax.annotate(" / ".join(names), (p, 0), xycoords=("data", "axes fraction"),
                xytext=(3, 4), textcoords="offset points", ha="left", va="bottom",
                fontsize=7, rotation=90, color="gray")
  ax.set_xlabel("n_params P  (labels: wires x layers)")
  ax.set_ylabel("median time per full Hessian [s]")
  style_note = ", ".join(f"{ls} {layers} layer{'s' if layers > 1 else ''}"
                         for ls, layers in zip(["solid", "dashed", "dotted", "dash-dot"],
                                               layer_counts))
  ax.set_title(f"HEA, expval(sum Z_i Z_i+1), {meta['dtype']}; lines: {style_note}",
               fontsize=9)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8, loc="lower right")
  fig.suptitle(f"Full Hessian — qhess vs jax.hessian vs PennyLane; {meta['device']}, "
               f"{meta['cpu_count']} cores, JAX {meta['jax_version']}", fontsize=10)
  return common.save_figure(plt, fig, path)
