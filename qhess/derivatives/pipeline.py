"""One call's steps: record the tape, plan, evaluate, contract, chain rule.

`_derivatives` is the orchestrator behind `qhess.hessian` and
`qhess.value_grad_and_hessian`: `_setup` records the tape and reads the classical
dependence, `derivative_plan` builds the shift plan and the post-processing, the
evaluation runs the points (exactly, sampled, or by the adjoint method), and ``chain``
maps R, ∂R, ∂²R at θ to the outputs through the chain rule (`_local_model`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qhess.derivatives import adjoint as _adjoint
from qhess.derivatives import adjoint_noisy as _adjoint_noisy
from qhess.simulate.circuit import Circuit
from qhess.simulate import kernel as _kernel
from qhess.shift.lightcone import pruned_tape, reachable_params
from qhess.shift.plan import ShiftPlan
from qhess.circuits.tape import Tape
from qhess.derivatives import chain as _chain
from qhess.derivatives import estimators as _estimators
from qhess.derivatives.dependence import (CONST, NONLINEAR, _check_same_structure, _check_selection,
                                          _dependence)
from qhess.derivatives.evaluate import (_adjoint_pays, _contract, _evaluate, _plan_for,
                                        _point_sampler, _shared_schedule)
from qhess.derivatives.options import (_DEFAULT_RULE, _Options, _check_float_inputs, _mask,
                                       _merge_leaves, _normalize_argnums, _split_leaves,
                                       _tape_spectra)


_FNAMES = {"hessian": "qhess.hessian", "all": "qhess.value_grad_and_hessian",
           "gradient": "qhess.gradient"}


def _local_model(tape: Tape, theta0, value, grad, hess) -> Callable:
  """θ -> circuit outputs from the second-order Taylor model of the raw outputs."""
  def model(theta, consts=None):  # consts: a re-recorded tape's (coefficients as data)
    d = theta - theta0
    raw = value + grad @ d + 0.5 * jnp.einsum("rij,i,j->r", hess, d, d)
    return tape.finalize(raw, consts)
  return model



def _folded(tape: Tape) -> Tape:
  """The tape with its coefficients as data weighed inside the kernel
  (`MeasurementSpec.folded`): one raw output per observable, not one per term."""
  measurements = tuple(m.folded() for m in tape.measurements)
  if measurements == tape.measurements or _kernel.kernel_key(tape)[1] != tape.raw_measurements:
    return tape  # nothing to fold, or a noisy tape (its density matrix measures per term)
  return tape.with_measurements(measurements, tape.returns_tuple)


def _setup(circuit: Circuit, argnums_spec, hybrid: bool, want: str, args, kwargs, *,
           fname: str, gate_argnum=None, fold: bool = False):
  """``(tape, depends, need_value, need_grad, chain)``: what every evaluation needs.

  ``depends`` (bool ``(P,)``) marks the gate arguments that depend on the differentiated
  inputs and lie in the measurements' light cone (`reachable_params`);
  ``chain(value, grad, hess)`` maps R0 ``(n_raw,)``, ∂R ``(n_raw, P)`` and ∂²R
  ``(n_raw, P, P)`` at θ to the outputs through the chain rule (`_local_model`).
  ``fold``: when no derivative with respect to coefficients held as data is needed,
  weigh the terms in the kernel (`_folded`): one adjoint state and one measured value
  per observable, not one per Pauli term.
  """
  argnums = _normalize_argnums(argnums_spec, len(args))
  _check_float_inputs(args, argnums, fname)
  tape = circuit.tape(*args, **kwargs)
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  # Arguments outside the measurements' light cone: zero derivatives, no circuits.
  depends = reachable_params(tape)
  if hybrid:
    levels, coefficients_depend = _dependence(circuit, args, kwargs, argnums, tape)
    depends &= levels > CONST
    # Coefficients as data that depend on the inputs: mixed second derivatives are the
    # per-term first derivatives, from the first-order points.
    nonlinear_post = nonlinear_post or coefficients_depend
    if gate_argnum is not None:
      _check_selection(circuit, args, kwargs, argnums, tape, gate_argnum)
    nonlinear_pre = bool(np.any(levels[depends] == NONLINEAR))
  else:
    nonlinear_pre, coefficients_depend = False, False
  fold = fold and not coefficients_depend
  tape = _folded(tape) if fold else tape
  want_all = want == "all"
  need_grad = want_all or want == "gradient" or nonlinear_pre or nonlinear_post

  def chain(value, grad, hess):  # R0, ∂R, ∂²R at θ -> the outputs, by the chain rule
    model_theta = _local_model(tape, tape.params, value, grad, hess)
    if hybrid:
      def model(*a):
        t = circuit.tape(*a, **kwargs)
        t = _folded(t) if fold else t
        _check_same_structure(tape.structure, t)
        return model_theta(t.params, t.consts)
      nums = argnums_spec if isinstance(argnums_spec, (int, np.integer)) else argnums
      fn, at = model, args
    else:
      nums, fn, at = 0, model_theta, (tape.params,)
    if want == "gradient":
      return jax.jacrev(fn, argnums=nums)(*at)
    h = jax.hessian(fn, argnums=nums)(*at)
    if want == "hessian":
      return h
    return tape.finalize(value), jax.jacrev(fn, argnums=nums)(*at), h

  return tape, depends, want_all or nonlinear_post, need_grad, chain



def derivative_plan(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                    want: str, args, kwargs, *, sampled: bool,
                    fname: str, fold: bool = False) -> tuple[Tape, ShiftPlan, Callable]:
  """``(tape, plan, post)``: the recorded tape, its shift plan and the post-processing
  ``post(Y)`` of the raw point values ``Y`` ``(T, n_raw)`` through the chain rule.

  Shared by `hessian`, `value_grad_and_hessian`, `gradient` and
  ``qhess.hessian_experiments`` (hardware), so that measured counts go through exactly
  the simulated path's estimators; ``sampled`` picks the product rule as the default
  off-diagonal rule; ``want="gradient"`` plans first-order points only; ``fold``: as in
  `_setup` (what an exact call records).
  """
  setup = _setup(circuit, argnums_spec, hybrid, want, args, kwargs, fname=fname,
                 gate_argnum=opts.gate_argnum, fold=fold)
  return _plan_from(setup, opts, want, sampled)


def _plan_from(setup: tuple, opts: _Options, want: str,
               sampled: bool) -> tuple[Tape, ShiftPlan, Callable]:
  """`derivative_plan`'s ``(tape, plan, post)`` from the result of `_setup`."""
  tape, depends, need_value, need_grad, chain = setup
  plan = _plan_for(tape, opts, depends, need_value=need_value,
                   need_grad=need_grad, share=need_grad,
                   # With shots the product rule: the diagonal rule needs more shots.
                   rule=opts.rule("product" if sampled else _DEFAULT_RULE),
                   hessian=want != "gradient")

  def post(y):  # raw point values (T, n_raw) -> the outputs, through the chain rule
    return chain(*_contract(plan, y))

  return tape, plan, post


def concrete_plan(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                  want: str, args, kwargs, *, sampled: bool, fname: str,
                  count_only: bool = False,
                  fold: bool = False) -> tuple[Tape, ShiftPlan, _chain.LocalChain]:
  """``(tape, plan, chain)`` at concrete arguments, for devices elsewhere: the tape
  (concrete gate arguments), its plan, and the post-processing as data (`LocalChain`,
  ``want`` ``"hessian"`` or ``"gradient"``), which can be saved.

  The circuit is recorded with its array arguments traced, as `hessian` records it
  (so observable coefficients computed from them are data, the same structure); the
  classical processing's derivatives are evaluated in the same compiled call. With
  ``count_only`` nothing is computed (`jax.eval_shape`): ``(abstract tape, plan, None)``.
  """
  leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
  static, dynamic = _split_leaves(leaves, fname)
  nums = (int(argnums_spec) if isinstance(argnums_spec, (int, np.integer))
          else _normalize_argnums(argnums_spec, len(args)))
  box = {}

  def traced(dyn):
    a, kw = jax.tree_util.tree_unflatten(treedef, _merge_leaves(static, dyn))
    tape, plan, post = derivative_plan(circuit, opts, argnums_spec, hybrid, want, a, kw,
                                       sampled=sampled, fname=fname, fold=fold)
    n_raw = sum(m.raw_size for m in tape.measurements)
    box["tape"], box["plan"] = tape, plan
    if count_only:
      return None
    box["out"] = jax.eval_shape(
        post, jax.ShapeDtypeStruct((plan.n_points, n_raw), tape.params.dtype))
    derivs = None
    if hybrid:  # second derivatives only where θ is non-linear in the inputs
      levels, _ = _dependence(circuit, a, kw, _normalize_argnums(argnums_spec, len(a)), tape)
      box["curved"] = np.flatnonzero(levels == NONLINEAR)
      derivs = _chain.processing_derivatives(circuit, tape, nums, a, kw, box["curved"])
    return tape.params, tape.consts, derivs

  if count_only:
    jax.eval_shape(traced, dynamic)
    return box["tape"], box["plan"], None
  params, consts, derivs = jax.jit(traced)(dynamic)
  tape = dataclasses.replace(box["tape"], params=params, consts=tuple(consts))
  plan, order = box["plan"], 1 if want == "gradient" else 2
  if not hybrid:
    return tape, plan, _chain.gate_chain(tape, plan, order)
  diff = args[nums] if isinstance(nums, int) else tuple(args[i] for i in nums)
  in_shapes = tuple(tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(diff))
  return tape, plan, _chain.hybrid_chain(tape, plan, in_shapes, derivs, box["curved"], order,
                                         box["out"])



def _adjoint_derivatives(setup: tuple, opts: _Options, want: str, fname: str):
  """``evaluation="adjoint"``: R0, ∂R, ∂²R from `_adjoint.derivatives`, then the chain
  rule as for the shift evaluations (``setup``: the result of `_setup`)."""
  tape, depends, need_value, need_grad, chain = setup
  mask = _mask(opts.gate_argnum, tape.num_params)
  mask &= depends[:, None] & depends[None, :]
  grad_args = np.nonzero(mask.any(axis=1))[0] if need_grad else ()
  if want == "gradient":  # the rows' shifted points give the gradient; no Hessian
    mask = np.diag(mask.any(axis=1))
  pruned = pruned_tape(tape)  # on the gates inside the light cone only
  if _adjoint_noisy.is_noisy(pruned):  # a density matrix: the second-order sweep
    return chain(*_adjoint_noisy.derivatives(
        pruned, mask, grad_args=grad_args, need_value=need_value,
        hessian=want != "gradient", batch_size=opts.batch_size, what=fname,
        progress=opts.progress))
  if want == "gradient":  # one adjoint pass at θ: no shifted circuits
    return chain(*_adjoint.gradient(pruned, grad_args, need_value=need_value))
  return chain(*_adjoint.derivatives(
      pruned, _tape_spectra(tape), mask, grad_args=grad_args,
      need_value=need_value, batch_size=opts.batch_size, devices=opts.devices, what=fname,
      progress=opts.progress))



def _derivatives(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                 want: str, args, kwargs, sampling=None, key=None):
  """The shared implementation; ``want`` is ``"hessian"`` or ``"all"``.

  ``sampling`` is ``None`` (exact) or ``(shots, return_stderr)``; then ``key`` is the
  PRNG key and the raw point values are sampled (`_estimators.estimate`).
  """
  fname = _FNAMES[want]
  setup = _setup(circuit, argnums_spec, hybrid, want, args, kwargs, fname=fname,
                 gate_argnum=opts.gate_argnum,  # recorded once, whichever method runs
                 fold=sampling is None)
  if opts.evaluation == "adjoint":
    return _adjoint_derivatives(setup, opts, want, fname)
  tape, plan, post = _plan_from(setup, opts, want, sampled=sampling is not None)
  if _method(tape, plan, opts, sampling is not None) == "adjoint":
    return _adjoint_derivatives(setup, opts, want, fname)
  if sampling is None or plan.n_points == 0:
    out = post(_evaluate(tape, plan, opts, fname))
    if sampling is None or not sampling[1]:
      return out
    return out, jax.tree_util.tree_map(jnp.zeros_like, out)
  shots, return_stderr = sampling
  return _estimators.estimate(post, tape, _point_sampler(tape, plan, opts, fname), plan.n_points,
                         shots, key, return_stderr=return_stderr)


def _method(tape: Tape, plan: ShiftPlan, opts: _Options, sampled: bool) -> str:
  """The evaluation a call runs, ``opts.evaluation`` resolved: ``"adjoint"`` (the noisy
  sweep for a tape with channels), ``"shared"`` or ``"independent"`` (the shift rules,
  `evaluate._shared_schedule`'s choice)."""
  if opts.evaluation == "adjoint" or (
      opts.evaluation == "auto" and not sampled and _auto_picks_adjoint(tape, plan, opts)):
    return "adjoint"
  return "independent" if _shared_schedule(tape, plan, opts) is None else "shared"


def evaluation_for(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool, want: str,
                   args, kwargs, *, sampled: bool, fname: str) -> str:
  """`_method` at these arguments, on the tape and plan a call records (`concrete_plan`
  with ``count_only``: nothing is computed)."""
  tape, plan, _ = concrete_plan(circuit, opts, argnums_spec, hybrid, want, args, kwargs,
                                sampled=sampled, fname=fname, count_only=True,
                                fold=not sampled)
  return _method(tape, plan, opts, sampled)


def _auto_picks_adjoint(tape: Tape, plan: ShiftPlan, opts: _Options) -> bool:
  """`evaluation="auto"`: the cost model's choice (`evaluate._adjoint_pays`) between the
  plan's shifted circuits and the adjoint method, whose rows are the plan's arguments."""
  rows = np.unique(np.concatenate([plan.hess_row, plan.grad_arg]))
  if _adjoint_noisy.is_noisy(pruned_tape(tape)):  # the noisy sweep's own model
    return _adjoint_noisy.pays(pruned_tape(tape), plan, opts, len(rows))
  spectra = _tape_spectra(tape)
  # A gradient alone is one adjoint pass at θ (`_adjoint.gradient`), rows of a Hessian
  # are 2R_i passes each.
  row_points = (1 if len(plan.hess_row) == 0
                else sum(2 * spectra[int(i)].count for i in rows))
  return _adjoint_pays(pruned_tape(tape), plan, opts, len(rows), row_points)
