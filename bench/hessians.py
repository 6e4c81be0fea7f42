"""The Hessian methods of the cases and families benchmarks, timed in one worker process.

Not a script: ``python bench/run.py --worker <spec>`` (internal, started by
`bench/cases.py` and `bench/families.py`, one fresh process per case or family) calls
`work`, which runs `bench_case` for each spec. The methods, their warm-up, the
interleaved timed calls and the correctness check are described in `bench/cases.py`.

What a worker prints on stdout, one JSON object a line: ``WARM {...}`` when a method's
warm-up is done, ``RESULT {...}`` per method (its timing row, or its status when it was
skipped or failed), and for a family first ``RESULT {"method": "_info", ...}`` with the
tape's sizes.
"""

from __future__ import annotations

import json

import jax
import numpy as np

import cases
import common
import families
import qhess
import to_pennylane

# The off-diagonal rule (None: qhess's default) and the evaluation of each qhess method.
RULES = {"qhess_default": None, "qhess_shared": None, "qhess_product": "product",
         "qhess_diagonal": "diagonal",
         "qhess_independent": "product", "qhess_independent_default_rule": None,
         "qhess_adjoint": None}
# qhess_independent: every shifted circuit from the start in one vmap, product rule —
# the naive baseline that prefix sharing, fusion and the diagonal rule are measured against.
# qhess_independent_default_rule (the families' baseline): the default's circuits, each from
# the start — shared against independent evaluation of the same circuits.
# qhess_default: the library's default, evaluation="auto" (the cost model's choice).
EVALUATION = {"qhess_shared": "shared", "qhess_independent": "independent",
              "qhess_independent_default_rule": "independent", "qhess_adjoint": "adjoint"}


def _error(err: Exception) -> dict:
  return {"status": f"error: {type(err).__name__}: {str(err)[:300]}"}


class _Case:
  """One circuit at one point, the methods' calls on it and the lines reporting them."""

  def __init__(self, family: str | None, n: int, layers: int, seed: int):
    if family is None:
      self.f, self.x_np, n_gates = cases.build(n, layers, seed)
    else:
      fam = families.FAMILIES[family](n, layers, seed, device=None)
      self.f, self.x_np, n_gates = fam.circuit, np.asarray(fam.params, np.float64), None
    self.x = jax.device_put(self.x_np)
    self.tape = self.f.tape(self.x)
    if n_gates is None:
      n_gates = len(self.tape.operations)
    else:
      assert self.tape.num_params == self.x_np.size and len(self.tape.operations) == n_gates
    self.n_gates, self.family = n_gates, family
    self.device = common.device_name()
    self.tag = {} if family is None else {"family": family}
    self.counts = {}  # rule: number of shifted circuits
    self.first_timed = set()  # methods whose warm-up is cheap: every Hessian call timed

  def emit(self, method: str, row: dict) -> None:
    row.update({"method": method, "device": self.device, "dtype": "float64", **self.tag})
    print(common.RESULT + json.dumps(row), flush=True)

  def info(self) -> None:
    """A family's sizes, before its methods' lines."""
    print(common.RESULT + json.dumps({
        "method": "_info", **self.tag, "n_params": self.tape.num_params,
        "n_inputs": int(self.x_np.size), "params_shape": self.x_np.shape,
        "n_gates": self.n_gates}), flush=True)

  def n_circuits(self, rule: str | None) -> int:
    rule = rule or common.default_rule()  # None: what qhess.hessian does without a rule
    if rule not in self.counts:
      self.counts[rule] = len(qhess.hessian_tapes(self.tape, off_diagonal_rule=rule)[0])
    return self.counts[rule]

  def method(self, method: str):
    """``(call, warm, n_circuits)``: the timed Hessian call, a warm-up (None: the call
    itself) and the circuits a call runs (None where not counted)."""
    x = self.x
    if method in RULES:
      rule = RULES[method]
      h = jax.jit(qhess.hessian(self.f, off_diagonal_rule=rule,
                                evaluation=EVALUATION.get(method, "auto")))
      # The adjoint evaluation runs other circuits (2R_i per row): not counted here.
      n = None if method == "qhess_adjoint" else self.n_circuits(rule)
      return (lambda: jax.block_until_ready(h(x))), None, n
    if method == "jax_hessian":
      h = jax.jit(jax.hessian(self.f))
      return (lambda: jax.block_until_ready(h(x))), None, None
    qnode = method.endswith(to_pennylane.QNODE)  # pl_<device>[_qnode]
    dev_name = method[3:-len(to_pennylane.QNODE)] if qnode else method[3:]
    call, warm, n = to_pennylane.hessian_call(dev_name, self.f, self.x_np, qnode=qnode)
    if self.family is None:  # a case's PennyLane warm-up is a Hessian call
      return call, None, n
    self.first_timed.add(method)  # a family's: one circuit execution
    return call, warm, n


def _warm_up(case: _Case, methods: list[str], pl_skip: dict):
  """Builds and warms up every method (trace + compile + one run), in order.

  Returns:
    ``(calls, firsts, counts, hessians)`` of the methods that warmed up: their calls,
    warm-up seconds, circuit counts and Hessians (None where the warm-up computed none).
  """
  calls, firsts, counts, hessians = {}, {}, {}, {}
  for method in methods:
    if method in pl_skip:
      case.emit(method, {"status": pl_skip[method]})
      continue
    try:
      call, warm, counts[method] = case.method(method)
      out, firsts[method] = common.timed(warm or call)
      hessians[method] = None if warm else np.asarray(out, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 -- report, go on with the next method
      case.emit(method, _error(err))
      continue
    calls[method] = call
    print(common.WARM + json.dumps({"method": method, "first_call_s": firsts[method],
                                    **case.tag}), flush=True)
  return calls, firsts, counts, hessians


def _row(case: _Case, method: str, first: float, times: list[float], n_circuits) -> dict:
  """A method's result row once its timed calls are done (without the check)."""
  row = common.timing_row(first, times, n_circuits, case.n_gates,
                          compiled=not method.startswith("pl_"))
  if method in case.first_timed:
    row["warmup"] = "one circuit execution; every Hessian call timed"
  if method in RULES:
    row["rule"] = RULES[method] or common.default_rule()
    row["evaluation"] = EVALUATION.get(method, "auto")
  if method.startswith("pl_"):
    row["pennylane_version"] = to_pennylane.version()
    row["pennylane_api"] = "QNode" if method.endswith(to_pennylane.QNODE) else "tape"
  return row


def _check(h, ref, atol) -> dict:
  err = float(np.max(np.abs(h - ref)))
  return {"max_abs_diff_vs_jax": err, "matches_jax": bool(err <= atol)}


def bench_case(n: int, layers: int, methods: list[str], budget_s: float, repeat_max: int,
               atol: float, pl_skip: dict, seed: int = 0, family: str | None = None) -> None:
  """Times one case in this process; prints one RESULT line per method.

  ``family=None`` is a case of the HEA scaling benchmark; a name from
  `families.FAMILIES` times that family (then a PennyLane method's warm-up is one plain
  circuit execution, and its first Hessian call is a timed one: it compiles nothing).
  """
  jax.config.update("jax_enable_x64", True)
  case = _Case(family, n, layers, seed)
  if family is not None:
    case.info()
  calls, firsts, counts, hessians = _warm_up(case, methods, pl_skip)
  # Timed calls, interleaved (one per method per round), so that a change in the
  # machine's load, or a first-in-process effect, does not favour one method.
  times = {m: [] for m in calls}
  active = list(calls)
  while active:
    for method in list(active):
      try:
        out, t = common.timed(calls[method])
      except Exception as err:  # noqa: BLE001
        active.remove(method)
        case.emit(method, _error(err))
        continue
      times[method].append(t)
      if hessians[method] is None:
        hessians[method] = np.asarray(out, dtype=np.float64)
      if not common.series_done(times[method], budget_s, repeat_max):
        continue
      active.remove(method)
      row = _row(case, method, firsts[method], times[method], counts[method])
      # The reference: jax.hessian, or without it (--skip-jax) independent evaluation.
      ref_method = "jax_hessian" if "jax_hessian" in calls else "qhess_independent_default_rule"
      ref = hessians.get(ref_method)
      if ref is not None and method != ref_method:
        row.update(_check(hessians[method], ref, atol), reference=ref_method)
      case.emit(method, row)


def work(spec) -> None:
  """The ``--worker`` entry: one spec (a dict of `bench_case`'s arguments) or a list."""
  for one in spec if isinstance(spec, list) else [spec]:
    bench_case(**one)
