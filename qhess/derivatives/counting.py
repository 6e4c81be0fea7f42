"""How many circuits and shots a derivative call runs, without simulating anything.

`count_circuits` builds the same shift plan as `qhess.hessian` or
`qhess.value_grad_and_hessian` at given arguments and counts its points, measurement
groups and shots (`CircuitCount`); re-exported as ``qhess.optimize.count_circuits``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from qhess.derivatives import hessian as _hessian
from qhess.simulate import sampling as _shots
from qhess.simulate.circuit import Circuit
from qhess.simulate import groups as _groups
from qhess.derivatives import options as _options
from qhess.derivatives import pipeline as _pipeline


class CircuitCount(NamedTuple):
  """What one call of `qhess.hessian` or `qhess.value_grad_and_hessian` runs.

  Attributes:
    points: distinct shifted argument vectors: the states a simulator prepares (the
      circuit counts in `qhess.hessian`'s docstring). With ``hybrid=False`` this is
      ``len(qhess.hessian_tapes(circuit, **options)(*args)[0])`` for the same options
      (one fewer with ``f0``). With ``hybrid=True`` it may differ either way: gate
      arguments that do not depend on the differentiated inputs get no circuits, and
      non-linear classical processing or a variance adds the first-order points that the
      chain rule needs (the tapes give the gate-argument Hessian only).
    groups: measurement settings per point (qubit-wise commuting groups of the
      measured Pauli words; those measuring no wire, an identity, need no circuit).
    circuits: ``points × groups``: the circuits a device runs (for one shot-vector
      entry: ``len(qhess.hessian_experiments(...)[0])`` with integer shots).
    shots: the shots they take in all, ``None`` for exact evaluation.
  """

  points: int
  groups: int
  circuits: int
  shots: int | None



def count_circuits(fn: Callable, circuit: Circuit, argnums=0, *, hybrid: bool = True,
                   gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
                   off_diagonal_rule: str | None = None, shots=None, shifts=None,
                   **ignored) -> Callable:
  """How many circuits (and shots) ``fn(circuit, ...)`` runs at given arguments.

  ``count_circuits(qhess.hessian, circuit, **options)(*args)`` builds the same shift
  plan as ``qhess.hessian(circuit, **options)(*args)`` (recording the circuit, its
  classical processing with ``hybrid=True``, merged points, the off-diagonal rule in
  force), without simulating anything. Options that do not change the count
  (``batch_size``, ``devices``, ``evaluation``, ``return_stderr``) are accepted and
  ignored, so the keywords of a call can be passed through unchanged.

  ``count_circuits(qhess.gradient, circuit, **options)(*args)`` counts the first-order
  points of ``qhess.gradient`` (and of ``qhess.gradient_experiments``).

  Args:
    fn: `qhess.hessian`, `qhess.value_grad_and_hessian` or `qhess.gradient`.
    circuit: a `qhess.Circuit`.
    argnums: as in ``fn``.
    hybrid: as in ``fn``.
    gate_argnum: as in ``fn``.
    diagonal_shifts: as in ``fn``.
    off_diagonal_shifts: as in ``fn``.
    off_diagonal_rule: as in ``fn``.
    shots: as in ``fn``.
    shifts: as in `qhess.gradient` (its custom first-order shifts; ``fn=qhess.gradient``
      only).
    **ignored: ``batch_size``, ``devices``, ``evaluation``, ``return_stderr``.

  Returns:
    a function of the circuit's arguments returning a `CircuitCount`. With an int
    ``shots`` the shots are ``shots × circuits``, with a shot vector ``sum(shots) ×
    circuits`` (one run per circuit, its samples split), with a ``ShotBudget`` its
    ``total``.

  Raises:
    TypeError: when ``fn`` is neither function, for a non-circuit, or an unknown keyword.
    ValueError, TypeError: for bad options, as ``fn`` (when called).

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.RY(0.3, wires=1)  # a constant: no circuits with hybrid=True
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RY(2 * x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1) + qhess.X(1))
    >>> x = jnp.array([0.5, 0.2])
    >>> # P = 2 arguments: (3P² - P + 2)/2 points, 2 measurement groups
    >>> qhess.optimize.count_circuits(qhess.hessian, f)(x)
    CircuitCount(points=6, groups=2, circuits=12, shots=None)
    >>> # with shots the product rule: 1 + 2P + 2P(P - 1) points
    >>> qhess.optimize.count_circuits(qhess.value_grad_and_hessian, f, shots=100)(x)
    CircuitCount(points=9, groups=2, circuits=18, shots=1800)
  """
  fname = "qhess.optimize.count_circuits"
  want, opts, argnums, shots = _checked(
      fn, circuit, fname, argnums, hybrid, gate_argnum, diagonal_shifts,
      off_diagonal_shifts, off_diagonal_rule, shots, shifts, ignored,
      {"batch_size", "devices", "evaluation", "return_stderr"})

  def count_fn(*args, **kwargs) -> CircuitCount:
    tape, plan, _ = _pipeline.concrete_plan(  # (recorded as the call records it)
        circuit, opts, argnums, bool(hybrid), want, args, kwargs,
        sampled=shots is not None, fname=fname, count_only=True)
    mg = _groups.measurement_groups(tape.raw_measurements)
    groups = sum(1 for grp in mg.groups if grp.wires)
    circuits = plan.n_points * groups
    if shots is None:
      n_shots = None
    elif isinstance(shots, int):
      n_shots = shots * circuits
    elif isinstance(shots, tuple):
      n_shots = sum(shots) * circuits
    else:
      n_shots = shots.total
    return CircuitCount(plan.n_points, groups, circuits, n_shots)

  return count_fn


def _checked(fn: Callable, circuit: Circuit, fname: str, argnums, hybrid, gate_argnum,
             diagonal_shifts, off_diagonal_shifts, off_diagonal_rule, shots, shifts,
             ignored: dict, accepted: set, evaluation: str = "shared"):
  """``(want, opts, argnums, shots)``: the validated options of a planning function
  (`count_circuits`, `evaluation_method`) for a call of ``fn``; ``accepted``: the
  keywords of ``fn`` it takes and ignores."""
  want = _want(fn, fname)
  diagonal_shifts = _gradient_shifts(want, diagonal_shifts, off_diagonal_shifts,
                                     off_diagonal_rule, shifts, fname)
  _options._check_circuit(circuit, fname)
  unknown = sorted(set(ignored) - accepted)
  if unknown:
    raise TypeError(f"{fname}: unknown keyword argument(s) {unknown}.")
  opts = _options._Options(gate_argnum, diagonal_shifts, off_diagonal_shifts,
                           off_diagonal_rule=off_diagonal_rule, evaluation=evaluation)
  argnums = _options._check_argnums(argnums)
  if not isinstance(hybrid, (bool, np.bool_)):
    raise TypeError(f"`hybrid` must be a bool; got {hybrid!r}.")
  return want, opts, argnums, _shots.check_shots(shots)


def _want(fn: Callable, fname: str) -> str:
  """What ``fn`` computes: ``"hessian"``, ``"all"`` or ``"gradient"``."""
  for candidate, want in ((_hessian.hessian, "hessian"),
                          (_hessian.value_grad_and_hessian, "all"),
                          (_hessian.gradient, "gradient")):
    if fn is candidate:
      return want
  raise TypeError(
      f"{fname}: `fn` must be qhess.hessian, qhess.value_grad_and_hessian or "
      f"qhess.gradient; got {getattr(fn, '__name__', type(fn).__name__)!r}.")


def _gradient_shifts(want: str, diagonal_shifts, off_diagonal_shifts, off_diagonal_rule,
                     shifts, fname: str):
  """The first-order shifts: ``shifts`` for `qhess.gradient` (which has no second-order
  options), else ``diagonal_shifts`` (and ``shifts`` refused)."""
  if want == "gradient":
    if diagonal_shifts is not None or off_diagonal_shifts is not None or off_diagonal_rule:
      raise TypeError(f"{fname}: qhess.gradient takes `shifts`, not `diagonal_shifts`, "
                      "`off_diagonal_shifts` or `off_diagonal_rule`.")
    return shifts
  if shifts is not None:
    raise TypeError(f"{fname}: `shifts` is an option of qhess.gradient only.")
  return diagonal_shifts



def evaluation_method(fn: Callable, circuit: Circuit, argnums=0, *, hybrid: bool = True,
                      gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
                      off_diagonal_rule: str | None = None, evaluation: str = "auto",
                      shots=None, shifts=None, **ignored) -> Callable:
  """Which evaluation ``fn(circuit, **options)`` runs at given arguments.

  ``evaluation="auto"`` (the default of `qhess.hessian` and
  `qhess.value_grad_and_hessian`) is resolved by the same cost model as the call, at the
  same arguments, without simulating anything: ``"shared"`` (the shifted circuits with
  prefix sharing), ``"independent"`` (each shifted circuit from the start) or
  ``"adjoint"`` (the adjoint method: the pure-state one, or the second-order sweep of
  the density matrix for a circuit with channels). A named evaluation is returned as
  the call runs it (``"shared"`` may still run independently when the stored states
  would not fit; shots always use the shift rules).

  Args:
    fn: `qhess.hessian`, `qhess.value_grad_and_hessian` or `qhess.gradient`.
    circuit: a `qhess.Circuit`.
    argnums: as in ``fn``.
    hybrid: as in ``fn``.
    gate_argnum: as in ``fn``.
    diagonal_shifts: as in ``fn``.
    off_diagonal_shifts: as in ``fn``.
    off_diagonal_rule: as in ``fn``.
    evaluation: as in ``fn`` (``"auto"`` by default, as in all three).
    shots: as in ``fn``.
    shifts: as in `qhess.gradient`.
    **ignored: ``batch_size``, ``devices``, ``return_stderr``, ``progress``.

  Returns:
    a function of the circuit's arguments returning ``"shared"``, ``"independent"`` or
    ``"adjoint"``.

  Raises:
    TypeError, ValueError: as `count_circuits`, and for a bad ``evaluation``.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RY(x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> x = jnp.array([0.5, 0.2])
    >>> qhess.evaluation_method(qhess.hessian, f)(x)  # two wires: a few shifted circuits
    'independent'
    >>> qhess.evaluation_method(qhess.hessian, f, evaluation="adjoint")(x)
    'adjoint'
  """
  fname = "qhess.evaluation_method"
  want, opts, argnums, shots = _checked(
      fn, circuit, fname, argnums, hybrid, gate_argnum, diagonal_shifts,
      off_diagonal_shifts, off_diagonal_rule, shots, shifts, ignored,
      {"batch_size", "devices", "return_stderr", "progress"}, evaluation=evaluation)
  if shots is not None and evaluation == "adjoint":
    raise ValueError(f'{fname}: evaluation="adjoint" is exact only; got shots={shots!r}.')

  def method_fn(*args, **kwargs) -> str:
    return _pipeline.evaluation_for(circuit, opts, argnums, bool(hybrid), want, args,
                                    kwargs, sampled=shots is not None, fname=fname)

  return method_fn
