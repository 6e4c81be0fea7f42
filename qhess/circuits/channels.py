"""Noise channels as operations (the noise model `with_noise` is `qhess.simulate.noise`).

Channels follow PennyLane's names, argument orders and Kraus operators
(``qml.DepolarizingChannel(p, wires)`` is ``qhess.DepolarizingChannel(p, wires)``). Their
Kraus operators are data of the tape (``Tape.consts``), like a QubitUnitary's matrix: no
shift rule runs through a channel, and a channel parameter that depends on the
differentiated arguments is an error of `qhess.hessian`. Shift rules stay exact under
noise as long as the channels do not depend on the shifted arguments: the measured
``Tr(O ρ(θ))`` is the same trigonometric polynomial in each gate argument.

A tape with a channel is simulated as a density matrix on the statevector kernel
(`qhess.simulate.noisy`); one without stays a state vector. Readout error flips measured bits
after the basis rotation of each measurement group, in exact results and shots alike.

Called outside a circuit, a channel function returns a `Channel` (a description used by
`with_noise` rules); inside a circuit it records the channel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits import observables as _observables
from qhess.circuits import tape as _tape
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


# The channels' constant matrices (NumPy), by name.
_MATRICES = {**{c: _pauli_matrix(c) for c in "IXYZ"},
             "RAISE": np.array([[0.0, 1.0], [0.0, 0.0]]),  # |0><1|
             "LOWER": np.array([[0.0, 0.0], [1.0, 0.0]]),  # |1><0|
             "P0": np.diag([1.0, 0.0]), "P1": np.diag([0.0, 1.0])}


def _matrices(names: str) -> tuple[jax.Array, ...]:
  """The named constant matrices as JAX arrays of the current complex dtype: multiplied
  by a channel's (JAX) parameters, a NumPy operand would enter an eager op with its own
  width, which JAX's dispatch cache can mismatch after x64 is switched."""
  return tuple(jnp.asarray(_MATRICES[name], _cdtype()) for name in names.split())

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
  i2, x, y, z = _matrices("I X Y Z")
  return _channel("DepolarizingChannel", _stack([a * i2, b * x, b * y, b * z]), wires)


def AmplitudeDamping(gamma, wires):  # noqa: N802
  """Amplitude damping (decay of |1> to |0> with probability ``gamma``).

  Kraus operators ``[[1, 0], [0, sqrt(1-γ)]]`` and ``[[0, sqrt(γ)], [0, 0]]``.

  Args:
    gamma: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  g = _probability(gamma, "AmplitudeDamping", "gamma")
  p0, p1, raise_ = _matrices("P0 P1 RAISE")
  return _channel("AmplitudeDamping",
                  _stack([p0 + jnp.sqrt(1 - g) * p1, jnp.sqrt(g) * raise_]), wires)


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
  p0, p1, raise_, lower = _matrices("P0 P1 RAISE LOWER")
  return _channel("GeneralizedAmplitudeDamping", _stack([
      sq * (p0 + sh * p1), sq * sg * raise_, sp * (sh * p0 + p1), sp * sg * lower]),
                  wires)


def PhaseDamping(gamma, wires):  # noqa: N802
  """Phase damping: Kraus operators ``[[1, 0], [0, sqrt(1-γ)]]``, ``[[0, 0], [0, sqrt(γ)]]``.

  Args:
    gamma: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  g = _probability(gamma, "PhaseDamping", "gamma")
  p0, p1 = _matrices("P0 P1")
  return _channel("PhaseDamping", _stack([p0 + jnp.sqrt(1 - g) * p1, jnp.sqrt(g) * p1]),
                  wires)


def BitFlip(p, wires):  # noqa: N802
  """Bit flip with probability ``p``: Kraus operators ``sqrt(1-p) I``, ``sqrt(p) X``.

  Args:
    p: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  p = _probability(p, "BitFlip", "p")
  i2, x = _matrices("I X")
  return _channel("BitFlip", _stack([jnp.sqrt(1 - p) * i2, jnp.sqrt(p) * x]), wires)


def PhaseFlip(p, wires):  # noqa: N802
  """Phase flip with probability ``p``: Kraus operators ``sqrt(1-p) I``, ``sqrt(p) Z``.

  Args:
    p: probability in [0, 1].
    wires: one wire.
  {raises}
  """
  p = _probability(p, "PhaseFlip", "p")
  i2, z = _matrices("I Z")
  return _channel("PhaseFlip", _stack([jnp.sqrt(1 - p) * i2, jnp.sqrt(p) * z]), wires)


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
