"""How fast is qhess's parameter-shift Hessian, against autodiff and PennyLane?

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

Circuit families (``--families [NAME ...]``): the same question for the circuits of
``bench/families.py`` — ``hea_a`` and ``hea_b`` (the HEA above in two gate orders),
``sel`` (strongly entangling layers), ``qaoa`` (MaxCut on a ring, tied parameters),
``chem`` (IsingXX/YY, MultiRZ, PauliRot; an observable with X and Y terms), ``random``
(the whole gate catalogue) — at one size, ``--wires`` x ``--layers`` (default 10 x 2),
every family in a fresh worker process. Methods: ``qhess_default``;
``qhess_independent_default_rule`` (``evaluation="independent"`` with the default rule:
the same circuits as the default, none shared — the baseline for sharing);
``jax_hessian``; ``pl_lightning.qubit``, tape-level ``param_shift_hessian`` as above
(PennyLane's fastest path; for tied parameters its gate-argument Hessian is contracted
with the 0/1 parameter map, ``Jᵀ H J``), and with ``--pl-qnode`` also
``pl_lightning.qubit_qnode``, ``param_shift_hessian(qnode)(x)`` on the family's QNode (the
user-level call through the autograd interface; 2.5-3x slower than the tape level at 8
wires on the reference machine). A PennyLane method's warm-up is one circuit execution
and every Hessian call is timed (usually 1, the series rules above). Timing and
correctness as above, with ``--atol`` 1e-9. Per family: ``P`` (gate arguments),
``n_inputs`` (entries of the parameter array), the default's circuit count, the times,
``t_indep / t_default``, ``t_PL / t_default``, ``t_default / t_jax``, the default's time
per shifted circuit and its ratio to ``hea_a``'s, the default's compile time, and the
largest difference from ``jax.hessian``. ``--quick``: 4 wires x 1 layer, 1 timed call,
all families in one worker, no PennyLane unless ``--pennylane``.

Run (from the repository root; qhess need not be installed)::

    python bench/run.py                # the cases above, ~10 min on 2 cores
    python bench/run.py --quick        # n = 4, 6 (1 layer), 1-2 repeats, no PennyLane, < 60 s
    python bench/run.py --cases 18x1 20x1 --no-pennylane
    python bench/run.py --families     # every family, 10 wires x 2 layers
    python bench/run.py --families qaoa chem --wires 8 --pl-qnode
    python bench/run.py --families --quick

Output: a line per method and a Markdown table on stdout; JSON at
``bench/results/hessian-<date>-<host>.json`` (``--out`` to change it; ``--quick`` writes
``hessian-quick-...``), the table as ``.md`` and, when matplotlib is installed, a PNG plot
(time vs P, log-log, one line per method) with the same stem. ``--families`` writes
``bench/results/families-<date>-<host>.json`` (``families-quick-...`` with ``--quick``),
a summary table and a table per family as ``.md``, and a PNG (grouped bars per family:
Hessian time per method, and time per shifted circuit; log scale).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np

_HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
try:
  import qhess  # installed: `pip install -e .`
except ImportError:  # a checkout: the repository root is this folder's parent
  sys.path.insert(0, str(_HERE.parent))
  import qhess
import families  # noqa: E402
from kernel import _device_name, _qhess_version, hea_circuit, progress, source_line  # noqa: E402

_DEFAULT_CASES = ("4x2", "6x2", "8x2", "10x2", "12x2", "14x1", "16x1", "4x25")
_QUICK_CASES = ("4x1", "6x1")
QHESS_METHODS = ("qhess_default", "qhess_product", "qhess_diagonal", "qhess_independent",
                 "qhess_adjoint")
PL_DEVICES = ("default.qubit", "lightning.qubit")
# Thread counts of the BLAS / OpenMP pools NumPy and PennyLane use (not XLA's).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_RULES = {"qhess_default": None, "qhess_product": "product", "qhess_diagonal": "diagonal",
          "qhess_independent": "product", "qhess_independent_default_rule": None,
          "qhess_adjoint": None}
# qhess_independent: every shifted circuit from the start in one vmap, product rule —
# the naive baseline that prefix sharing, fusion and the diagonal rule are measured against.
# qhess_independent_default_rule (the families' baseline): the default's circuits, each from
# the start — shared against independent evaluation of the same circuits.
_EVALUATION = {"qhess_independent": "independent",
               "qhess_independent_default_rule": "independent", "qhess_adjoint": "adjoint"}
# The families benchmark (--families): its methods, and the labels of its tables.
FAMILY_METHODS = ("qhess_default", "qhess_independent_default_rule", "qhess_adjoint",
                  "jax_hessian",
                  "pl_lightning.qubit")
_QNODE = "_qnode"  # suffix of a PennyLane method timed through its QNode (--pl-qnode)
_LABELS = {"qhess_default": "qhess default", "qhess_independent_default_rule": "independent",
           "qhess_adjoint": "adjoint",
           "jax_hessian": "jax.hessian", "pl_lightning.qubit": "PennyLane lightning",
           "pl_lightning.qubit" + _QNODE: "PennyLane lightning (QNode)",
           "pl_default.qubit": "PennyLane default.qubit"}
_FAMILY_DEFAULTS = {"wires": 10, "layers": 2}
_FAMILY_QUICK = {"wires": 4, "layers": 1}
_RESULT = "RESULT "  # prefix of the worker's result lines on stdout
_WARM = "WARM "  # prefix of its warm-up lines


def parse_case(text: str) -> tuple[int, int]:
  n, layers = (int(v) for v in text.lower().split("x"))
  return n, layers


def case_info(n: int, layers: int) -> dict:
  """The static numbers of one case (known without running anything)."""
  p = 2 * n * layers
  return {"case": f"{n}x{layers}", "n_qubits": n, "layers": layers, "n_params": p,
          "n_gates": (3 * n - 1) * layers,
          # default rule, single-frequency gates: 1 + P + 2P(P-1) before merging
          "work_estimate": (1 + p + 2 * p * (p - 1)) * (3 * n - 1) * layers * 2**n}


# ------------------------------------------------------------------------ the worker


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def _series_done(times: list[float], budget_s: float, repeat_max: int) -> bool:
  """Whether a method's timed calls are enough (see the module docs)."""
  spent = sum(times)
  return (len(times) >= repeat_max or (len(times) >= 3 and spent >= budget_s)
          or spent + times[-1] > 3 * budget_s)


def _timing_row(first: float, times: list[float], n_circuits, n_gates: int,
                compiled: bool) -> dict:
  med = statistics.median(times)
  row = {"status": "ok", "first_call_s": first,
         "compile_s": max(0.0, first - min(times)) if compiled else None,
         "median_s": med, "min_s": min(times), "max_s": max(times), "repeat": len(times),
         "times_s": times, "n_circuits": n_circuits}
  if n_circuits is not None:
    row["circuits_per_s"] = n_circuits / med
    row["gate_apps_per_s"] = n_circuits * n_gates / med
  return row


def _build(family: str | None, n: int, layers: int, seed: int):
  """``(circuit, x, n_gates)`` of one case: the HEA scaling case, or a family instance."""
  if family is None:
    info = case_info(n, layers)
    f = hea_circuit(n, layers)
    x = np.random.default_rng(seed + 1000 * n + layers).uniform(0, 2 * np.pi,
                                                                 info["n_params"])
    return f, x, info["n_gates"]
  fam = families.FAMILIES[family](n, layers, seed, device=None)
  return fam.circuit, np.asarray(fam.params, np.float64), None


def bench_case(n: int, layers: int, methods: list[str], budget_s: float, repeat_max: int,
               atol: float, pl_skip: dict, seed: int = 0, family: str | None = None) -> None:
  """Times one case in this process; prints one RESULT line per method.

  ``family=None`` is a case of the HEA scaling benchmark; a name from
  `families.FAMILIES` times that family (then a PennyLane method's warm-up is one plain
  circuit execution, and its first Hessian call is a timed one: it compiles nothing).
  """
  jax.config.update("jax_enable_x64", True)
  f, x_np, n_gates = _build(family, n, layers, seed)
  x = jax.device_put(x_np)
  tape = f.tape(x)
  if n_gates is None:
    n_gates = len(tape.operations)
  else:
    assert tape.num_params == x_np.size and len(tape.operations) == n_gates
  device = _device_name()
  tag = {} if family is None else {"family": family}

  def emit(method, row):
    row.update({"method": method, "device": device, "dtype": "float64", **tag})
    print(_RESULT + json.dumps(row), flush=True)

  if family is not None:
    print(_RESULT + json.dumps({"method": "_info", **tag, "n_params": tape.num_params,
                                "n_inputs": int(x_np.size), "params_shape": x_np.shape,
                                "n_gates": n_gates}), flush=True)
  counts = {}

  def n_circuits(rule):
    if rule is None:  # what qhess.hessian does without a rule
      rule = getattr(qhess._hessian, "_DEFAULT_RULE", "product")
    if rule not in counts:
      counts[rule] = len(qhess.hessian_tapes(tape, off_diagonal_rule=rule)[0])
    return counts[rule]

  # Phase 1: build and warm up every method (trace + compile + one run), in order.
  calls, firsts, counts_of, hessians = {}, {}, {}, {}
  first_timed = set()  # methods whose warm-up was cheap: their first Hessian is timed
  for method in methods:
    if method in pl_skip:
      emit(method, {"status": pl_skip[method]})
      continue
    try:
      if method in _RULES:
        rule = _RULES[method]
        # The adjoint evaluation runs other circuits (2R_i per row): not counted here.
        counts_of[method] = None if method == "qhess_adjoint" else n_circuits(rule)
        h = jax.jit(qhess.hessian(f, off_diagonal_rule=rule,
                                  evaluation=_EVALUATION.get(method, "shared")))
        call = (lambda h: lambda: jax.block_until_ready(h(x)))(h)
      elif method == "jax_hessian":
        h = jax.jit(jax.hessian(f))
        call = (lambda h: lambda: jax.block_until_ready(h(x)))(h)
        counts_of[method] = None
      else:  # pl_<device>[_qnode]
        qnode = method.endswith(_QNODE)
        dev_name = method[3:-len(_QNODE)] if qnode else method[3:]
        call, warm, counts_of[method] = _pl_call(dev_name, f, x_np, qnode=qnode)
      if family is not None and method.startswith("pl_"):
        first_timed.add(method)
        _, firsts[method] = _timed(warm)
      else:
        out, firsts[method] = _timed(call)
        hessians[method] = np.asarray(out, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 -- report, go on with the next method
      emit(method, {"status": f"error: {type(err).__name__}: {str(err)[:300]}"})
      continue
    calls[method] = call
    print(_WARM + json.dumps({"method": method, "first_call_s": firsts[method], **tag}),
          flush=True)

  # Phase 2: timed calls, interleaved (one per method per round), so that a change in
  # the machine's load, or a first-in-process effect, does not favour one method.
  times = {m: [] for m in calls}
  active = list(calls)
  while active:
    for method in list(active):
      try:
        out, t = _timed(calls[method])
      except Exception as err:  # noqa: BLE001
        active.remove(method)
        emit(method, {"status": f"error: {type(err).__name__}: {str(err)[:300]}"})
        continue
      times[method].append(t)
      if method not in hessians:
        hessians[method] = np.asarray(out, dtype=np.float64)
      if not _series_done(times[method], budget_s, repeat_max):
        continue
      active.remove(method)
      row = _timing_row(firsts[method], times[method], counts_of[method], n_gates,
                        compiled=not method.startswith("pl_"))
      if method in first_timed:
        row["warmup"] = "one circuit execution; every Hessian call timed"
      if method in _RULES:
        row["rule"] = _RULES[method] or getattr(qhess._hessian, "_DEFAULT_RULE", None)
        row["evaluation"] = _EVALUATION.get(method, "shared")
      if method.startswith("pl_"):
        row["pennylane_version"] = _pl_call.version
        row["pennylane_api"] = "QNode" if method.endswith(_QNODE) else "tape"
      ref = hessians.get("jax_hessian")
      if ref is not None and method != "jax_hessian":
        row.update(_check(hessians[method], ref, atol))
      emit(method, row)


def _pl_call(device: str, f, x: np.ndarray, *, qnode: bool = False):
  """PennyLane's param_shift_hessian of the circuit ``f`` at ``x``, on ``device``.

  ``qnode=False``: at tape level with NumPy gate arguments (PennyLane's cheapest path:
  no interface, no classical Jacobian), ``tapes, fn = param_shift_hessian(tape)``,
  ``fn(qml.execute(tapes, dev, diff_method=None))``, then ``Jᵀ H J`` with ``J`` the 0/1
  map from ``x``'s entries to the gate arguments (the identity unless parameters are
  tied). ``qnode=True``: ``param_shift_hessian(qnode)(pnp.array(x, requires_grad=True))``
  on the QNode of `families.pennylane_qnode` (the user-level call, autograd interface).

  Returns:
    ``(call, warm, n_tapes)``: the Hessian call (an array shaped like
    ``jax.hessian(f)(x)``), a cheap warm-up (one circuit execution) and the number of
    tapes a call runs.
  """
  import pennylane as qml
  _pl_call.version = qml.__version__
  dev = qml.device(device, wires=f.n_wires)
  tape = families.pennylane_tape(f.tape(x))
  n_tapes = len(qml.gradients.param_shift_hessian(tape)[0])

  def warm():
    return qml.execute([tape], dev, diff_method=None)

  if qnode:
    from pennylane import numpy as pnp
    node = families.pennylane_qnode(f, x, device)
    xp = pnp.array(x, requires_grad=True)
    return (lambda: np.asarray(qml.gradients.param_shift_hessian(node)(xp))), warm, n_tapes
  index = families.parameter_map(f, x)
  jac = None  # (P, x.size) when the map is not the identity
  if not np.array_equal(index, np.arange(x.size)):
    jac = np.zeros((index.size, x.size))
    jac[np.arange(index.size), index] = 1.0

  def call():
    tapes, fn = qml.gradients.param_shift_hessian(tape)
    h = np.asarray(fn(qml.execute(tapes, dev, diff_method=None)))  # (P, P)
    if jac is not None:
      h = jac.T @ h @ jac
    return h.reshape(x.shape * 2)

  return call, warm, n_tapes


def _check(h, ref, atol) -> dict:
  err = float(np.max(np.abs(h - ref)))
  return {"max_abs_diff_vs_jax": err, "matches_jax": bool(err <= atol)}


# ------------------------------------------------------------------------ the parent


class _Worker:
  """One case in a fresh process, its result lines read as they come."""

  def __init__(self, spec: dict, timeout: float | None, env: dict | None = None):
    self.stderr = tempfile.TemporaryFile(mode="w+")
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker",
           json.dumps(spec)]
    self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                 text=True, env=env)
    self.timed_out = False
    self.timer = None
    if timeout:
      self.timer = threading.Timer(timeout, self._kill)
      self.timer.start()

  def _kill(self):
    self.timed_out = True
    self.proc.kill()

  def results(self):
    """``(kind, row)`` per line: kind "warm" (a warm-up done) or "result"."""
    for line in self.proc.stdout:
      if line.startswith(_RESULT):
        yield "result", json.loads(line[len(_RESULT):])
      elif line.startswith(_WARM):
        yield "warm", json.loads(line[len(_WARM):])

  def finish(self) -> str | None:
    """None when the worker ended cleanly, else why not."""
    code = self.proc.wait()
    if self.timer:
      self.timer.cancel()
    self.stderr.seek(0)
    tail = self.stderr.read().strip().splitlines()[-5:]
    self.stderr.close()
    if self.timed_out:
      return "timed out"
    return None if code == 0 else f"failed (exit {code}): " + " / ".join(tail)


def _fmt_s(v):
  return "" if v is None else f"{v:.3g}"


def _fmt_ms(v):
  return "" if v is None else f"{1e3 * v:.4g}"


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
          start + f"| {method} | {r['n_circuits'] or ''} | {_fmt_s(r['compile_s'])} "
          f"| {_fmt_ms(r['median_s'])} | {_fmt_ms(r['min_s'])}–{_fmt_ms(r['max_s'])} "
          f"| {r['repeat']} | {_fmt_s(r.get('circuits_per_s'))} "
          f"| {_fmt_s(r.get('gate_apps_per_s'))} | {_fmt_s(r.get('ratio_to_default'))} "
          f"| {'' if err is None else f'{err:.1e}'}"
          f"{'' if r.get('matches_jax', True) else ' MISMATCH'} |")
  return "\n".join(lines)


_STYLE = {"qhess_default": ("C0", "o"), "qhess_product": ("C1", "s"),
          "qhess_diagonal": ("C2", "^"), "jax_hessian": ("C3", "D"),
          "pl_default.qubit": ("C4", "v"), "pl_lightning.qubit": ("C5", "P"),
          "qhess_independent": ("C6", "x"), "qhess_adjoint": ("C7", "*")}


def plot(cases: list[dict], meta: dict, path: pathlib.Path) -> bool:
  """Median time vs P (log-log) per method; False when matplotlib is missing."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
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
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


# ------------------------------------------------------------------------ the families


def family_summary(row: dict, hea_a_us: float | None) -> dict:
  """The ratios of one family's row (medians; None where a method has no time)."""
  t = {m: r["median_s"] for m, r in row["methods"].items() if r.get("status") == "ok"}
  base = row["methods"].get("qhess_default", {})
  n_circ = base.get("n_circuits")
  pl = next((m for m in ("pl_lightning.qubit", "pl_lightning.qubit" + _QNODE) if m in t),
            None)

  def ratio(a, b):
    return None if a is None or b is None else a / b

  d = t.get("qhess_default")
  us = None if d is None or not n_circ else 1e6 * d / n_circ
  errs = [r["max_abs_diff_vs_jax"] for m, r in row["methods"].items()
          if m.startswith("qhess") and r.get("max_abs_diff_vs_jax") is not None]
  return {
      "n_circuits": n_circ, "default_ms": None if d is None else 1e3 * d,
      "default_compile_s": base.get("compile_s"),
      "independent_over_default": ratio(t.get("qhess_independent_default_rule"), d),
      "default_over_adjoint": ratio(d, t.get("qhess_adjoint")),
      "pennylane_over_default": ratio(t.get(pl), d), "pennylane_method": pl,
      "default_over_jax_hessian": ratio(d, t.get("jax_hessian")),
      "default_us_per_circuit": us,
      "per_circuit_over_hea_a": ratio(us, hea_a_us),
      "max_abs_diff_vs_jax": max(errs) if errs else None,
      "all_match_jax": all(r.get("matches_jax", True) for r in row["methods"].values()),
  }


def _fmt_x(v):
  return "" if v is None else f"{v:.3g}×"


def families_markdown(rows: list[dict]) -> str:
  """A summary table over the families, then one table per family."""
  head = ("| family | wires × layers | P | inputs | circuits | default ms | independent ms "
          "| adjoint ms | jax.hessian ms | PennyLane ms | t_indep / t_default "
          "| t_default / t_adjoint | t_PL / t_default "
          "| t_default / t_jax | µs / circuit | per circuit / hea_a's | default compile s "
          "| max abs diff vs jax |")
  lines = ["## Summary (median times; ratios above 1 in the three ratio columns mean "
           "qhess's default is faster, except t_default / t_jax, where below 1 does)", "",
           head, "|:---|---:|" + "---:|" * 16]
  for row in rows:
    s, ms = row["summary"], {}
    for m, r in row["methods"].items():
      ms[m] = _fmt_ms(r["median_s"]) if r.get("status") == "ok" else "—"
    pl = s["pennylane_method"] or "pl_lightning.qubit"
    err = s["max_abs_diff_vs_jax"]
    lines.append(
        f"| {row['family']} | {row['n_qubits']} × {row['layers']} "
        f"| {row.get('n_params', '')} | {row.get('n_inputs', '')} "
        f"| {s['n_circuits'] or ''} | {ms.get('qhess_default', '')} "
        f"| {ms.get('qhess_independent_default_rule', '')} | {ms.get('qhess_adjoint', '')} "
        f"| {ms.get('jax_hessian', '')} "
        f"| {ms.get(pl, '')} | {_fmt_x(s['independent_over_default'])} "
        f"| {_fmt_x(s.get('default_over_adjoint'))} "
        f"| {_fmt_x(s['pennylane_over_default'])} | {_fmt_x(s['default_over_jax_hessian'])} "
        f"| {_fmt_s(s['default_us_per_circuit'])} | {_fmt_x(s['per_circuit_over_hea_a'])} "
        f"| {_fmt_s(s['default_compile_s'])} "
        f"| {'' if err is None else f'{err:.1e}'}{'' if s['all_match_jax'] else ' MISMATCH'} |")
  for row in rows:
    lines += ["", f"## {row['family']}: {families.DESCRIPTIONS[row['family']]}", "",
              f"{row['n_qubits']} wires × {row['layers']} layers; params shape "
              f"{tuple(row.get('params_shape', ()))}, P = {row.get('n_params', '?')} gate "
              f"arguments, {row.get('n_gates', '?')} gates; load average "
              f"{row['loadavg'][0]:.2f} before it.", "",
              "| method | circuits | compile s | median ms | min–max ms | R | µs / circuit "
              "| t / t(qhess default) | max abs diff vs jax |",
              "|:---|" + "---:|" * 8]
    for m, r in row["methods"].items():
      label = _LABELS.get(m, m)
      if r.get("status") != "ok":
        lines.append(f"| {label} | {r.get('status')} |" + " |" * 7)
        continue
      err = r.get("max_abs_diff_vs_jax")
      n_c = r.get("n_circuits")
      lines.append(
          f"| {label} | {n_c or ''} | {_fmt_s(r['compile_s'])} | {_fmt_ms(r['median_s'])} "
          f"| {_fmt_ms(r['min_s'])}–{_fmt_ms(r['max_s'])} | {r['repeat']} "
          f"| {_fmt_s(1e6 * r['median_s'] / n_c) if n_c else ''} "
          f"| {_fmt_s(r.get('ratio_to_default'))} "
          f"| {'' if err is None else f'{err:.1e}'}"
          f"{'' if r.get('matches_jax', True) else ' MISMATCH'} |")
  return "\n".join(lines)


_FAMILY_STYLE = {"qhess_default": "C0", "qhess_independent_default_rule": "C6",
                 "qhess_adjoint": "C7",
                 "jax_hessian": "C3", "pl_lightning.qubit": "C5",
                 "pl_lightning.qubit" + _QNODE: "C4"}


def families_plot(rows: list[dict], meta: dict, path: pathlib.Path) -> bool:
  """Grouped bars per family: median Hessian time and time per shifted circuit (log)."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return False
  methods = [m for m in _FAMILY_STYLE if any(
      r["methods"].get(m, {}).get("status") == "ok" for r in rows)]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True,
                                 gridspec_kw={"width_ratios": [3, 2]})
  x = np.arange(len(rows))
  width = 0.8 / max(1, len(methods))
  per_circuit = [m for m in methods if m != "jax_hessian"]
  width2 = 0.8 / max(1, len(per_circuit))
  for k, m in enumerate(methods):
    ok = [r["methods"].get(m, {}).get("status") == "ok" for r in rows]
    t = [r["methods"][m]["median_s"] if o else np.nan for r, o in zip(rows, ok)]
    bars = ax1.bar(x + (k - (len(methods) - 1) / 2) * width, t, width,
                   label=_LABELS.get(m, m), color=_FAMILY_STYLE[m])
    if m == "qhess_default":  # the default's speed-ups over independent evaluation
      for b, r in zip(bars, rows):
        s = r["summary"]["independent_over_default"]
        if s is not None:
          ax1.annotate(f"{s:.2g}×", (b.get_x() + b.get_width() / 2, b.get_height()),
                       xytext=(0, 2), textcoords="offset points", ha="center",
                       va="bottom", fontsize=7, color="C0")
    if m in per_circuit:
      j = per_circuit.index(m)
      us = [1e6 * r["methods"][m]["median_s"] / r["methods"][m]["n_circuits"]
            if o and r["methods"][m].get("n_circuits") else np.nan
            for r, o in zip(rows, ok)]
      ax2.bar(x + (j - (len(per_circuit) - 1) / 2) * width2, us, width2,
              color=_FAMILY_STYLE[m], label=_LABELS.get(m, m))
  labels = [f"{r['family']}\n{r['n_qubits']}×{r['layers']}, P={r.get('n_params', '?')}"
            for r in rows]
  for ax in (ax1, ax2):
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
  ax1.set_ylabel("median time per full Hessian [s]")
  ax1.set_title("full Hessian (numbers: t_independent / t_default)", fontsize=9)
  ax2.set_ylabel("median time per shifted circuit [µs]")
  ax2.set_title("per shifted circuit (qhess: default's circuit count)", fontsize=9)
  handles, names = ax1.get_legend_handles_labels()
  fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=8)
  fig.suptitle(f"Hessians of circuit families — qhess vs jax.hessian vs PennyLane "
               f"(param_shift_hessian); {meta['device']}, {meta['cpu_count']} cores, "
               f"JAX {meta['jax_version']}, {meta['dtype']}", fontsize=10)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def run_families(args, versions: dict, worker_env: dict) -> None:
  """The circuit-families benchmark (``--families``): times, tables, JSON, plot."""
  names = args.families or list(families.FAMILIES)
  defaults = _FAMILY_QUICK if args.quick else _FAMILY_DEFAULTS
  n, layers = args.wires or defaults["wires"], args.layers or defaults["layers"]
  repeat_max = args.repeat or (1 if args.quick else 15)
  budget_s = args.budget or (0.5 if args.quick else 4.0)
  # Compiling jax.hessian of a 60-gate circuit took 2-5 min on the loaded reference machine.
  case_timeout = args.case_timeout if args.case_timeout is not None else (
      120.0 if args.quick else 1200.0)
  atol = args.atol or 1e-9
  use_pl = (versions["pennylane"] is not None and versions["pennylane_lightning"]
            is not None and not args.no_pennylane and (args.pennylane or not args.quick))
  methods = [m for m in FAMILY_METHODS if use_pl or not m.startswith("pl_")]
  if use_pl and args.pl_qnode:
    methods.append("pl_lightning.qubit" + _QNODE)
  pl_skip = {m: f"skipped (n > {args.pl_max_wires})" for m in methods
             if m.startswith("pl_") and n > args.pl_max_wires}
  meta = {
      "question": "How fast is qhess's Hessian on circuit families, against independent "
                  "evaluation, autodiff and PennyLane?",
      **_common_meta(args, versions, worker_env), "methods": methods,
      "families": names, "n_qubits": n, "layers": layers, "seed": args.seed,
      "budget_s": budget_s, "repeat_max": repeat_max, "case_timeout_s": case_timeout,
      "atol": atol,
      "descriptions": {f: families.DESCRIPTIONS[f] for f in names},
  }
  print(f"# qhess Hessian benchmark, circuit families {' '.join(names)}, {n} wires x "
        f"{layers} layers, jax={jax.__version__} dtype=float64, {os.cpu_count()} cores, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
  print(source_line(meta["qhess"]))
  print(f"# PennyLane {versions['pennylane']}, lightning {versions['pennylane_lightning']}"
        f"{'' if use_pl else ' (not run)'}")

  specs = [{"family": name, "n": n, "layers": layers, "methods": methods,
            "budget_s": budget_s, "repeat_max": repeat_max, "atol": atol,
            "pl_skip": pl_skip, "seed": args.seed} for name in names]
  # --quick: one worker for all families (one JAX start-up); else one fresh process each.
  batches = [specs] if args.quick else [[s] for s in specs]
  rows = {name: {"family": name, "n_qubits": n, "layers": layers, "methods": {}}
          for name in names}
  bar, say = progress(total=2 * len(names) * len(methods), desc="warm-ups + timings")
  t_start = time.perf_counter()
  for batch in batches:
    for spec in batch:
      rows[spec["family"]]["loadavg"] = list(os.getloadavg())
    if bar is not None:
      bar.set_postfix_str(" ".join(s["family"] for s in batch))
    worker = _Worker(batch if len(batch) > 1 else batch[0],
                     case_timeout * len(batch) or None, worker_env)
    warmed = set()
    for kind, r in worker.results():
      m, row = r.pop("method"), rows[r.pop("family")]
      if m == "_info":
        row.update(r)
        continue
      if kind == "warm":
        warmed.add((row["family"], m))
        if bar is not None:
          bar.update(1)
          bar.set_postfix_str(f"{row['family']} {m} warm-up {r['first_call_s']:.1f} s")
        continue
      row["methods"][m] = r
      meta["device"] = r.get("device", meta["device"])
      if bar is not None:
        bar.update(1 if (row["family"], m) in warmed else 2)
      tag = (f"device={meta['device']} jax={jax.__version__} dtype=float64 "
             f"family={row['family']} n_qubits={n} n_params={row.get('n_params')} "
             f"n_circuits={r.get('n_circuits')} {m}")
      if r["status"] != "ok":
        say(f"{tag}: {r['status']}")
        continue
      comp = "" if r["compile_s"] is None else f"compile {r['compile_s']:.2f} s, "
      say(f"{tag}: {comp}median {_fmt_ms(r['median_s'])} ms "
          f"[{_fmt_ms(r['min_s'])}, {_fmt_ms(r['max_s'])}] (R={r['repeat']})"
          + ("" if r.get("max_abs_diff_vs_jax") is None else
             f", max |H - H_jax| {r['max_abs_diff_vs_jax']:.1e}"))
    why = worker.finish()
    for spec in batch:
      row = rows[spec["family"]]
      for m in methods:
        if m not in row["methods"]:
          row["methods"][m] = {"status": why or "missing"}
          if bar is not None:
            bar.update(1 if (row["family"], m) in warmed else 2)
      if why:
        say(f"family={row['family']}: worker {why}")
  if bar is not None:
    bar.close()
  meta["loadavg_end"] = list(os.getloadavg())
  meta["wall_s"] = time.perf_counter() - t_start

  out_rows = []
  for name in names:
    row = rows[name]
    row["methods"] = {m: row["methods"][m] for m in methods}
    base = row["methods"]["qhess_default"]
    for m, r in row["methods"].items():
      if r.get("status") == "ok" and base.get("status") == "ok":
        r["ratio_to_default"] = r["median_s"] / base["median_s"]
      if r.get("matches_jax") is False:
        say(f"WARNING family={name} {m}: Hessian differs from jax.hessian by "
            f"{r['max_abs_diff_vs_jax']:.2e} > {atol:g}")
    out_rows.append(row)
  hea = rows.get("hea_a")
  hea_us = None
  if hea is not None:
    hea_us = family_summary(hea, None)["default_us_per_circuit"]
  for row in out_rows:
    row["summary"] = family_summary(row, hea_us)

  header = (f"device={meta['device']} ({os.cpu_count()} cores) jax={jax.__version__} "
            f"dtype=float64 PennyLane={versions['pennylane']} "
            f"lightning={versions['pennylane_lightning']}; load average at start "
            f"{meta['loadavg_start'][0]:.2f}, at end {meta['loadavg_end'][0]:.2f}")
  table = families_markdown(out_rows)
  print(f"\n{header}\n\n{table}")
  out = args.out
  if out is None:
    out = _HERE / "results" / (f"families-{'quick-' if args.quick else ''}{meta['date']}-"
                               f"{meta['host']}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"meta": meta, "families": out_rows}, indent=1) + "\n")
  print(f"\nwrote {out}")
  q = meta["qhess"]
  md = out.with_suffix(".md")
  md.write_text(
      f"# Hessians of circuit families, {meta['date']}, {meta['host']}\n\n{header}; qhess "
      f"commit {q['commit']}{' (dirty)' if q['dirty'] else ''}. {n} wires × {layers} "
      f"layers, float64, seed {args.seed}. Written by `python bench/run.py "
      f"{' '.join(sys.argv[1:])}`. Methods: qhess default = `jax.jit(qhess.hessian(f))`; "
      "independent = the same circuits with `evaluation=\"independent\"`; jax.hessian = "
      "`jax.jit(jax.hessian(f))` through qhess's simulator; PennyLane lightning = "
      "`qml.gradients.param_shift_hessian` at tape level on `lightning.qubit` (its "
      "fastest path; `Jᵀ H J` for tied parameters)"
      + ("; PennyLane lightning (QNode) = `param_shift_hessian(qnode)`" if args.pl_qnode
         else "")
      + ". P counts gate arguments; circuits is qhess's number of shifted circuits "
      "(`len(qhess.hessian_tapes(tape, off_diagonal_rule=<default>)[0])`); PennyLane's "
      "is its number of tapes.\n\n" + table + "\n")
  print(f"wrote {md}")
  png = out.with_suffix(".png")
  if families_plot(out_rows, meta, png):
    print(f"wrote {png}")


def _versions() -> dict:
  out = {}
  for pkg in ("pennylane", "pennylane_lightning"):
    try:
      out[pkg] = importlib.metadata.version(pkg.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true",
                 help="cases 4x1 6x1, at most 2 repeats, no PennyLane (< 60 s); with "
                      "--families: 4 wires x 1 layer, 1 repeat, one worker, no PennyLane")
  p.add_argument("--cases", nargs="+",
                 help="NxL cases, wires x layers (default " + " ".join(_DEFAULT_CASES) + ")")
  p.add_argument("--families", nargs="*", choices=list(families.FAMILIES), metavar="NAME",
                 help="the circuit-families benchmark instead: these families (none "
                      "named: all of " + " ".join(families.FAMILIES) + ")")
  p.add_argument("--wires", type=int, default=None,
                 help="with --families: wires (default 10; 4 with --quick)")
  p.add_argument("--layers", type=int, default=None,
                 help="with --families: layers (default 2; 1 with --quick)")
  p.add_argument("--seed", type=int, default=0,
                 help="with --families: the parameters' (and the random circuit's) seed")
  p.add_argument("--no-pennylane", action="store_true", help="skip the PennyLane methods")
  p.add_argument("--pennylane", action="store_true",
                 help="with --families --quick: time PennyLane all the same")
  p.add_argument("--pl-qnode", action="store_true",
                 help="with --families: also time param_shift_hessian through the QNode")
  p.add_argument("--pl-max-wires", type=int, default=10,
                 help="largest n for PennyLane (default 10)")
  p.add_argument("--pl-limit", type=float, default=20.0,
                 help="skip a PennyLane device when its predicted call exceeds this (s)")
  p.add_argument("--repeat", type=int, default=None,
                 help="most timed calls per method (default 15; 2 with --quick, 1 with "
                      "--families --quick)")
  p.add_argument("--budget", type=float, default=None,
                 help="timed seconds aimed at per method (default 4; 0.5 with --quick)")
  p.add_argument("--case-timeout", type=float, default=None,
                 help="seconds per case (default 360; 60 with --quick) or family "
                      "(default 1200; 120 per family with --quick); 0: no limit")
  p.add_argument("--blas-threads", type=int, default=1,
                 help="OMP/OpenBLAS/MKL threads in the workers (default 1; 0: inherit). "
                      "XLA's own thread pool is not affected")
  p.add_argument("--atol", type=float, default=None,
                 help="correctness tolerance vs jax.hessian (default 1e-8; 1e-9 with "
                      "--families)")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="JSON path (default bench/results/hessian-<date>-<host>.json, or "
                      "families-<date>-<host>.json)")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: case specs, JSON
  return p.parse_args(argv)


def _common_meta(args, versions: dict, worker_env: dict) -> dict:
  """The run's facts that both benchmarks record (machine, versions, qhess, load)."""
  # The parent never touches a JAX backend (on a GPU it would hold the memory the
  # workers need); the device name comes back from the workers.
  return {
      "argv": sys.argv[1:], "date": datetime.date.today().isoformat(),
      "host": socket.gethostname(), "device": "?",
      "jax_version": jax.__version__, "numpy_version": np.__version__,
      "python": platform.python_version(), "machine": platform.machine(),
      "cpu_count": os.cpu_count(), "dtype": "float64",
      "pennylane_version": versions["pennylane"],
      "pennylane_lightning_version": versions["pennylane_lightning"],
      "blas_threads": args.blas_threads,
      "worker_thread_env": {v: worker_env.get(v) for v in _THREAD_VARS},
      "pl_max_wires": args.pl_max_wires, "qhess": _qhess_version(),
      "loadavg_start": list(os.getloadavg()),
  }


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.worker:
    spec = json.loads(args.worker)
    for one in spec if isinstance(spec, list) else [spec]:
      bench_case(**one)
    return
  versions = _versions()
  worker_env = dict(os.environ)
  if args.blas_threads:
    worker_env.update({v: str(args.blas_threads) for v in _THREAD_VARS})
  if args.families is not None:
    run_families(args, versions, worker_env)
    return
  cases = [parse_case(c) for c in (args.cases or (
      _QUICK_CASES if args.quick else _DEFAULT_CASES))]
  repeat_max = args.repeat or (2 if args.quick else 15)
  budget_s = args.budget or (0.5 if args.quick else 4.0)
  case_timeout = args.case_timeout if args.case_timeout is not None else (
      60.0 if args.quick else 360.0)
  atol = args.atol or 1e-8
  use_pl = not (args.quick or args.no_pennylane) and versions["pennylane"] is not None
  pl_devices = [d for d in PL_DEVICES if use_pl and (
      d != "lightning.qubit" or versions["pennylane_lightning"] is not None)]
  methods = [*QHESS_METHODS, "jax_hessian", *(f"pl_{d}" for d in pl_devices)]
  meta = {
      "question": "How fast is qhess's parameter-shift Hessian, against autodiff and "
                  "PennyLane?",
      **_common_meta(args, versions, worker_env), "methods": methods,
      "budget_s": budget_s, "repeat_max": repeat_max, "case_timeout_s": case_timeout,
      "atol": atol, "pl_limit_s": args.pl_limit,
      "workload": "HEA: per layer RY, RZ on every wire, then CNOT(i, i+1); "
                  "expval(sum_i Z_i Z_{i+1}); full Hessian w.r.t. the flat parameters",
  }
  host, today = meta["host"], meta["date"]
  print(f"# qhess Hessian benchmark, HEA, jax={jax.__version__} dtype=float64, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
        f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
  q = meta["qhess"]
  print(source_line(q))
  print(f"# PennyLane {versions['pennylane']}, lightning {versions['pennylane_lightning']}"
        f"{'' if use_pl else ' (not run)'}")

  bar, say = progress(total=2 * len(cases) * len(methods), desc="warm-ups + timings")
  rows, gave_up, pl_last = [], None, {}
  t_start = time.perf_counter()
  for n, layers in cases:
    case = case_info(n, layers)
    case["loadavg"] = list(os.getloadavg())
    case["methods"] = {}
    if bar is not None:
      bar.set_postfix_str(case["case"])
    pl_skip = {}
    for d in pl_devices:
      m = f"pl_{d}"
      if n > args.pl_max_wires:
        pl_skip[m] = f"skipped (n > {args.pl_max_wires})"
      elif d in pl_last:  # predict from the last case's time per gate application
        t = case["n_gates"] * (1 + case["n_params"] + 2 * case["n_params"] *
                               (case["n_params"] - 1)) / pl_last[d]
        if t > args.pl_limit:
          pl_skip[m] = f"skipped (predicted {t:.0f} s > {args.pl_limit:g} s)"
    if gave_up is not None and case["work_estimate"] >= gave_up[1]:
      for m in methods:
        case["methods"][m] = {"status": f"skipped ({gave_up[0]} timed out)"}
      if bar is not None:
        bar.update(2 * len(methods))
    else:
      spec = {"n": n, "layers": layers, "methods": methods, "budget_s": budget_s,
              "repeat_max": repeat_max, "atol": atol, "pl_skip": pl_skip}
      worker = _Worker(spec, case_timeout or None, worker_env)
      warmed = set()
      for kind, r in worker.results():
        m = r.pop("method")
        if kind == "warm":
          warmed.add(m)
          if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{case['case']} {m} warm-up {r['first_call_s']:.1f} s")
          continue
        case["methods"][m] = r
        meta["device"] = r.get("device", meta["device"])
        if bar is not None:
          bar.update(1 if m in warmed else 2)
        tag = (f"device={meta['device']} jax={jax.__version__} dtype=float64 "
               f"n_qubits={n} n_params={case['n_params']} "
               f"n_circuits={r.get('n_circuits')} {m}")
        if r["status"] != "ok":
          say(f"{tag}: {r['status']}")
          continue
        if m.startswith("pl_") and r["n_circuits"]:
          pl_last[m[3:]] = r["n_circuits"] * case["n_gates"] / r["median_s"]
        comp = "" if r["compile_s"] is None else f"compile {r['compile_s']:.2f} s, "
        gate = ("" if r.get("gate_apps_per_s") is None else
                f", {r['circuits_per_s']:.4g} circuits/s, "
                f"{r['gate_apps_per_s']:.4g} gate apps/s")
        say(f"{tag}: {comp}median {_fmt_ms(r['median_s'])} ms "
            f"[{_fmt_ms(r['min_s'])}, {_fmt_ms(r['max_s'])}] (R={r['repeat']}){gate}")
      why = worker.finish()
      for m in methods:
        if m not in case["methods"]:
          case["methods"][m] = {"status": why or "missing"}
          if bar is not None:
            bar.update(1 if m in warmed else 2)
      if why == "timed out":
        gave_up = (case["case"], case["work_estimate"])
        say(f"device={meta['device']} n_qubits={n} n_params={case['n_params']}: case "
            f"timed out after {case_timeout:g} s")
      elif why:
        say(f"n_qubits={n} n_params={case['n_params']}: worker {why}")
    case["methods"] = {m: case["methods"][m] for m in methods}
    base = case["methods"].get("qhess_default", {})
    for m, r in case["methods"].items():
      if r.get("status") == "ok" and base.get("status") == "ok":
        r["ratio_to_default"] = r["median_s"] / base["median_s"]
      if r.get("matches_jax") is False:
        say(f"WARNING n_qubits={n} n_params={case['n_params']} {m}: Hessian differs from "
            f"jax.hessian by {r['max_abs_diff_vs_jax']:.2e} > {atol:g}")
    rows.append(case)
  if bar is not None:
    bar.close()
  meta["loadavg_end"] = list(os.getloadavg())
  meta["wall_s"] = time.perf_counter() - t_start

  header = (f"device={meta['device']} ({os.cpu_count()} cores) jax={jax.__version__} "
            f"dtype=float64 PennyLane={versions['pennylane']} "
            f"load average at start {meta['loadavg_start'][0]:.2f}, "
            f"at end {meta['loadavg_end'][0]:.2f}")
  table = markdown_table(rows)
  print(f"\n{header}\n\n{table}")

  out = args.out
  if out is None:
    out = _HERE / "results" / f"hessian-{'quick-' if args.quick else ''}{today}-{host}.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1) + "\n")
  print(f"\nwrote {out}")
  md = out.with_suffix(".md")
  md.write_text(f"# Hessian benchmark, {today}, {host}\n\n{header}; qhess commit "
                f"{q['commit']}{' (dirty)' if q['dirty'] else ''}. Ratios: median time "
                "over qhess_default's median (above 1: qhess_default is faster). "
                f"Written by `python bench/run.py {' '.join(sys.argv[1:])}`.\n\n"
                f"{table}\n")
  print(f"wrote {md}")
  png = out.with_suffix(".png")
  if plot(rows, meta, png):
    print(f"wrote {png}")


if __name__ == "__main__":
  main()
