"""Noise: channels as operations, a noise model on a recorded circuit, readout error.

Channels follow PennyLane's names, argument orders and Kraus operators
(``qml.DepolarizingChannel(p, wires)`` is ``qhess.DepolarizingChannel(p, wires)``). Their
Kraus operators are data of the tape (``Tape.consts``), like a QubitUnitary's matrix: no
shift rule runs through a channel, and a channel parameter that depends on the
differentiated arguments is an error of `qhess.hessian`. Shift rules stay exact under
noise as long as the channels do not depend on the shifted arguments: the measured
``Tr(O ρ(θ))`` is the same trigonometric polynomial in each gate argument.

A tape with a channel is simulated as a density matrix on the statevector kernel
(`_density.py`); one without stays a state vector. Readout error flips measured bits
after the basis rotation of each measurement group, in exact results and shots alike.

Called outside a circuit, a channel function returns a `Channel` (a description used by
`with_noise` rules); inside a circuit it records the channel.
"""

from __future__ import annotations

import functools
import numbers
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits import observables as _observables
from qhess.circuits import tape as _tape
from qhess.simulate.circuit import Circuit
from qhess.simulate.density import combine_flips
from qhess.circuits.catalogue import CATALOGUE, _pauli_matrix

_KRAUS_ATOL = 1e-6  # tolerance of the completeness check Σ K†K = I (as QubitUnitary's)


class Channel(NamedTuple):
  """A noise channel not (yet) on a tape: what a channel function returns outside a circuit.

  Attributes:
    name: PennyLane's name, e.g. ``"DepolarizingChannel"``.
    wires: the wires it acts on.
    kraus: complex array of shape ``(r, 2**k, 2**k)``: its Kraus operators.
  """

  name: str
  wires: tuple[int, ...]
  kraus: jax.Array


def _cdtype():
  return jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64


def _probability(value, name: str, argname: str):
  """A real scalar in [0, 1] (checked when concrete; a traced value is data)."""
  value = _tape._as_param(value, name, argname)
  if not isinstance(value, jax.core.Tracer):
    v = float(value)
    if not 0.0 <= v <= 1.0:
      raise ValueError(f"{name}: `{argname}` must be a probability in [0, 1]; got {v}.")
  return value


def _check_kraus(kraus, name: str, k: int):
  """Kraus operators as a complex ``(r, 2**k, 2**k)`` array, checked when concrete."""
  d = 2**k
  if not isinstance(kraus, jax.core.Tracer):
    m = np.asarray(kraus)
    if m.ndim != 3 or m.shape[1:] != (d, d) or m.shape[0] < 1:
      raise ValueError(
          f"{name}: `K_list` on {k} wire(s) must be a non-empty list of ({d}, {d}) "
          f"matrices; got shape {m.shape}.")
    err = np.max(np.abs(np.einsum("kba,kbc->ac", m.conj(), m) - np.eye(d)))
    if err > _KRAUS_ATOL:
      raise ValueError(
          f"{name}: the Kraus operators must be trace preserving, Σ K†K = I; got "
          f"max |Σ K†K - I| = {err:.3g}.")
  return jnp.asarray(kraus, _cdtype())


def _channel(name: str, kraus, wires) -> Channel | None:
  rec = _tape._ACTIVE.get()
  n_expected = CATALOGUE[name].n_wires
  if rec is None:
    ws = _observables._as_wires(wires, name)
    if n_expected is not None and len(ws) != n_expected:
      raise ValueError(f"{name} acts on {n_expected} wire(s); got wires={ws}.")
    kraus = _check_kraus(kraus, name, len(ws))
    return Channel(name, ws, kraus)
  ws = _tape._check_wires(rec, wires, name, n_expected)
  kraus = _check_kraus(kraus, name, len(ws))
  rec.operations.append(_tape.Operation(name, ws, (), rec.add_const(kraus)))
  return None


def _stack(mats) -> jax.Array:
  return jnp.stack([jnp.asarray(m) * (1 + 0j) for m in mats]).astype(_cdtype())


_I2, _X, _Y, _Z = (_pauli_matrix(c) for c in "IXYZ")
_RAISE = np.array([[0.0, 1.0], [0.0, 0.0]])  # |0><1|
_LOWER = np.array([[0.0, 0.0], [1.0, 0.0]])  # |1><0|
_P0, _P1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])

_RAISES_DOC = """
  Returns:
    ``None`` inside a circuit (the channel is recorded); outside a circuit a `Channel`
    (for `with_noise` rules).

  Raises:
    ValueError: for a probability outside [0, 1] (when concrete), or a wire outside the
      circuit."""


def DepolarizingChannel(p, wires):  # noqa: N802
  """Single-qubit depolarizing channel (PennyLane's convention).

  Kraus operators ``sqrt(1-p) I, sqrt(p/3) X, sqrt(p/3) Y, sqrt(p/3) Z``.

  Args:
    p: probability in [0, 1]; a real scalar (may depend on non-differentiated inputs).
    wires: one wire.
  {raises}

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x, wires=0)
    ...   qhess.DepolarizingChannel(0.3, wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> round(float(f(0.0)), 4)  # 1 - 4p/3
    0.6
  """
  p = _probability(p, "DepolarizingChannel", "p")
  a, b = jnp.sqrt(1 - p), jnp.sqrt(p / 3)
  return _channel("DepolarizingChannel", _stack([a * _I2, b * _X, b * _Y, b * _Z]), wires)


def AmplitudeDamping(gamma, wires):  # noqa: N802
  """Amplitude damping (decay of |1> to |0> with probability ``gamma``).

  Kraus operators ``[[1, 0], [0, sqrt(1-γ)]]`` and ``[[0, sqrt(γ)], [0, 0]]``.

  Args:
    gamma: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  g = _probability(gamma, "AmplitudeDamping", "gamma")
  return _channel("AmplitudeDamping",
                  _stack([_P0 + jnp.sqrt(1 - g) * _P1, jnp.sqrt(g) * _RAISE]), wires)


def GeneralizedAmplitudeDamping(gamma, p, wires):  # noqa: N802
  """Generalized amplitude damping: exchange with a bath at excitation probability ``p``.

  Kraus operators (PennyLane's): ``sqrt(1-p) [[1, 0], [0, sqrt(1-γ)]]``,
  ``sqrt(1-p) [[0, sqrt(γ)], [0, 0]]``, ``sqrt(p) [[sqrt(1-γ), 0], [0, 1]]``,
  ``sqrt(p) [[0, 0], [sqrt(γ), 0]]``.

  Args:
    gamma: damping probability in [0, 1].
    p: probability in [0, 1] of the damping towards |1> (the bath's excitation).
    wires: one wire.
  {raises}
  """
  g = _probability(gamma, "GeneralizedAmplitudeDamping", "gamma")
  p = _probability(p, "GeneralizedAmplitudeDamping", "p")
  sp, sq, sg, sh = jnp.sqrt(p), jnp.sqrt(1 - p), jnp.sqrt(g), jnp.sqrt(1 - g)
  return _channel("GeneralizedAmplitudeDamping", _stack([
      sq * (_P0 + sh * _P1), sq * sg * _RAISE, sp * (sh * _P0 + _P1), sp * sg * _LOWER]),
                  wires)


def PhaseDamping(gamma, wires):  # noqa: N802
  """Phase damping: Kraus operators ``[[1, 0], [0, sqrt(1-γ)]]``, ``[[0, 0], [0, sqrt(γ)]]``.

  Args:
    gamma: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  g = _probability(gamma, "PhaseDamping", "gamma")
  return _channel("PhaseDamping", _stack([_P0 + jnp.sqrt(1 - g) * _P1, jnp.sqrt(g) * _P1]),
                  wires)


def BitFlip(p, wires):  # noqa: N802
  """Bit flip with probability ``p``: Kraus operators ``sqrt(1-p) I``, ``sqrt(p) X``.

  Args:
    p: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  p = _probability(p, "BitFlip", "p")
  return _channel("BitFlip", _stack([jnp.sqrt(1 - p) * _I2, jnp.sqrt(p) * _X]), wires)


def PhaseFlip(p, wires):  # noqa: N802
  """Phase flip with probability ``p``: Kraus operators ``sqrt(1-p) I``, ``sqrt(p) Z``.

  Args:
    p: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  p = _probability(p, "PhaseFlip", "p")
  return _channel("PhaseFlip", _stack([jnp.sqrt(1 - p) * _I2, jnp.sqrt(p) * _Z]), wires)


def PauliError(operators: str, p, wires):  # noqa: N802
  """A Pauli word applied with probability ``p`` (PennyLane's ``PauliError``).

  Kraus operators ``sqrt(1-p) I`` and ``sqrt(p) P`` for the word ``P`` on ``wires``.

  Args:
    operators: a string over ``"IXYZ"``, one letter per wire, e.g. ``"XZ"``.
    p: probability in [0, 1].
    wires: as many distinct wires as letters.
  {raises}
  """
  _tape.check_pauli_word(operators, wires, "PauliError", "operators")
  p = _probability(p, "PauliError", "p")
  word = _pauli_matrix(operators)
  return _channel("PauliError",
                  _stack([jnp.sqrt(1 - p) * np.eye(len(word)), jnp.sqrt(p) * word]), wires)


def QubitChannel(K_list, wires):  # noqa: N802,N803
  """A channel given by its Kraus operators (PennyLane's ``QubitChannel``).

  Args:
    K_list: ``r >= 1`` complex matrices of shape ``(2**k, 2**k)`` (or an array
      ``(r, 2**k, 2**k)``) with ``Σ K†K = I`` (checked when concrete, to 1e-6).
    wires: ``k`` distinct wires; the first is the most significant bit of the index.

  Returns:
    ``None`` inside a circuit (the channel is recorded); outside a circuit a `Channel`.

  Raises:
    ValueError: for matrices of the wrong shape, a set that is not trace preserving, or
      a wire outside the circuit.
  """
  if isinstance(K_list, (list, tuple)):
    if not K_list:
      raise ValueError("QubitChannel: `K_list` must hold at least one Kraus operator; got [].")
    shapes = {np.shape(k) for k in K_list}
    if len(shapes) != 1:
      raise ValueError(
          f"QubitChannel: all Kraus operators must have one shape; got {sorted(shapes)}.")
    K_list = jnp.stack([jnp.asarray(k) for k in K_list])
  return _channel("QubitChannel", K_list, wires)


for _fn in (DepolarizingChannel, AmplitudeDamping, GeneralizedAmplitudeDamping, PhaseDamping,
            BitFlip, PhaseFlip, PauliError):
  _fn.__doc__ = _fn.__doc__.replace("  {raises}\n", "\n" + _RAISES_DOC.strip("\n") + "\n")
del _fn


# --------------------------------------------------------------------- noise models


def _as_channels(out, op, where: str) -> list[Channel]:
  if out is None:
    return []
  items = [out] if isinstance(out, Channel) else out
  if not isinstance(items, (list, tuple)) or not all(isinstance(c, Channel) for c in items):
    raise TypeError(
        f"`{where}` must return a channel (e.g. qhess.DepolarizingChannel(0.01, "
        f"wires=op.wires[0]) called outside a circuit), a list of them or None; got "
        f"{out!r} for gate {op.name} on wires {op.wires}.")
  return list(items)


def _readout_probs(readout, n_wires: int) -> tuple[float, ...] | None:
  if readout is None:
    return None
  if isinstance(readout, Mapping):
    probs = [0.0] * n_wires
    for w, p in readout.items():
      if isinstance(w, bool) or not isinstance(w, (numbers.Integral, np.integer)) or not (
          0 <= w < n_wires):
        raise ValueError(
            f"`readout` wire {w!r} is outside the circuit's wires 0..{n_wires - 1}.")
      probs[int(w)] = p
  elif isinstance(readout, (numbers.Real, np.floating, np.integer)) and not isinstance(
      readout, bool):
    probs = [readout] * n_wires
  elif isinstance(readout, (list, tuple, np.ndarray)):
    probs = list(np.asarray(readout, dtype=float).reshape(-1))
    if len(probs) != n_wires:
      raise ValueError(
          f"`readout` as a sequence needs one probability per wire ({n_wires}); got "
          f"{len(probs)}.")
  else:
    raise TypeError(
        "`readout` must be a probability, a sequence of them (one per wire) or a dict "
        f"{{wire: probability}}; got {readout!r}.")
  out = []
  for w, p in enumerate(probs):
    p = float(p)
    if not 0.0 <= p <= 1.0:
      raise ValueError(f"`readout` of wire {w} must be a probability in [0, 1]; got {p}.")
    out.append(p)
  return tuple(out)


def with_noise(circuit: Circuit, after: Callable | Mapping[str, Callable] | None = None, *,
               readout=None) -> Circuit:
  """The circuit with a noise model: channels after its gates, readout error.

  A pure transform of the recorded tape, in the spirit of PennyLane's ``add_noise``: the
  circuit function is unchanged, and each recording of the new circuit inserts the
  channels. Hessians (`qhess.hessian`, ...), shots and `qhess.hessian_tapes` work on the
  result as on any circuit; it is simulated as a density matrix when a channel is added.

  Args:
    circuit: a `qhess.Circuit`.
    after: ``None``; or a function ``op -> channels`` called for every gate ``op`` of the
      tape (an `Operation`: ``op.name``, ``op.wires``), returning a channel built
      outside a circuit (``qhess.DepolarizingChannel(0.01, wires=op.wires[1])``), a list
      of them, or ``None``; or a dict ``{gate name: such a function}`` (rules per gate
      name). The channels are inserted right after the gate, in the order returned.
    readout: ``None``; or readout error, the probability that a measured bit is flipped
      (after the basis rotation of its measurement group): one probability for every
      wire, a sequence with one per wire, or a dict ``{wire: probability}``.

  Returns:
    a `qhess.Circuit` with the same signature.

  Raises:
    TypeError: for a ``circuit`` that is not a `qhess.Circuit`, an ``after`` that is
      neither callable nor a dict, a rule that returns something other than channels
      (when recorded), or a ``readout`` of the wrong kind.
    ValueError: for a dict key that is not a gate name, a readout probability outside
      [0, 1] or of the wrong length, or a channel on a wire outside the circuit (when
      recorded).

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RY(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> noisy = qhess.with_noise(
    ...     f, {"CNOT": lambda op: qhess.DepolarizingChannel(0.1, wires=op.wires[1])},
    ...     readout=0.02)
    >>> print(noisy.tape(jnp.array([0.5])).draw())
    0: ──RY─╭●───────╭RO─┤ ╭<Z@Z>
    1: ─────╰X─Depol─╰RO─┤ ╰<Z@Z>
    >>> round(float(noisy(jnp.array([0.5]))), 4)  # <ZZ> = 1, times (1 - 4/3 0.1) (1 - 2 0.02)**2
    0.7987
  """
  if not isinstance(circuit, Circuit):
    raise TypeError(f"`circuit` must be a qhess.Circuit; got {type(circuit).__name__}.")
  if isinstance(after, Mapping):
    for name, rule in after.items():
      if name not in CATALOGUE or CATALOGUE[name].kind in ("channel", "readout") or (
          name.endswith("*")):
        raise ValueError(f"`after` keys must be gate names such as 'CNOT'; got {name!r}.")
      if not callable(rule):
        raise TypeError(f"`after[{name!r}]` must be callable; got {rule!r}.")
    rules = dict(after)
    after_fn = lambda op: rules[op.name](op) if op.name in rules else None  # noqa: E731
  elif after is None or callable(after):
    after_fn = after
  else:
    raise TypeError(
        f"`after` must be None, a function op -> channels, or a dict of them; got {after!r}.")
  flips = _readout_probs(readout, circuit.n_wires)

  def transform(tape):
    ops, consts = [], list(tape.consts)
    for op in tape.operations:
      ops.append(op)
      if after_fn is None or CATALOGUE[op.name].kind in ("channel", "readout"):
        continue
      for ch in _as_channels(after_fn(op), op, "after"):
        bad = [w for w in ch.wires if not 0 <= w < tape.n_wires]
        if bad:
          raise ValueError(
              f"`after`: {ch.name} on wires {ch.wires} is outside the circuit's wires "
              f"0..{tape.n_wires - 1} (after gate {op.name} on wires {op.wires}).")
        consts.append(jnp.asarray(ch.kraus, _cdtype()))
        ops.append(_tape.Operation(ch.name, ch.wires, (), len(consts) - 1))
    if flips is not None:
      old = [o for o in ops if o.name == "ReadoutError"]
      ops = [o for o in ops if o.name != "ReadoutError"]
      merged = flips
      for o in old:
        merged = combine_flips(o.hyper, merged)
      ops.append(_tape.Operation("ReadoutError", tuple(range(tape.n_wires)), (), merged))
    return _tape.dataclasses.replace(tape, operations=tuple(ops), consts=tuple(consts))

  inner = getattr(circuit.fn, "_qhess_tape_transform", None)
  base = getattr(circuit.fn, "__wrapped__", circuit.fn) if inner is not None else circuit.fn

  @functools.wraps(base)
  def noisy_fn(*args, **kwargs):
    return base(*args, **kwargs)

  noisy_fn._qhess_tape_transform = (  # pylint: disable=protected-access
      transform if inner is None else (lambda t: transform(inner(t))))
  return Circuit(noisy_fn, circuit.n_wires)

