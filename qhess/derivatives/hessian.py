"""Parameter-shift Hessians: `hessian`, `value_grad_and_hessian`, `hessian_tapes`.

Data flow (DESIGN.md): record the circuit into a tape (gate arguments θ = g(params),
static structure) → build the `ShiftPlan` → evaluate its points in one batched kernel
call → contract the raw outputs Y with the plan's coefficients into R(θ), ∂R/∂θ and
∂²R/∂θ² → chain rule through the classical parts with JAX autodiff.

The chain rule is applied by differentiating a *local model*: the second-order Taylor
polynomial of the raw outputs around θ0,

    R̃(θ) = R0 + ∂R·(θ - θ0) + ½ (θ - θ0)ᵀ ∂²R (θ - θ0),

composed with the classical pre-processing g and post-processing φ (e.g. variance =
<O²> - <O>²). ``F̃ = φ ∘ R̃ ∘ g`` has the same value, gradient and Hessian at the
evaluation point as ``F = φ ∘ R ∘ g``, so ``jax.hessian(F̃)`` gives

    H = Jᵀ ∂²R J + Σ_k ∂R/∂θ_k ∇²θ_k   (pushed through φ with its own derivatives),

in exactly the layout of ``jax.hessian(circuit)``. Only R is ever shifted; g and φ are
differentiated by autodiff. Because R0, ∂R, ∂²R are computed from θ0 = g(params) by the
(differentiable) kernel, the result is itself differentiable in the parameters.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import reprlib
from typing import Any, Callable, Sequence

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

from qhess.derivatives import adjoint as _adjoint
from qhess.simulate.circuit import Circuit
from qhess.circuits.catalogue import CATALOGUE
from qhess.shift.plan import ShiftPlan, build_plan
from qhess.shift.schedule import Schedule, build_schedule
from qhess.shift import rules as _shift_rules
from qhess.simulate import sampling as _shots
from qhess.circuits.tape import Tape, record_parts
from qhess.simulate import memory as _memory
from qhess.simulate import kernel as _kernel
from qhess.derivatives import estimators as _estimators
from qhess.simulate import sampling as _sampling

CONST, AFFINE, NONLINEAR = 0, 1, 2

# Off-diagonal rule of exact evaluation when none is asked for: Wierichs et al.'s
# diagonal rule, 3 circuits per single-frequency pair instead of 4 (measured faster
# in bench/run.py). hessian_tapes and sampled Hessians default to the product rule
# (PennyLane's counts; fewer shots for the same error).
_DEFAULT_RULE = "diagonal"

# Primitives that are linear in their (non-index) operands.
_LINEAR = {
    "add", "sub", "neg", "reshape", "broadcast_in_dim", "squeeze", "expand_dims",
    "slice", "concatenate", "transpose", "reduce_sum", "copy", "copy_p", "rev",
    "convert_element_type", "real", "imag", "cumsum", "add_any", "reduce_precision",
}
_BILINEAR = {"mul", "dot_general"}
# Primitives whose leading operand is data and whose other operands are indices.
_INDEXED = {"dynamic_slice", "gather"}


# ---------------------------------------------------------------- classical dependence


# Primitives that run their sub-jaxpr exactly once, its inputs and outputs being the
# equation's: their levels are the sub-jaxpr's. Loops (scan, while) are not among them:
# one pass over a loop body under-estimates the level of a carry (c <- c·x is affine
# after one step, non-linear after two), so they count as unknown (non-linear).
_CALLS = {"jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint",
          "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"}


def _sub_jaxpr(eqn):
  if eqn.primitive.name not in _CALLS:
    return None
  for value in eqn.params.values():
    inner = getattr(value, "jaxpr", value)
    if (isinstance(inner, jex.Jaxpr) and len(inner.invars) == len(eqn.invars)
        and len(inner.outvars) == len(eqn.outvars)):
      return inner
  return None


def _eqn_levels(eqn, ins: list[int]) -> list[int]:
  n_out = len(eqn.outvars)
  if max(ins, default=CONST) == CONST:
    return [CONST] * n_out
  name = eqn.primitive.name
  inner = _sub_jaxpr(eqn)
  if inner is not None:  # jit, custom_jvp, checkpoint, ...: look inside
    return _jaxpr_levels(inner, ins)
  top = max(ins)
  if name in _LINEAR:
    if name == "convert_element_type" and not jnp.issubdtype(
        eqn.params["new_dtype"], jnp.inexact):
      return [NONLINEAR] * n_out
    return [top] * n_out
  if name in _BILINEAR:
    return [top if sum(i > CONST for i in ins) == 1 else NONLINEAR] * n_out
  if name == "div":
    return [ins[0] if ins[1] == CONST else NONLINEAR] * n_out
  if name in _INDEXED:
    return [ins[0] if max(ins[1:]) == CONST else NONLINEAR] * n_out
  if name == "select_n":
    return [max(ins[1:]) if ins[0] == CONST else NONLINEAR] * n_out
  if name == "integer_pow" and eqn.params.get("y") == 1:
    return [top] * n_out
  if name in ("dynamic_update_slice", "scatter-add", "scatter_add", "pad"):
    return [top] * n_out if all(
        lvl == CONST for lvl in ins[2:] if name != "pad") else [NONLINEAR] * n_out
  return [NONLINEAR] * n_out  # unknown: be correct rather than cheap


def _jaxpr_levels(jaxpr, in_levels) -> list[int]:
  env = {}

  def read(v):
    return env.get(v, CONST) if isinstance(v, jex.Var) else CONST

  for v, lvl in zip(jaxpr.invars, in_levels):
    env[v] = lvl
  for eqn in jaxpr.eqns:
    for v, lvl in zip(eqn.outvars, _eqn_levels(eqn, [read(v) for v in eqn.invars])):
      env[v] = lvl
  return [read(v) for v in jaxpr.outvars]


def _dependence(circuit: Circuit, args, kwargs, argnums, tape: Tape) -> np.ndarray:
  """How each gate argument depends on the differentiated inputs: CONST/AFFINE/NONLINEAR.

  Decided from the traced computation params -> θ. Raises when a QubitUnitary or
  Hermitian matrix depends on the differentiated inputs (no shift rule applies).
  """
  closed, dynamic, positions, _ = _processing_jaxpr(circuit, args, kwargs, argnums, tape)
  in_levels = [AFFINE if i in positions else CONST for i in dynamic]
  out = _jaxpr_levels(closed.jaxpr, in_levels)
  levels, const_levels = np.array(out[:tape.num_params], dtype=int), out[tape.num_params:]
  if any(lvl > CONST for lvl in const_levels):
    raise ValueError(
        "A QubitUnitary or Hermitian matrix depends on the differentiated arguments (or "
        "a noise channel's parameter does); parameter-shift rules apply to gate arguments "
        "only. Express the dependence through parametrized gates, or pass the matrix or "
        "noise parameter as a non-differentiated argument.")
  return levels


def _processing_jaxpr(circuit: Circuit, args, kwargs, argnums, tape: Tape):
  """``(closed, dynamic, positions, leaves)``: the jaxpr of the classical processing
  ``traced leaves -> (θ, tape consts)``, the indices of the traced leaves among all
  leaves of ``(args, kwargs)``, those of the differentiated ones, and all leaves."""
  structure = tape.structure
  leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
  positions = {i for a in argnums for i in _leaf_range(args, a)}
  dynamic = [i for i, leaf in enumerate(leaves) if not _is_static(leaf)]

  def flat_fn(*flat):  # static leaves (Python ints, strings) stay as they are
    merged = list(leaves)
    for i, value in zip(dynamic, flat):
      merged[i] = value
    a, kw = jax.tree_util.tree_unflatten(treedef, merged)
    t, params = record_parts(circuit.fn, circuit.n_wires, a, kw)
    _check_same_structure(structure, t)
    return params, list(t.consts)

  avals = [jax.ShapeDtypeStruct(jnp.shape(leaves[i]), jnp.result_type(leaves[i]))
           for i in dynamic]
  return jax.make_jaxpr(flat_fn)(*avals), dynamic, positions, leaves


def _feeds(circuit: Circuit, args, kwargs, argnums, tape: Tape) -> np.ndarray | None:
  """Bool ``(P, N)``: which gate arguments each of the ``N`` differentiated input
  elements feeds, or ``None`` when it cannot be told at trace time.

  Read from the Jacobian of the classical processing at a random point (a structural
  zero is zero everywhere; a zero of a non-zero derivative at a random point has
  probability zero), evaluated eagerly on the recorded jaxpr.
  """
  closed, dynamic, positions, leaves = _processing_jaxpr(circuit, args, kwargs, argnums,
                                                         tape)
  rng = np.random.default_rng(0)
  point = []
  for i in dynamic:
    aval = jax.ShapeDtypeStruct(jnp.shape(leaves[i]), jnp.result_type(leaves[i]))
    point.append(rng.uniform(0.3, 1.1, aval.shape).astype(aval.dtype)
                 if jnp.issubdtype(aval.dtype, jnp.inexact) else np.zeros(aval.shape,
                                                                          aval.dtype))
  wrt = [k for k, i in enumerate(dynamic) if i in positions]

  def theta_of(*diff):
    flat = list(point)
    for k, value in zip(wrt, diff):
      flat[k] = value
    outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *flat)
    outs = outs[:len(outs) - len(tape.consts)]  # θ, without the tape's constants
    return jnp.concatenate([jnp.ravel(o) for o in outs]) if outs else jnp.zeros(0)

  try:
    with jax.ensure_compile_time_eval():
      jac = jax.jacfwd(theta_of, argnums=tuple(range(len(wrt))))(*[point[k] for k in wrt])
      blocks = [np.asarray(j).reshape(tape.num_params, -1) for j in jac]
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return None  # the processing closes over traced values: nothing to read here
  if not blocks:
    return np.zeros((tape.num_params, 0), dtype=bool)
  jac = np.concatenate(blocks, axis=1)
  return ~np.isfinite(jac) | (jac != 0)


def _check_selection(circuit: Circuit, args, kwargs, argnums, tape: Tape,
                     gate_argnum) -> None:
  """Refuses a hybrid ``gate_argnum`` that splits the gate arguments of one input.

  ``gate_argnum`` selects entries of the Hessian of the tape's gate arguments; the hybrid
  result maps it to the inputs by the chain rule. An input that feeds several gate
  arguments (a parameter used twice, an imported gate decomposed into several rotations)
  has a meaningful Hessian only when all of its gate arguments are selected, or none.
  """
  feeds = _feeds(circuit, args, kwargs, argnums, tape)
  if feeds is None:
    return
  mask = _mask(gate_argnum, tape.num_params)
  active = mask.any(axis=1)
  sets = [np.nonzero(col)[0] for col in feeds.T]
  for i, si in enumerate(sets):
    if 0 < active[si].sum() < len(si):
      raise ValueError(_split_message(tape, i, si, active))
    for j in range(i, len(sets)):
      block = mask[np.ix_(si, sets[j])]
      if block.any() and not block.all():
        raise ValueError(_split_message(tape, i, si, active, sets[j]))


def _split_message(tape: Tape, i: int, si, active, sj=None) -> str:
  names = {k: op.name for op in tape.operations for k in op.param_index}
  args = ", ".join(f"{k} ({names.get(k, '?')})" for k in si)
  what = (f"selects {[int(k) for k in si if active[k]]} of them" if sj is None else
          f"selects some but not all of their entries with gate arguments {list(map(int, sj))}")
  return (
      "`gate_argnum` indexes the tape's gate arguments (`circuit.tape(*args).params`: the "
      "arguments of the recorded gates, after any decomposition), not the circuit's "
      f"inputs. Differentiated input element {i} (in the order of the flattened "
      f"`argnums` arguments) feeds gate arguments {args}, and `gate_argnum` {what}: that "
      "is not a Hessian of the inputs. Select all gate arguments an input feeds, or "
      "compute the full Hessian and index it (or pass the inputs you do not want as "
      "non-differentiated arguments); `hybrid=False` gives the Hessian of the gate "
      "arguments themselves.")


def _leaf_range(args, argnum) -> range:
  start = sum(len(jax.tree_util.tree_leaves(a)) for a in args[:argnum])
  return range(start, start + len(jax.tree_util.tree_leaves(args[argnum])))


def _check_same_structure(structure, tape: Tape) -> None:
  if tape.structure != structure:
    raise ValueError(
        "The circuit's structure (gates, wires, measurements) changed between two "
        "recordings at the same arguments; qhess needs a circuit whose structure does not "
        "depend on anything but the argument shapes (no randomness or outside state in "
        "the circuit function).")


# ------------------------------------------------------------------------- options


def _tape_spectra(tape: Tape):
  spectra = [None] * tape.num_params
  for op in tape.operations:
    for i, s in zip(op.param_index, CATALOGUE[op.name].spectra):
      spectra[i] = s
  return tuple(spectra)


def _mask(gate_argnum, n_params: int) -> np.ndarray:
  """The (P, P) boolean selection of Hessian entries from ``gate_argnum``."""
  if gate_argnum is None:
    return np.ones((n_params, n_params), dtype=bool)
  arr = np.asarray(gate_argnum)
  if arr.ndim == 2 or arr.dtype == bool:
    if arr.dtype != bool:
      raise TypeError(f"`gate_argnum` as a mask must be a boolean array; got dtype {arr.dtype}.")
    if arr.shape != (n_params, n_params):
      raise ValueError(
          f"`gate_argnum` as a mask must have shape ({n_params}, {n_params}) for a tape "
          f"with {n_params} gate arguments; got {arr.shape}.")
    if not np.array_equal(arr, arr.T):
      raise ValueError("`gate_argnum` as a mask must be symmetric; got an asymmetric mask.")
    return arr.copy()
  if arr.ndim == 1 and arr.size == 0:  # an empty selection: no entries, no circuits
    return np.zeros((n_params, n_params), dtype=bool)
  if arr.ndim > 1 or not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(
        "`gate_argnum` must be None, an int, a sequence of ints or a (P, P) boolean "
        f"mask; got {gate_argnum!r}.")
  indices = arr.reshape(-1)
  for i in indices:
    if not -n_params <= i < n_params:
      raise ValueError(
          f"`gate_argnum` {int(i)} is out of range for a tape with {n_params} gate "
          "arguments.")
  indices = np.mod(indices, max(n_params, 1))
  mask = np.zeros((n_params, n_params), dtype=bool)
  if arr.ndim == 0:
    mask[indices[0], indices[0]] = True
  else:
    mask[np.ix_(indices, indices)] = True
  return mask


def _shifts(shifts, spectra, name: str, eps: float = float(np.finfo(np.float64).eps)):
  """Validates custom shifts; returns a hashable tuple of tuples (or None).

  Also checks their conditioning (`_shift_rules.check_amplification`) for circuits
  evaluated in a dtype of machine epsilon ``eps``: a diagonal entry amplifies errors
  by κ_k², a mixed entry of the product rule by κ_i·κ_j (checked for the worst pair).
  """
  if shifts is None:
    return None
  try:
    entries = [tuple(float(s) for s in np.atleast_1d(np.asarray(e, dtype=float)))
               for e in shifts]
  except (TypeError, ValueError) as err:
    raise TypeError(
        f"`{name}` must be a sequence of tuples of shifts, one per gate argument; "
        f"got {shifts!r}.") from err
  if len(entries) != len(spectra):
    raise ValueError(
        f"`{name}` has {len(entries)} entries; the tape has {len(spectra)} gate "
        "arguments (one tuple of shifts per argument).")
  kappas = [_shift_rules.amplification(
      _shift_rules.first_order_from_shifts(entry, spectrum, f"{name}[{k}]"), spectrum)
             for k, (entry, spectrum) in enumerate(zip(entries, spectra))]
  if name == "diagonal_shifts":
    for k, entry in enumerate(entries):
      _shift_rules.check_amplification(kappas[k]**2, eps, entry, f"{name}[{k}]")
  elif len(entries) > 1:  # the worst mixed entry, named by its worse argument
    k = int(np.argmax(kappas))
    kappa2 = kappas[k] * max(kappas[:k] + kappas[k + 1:])
    _shift_rules.check_amplification(kappa2, eps, entries[k], f"{name}[{k}]")
  return tuple(entries)


class _Options:
  """Validated, hashable keyword options shared by all entry points."""

  def __init__(self, gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
               batch_size=None, off_diagonal_rule=None, devices=None,
               evaluation="shared"):
    self.batch_size = _memory.check_batch_size(batch_size)
    self.gate_argnum = gate_argnum
    self.diagonal_shifts = diagonal_shifts
    self.off_diagonal_shifts = off_diagonal_shifts
    if off_diagonal_rule not in (None, "product", "diagonal"):
      raise ValueError(
          '`off_diagonal_rule` must be None, "product" or "diagonal"; got '
          f"{off_diagonal_rule!r}.")
    if off_diagonal_rule == "diagonal" and off_diagonal_shifts is not None:
      raise ValueError(
          '`off_diagonal_shifts` define a product rule; they cannot be combined with '
          'off_diagonal_rule="diagonal".')
    self.off_diagonal_rule = off_diagonal_rule
    if isinstance(devices, jax.Device):  # one device: a sequence of one
      devices = (devices,)
    if devices is not None:
      error = TypeError(
          "`devices` must be None, a jax device or a non-empty sequence of jax devices "
          f"(e.g. jax.devices()); got {devices!r}.")
      try:
        devices = tuple(devices)
      except TypeError:
        raise error from None
      if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise error
      for d in devices:
        if devices.count(d) > 1:
          raise ValueError(
              f"`devices` must be distinct; got {d} {devices.count(d)} times among "
              f"{len(devices)} devices (the shifted circuits are sharded over them).")
    self.devices = devices
    if evaluation not in ("shared", "independent", "adjoint"):
      raise ValueError(
          '`evaluation` must be "shared", "independent" or "adjoint"; got '
          f"{evaluation!r}.")
    if evaluation == "adjoint":
      custom = [(name, value) for name, value in (
          ("diagonal_shifts", diagonal_shifts), ("off_diagonal_shifts", off_diagonal_shifts),
          ("off_diagonal_rule", off_diagonal_rule)) if value is not None]
      if custom:
        name, value = custom[0]
        raise ValueError(
            f'`{name}` chooses shift rules for second derivatives, but evaluation='
            '"adjoint" shifts each argument once, by its default first-order rule, and '
            f"differentiates exactly along the other; got {name}={value!r}. Leave it "
            "None, or use another evaluation.")
    self.evaluation = evaluation

  def rule(self, default: str) -> str:
    """The off-diagonal rule in force: custom shifts imply the product rule."""
    if self.off_diagonal_rule is not None:
      return self.off_diagonal_rule
    return "product" if self.off_diagonal_shifts is not None else default


# ---------------------------------------------------------------------- the core


def _plan_for(tape: Tape, opts: _Options, depends: np.ndarray, *, need_value: bool,
              need_grad: bool, share: bool, rule: str) -> ShiftPlan:
  spectra = _tape_spectra(tape)
  eps = float(np.finfo(np.dtype(tape.params.dtype)).eps)
  mask = _mask(opts.gate_argnum, tape.num_params)
  mask &= depends[:, None] & depends[None, :]
  active = np.nonzero(mask.any(axis=1))[0]
  return build_plan(
      spectra, mask, need_value=need_value,
      grad_args=tuple(active) if need_grad else (),
      diagonal_shifts=_shifts(opts.diagonal_shifts, spectra, "diagonal_shifts", eps),
      off_diagonal_shifts=_shifts(opts.off_diagonal_shifts, spectra, "off_diagonal_shifts",
                                  eps),
      shared_diagonal=share, off_diagonal_rule=rule)


def _contract(plan: ShiftPlan, y: jax.Array):
  """R0 ``(n_raw,)``, ∂R ``(n_raw, P)`` and ∂²R ``(n_raw, P, P)`` from raw outputs Y."""
  n_raw, p = y.shape[1], plan.n_params
  value = y[0] if plan.has_unshifted else jnp.zeros(n_raw, y.dtype)
  grad = jnp.zeros((p, n_raw), y.dtype).at[plan.grad_arg].add(
      plan.grad_coef[:, None].astype(y.dtype) * y[plan.grad_point])
  hess = jnp.zeros((p, p, n_raw), y.dtype).at[plan.hess_row, plan.hess_col].add(
      plan.hess_coef[:, None].astype(y.dtype) * y[plan.hess_point])
  return value, grad.T, jnp.moveaxis(hess, 2, 0)


def _local_model(tape: Tape, theta0, value, grad, hess) -> Callable:
  """θ -> circuit outputs from the second-order Taylor model of the raw outputs."""
  def model(theta):
    d = theta - theta0
    raw = value + grad @ d + 0.5 * jnp.einsum("rij,i,j->r", hess, d, d)
    return tape.finalize(raw)
  return model


def _shared_schedule(tape: Tape, plan: ShiftPlan, opts: _Options) -> Schedule | None:
  """The prefix-sharing schedule, or ``None`` for independent evaluation.

  Independent evaluation is used when it is asked for, when the schedule's table of
  stored states would exceed ``_TABLE_BYTES``, or when the static cost model says that
  sharing does not pay. The model counts gate applications: the schedule's (the
  parents' segments plus every point from its boundary on) against ``T · L`` for
  independent evaluation. Sharing must save at least ``_MIN_SHARED_SAVING`` of them (the
  tables cost something too), and at least ``_MIN_SHARED_WORK`` amplitude updates
  (saved applications × ``2**n_wires``): below that a call takes milliseconds either
  way, and independent evaluation compiles about three times faster (the shared one
  compiles the circuit's tail once per segment).
  """
  if opts.evaluation != "shared" or not tape.operations:  # nothing to share without gates
    return None
  schedule = _schedule_for(tape, plan)
  saved = schedule.independent_applications - schedule.gate_applications
  if (saved < _MIN_SHARED_SAVING * schedule.independent_applications
      or saved * 2**_kernel.kernel_wires(tape) < _MIN_SHARED_WORK):
    return None
  state_bytes = 2**_kernel.kernel_wires(tape) * 2 * np.dtype(tape.params.dtype).itemsize
  return schedule if (schedule.n_parents + 1) * state_bytes <= _TABLE_BYTES else None


def _checked_batch_size(tape: Tape, plan: ShiftPlan, opts: _Options,
                        schedule: Schedule | None, what: str) -> int:
  """The kernel's chunk size (``batch_size`` or the default for the tape's width), after
  `_memory.check_memory` of the plan's points chunked that way."""
  batch_size = opts.batch_size or _kernel.default_batch_size(
      _kernel.kernel_wires(tape))
  _memory.check_memory(
      _kernel.kernel_wires(tape), plan.n_points, tape.params.dtype, batch_size=batch_size,
      devices=opts.devices, extra_states=0 if schedule is None else schedule.n_parents + 1,
      what=what)
  return batch_size


def _reduced_params(tape: Tape) -> jax.Array:
  """The tape's gate arguments reduced modulo their periods (`_shift_rules.reduce_angles`),
  so that shifting a large angle keeps the shift's precision."""
  return _shift_rules.reduce_angles(tape.params, _tape_spectra(tape))


def _point_sampler(tape: Tape, plan: ShiftPlan, opts: _Options,
                   what: str = "qhess.hessian") -> Callable:
  """``sample(sampler)`` -> ``sampler``'s outputs at the plan's points (`_estimators.estimate`),
  prefix-shared like the exact path when `_shared_schedule` allows.

  Raises:
    ValueError: when a chunk of states cannot fit in memory (`_memory.check_memory`).
  """
  dtype = np.dtype(tape.params.dtype)
  schedule = _shared_schedule(tape, plan, opts)
  batch_size = _checked_batch_size(tape, plan, opts, schedule, what)
  theta = _reduced_params(tape)
  if schedule is not None:
    return lambda sampler: _kernel.sample_points_shared(
        _kernel.kernel_key(tape), theta, schedule, tape.consts, sampler,
        batch_size, opts.devices)
  rows = np.broadcast_to(np.arange(plan.n_points)[:, None], plan.point_index.shape)
  params = jnp.broadcast_to(theta, (plan.n_points, tape.num_params)).at[
      rows, plan.point_index].add(plan.point_shift.astype(dtype))
  return lambda sampler: _kernel.sample_run(
      _kernel.kernel_key(tape), params, tape.consts, sampler, batch_size)


def _evaluate(tape: Tape, plan: ShiftPlan, opts: _Options,
              what: str = "qhess.hessian") -> jax.Array:
  """Raw outputs at the plan's points, shape ``(T, n_raw)``.

  Raises:
    ValueError: when a chunk of states cannot fit in memory (`_memory.check_memory`).
  """
  if plan.n_points == 0:
    n_raw = sum(m.raw_size for m in tape.measurements)
    return jnp.zeros((0, n_raw), tape.params.dtype)
  schedule = _shared_schedule(tape, plan, opts)
  batch_size = _checked_batch_size(tape, plan, opts, schedule, what)
  theta = _reduced_params(tape)
  if schedule is not None:
    return _kernel.run_points_shared(
        _kernel.kernel_key(tape), theta, schedule, tape.consts, batch_size,
        opts.devices)
  return _kernel.run_points(
      _kernel.kernel_key(tape), theta, plan.point_index,
      plan.point_shift.astype(np.dtype(tape.params.dtype)), tape.consts, batch_size,
      opts.devices)


def _check_argnums(argnums):
  """``argnums`` as given (an int) or as a tuple of ints; TypeError for anything else."""
  error = TypeError(f"`argnums` must be an int or a tuple of ints; got {argnums!r}.")
  if isinstance(argnums, bool):
    raise error
  if isinstance(argnums, (int, np.integer)):
    return argnums
  try:
    nums = tuple(argnums)
  except TypeError:
    raise error from None
  if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in nums):
    raise error
  return nums


# Prefix sharing keeps a table of up to n_parents + 1 states; beyond this many bytes the
# points are evaluated independently instead (memory stays bounded by batch_size).
_TABLE_BYTES = 2**29
# Shared evaluation must save at least this fraction of the gate applications.
_MIN_SHARED_SAVING = 0.1
# ... and at least this many amplitude updates (about 20-50 ms of a 2-core CPU).
_MIN_SHARED_WORK = 2**24


def _schedule_for(tape: Tape, plan: ShiftPlan) -> Schedule:
  # On the kernel's gate list (a noisy tape's doubles each gate: the first of a pair).
  operations = _kernel.kernel_key(tape)[0]
  positions = np.zeros(tape.num_params, dtype=int)
  for i, op in reversed(list(enumerate(operations))):
    positions[list(op.param_index)] = i
  return build_schedule(positions, len(operations), plan.point_index, plan.point_shift)


def _normalize_argnums(argnums, n_args: int) -> tuple[int, ...]:
  single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
  nums = (argnums,) if single else tuple(argnums)
  for a in nums:
    if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
      raise TypeError(f"`argnums` must be an int or a tuple of ints; got {argnums!r}.")
    if not -n_args <= a < n_args:
      raise ValueError(
          f"`argnums` {a} is out of range for a call with {n_args} positional "
          "argument(s).")
  return tuple(int(a) % n_args for a in nums)


def _check_float_inputs(args, argnums: tuple[int, ...], fname: str) -> None:
  for a in argnums:
    for leaf in jax.tree_util.tree_leaves(args[a]):
      numeric = not _is_static(leaf) or isinstance(leaf, (bool, int))
      dtype = jnp.result_type(leaf) if numeric else type(leaf).__name__
      if not numeric or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{fname} requires real floating-point inputs for the differentiated "
            f"arguments (argnums); argument {a} has a leaf of dtype {dtype}. Convert it, "
            "e.g. with jnp.asarray(x, dtype=float).")


def _check_circuit(circuit, fname: str) -> Circuit:
  if not isinstance(circuit, Circuit):
    raise TypeError(
        f"{fname} takes a circuit made with @qhess.circuit(wires=...); got "
        f"{type(circuit).__name__}.")
  return circuit


def _setup(circuit: Circuit, argnums_spec, hybrid: bool, want: str, args, kwargs, *,
           fname: str, gate_argnum=None):
  """``(tape, depends, need_value, need_grad, chain)``: what every evaluation needs.

  ``depends`` (bool ``(P,)``) marks the gate arguments that depend on the differentiated
  inputs; ``chain(value, grad, hess)`` maps R0 ``(n_raw,)``, ∂R ``(n_raw, P)`` and ∂²R
  ``(n_raw, P, P)`` at θ to the outputs through the chain rule (`_local_model`).
  """
  argnums = _normalize_argnums(argnums_spec, len(args))
  _check_float_inputs(args, argnums, fname)
  tape = circuit.tape(*args, **kwargs)
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  if hybrid:
    levels = _dependence(circuit, args, kwargs, argnums, tape)
    depends = levels > CONST
    if gate_argnum is not None:
      _check_selection(circuit, args, kwargs, argnums, tape, gate_argnum)
    nonlinear_pre = bool(np.any(levels == NONLINEAR))
  else:
    depends = np.ones(tape.num_params, dtype=bool)
    nonlinear_pre = False
  want_all = want == "all"
  need_grad = want_all or nonlinear_pre or nonlinear_post

  def chain(value, grad, hess):  # R0, ∂R, ∂²R at θ -> the outputs, by the chain rule
    model_theta = _local_model(tape, tape.params, value, grad, hess)
    if hybrid:
      def model(*a):
        t = circuit.tape(*a, **kwargs)
        _check_same_structure(tape.structure, t)
        return model_theta(t.params)
      nums = argnums_spec if isinstance(argnums_spec, (int, np.integer)) else argnums
      fn, at = model, args
    else:
      nums, fn, at = 0, model_theta, (tape.params,)
    h = jax.hessian(fn, argnums=nums)(*at)
    if want == "hessian":
      return h
    return tape.finalize(value), jax.jacrev(fn, argnums=nums)(*at), h

  return tape, depends, want_all or nonlinear_post, need_grad, chain


def derivative_plan(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                    want: str, args, kwargs, *, sampled: bool,
                    fname: str) -> tuple[Tape, ShiftPlan, Callable]:
  """``(tape, plan, post)``: the recorded tape, its shift plan and the post-processing
  ``post(Y)`` of the raw point values ``Y`` ``(T, n_raw)`` through the chain rule.

  Shared by `hessian`, `value_grad_and_hessian` and ``qhess.hessian_experiments``
  (hardware), so that measured counts go through exactly the simulated path's
  estimators; ``sampled`` picks the product rule as the default off-diagonal rule.
  """
  tape, depends, need_value, need_grad, chain = _setup(
      circuit, argnums_spec, hybrid, want, args, kwargs, fname=fname,
      gate_argnum=opts.gate_argnum)
  plan = _plan_for(tape, opts, depends, need_value=need_value,
                   need_grad=need_grad, share=need_grad,
                   # With shots the product rule: the diagonal rule needs more shots.
                   rule=opts.rule("product" if sampled else _DEFAULT_RULE))

  def post(y):  # raw point values (T, n_raw) -> the outputs, through the chain rule
    return chain(*_contract(plan, y))

  return tape, plan, post


def _adjoint_derivatives(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                         want: str, args, kwargs, fname: str):
  """``evaluation="adjoint"``: R0, ∂R, ∂²R from `_adjoint.derivatives`, then the chain
  rule as for the shift evaluations."""
  tape, depends, need_value, need_grad, chain = _setup(
      circuit, argnums_spec, hybrid, want, args, kwargs, fname=fname,
      gate_argnum=opts.gate_argnum)
  mask = _mask(opts.gate_argnum, tape.num_params)
  mask &= depends[:, None] & depends[None, :]
  grad_args = np.nonzero(mask.any(axis=1))[0] if need_grad else ()
  return chain(*_adjoint.derivatives(
      tape, _tape_spectra(tape), mask, grad_args=grad_args, need_value=need_value,
      batch_size=opts.batch_size, devices=opts.devices, what=fname))


def _derivatives(circuit: Circuit, opts: _Options, argnums_spec, hybrid: bool,
                 want: str, args, kwargs, sampling=None, key=None):
  """The shared implementation; ``want`` is ``"hessian"`` or ``"all"``.

  ``sampling`` is ``None`` (exact) or ``(shots, return_stderr)``; then ``key`` is the
  PRNG key and the raw point values are sampled (`_estimators.estimate`).
  """
  fname = "qhess.hessian" if want == "hessian" else "qhess.value_grad_and_hessian"
  if opts.evaluation == "adjoint":
    return _adjoint_derivatives(circuit, opts, argnums_spec, hybrid, want, args, kwargs,
                                fname)
  tape, plan, post = derivative_plan(circuit, opts, argnums_spec, hybrid, want, args,
                                     kwargs, sampled=sampling is not None, fname=fname)
  if sampling is None or plan.n_points == 0:
    out = post(_evaluate(tape, plan, opts, fname))
    if sampling is None or not sampling[1]:
      return out
    return out, jax.tree_util.tree_map(jnp.zeros_like, out)
  shots, return_stderr = sampling
  return _estimators.estimate(post, tape, _point_sampler(tape, plan, opts, fname), plan.n_points,
                         shots, key, return_stderr=return_stderr)


def _hashable(x):
  """A hashable key for an option value (arrays by content); TypeError if impossible."""
  if x is None:
    return x
  if isinstance(x, (int, float, str, bool, np.integer, np.floating)):
    # With the type: 1, 1.0 and True hash equal but are different options (a float
    # gate_argnum is an error, a bool one a mask), so they must not share a cache entry.
    return (type(x).__name__, x)
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    arr = np.asarray(x)
    return ("array", arr.shape, str(arr.dtype), arr.tobytes())
  return tuple(_hashable(e) for e in x)


# ------------------------------------------------------------- compiled entry points

# Compiled Hessians, least recently used first: ``key -> (circuit, jitted function)``.
# The key holds everything a trace depends on besides the traced arrays' shapes and
# dtypes: the circuit, the options, the static arguments, and the recorded tape's
# structure and constant matrices (`_tape_signature`), so that a changed global
# coefficient, matrix or layer count is a new entry, never a stale result. At most
# `_JIT_CACHE_SIZE` entries are kept (each holds compiled executables, a few MiB).
_JIT_CACHE: collections.OrderedDict[tuple, tuple[Circuit, Callable]] = (
    collections.OrderedDict())
_JIT_CACHE_SIZE = 32


class _Dynamic:
  """Marks a traced leaf among the static ones (see `_split_leaves`)."""

  def __repr__(self) -> str:
    return "<traced>"


_DYNAMIC = _Dynamic()


def _is_static(leaf) -> bool:
  """Non-array Python values (int, bool, str, ...) are static, as `jax.hessian` passes
  them through untraced; arrays, NumPy scalars, floats and complex numbers are traced."""
  return not (isinstance(leaf, (jax.Array, jax.core.Tracer, np.ndarray, np.generic, float,
                                complex)) or hasattr(leaf, "__jax_array__"))


def _split_leaves(leaves, fname: str) -> tuple[tuple, list]:
  """``(static, dynamic)``: the leaves with `_DYNAMIC` for traced ones, and those."""
  static, dynamic = [], []
  for leaf in leaves:
    if _is_static(leaf):
      try:
        hash(leaf)
      except TypeError:
        raise TypeError(
            f"{fname}: an argument of type {type(leaf).__name__} is neither an array nor "
            f"a hashable static value (int, str, bool, tuple); got {reprlib.repr(leaf)}."
        ) from None
      static.append(leaf)
    else:
      static.append(_DYNAMIC)
      dynamic.append(leaf)
  return tuple(static), dynamic


def _merge_leaves(static: tuple, dynamic) -> list:
  it = iter(dynamic)
  return [next(it) if s is _DYNAMIC else s for s in static]


def _tape_signature(circuit: Circuit, treedef, static: tuple, dynamic) -> tuple:
  """What a trace of ``circuit`` depends on besides its traced arguments' avals.

  The circuit is recorded abstractly (a jaxpr trace, no simulation): the tape's
  structure (gates, wires, measurements with their coefficients, layer counts) and a
  digest of each matrix that does not depend on the arguments (a global or closed-over
  QubitUnitary or Hermitian matrix, read now, also after an in-place change). As
  `jax.jit` compares avals and static arguments, a compiled Hessian is reused only for
  an equal signature.
  """
  tapes = []

  def record_fn(*flat):
    args, kwargs = jax.tree_util.tree_unflatten(treedef, _merge_leaves(static, flat))
    tapes.append(circuit.tape(*args, **kwargs))
    return ()

  closed = jax.make_jaxpr(record_fn)(*dynamic)
  (tape,) = tapes
  consts = tuple(
      None if isinstance(c, jax.core.Tracer) else
      (c.shape, str(c.dtype), hashlib.blake2b(np.asarray(c).tobytes(), digest_size=16).digest())
      for c in tape.consts)
  return tape.structure, consts, tape.n_wires, _jaxpr_digest(closed)


def _jaxpr_digest(closed) -> bytes:
  """A digest of a recorded computation: its text and the exact bytes of every literal
  and constant in it (also in sub-jaxprs), as `jax.jit` would retrace on them.

  The tape's structure does not show the classical processing that computes the gate
  arguments: ``RX(x[0] * A)`` records the same tape for every value of a global ``A``,
  but the jaxpr holds ``A`` as a literal or a constant.
  """
  digest = hashlib.blake2b(str(closed.jaxpr).encode(), digest_size=16)

  def add(value) -> None:
    arr = np.asarray(value)
    digest.update(f"{arr.shape}{arr.dtype}".encode())
    digest.update(arr.tobytes())

  def walk(value) -> None:
    if isinstance(value, jex.ClosedJaxpr):
      for c in value.consts:
        if not isinstance(c, jax.core.Tracer):
          add(c)
      walk(value.jaxpr)
    elif isinstance(value, jex.Jaxpr):
      for eqn in value.eqns:
        for v in eqn.invars:
          if isinstance(v, jex.Literal):
            add(v.val)
        for param in eqn.params.values():
          walk(param)
    elif isinstance(value, (tuple, list)):
      for v in value:
        walk(v)

  walk(closed)
  return digest.digest()


def _cached_jit(key: tuple, circuit: Circuit, build: Callable[[], Callable]) -> Callable:
  hit = _JIT_CACHE.get(key)
  if hit is not None and hit[0] is circuit:  # (an id may be reused after collection)
    _JIT_CACHE.move_to_end(key)
    return hit[1]
  jitted = build()
  _JIT_CACHE[key] = (circuit, jitted)
  _JIT_CACHE.move_to_end(key)
  while len(_JIT_CACHE) > _JIT_CACHE_SIZE:
    _JIT_CACHE.popitem(last=False)
  return jitted


def _make(circuit, argnums, hybrid, want, gate_argnum, diagonal_shifts,
          off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
          shots=None, return_stderr=False):
  fname = "qhess.hessian" if want == "hessian" else "qhess.value_grad_and_hessian"
  opts = _Options(gate_argnum, diagonal_shifts, off_diagonal_shifts, batch_size,
                  off_diagonal_rule, devices, evaluation)
  argnums = _check_argnums(argnums)
  if not isinstance(hybrid, (bool, np.bool_)):
    raise TypeError(f"`hybrid` must be a bool; got {hybrid!r}.")
  hybrid = bool(hybrid)
  shots = _shots.check_shots(shots)
  if shots is not None and evaluation == "adjoint":
    raise ValueError(
        'evaluation="adjoint" is exact only: it differentiates the simulated state, '
        "and a gradient is not an observable of sampled circuits; got "
        f"shots={shots!r}. Use shots=None, or the default evaluation with shots.")
  if not isinstance(return_stderr, bool):
    raise TypeError(f"`return_stderr` must be a bool; got {return_stderr!r}.")
  if return_stderr and shots is None:
    raise ValueError("`return_stderr=True` needs `shots`: exact evaluation has no error.")
  sampling = None if shots is None else (shots, return_stderr)
  try:
    options = (_hashable((gate_argnum, diagonal_shifts, off_diagonal_shifts, batch_size,
                          off_diagonal_rule, evaluation)), argnums, hybrid, want,
               opts.devices, _shots.shots_key(shots), return_stderr)
  except TypeError:  # an option we cannot key on: no sharing between calls of _make
    options = object()

  def build(treedef, static):
    def traced(dynamic, key):
      args, kwargs = jax.tree_util.tree_unflatten(treedef, _merge_leaves(static, dynamic))
      if sampling is not None:  # jax.grad through sampled outputs: a clear error
        args, kwargs = _sampling.no_derivatives((args, kwargs))
      return _derivatives(circuit, opts, argnums, hybrid, want, args, kwargs, sampling, key)
    return jax.jit(traced)

  @functools.wraps(circuit.fn)
  def fn(*args, **kwargs):
    key = None
    if sampling is not None:  # else a `key` keyword, if any, is the circuit's own
      key = _shots.check_key(kwargs.pop("key", None))
    _check_float_inputs(args, _normalize_argnums(argnums, len(args)), fname)
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    static, dynamic = _split_leaves(leaves, fname)
    signature = _tape_signature(circuit, treedef, static, dynamic)
    cache_key = (id(circuit), options, treedef,
                 tuple(s if s is _DYNAMIC else (type(s), s) for s in static), signature)
    return _cached_jit(cache_key, circuit, lambda: build(treedef, static))(dynamic, key)

  return fn


def hessian(circuit: Circuit, argnums: int | Sequence[int] = 0, *, hybrid: bool = True,
            gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
            off_diagonal_rule: str | None = None,
            batch_size: int | None = None, devices=None,
            evaluation: str = "shared",
            shots=None, return_stderr: bool = False) -> Callable:
  """The parameter-shift Hessian of a circuit.

  With ``hybrid=True`` (the default) the result has exactly the layout of
  ``jax.hessian(circuit, argnums)(*args)``: the shift rules give the second derivatives
  of the quantum part with respect to the gate arguments, and the classical processing
  around it (arbitrary JAX code mapping the inputs to gate arguments, and variances)
  enters through the chain rule, differentiated by JAX. With ``hybrid=False`` the
  Hessian is taken with respect to the tape's gate arguments ``θ`` (recording order; Rot
  and U3 count 3): an array of shape ``(*out_shape, P, P)`` per measurement.

  Circuit count: gate arguments that do not depend on the differentiated inputs get no
  circuits; when the classical processing is affine and no variance is measured, only
  second-derivative circuits run, otherwise the diagonal shares the gradient's points.
  Shifted points that coincide (also modulo the period) are merged. For P
  single-frequency arguments that is ``(3P² - P + 2)/2`` circuits with the default
  diagonal rule for mixed entries (``1 + 2P + 3P(P-1)/2`` with the gradient), and
  ``1 + P + 2P(P-1)`` with ``off_diagonal_rule="product"`` (PennyLane's count;
  ``1 + 2P + 2P(P-1)`` with the gradient). The diagonal rule is the default for exact
  evaluation because it runs fewer circuits for the same result (25% fewer at large
  P); with ``shots`` the product rule is the default, as it needs fewer shots for the
  same error.

  Calls and compilation: every call records the circuit (an abstract trace, no
  simulation) and reuses a compiled Hessian only when the recorded tape (structure,
  observable coefficients, constant QubitUnitary and Hermitian matrices), the static
  arguments and the argument shapes match an earlier call, as `jax.jit` compares avals
  and static values; a global or closed-over value the circuit reads is thus read
  afresh, as by `jax.hessian`. Non-array arguments (Python ints, bools, strings, None,
  and tuples of them) are static, as `jax.hessian` passes them through: they may set a
  layer count or choose gates. Arrays, NumPy scalars and Python floats are traced. The
  ``_JIT_CACHE_SIZE`` (32) most recently used compiled Hessians are kept.

  Args:
    circuit: a `Circuit` (from `qhess.circuit`).
    argnums: which positional arguments to differentiate, as in `jax.hessian`.
    hybrid: differentiate with respect to the inputs (True) or the gate arguments.
    gate_argnum: which Hessian entries (of the gate arguments) to compute: None (all),
      an int ``i`` (only entry ``(i, i)``), a sequence (every pair among its indices;
      empty: no entries), or a symmetric boolean mask of shape ``(P, P)``, over the
      tape's gate arguments (``circuit.tape(x).params``, after any decomposition of
      imported gates). Other entries are zero and cost no circuits; the gradient terms
      of the chain rule are restricted to the selected arguments. With ``hybrid=True``
      the result is ``Jᵀ (H_θ ∘ M) J`` plus those terms, and the selection must take
      all or none of the gate arguments each input feeds (for each pair of inputs, all
      or none of their block of ``M``): a ValueError otherwise, since a part of an
      input's gate arguments gives no Hessian of the inputs.
    diagonal_shifts: one tuple of positive shifts per gate argument, as many as it has
      frequencies (1 for RX, 2 for CRX); the diagonal uses that first-order rule twice.
      Shifts whose rule amplifies rounding errors into a meaningless Hessian (shifts
      near 0 or nearly equal) are rejected, milder cases warn: see
      `IllConditionedShiftsWarning` and ``qhess.shift.rules``.
    off_diagonal_shifts: likewise, for the product rule of mixed entries.
    off_diagonal_rule: ``"product"`` (4·R_i·R_j circuits per mixed entry, PennyLane's
      rule) or ``"diagonal"`` (Wierichs et al. 2022, Sec. 4: ``H_ij = ½[E''(0) - H_ii -
      H_jj]`` along ``e_i + e_j``: 3 instead of 4 circuits for single frequencies, so
      ``(3P² - P + 2)/2`` in all; it needs more shots for the same error). ``None``
      picks the default (see the module docs); custom ``off_diagonal_shifts`` imply
      the product rule.
    batch_size: at most this many shifted circuits (states) in memory at once; by
      default ``max(1, 2**17 // 2**n_wires)``, which keeps memory bounded at any width.
    devices: a jax device, or a sequence of distinct jax devices (e.g.
      ``jax.devices()``) to shard the shifted circuits over, with `jax.sharding`
      (padded to a multiple of the device count).
      Across hosts, call ``jax.distributed.initialize()`` first and pass
      ``jax.devices()``: the same code then shards over every host's devices.
    evaluation: ``"shared"`` (default) evaluates the shifted circuits as a tree that
      shares unshifted prefixes (each point runs only from a boundary before its last
      shifted gate, starting from a stored state); ``"independent"`` runs every shifted
      circuit from the start (the baseline). Both give the same Hessian. A static cost
      model runs ``"shared"`` independently when sharing does not pay: when it saves
      less than 10% of the gate applications of independent evaluation, or fewer than
      ``2**24`` amplitude updates (saved gate applications × ``2**n_wires``: then a
      call takes milliseconds either way and independent evaluation compiles faster).
      ``"adjoint"`` (exact mode only) shifts one index and differentiates the other:
      row i is the first-order shift rule of argument i (2R_i circuits) applied to
      the gradients of the shifted circuits, each computed by the adjoint method
      (`qhess.derivatives.adjoint`; memory independent of the depth), then symmetrised. It
      rejects ``shots`` and custom shift options (``diagonal_shifts``,
      ``off_diagonal_shifts``, ``off_diagonal_rule``) with a ``ValueError``.
    shots: ``None`` (exact expectation values), an int (every shifted circuit is
      measured that many times), a tuple of ints (a shot vector: the samples are split
      into consecutive partitions, one result per entry) or a `ShotBudget` (a total
      allocated across the circuits). A sum of Pauli words is measured in qubit-wise
      commuting groups, one circuit per group per shifted point, and ``shots`` counts
      per circuit (see ``qhess.simulate.sampling``). The returned function then takes a required
      keyword ``key=`` (a PRNG key; equal keys give equal numbers, under jit and vmap).
      With shots the off-diagonal rule defaults to ``"product"``, and sampling is not
      differentiable.
    return_stderr: with ``shots``, also return first-order standard errors in the
      result's layout: ``(hessian, stderr)`` (for a shot vector, a tuple of each).

  Returns:
    a function with the circuit's signature returning the Hessian (a pytree as
    `jax.hessian` returns it, or per-measurement ``(*out_shape, P, P)`` arrays).

  Raises:
    TypeError: for a non-circuit, integer inputs, or a badly typed option (also a
      non-bool ``hybrid``, a non-integer ``shots`` or a ``key`` that is not a PRNG
      key); when called: for an argument that is neither an array nor a hashable
      static value, or a circuit function that uses a traced value in Python control
      flow (``if x[0] > 0:``; write ``jnp.where`` or ``jax.lax.cond``); with shots,
      when the sampled result is differentiated (``jax.grad`` of a sampled Hessian has
      no meaning here: differentiate the exact one, ``shots=None``).
    ValueError: for out-of-range ``argnums``/``gate_argnum``, a bad mask, repeated
      ``devices``, custom shifts of the wrong count, making the coefficient system
      singular or ill-conditioned (``_shift_rules.check_amplification``), a matrix
      (QubitUnitary, Hermitian) that depends on the differentiated inputs, or states
      that cannot fit in the device's memory (the message names the memory needed and
      a ``batch_size`` that fits, if any); with shots: a count below 1, a budget
      smaller than the number of circuits, a missing ``key``, ``return_stderr``
      without ``shots``, or ``var`` of an observable whose terms do not commute
      qubit-wise.

  Warns:
    IllConditionedShiftsWarning: for custom shifts that amplify errors of the circuit
      values more than ``_shift_rules.WARN_AMPLIFICATION`` (1e4) times the default
      shifts do.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CRY(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> x = jnp.array([0.5, 0.2])
    >>> print(qhess.hessian(f)(x).round(6))
    [[-0.868836  0.047624]
     [ 0.047624  0.059989]]
    >>> bool(jnp.allclose(qhess.hessian(f)(x), jax.jit(jax.hessian(f))(x), atol=1e-6))
    True
    >>> h, err = qhess.hessian(f, shots=10_000, return_stderr=True)(x, key=jax.random.key(0))
    >>> bool(jnp.all(jnp.abs(h - qhess.hessian(f)(x)) < 5 * err + 1e-9))
    True
  """
  _check_circuit(circuit, "qhess.hessian")
  return _make(circuit, argnums, hybrid, "hessian", gate_argnum, diagonal_shifts,
               off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
               shots, return_stderr)


def value_grad_and_hessian(circuit: Circuit, argnums: int | Sequence[int] = 0, *,
                           hybrid: bool = True, gate_argnum=None, diagonal_shifts=None,
                           off_diagonal_shifts=None, off_diagonal_rule: str | None = None,
                           batch_size: int | None = None, devices=None,
            evaluation: str = "shared",
            shots=None, return_stderr: bool = False) -> Callable:
  """Value, gradient and Hessian of a circuit from ONE batch of shifted circuits.

  The diagonal second derivatives use the gradient's points (for one frequency,
  ``f'' = (f(θ+π/2) + f(θ-π/2))/2 - f(θ)``), so the batch has ``1 + 2P + 2P(P-1)``
  circuits for P single-frequency arguments with the product rule — fewer than
  PennyLane's separate gradient and Hessian calls (``2P + 1 + P + 2P(P-1)``) — and
  ``1 + 2P + 3P(P-1)/2`` with the default diagonal rule for mixed entries.

  Args:
    circuit, argnums, hybrid, gate_argnum, diagonal_shifts, off_diagonal_shifts,
    off_diagonal_rule, batch_size, devices, evaluation, shots, return_stderr: as in
    `hessian` (with shots the function takes ``key=``).

  Returns:
    a function returning ``(value, grad, hess)``: the circuit's outputs, their
    Jacobian as ``jax.jacobian(circuit, argnums)`` lays it out, and the Hessian as
    `hessian` returns it. With ``return_stderr``: ``((value, grad, hess), stderrs)``
    with ``stderrs`` in the same layout.

  Raises:
    TypeError, ValueError: as `hessian`.

  Warns:
    IllConditionedShiftsWarning: as `hessian`.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> v, g, h = qhess.value_grad_and_hessian(f)(jnp.array([0.3]))
    >>> print(round(float(v), 6), g.round(6), h.round(6))
    0.955336 [-0.29552] [[-0.955336]]
  """
  _check_circuit(circuit, "qhess.value_grad_and_hessian")
  return _make(circuit, argnums, hybrid, "all", gate_argnum, diagonal_shifts,
               off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
               shots, return_stderr)


def hessian_tapes(tape: Tape | Circuit, *, f0=None, gate_argnum=None, diagonal_shifts=None,
                  off_diagonal_shifts=None,
                  off_diagonal_rule: str | None = None) -> tuple[list[Tape], Callable]:
  """The shifted circuits of a gate-argument Hessian, and their post-processing.

  ``hessian_tapes(circuit)`` (a `Circuit` instead of a tape) returns a function of the
  circuit's arguments that records the tape and returns ``(tapes, post)``.

  Every gate argument of the tape is differentiated (``hybrid=False`` semantics). The
  tapes measure raw quantities: a ``var(O)`` becomes ``expval(O)`` and ``<O²>``.
  ``post(qhess.execute(tapes))`` equals ``qhess.hessian(circuit, hybrid=False)(x)``, and
  ``len(tapes)`` is ``qhess.optimize.count_circuits(qhess.hessian, circuit,
  hybrid=False, off_diagonal_rule="product")(x).points`` (one fewer with ``f0``). The
  default, hybrid `hessian` may run a different number: see `qhess.optimize.CircuitCount`.

  Args:
    tape: a `Tape`, e.g. ``circuit.tape(x)``, or a `Circuit`.
    f0: the circuit's outputs at the tape's arguments; when given, the unshifted
      circuit is not among the tapes and ``f0`` is used instead (expval and probs only).
    gate_argnum, diagonal_shifts, off_diagonal_shifts: as in `hessian`.
    off_diagonal_rule: as in `hessian`, but defaulting to ``"product"`` (PennyLane's
      circuits and counts).

  ``hessian_tapes`` is an eager, host-side function: it builds concrete tapes (in
  NumPy) to run elsewhere, so it does not run under `jax.jit`, `jax.vmap` or
  `jax.grad` (``post`` does: it is a JAX function of the results). Under a
  transformation use ``qhess.hessian(circuit, hybrid=False)``.

  Returns:
    ``(tapes, post)``: a list of `Tape` and a function of their results giving one
    ``(*out_shape, P, P)`` array per measurement. ``post`` takes one result per tape,
    in any of the forms `execute` and PennyLane devices return (``qml.execute`` on
    ``qhess.to_pennylane`` tapes): a tuple (or list) with one array per raw measurement;
    for a tape with a single raw measurement also the bare array or scalar (a Python
    or NumPy float); and, for a shot vector, a tuple with one such result per entry, in
    which case ``post`` returns a tuple with one Hessian per entry. ``post`` checks the
    count and every shape of the results: a ``TypeError`` for a non-sequence, a
    ``ValueError`` naming the result, output, and expected and received shapes.

  Raises:
    TypeError: when ``tape`` is not a `Tape`, or holds traced values (under a JAX
      transformation).
    ValueError: for bad options, ill-conditioned custom shifts (as in `hessian`), an
      ``f0`` whose shapes do not match the outputs, or ``f0`` with a variance
      measurement.

  Warns:
    IllConditionedShiftsWarning: as `hessian`.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CRY(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> tapes, post = qhess.hessian_tapes(f.tape(jnp.array([0.5, 0.2])))
    >>> len(tapes)
    13
    >>> print(post(qhess.execute(tapes)).round(6))
    [[-0.868836  0.047624]
     [ 0.047624  0.059989]]
  """
  if isinstance(tape, Circuit):  # hessian_tapes(circuit)(x), as DESIGN.md writes it
    circuit, options = tape, dict(f0=f0, gate_argnum=gate_argnum,
                                  diagonal_shifts=diagonal_shifts,
                                  off_diagonal_shifts=off_diagonal_shifts,
                                  off_diagonal_rule=off_diagonal_rule)
    return lambda *args, **kwargs: hessian_tapes(circuit.tape(*args, **kwargs), **options)
  if not isinstance(tape, Tape):
    raise TypeError(
        "`tape` must be a qhess.Tape (e.g. circuit.tape(x)) or a qhess.Circuit; got "
        f"{type(tape).__name__}.")
  traced = [v for v in (tape.params, *tape.consts, *jax.tree_util.tree_leaves(f0))
            if isinstance(v, jax.core.Tracer)]
  if traced:
    raise TypeError(
        "hessian_tapes is an eager, host-side function: it builds concrete shifted tapes "
        "(in NumPy) to run elsewhere, so it cannot run under jax.jit, jax.vmap or "
        f"jax.grad; got a tape (or f0) holding traced values ({type(traced[0]).__name__}). "
        "Call it outside the transformation, or use qhess.hessian(circuit, hybrid=False), "
        "which composes with them.")
  opts = _Options(gate_argnum, diagonal_shifts, off_diagonal_shifts,
                  off_diagonal_rule=off_diagonal_rule)
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  plan = _plan_for(tape, opts, np.ones(tape.num_params, dtype=bool),
                   need_value=nonlinear_post, need_grad=nonlinear_post,
                   share=nonlinear_post, rule=opts.rule("product"))
  raw_tape = tape.with_measurements(tape.raw_measurements, returns_tuple=True)
  n_raw = sum(m.raw_size for m in tape.measurements)
  f0_raw = None
  if f0 is not None:
    f0_raw = _f0_to_raw(tape, f0, nonlinear_post)
  skip = 1 if (f0_raw is not None and plan.has_unshifted) else 0
  theta = np.asarray(_reduced_params(tape), dtype=np.float64)
  points = np.tile(theta, (plan.n_points, 1))
  rows = np.arange(plan.n_points)[:, None]
  np.add.at(points, (np.broadcast_to(rows, plan.point_index.shape), plan.point_index),
            plan.point_shift)
  tapes = [raw_tape.with_params(p) for p in points[skip:]]

  out_shapes = raw_tape.output_shapes

  def outputs(res) -> list:  # one tape's result -> its list of raw outputs
    if not isinstance(res, (tuple, list)) and (np.ndim(res) == 0 or (
        len(out_shapes) == 1 and np.shape(res) == out_shapes[0])):
      return [res]  # a device's bare result for a single measurement
    return list(res) if isinstance(res, (tuple, list)) or np.ndim(res) >= 1 else [res]

  def shot_entries(res) -> int | None:  # entries of a shot-vector result, else None
    if not isinstance(res, (tuple, list)) or not res:
      return None
    if all(isinstance(e, (tuple, list)) for e in res):
      return len(res)  # (per shot entry: a tuple of outputs)
    if len(out_shapes) == 1 and len(res) >= 2 and all(
        np.shape(e) == out_shapes[0] for e in res):
      return len(res)  # (per shot entry: the single output, bare)
    return None

  def post(results: Sequence[Any]):
    if isinstance(results, (str, bytes)) or not hasattr(results, "__len__"):
      raise TypeError(
          "`post` takes a sequence of results, one per tape (e.g. qhess.execute(tapes)); "
          f"got {reprlib.repr(results)}.")
    if len(results) != len(tapes):
      raise ValueError(f"`post` expects {len(tapes)} results, one per tape; got {len(results)}.")
    entries = {shot_entries(res) for res in results}
    if len(entries) > 1:
      raise ValueError(
          "`post` got shot-vector results (a tuple per shot-vector entry) for some tapes "
          f"and not for others, or shot vectors of different lengths ({sorted(entries, key=str)}).")
    if results and entries != {None}:  # one Hessian per shot-vector entry
      (k,) = entries
      return tuple(post([res[s] for res in results]) for s in range(k))
    rows = []
    for i, res in enumerate(results):
      outs = outputs(res)
      if len(outs) != len(out_shapes):
        raise ValueError(
            f"`results[{i}]` must hold {len(out_shapes)} outputs, one per raw measurement "
            f"of tape {i} (shapes {out_shapes}); got {len(outs)}.")
      for j, (o, shape) in enumerate(zip(outs, out_shapes)):
        if np.shape(o) != shape:
          raise ValueError(
              f"`results[{i}]` output {j} has shape {np.shape(o)}; tape {i} outputs shape "
              f"{shape}.")
      rows.append([jnp.asarray(o, dtype=tape.params.dtype) for o in outs])
    return post_jit(rows)

  @jax.jit
  def post_jit(results):  # one compiled contraction instead of eager op-by-op autodiff
    rows_ = [jnp.concatenate([jnp.reshape(r, (-1,)) for r in res]) for res in results]
    y = jnp.stack(rows_) if rows_ else jnp.zeros((0, n_raw), tape.params.dtype)
    if skip:
      y = jnp.concatenate([f0_raw[None].astype(y.dtype), y])
    value, grad, hess = _contract(plan, y)
    model = _local_model(tape, tape.params, value, grad, hess)
    return jax.hessian(model)(tape.params)

  return tapes, post


def _f0_to_raw(tape: Tape, f0, nonlinear_post: bool) -> jax.Array:
  if nonlinear_post:
    raise ValueError(
        "`f0` cannot be used with var measurements: the variance does not contain the "
        "raw moments <O> and <O²> the shift rules need.")
  outs = f0 if tape.returns_tuple else (f0,)
  if not isinstance(outs, (tuple, list)) or len(outs) != len(tape.measurements):
    raise ValueError(
        f"`f0` must match the circuit's outputs ({len(tape.measurements)} measurement(s) "
        f"of shapes {tape.output_shapes}); got {f0!r}.")
  for i, (o, shape) in enumerate(zip(outs, tape.output_shapes)):
    # np.shape: jnp.shape warns on (and will reject) a tuple given for one output.
    if np.shape(o) != shape:
      raise ValueError(
          f"`f0` output {i} has shape {np.shape(o)}; the circuit's output has shape {shape}.")
  return jnp.concatenate([jnp.reshape(jnp.asarray(o), (-1,)) for o in outs])
