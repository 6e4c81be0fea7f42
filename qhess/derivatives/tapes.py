"""The shifted circuits as tapes, with their post-processing: `hessian_tapes`.

For running elsewhere (PennyLane devices, hardware): the tapes of a gate-argument Hessian
and a JAX function ``post`` of their results.
"""

from __future__ import annotations

import reprlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.circuits.tape import Tape
from qhess.shift.lightcone import reachable_params
from qhess.derivatives.evaluate import _contract, _plan_for, _shifted_points
from qhess.derivatives.options import _Options
from qhess.derivatives.pipeline import _local_model


def hessian_tapes(tape: Tape | Circuit, *, f0=None, gate_argnum=None, diagonal_shifts=None,
                  off_diagonal_shifts=None,
                  off_diagonal_rule: str | None = None) -> tuple[list[Tape], Callable]:
  """The shifted circuits of a gate-argument Hessian, and their post-processing.

  ``hessian_tapes(circuit)`` (a `Circuit` instead of a tape) returns a function of the
  circuit's arguments that records the tape and returns ``(tapes, post)``.

  Every gate argument of the tape is differentiated (``hybrid=False`` semantics); one
  whose gate is outside the measurements' backward light cone gets no tapes and a zero
  row and column, as in PennyLane. The tapes measure raw quantities: a ``var(O)``
  becomes ``expval(O)`` and ``<O²>``.
  ``post(qhess.execute(tapes))`` equals ``qhess.hessian(circuit, hybrid=False)(x)``, and
  ``len(tapes)`` is ``qhess.optimize.count_circuits(qhess.hessian, circuit,
  hybrid=False, off_diagonal_rule="product")(x).points`` (one fewer with ``f0``). The
  default, hybrid `hessian` may run a different number: see `qhess.optimize.CircuitCount`.

  Args:
    tape: a `Tape`, e.g. ``circuit.tape(x)``, or a `Circuit`.
    f0: the circuit's outputs at the tape's arguments; when given, the unshifted
      circuit is not among the tapes and ``f0`` is used instead (expval and probs only).
    gate_argnum: as in `hessian`.
    diagonal_shifts: as in `hessian`.
    off_diagonal_shifts: as in `hessian`.
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
  if isinstance(tape, Circuit):  # hessian_tapes(circuit)(x), as in the docs
    circuit, options = tape, dict(f0=f0, gate_argnum=gate_argnum,
                                  diagonal_shifts=diagonal_shifts,
                                  off_diagonal_shifts=off_diagonal_shifts,
                                  off_diagonal_rule=off_diagonal_rule)
    return lambda *args, **kwargs: hessian_tapes(circuit.tape(*args, **kwargs), **options)
  _check_concrete_tape(tape, f0)
  opts = _Options(gate_argnum, diagonal_shifts, off_diagonal_shifts,
                  off_diagonal_rule=off_diagonal_rule)
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  plan = _plan_for(tape, opts, reachable_params(tape),  # outside the light cone: none
                   need_value=nonlinear_post, need_grad=nonlinear_post,
                   share=nonlinear_post, rule=opts.rule("product"))
  f0_raw = None if f0 is None else _f0_to_raw(tape, f0, nonlinear_post)
  skip = 1 if (f0_raw is not None and plan.has_unshifted) else 0
  raw_tape = tape.with_measurements(tape.raw_measurements, returns_tuple=True)
  tapes = [raw_tape.with_params(p) for p in _shifted_points(tape, plan)[skip:]]
  return tapes, _Post(tape, plan, raw_tape.output_shapes, len(tapes),
                      f0_raw if skip else None)


def _check_concrete_tape(tape, f0) -> None:
  """TypeError unless ``tape`` is a `Tape` holding concrete values (and ``f0`` too)."""
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


class _Post:
  """``post(results)`` of `hessian_tapes`: checks the tapes' results, contracts them.

  Accepts one result per tape in the forms `qhess.execute` and PennyLane devices return
  (see `hessian_tapes`); a shot-vector result gives one Hessian per entry.
  """

  def __init__(self, tape: Tape, plan, out_shapes, n_tapes: int, f0_raw):
    self.tape, self.plan, self.out_shapes, self.n_tapes = tape, plan, out_shapes, n_tapes
    self.f0_raw = f0_raw  # the unshifted raw outputs, when given instead of a tape
    self.contract = jax.jit(self._contract)  # one compiled contraction, not op-by-op

  def __call__(self, results: Sequence[Any]):
    if isinstance(results, (str, bytes)) or not hasattr(results, "__len__"):
      raise TypeError(
          "`post` takes a sequence of results, one per tape (e.g. qhess.execute(tapes)); "
          f"got {reprlib.repr(results)}.")
    if len(results) != self.n_tapes:
      raise ValueError(
          f"`post` expects {self.n_tapes} results, one per tape; got {len(results)}.")
    entries = {self._shot_entries(res) for res in results}
    if len(entries) > 1:
      raise ValueError(
          "`post` got shot-vector results (a tuple per shot-vector entry) for some tapes "
          f"and not for others, or shot vectors of different lengths ({sorted(entries, key=str)}).")
    if results and entries != {None}:  # one Hessian per shot-vector entry
      (k,) = entries
      return tuple(self([res[s] for res in results]) for s in range(k))
    return self.contract([self._row(i, res) for i, res in enumerate(results)])

  def _outputs(self, res) -> list:
    """One tape's result as its list of raw outputs."""
    if not isinstance(res, (tuple, list)) and (np.ndim(res) == 0 or (
        len(self.out_shapes) == 1 and np.shape(res) == self.out_shapes[0])):
      return [res]  # a device's bare result for a single measurement
    return list(res) if isinstance(res, (tuple, list)) or np.ndim(res) >= 1 else [res]

  def _shot_entries(self, res) -> int | None:
    """The number of entries of a shot-vector result, else ``None``."""
    if not isinstance(res, (tuple, list)) or not res:
      return None
    if all(isinstance(e, (tuple, list)) for e in res):
      return len(res)  # (per shot entry: a tuple of outputs)
    if len(self.out_shapes) == 1 and len(res) >= 2 and all(
        np.shape(e) == self.out_shapes[0] for e in res):
      return len(res)  # (per shot entry: the single output, bare)
    return None

  def _row(self, i: int, res) -> list:
    """Result ``i`` as arrays of the tape's dtype, after checking count and shapes."""
    outs = self._outputs(res)
    if len(outs) != len(self.out_shapes):
      raise ValueError(
          f"`results[{i}]` must hold {len(self.out_shapes)} outputs, one per raw measurement "
          f"of tape {i} (shapes {self.out_shapes}); got {len(outs)}.")
    for j, (o, shape) in enumerate(zip(outs, self.out_shapes)):
      if np.shape(o) != shape:
        raise ValueError(
            f"`results[{i}]` output {j} has shape {np.shape(o)}; tape {i} outputs shape "
            f"{shape}.")
    return [jnp.asarray(o, dtype=self.tape.params.dtype) for o in outs]

  def _contract(self, rows):
    """The Hessian from the checked rows, through the variance's chain rule if any."""
    tape = self.tape
    flat = [jnp.concatenate([jnp.reshape(r, (-1,)) for r in res]) for res in rows]
    n_raw = sum(m.raw_size for m in tape.measurements)
    y = jnp.stack(flat) if flat else jnp.zeros((0, n_raw), tape.params.dtype)
    if self.f0_raw is not None:
      y = jnp.concatenate([self.f0_raw[None].astype(y.dtype), y])
    value, grad, hess = _contract(self.plan, y)
    model = _local_model(tape, tape.params, value, grad, hess)
    return jax.hessian(model)(tape.params)


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
