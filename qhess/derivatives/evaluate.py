"""Evaluating a plan's points: the cost model, memory checks, and the kernel calls.

`_evaluate` runs a `ShiftPlan`'s points on the kernel and returns their raw outputs
``(T, n_raw)``; `_shared_schedule` is the cost model that decides between prefix-shared
and independent evaluation; `_checked_batch_size` is the memory check; `_contract`
contracts the plan's coefficients with the outputs into R, ∂R and ∂²R.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qhess.shift.lightcone import pruned_tape
from qhess.shift.plan import ShiftPlan, build_plan
from qhess.shift.schedule import Schedule, build_schedule
from qhess.shift import rules as _shift_rules
from qhess.circuits.catalogue import CATALOGUE
from qhess.circuits.tape import Tape
from qhess.simulate import memory as _memory
from qhess.simulate import kernel as _kernel
from qhess.simulate import measure as _measure
from qhess.derivatives.options import _Options, _mask, _shifts, _tape_spectra


def _plan_for(tape: Tape, opts: _Options, depends: np.ndarray, *, need_value: bool,
              need_grad: bool, share: bool, rule: str, hessian: bool = True) -> ShiftPlan:
  """The plan of the selected, dependent arguments; ``hessian=False``: first-order
  points only (an empty Hessian mask, the gradient of the active arguments)."""
  spectra = _tape_spectra(tape)
  eps = float(np.finfo(np.dtype(tape.params.dtype)).eps)
  mask = _mask(opts.gate_argnum, tape.num_params)
  mask &= depends[:, None] & depends[None, :]
  active = np.nonzero(mask.any(axis=1))[0]
  if not hessian:
    mask = np.zeros_like(mask)
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
  if opts.evaluation not in ("shared", "auto") or not tape.operations:  # nothing to share
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



def _shifted_points(tape: Tape, plan: ShiftPlan) -> np.ndarray:
  """The plan's points as concrete gate-argument vectors, float64 ``(T, P)``: the reduced
  arguments (`_reduced_params`) plus each point's shifts (for tapes and experiments)."""
  theta = np.asarray(_reduced_params(tape), dtype=np.float64)
  points = np.tile(theta, (plan.n_points, 1))
  rows = np.broadcast_to(np.arange(plan.n_points)[:, None], plan.point_index.shape)
  np.add.at(points, (rows, plan.point_index), plan.point_shift)
  return points


def _point_sampler(tape: Tape, plan: ShiftPlan, opts: _Options,
                   what: str = "qhess.hessian") -> Callable:
  """``sample(sampler)`` -> ``sampler``'s outputs at the plan's points (`_estimators.estimate`),
  prefix-shared like the exact path when `_shared_schedule` allows.

  Raises:
    ValueError: when a chunk of states cannot fit in memory (`_memory.check_memory`).
  """
  dtype = np.dtype(tape.params.dtype)
  theta = _reduced_params(tape)
  tape = pruned_tape(tape)  # the gates outside the light cone change no output
  schedule = _shared_schedule(tape, plan, opts)
  batch_size = _checked_batch_size(tape, plan, opts, schedule, what)
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
  theta = _reduced_params(tape)
  tape = pruned_tape(tape)  # the gates outside the light cone change no output
  schedule = _shared_schedule(tape, plan, opts)
  batch_size = _checked_batch_size(tape, plan, opts, schedule, what)
  report = _kernel.Progress(what, plan.n_points) if opts.progress else None
  if schedule is not None:
    return _kernel.run_points_shared(
        _kernel.kernel_key(tape), theta, schedule, tape.consts, batch_size,
        opts.devices, report)
  return _kernel.run_points(
      _kernel.kernel_key(tape), theta, plan.point_index,
      plan.point_shift.astype(np.dtype(tape.params.dtype)), tape.consts, batch_size,
      opts.devices, report)



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
  positions = np.full(tape.num_params, -1)
  for i, op in reversed(list(enumerate(operations))):
    positions[list(op.param_index)] = i
  # Arguments of gates dropped outside the light cone are never shifted: placed at the
  # first parametrized gate, they add no segment boundary.
  placed = positions >= 0
  positions[~placed] = positions[placed].min() if placed.any() else 0
  return build_schedule(positions, len(operations), plan.point_index, plan.point_shift)


# The choice of `evaluation="auto"` between the shift rules and the adjoint method. The
# model counts state passes: a shift-rule evaluation applies `Schedule.gate_applications`
# gates (prefix-shared) or T·L (independent); the adjoint method runs 2R_i circuits per
# Hessian row, each L gates carrying `2 + min(n_raw, rows)` states (forward, and backward
# with the adjoint states), plus one reduction per argument; both also measure
# (`_measure.measurement_passes`: a pass per flip mask of a Pauli sum), the shift rules
# at every point, the adjoint method once per circuit to build its adjoint states.
# Measured on this project's 2-core CPU (bench/results/families-2026-11-27-vm-s19.md,
# adjoint-2026-11-27-vm.md, scaling-2026-12-07-vm.md), the ratio of the two counts
# against the measured speed-up of the adjoint method: five 10 × 2 families 3.2–5.5
# against 1.9–2.1×; HEA 4 × 25 19 against 7.1×; HEA 20 × 1 8.1 against 6.6×; HEA 4 × 1
# 1.6 against 1.1×. So one adjoint unit costs about two shift-rule gate applications
# (`_ADJOINT_PASS_COST`), and the adjoint method, which compiles about twice as long, is
# chosen when it is predicted `_ADJOINT_MARGIN` faster.
_ADJOINT_PASS_COST = 2.0
_ADJOINT_MARGIN = 1.25


def _adjoint_pays(tape: Tape, plan: ShiftPlan, opts: _Options, rows: int,
                  row_points: int) -> bool:
  """Whether `evaluation="auto"` runs the adjoint method for an exact evaluation of
  ``tape`` (already pruned to its light cone) instead of ``plan``'s shifted circuits.

  ``rows`` Hessian rows are needed, ``row_points`` shifted circuits for them (Σ 2R_i).
  Never for noisy tapes (a channel cannot be un-computed) or with custom shift options.
  """
  if opts.custom_shifts or rows == 0 or any(
      CATALOGUE[op.name].kind == "channel" or op.name == "ReadoutError"
      for op in tape.operations):
    return False
  n_gates = len(tape.operations)
  schedule = _shared_schedule(tape, plan, opts)
  shift = (schedule.gate_applications if schedule is not None
           else plan.n_points * n_gates)
  raw = _kernel.kernel_key(tape)[1]
  n_raw = sum(m.raw_size for m in tape.raw_measurements)
  states = 2 + min(n_raw, rows)
  # Measuring: once per shifted point; the adjoint method measures once to build its
  # adjoint states (λ_r = M_r ψ, a pass per flip mask of M_r), forward mode once per
  # tangent. A 276-term LiH Hamiltonian is 35 passes: more than its 26 gates.
  meas = _measure.measurement_passes(raw)
  shift += plan.n_points * meas
  meas_adjoint = meas if n_raw <= rows else (1 + rows) * meas
  adjoint = _ADJOINT_PASS_COST * row_points * (n_gates * states + tape.num_params
                                               + meas_adjoint)
  return _ADJOINT_MARGIN * adjoint < shift
