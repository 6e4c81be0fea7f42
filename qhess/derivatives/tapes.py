"""The shifted circuits as tapes, with their post-processing: `hessian_tapes`.

For running elsewhere (PennyLane devices, hardware): the tapes of a gate-argument Hessian
(or, with ``hybrid=True``, of the Hessian with respect to the circuit's inputs) and
``post``, a `TapesPost` of their results: arrays only (the plan's coefficients and the
chain rule as a `LocalChain`), so it can be saved.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.circuits.tape import Tape
from qhess.shift.lightcone import reachable_params
from qhess.derivatives.chain import LocalChain, gate_chain
from qhess.derivatives.evaluate import _plan_for, _shifted_points
from qhess.derivatives.options import _check_argnums, _Options
from qhess.derivatives.pipeline import concrete_plan


def hessian_tapes(tape: Tape | Circuit, *, hybrid: bool = False, argnums=0, f0=None,
                  gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
                  off_diagonal_rule: str | None = None) -> tuple[list[Tape], Callable]:
  """The shifted circuits of a gate-argument Hessian, and their post-processing.

  ``hessian_tapes(circuit)`` (a `Circuit` instead of a tape) returns a function of the
  circuit's arguments that records the tape and returns ``(tapes, post)``.

  ``hessian_tapes(circuit, hybrid=True)(*args)`` differentiates with respect to the
  circuit's inputs ``args[argnums]`` instead, as ``qhess.hessian(circuit, argnums)``:
  the tapes are those of the gate arguments that depend on the inputs (plus the
  first-order points the chain rule needs for non-linear classical processing), and
  ``post`` applies the chain rule with the Jacobian and second derivatives of the
  classical processing evaluated at ``args`` (data, no closure over the circuit: it can
  be saved with ``qhess.save_experiments``). E.g. a PennyLane QNode of 3 parameters
  whose gates take 12 arguments (``qhess.from_pennylane(qnode)``) gives ``post``
  returning the ``3 × 3`` Hessian, not the ``12 × 12`` one.

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
    hybrid: differentiate with respect to the circuit's inputs through its classical
      processing (a `Circuit` only); default ``False``: the gate arguments.
    argnums: with ``hybrid=True``, as in `hessian`.
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
  if not isinstance(hybrid, (bool, np.bool_)):
    raise TypeError(f"`hybrid` must be a bool; got {hybrid!r}.")
  if not hybrid and not (isinstance(argnums, int) and argnums == 0):
    raise ValueError(
        f"`argnums` ({argnums!r}) selects the circuit's inputs to differentiate; it needs "
        "hessian_tapes(circuit, hybrid=True). Without hybrid the gate arguments are.")
  opts = _Options(gate_argnum, diagonal_shifts, off_diagonal_shifts,
                  off_diagonal_rule=off_diagonal_rule)
  if isinstance(tape, Circuit):  # hessian_tapes(circuit)(x), as in the docs
    circuit, options = tape, dict(f0=f0, gate_argnum=gate_argnum,
                                  diagonal_shifts=diagonal_shifts,
                                  off_diagonal_shifts=off_diagonal_shifts,
                                  off_diagonal_rule=off_diagonal_rule)
    if hybrid:
      argnums = _check_argnums(argnums)
      return lambda *args, **kwargs: _hybrid_tapes(circuit, opts, argnums, f0, args, kwargs)
    return lambda *args, **kwargs: hessian_tapes(circuit.tape(*args, **kwargs), **options)
  if hybrid and isinstance(tape, Tape):
    raise ValueError(
        "hessian_tapes(tape, hybrid=True): a tape holds gate arguments only, not the "
        "classical processing of the inputs; pass the circuit, "
        "hessian_tapes(circuit, hybrid=True)(*args).")
  _check_concrete_tape(tape, f0)
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  plan = _plan_for(tape, opts, reachable_params(tape),  # outside the light cone: none
                   need_value=nonlinear_post, need_grad=nonlinear_post,
                   share=nonlinear_post, rule=opts.rule("product"))
  return _tapes_and_post(tape, plan, gate_chain(tape, plan), f0)


def _hybrid_tapes(circuit: Circuit, opts: _Options, argnums, f0, args, kwargs):
  """``hessian_tapes(circuit, hybrid=True)(*args)``: the plan and chain rule of
  ``qhess.hessian(circuit, argnums)`` at ``args`` (the product rule by default)."""
  tape, plan, chain = concrete_plan(circuit, opts, argnums, True, "hessian", args, kwargs,
                                    sampled=True, fname="qhess.hessian_tapes")
  _check_concrete_tape(tape, f0)
  return _tapes_and_post(tape, plan, chain, f0)


def _tapes_and_post(tape: Tape, plan, chain, f0) -> tuple[list[Tape], TapesPost]:
  """The plan's tapes (measuring the raw quantities) and their `TapesPost`."""
  nonlinear_post = any(m.kind == "var" for m in tape.measurements)
  f0_raw = None if f0 is None else _f0_to_raw(tape, f0, nonlinear_post)
  skip = 1 if (f0_raw is not None and plan.has_unshifted) else 0
  raw_tape = tape.with_measurements(tape.raw_measurements, returns_tuple=True)
  points = _shifted_points(tape, plan)[skip:]
  tapes = [raw_tape.with_params(p) for p in points]
  return tapes, TapesPost(chain, raw_tape.output_shapes, len(tapes),
                          f0_raw if skip else None, points)


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


class TapesPost:
  """``post(results)`` of `hessian_tapes`: checks the tapes' results, contracts them.

  Accepts one result per tape in the forms `qhess.execute` and PennyLane devices return
  (see `hessian_tapes`); a shot-vector result gives one Hessian per entry. Built from
  data only (``qhess.save_experiments`` saves it).

  Attributes:
    chain: the contraction and chain rule as data (`LocalChain`).
    out_shapes: the shapes of each tape's raw outputs.
    n_tapes: the number of tapes (results ``post`` takes).
    f0_raw: the unshifted raw outputs given as ``f0``, or ``None``.
    points: float64 ``(n_tapes, P)``: the tapes' gate arguments.
  """

  def __init__(self, chain: LocalChain, out_shapes, n_tapes: int, f0_raw, points):
    self.chain, self.out_shapes, self.n_tapes = chain, tuple(out_shapes), n_tapes
    self.f0_raw = f0_raw  # the unshifted raw outputs, when given instead of a tape
    self.points = np.asarray(points)
    self.contract = jax.jit(self._contract)  # one compiled contraction, not op-by-op

  def __repr__(self) -> str:
    return f"TapesPost({self.n_tapes} tapes, {len(self.chain.in_shapes)} input leaves)"

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
    return [jnp.asarray(o, dtype=self.chain.dtype) for o in outs]

  def _contract(self, rows):
    """The Hessian from the checked rows, through the chain rule (`LocalChain`)."""
    flat = [jnp.concatenate([jnp.reshape(r, (-1,)) for r in res]) for res in rows]
    n_raw = sum(math.prod(s) for s in self.out_shapes)
    y = jnp.stack(flat) if flat else jnp.zeros((0, n_raw), self.chain.dtype)
    if self.f0_raw is not None:
      y = jnp.concatenate([jnp.asarray(self.f0_raw)[None].astype(y.dtype), y])
    return self.chain(y)


def _f0_to_raw(tape: Tape, f0, nonlinear_post: bool) -> jax.Array:
  if nonlinear_post:
    raise ValueError(
        "`f0` cannot be used with var measurements: the variance does not contain the "
        "raw moments <O> and <O²> the shift rules need.")
  if any(m.coeffs is not None for m in tape.measurements):
    raise ValueError(
        "`f0` cannot be used with observable coefficients computed from the arguments: "
        "each term is measured on its own, and f0 holds their weighted sum only.")
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
