"""Observables (Pauli words, their linear combinations, Hermitian matrices) and measurements.

An `Observable` is a real linear combination of *terms*; a term is a tensor product of
factors on distinct wires, each a single-qubit Pauli or a `Hermitian` matrix on some wires.
Coefficients are real numbers: concrete ones are part of the circuit's static structure
(one compiled kernel per value), traced ones (computed from the circuit's array arguments)
are data: one compiled kernel serves every value, and derivatives with respect to them
are exact (`expval` only). Hermitian matrices may be traced arrays.

Measurements are what a circuit function returns: `expval`, `var` and `probs`. The kernel
computes *raw* quantities that are linear in the state's density matrix — ``<O>``,
``<O²>`` and probabilities — and `Measurement.finalize` turns them into the user's
outputs (for ``var``: ``<O²> - <O>²``). Shift rules act on the raw quantities only.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import jax
import numpy as np

_PAULIS = ("I", "X", "Y", "Z")


@dataclasses.dataclass(frozen=True)
class Pauli:
  """A single-qubit Pauli factor ``char`` on ``wire``."""

  char: str
  wire: int

  @property
  def wires(self) -> tuple[int, ...]:
    return (self.wire,)


@dataclasses.dataclass(frozen=True, eq=False)
class HermitianFactor:
  """A Hermitian matrix factor; ``matrix`` is an array or, inside a tape, a const index."""

  matrix: Any
  wires: tuple[int, ...]


def _check_wire(w, what: str) -> int:
  if isinstance(w, bool) or not isinstance(w, (numbers.Integral, np.integer)):
    raise TypeError(f"`wires` of {what} must be integers; got {w!r} ({type(w).__name__}).")
  return int(w)


def _as_wires(wires, what: str) -> tuple[int, ...]:
  if isinstance(wires, (numbers.Integral, np.integer)) and not isinstance(wires, bool):
    return (int(wires),)
  if isinstance(wires, (list, tuple, range)):
    out = tuple(_check_wire(w, what) for w in wires)
    if len(set(out)) != len(out):
      raise ValueError(f"`wires` of {what} must be distinct; got {out}.")
    if not out:
      raise ValueError(f"`wires` of {what} must not be empty.")
    return out
  raise TypeError(
      f"`wires` of {what} must be an int or a sequence of ints; got {wires!r}.")


class Observable:
  """A real linear combination of tensor products of Paulis and Hermitian matrices.

  Build observables with `X`, `Y`, `Z`, `I`, `Hermitian`, ``@`` (tensor product on
  distinct wires), ``+``, ``-`` and multiplication by a real scalar. Adding the number
  ``0`` returns the observable unchanged, so ``sum(terms)`` works.

  Attributes:
    terms: tuple of ``(coefficient, factors)`` pairs; ``factors`` is a tuple of
      `Pauli` and `HermitianFactor` objects on distinct wires.

  Examples:
    >>> import qhess
    >>> obs = 0.5 * qhess.X(0) @ qhess.Z(2) - qhess.Y(1)
    >>> obs
    0.5 * X(0) @ Z(2) - 1.0 * Y(1)
    >>> obs.wires
    (0, 1, 2)
    >>> sum([qhess.Z(0), 0.5 * qhess.X(1)])
    Z(0) + 0.5 * X(1)
  """

  __array_priority__ = 1000  # so that `np.float64(2.0) * obs` calls __rmul__

  def __init__(self, terms):
    self.terms = tuple(terms)

  @property
  def wires(self) -> tuple[int, ...]:
    """Sorted wires the observable acts on."""
    return tuple(sorted({w for _, fs in self.terms for f in fs for w in f.wires}))

  def __matmul__(self, other: Observable) -> Observable:
    if not isinstance(other, Observable):
      return NotImplemented
    terms = []
    for c1, f1 in self.terms:
      for c2, f2 in other.terms:
        w1 = {w for f in f1 for w in f.wires}
        w2 = {w for f in f2 for w in f.wires}
        if w1 & w2:
          raise ValueError(
              "`@` builds tensor products of observables on distinct wires; got factors "
              f"sharing wires {sorted(w1 & w2)}.")
        terms.append((c1 * c2, f1 + f2))
    return Observable(terms)

  def __add__(self, other: Observable) -> Observable:
    if _is_zero(other):  # sum(terms) starts from 0
      return self
    if not isinstance(other, Observable):
      return NotImplemented
    return Observable(self.terms + other.terms)

  def __radd__(self, other) -> Observable:
    if _is_zero(other):
      return self
    return NotImplemented

  def matrix(self, wire_order: Sequence[int] | None = None) -> jax.Array:
    """The dense matrix of the observable.

    Args:
      wire_order: the wires of the matrix, the first being the most significant bit of
        its index; it must contain `wires`. ``None`` means `wires` (sorted).

    Returns:
      complex array of shape ``(2**n, 2**n)``, ``n = len(wire_order)`` (complex128 with
      ``jax_enable_x64``, else complex64); traced if a Hermitian matrix is.

    Raises:
      ValueError: when ``wire_order`` misses a wire of the observable or repeats one.
      TypeError: when ``wire_order`` holds non-integers.

    Examples:
      >>> import qhess
      >>> print((qhess.Z(0) @ qhess.X(1) + 0.5 * qhess.Z(1)).matrix().real)
      [[ 0.5  1.   0.   0. ]
       [ 1.  -0.5  0.   0. ]
       [ 0.   0.   0.5 -1. ]
       [ 0.   0.  -1.  -0.5]]
    """
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

    order = self.wires if wire_order is None else _as_wires(wire_order, "matrix")
    missing = sorted(set(self.wires) - set(order))
    if missing:
      raise ValueError(
          f"`wire_order` must contain every wire of the observable {self.wires}; got "
          f"{tuple(order)}, missing {tuple(missing)}.")
    n = len(order)
    pos = {w: i for i, w in enumerate(order)}
    cdtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
    traced = any(isinstance(f.matrix, jax.core.Tracer) for _, fs in self.terms for f in fs
                 if isinstance(f, HermitianFactor))
    xp = jnp if traced else np  # NumPy for concrete matrices: no per-op dispatch
    total = xp.zeros((2**n, 2**n), cdtype)
    for coeff, factors in self.terms:
      # (2,)*2n tensor: row index bits, then column index bits, one per wire of `order`.
      term = xp.eye(2**n, dtype=cdtype).reshape((2,) * (2 * n))
      for f in factors:
        mat = _PAULI_MATRICES[f.char] if isinstance(f, Pauli) else f.matrix
        k = len(f.wires)
        mat = xp.asarray(mat, cdtype).reshape((2,) * (2 * k))
        rows = [pos[w] for w in f.wires]
        # Factors act on distinct wires, so each applies to the rows of its own wires.
        term = xp.tensordot(mat, term, axes=(list(range(k, 2 * k)), rows))
        term = xp.moveaxis(term, list(range(k)), rows)
      total = total + coeff * term.reshape(2**n, 2**n)
    return jnp.asarray(total)

  def __sub__(self, other: Observable) -> Observable:
    if not isinstance(other, Observable):
      return NotImplemented
    return self + (-1.0) * other

  def __neg__(self) -> Observable:
    return (-1.0) * self

  def __mul__(self, scalar) -> Observable:
    return Observable((_real_scalar(scalar) * c, fs) for c, fs in self.terms)

  __rmul__ = __mul__

  def __repr__(self) -> str:
    parts = []
    for i, (c, fs) in enumerate(self.terms):
      word = " @ ".join(_factor_repr(f) for f in fs)
      if isinstance(c, jax.core.Tracer):  # coefficients as data: no value to show
        parts.append(f"{'' if i == 0 else '+ '}<traced> * {word}")
      elif i == 0:
        parts.append(f"{c} * {word}" if c != 1.0 else word)
      else:
        parts.append(f"{'-' if c < 0 else '+'} {abs(c)} * {word}")
    return " ".join(parts)


_PAULI_MATRICES = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1, -1]),
}


def _is_zero(x) -> bool:
  return (isinstance(x, (numbers.Number, np.number)) and not isinstance(x, bool)
          and x == 0)


def _factor_repr(f) -> str:
  if isinstance(f, Pauli):
    return f"{f.char}({f.wire})"
  return f"Hermitian(wires={list(f.wires)})"


def _real_scalar(x):
  """A coefficient as a float, or a traced real scalar as it is (coefficients as data)."""
  if isinstance(x, jax.core.Tracer):
    if np.shape(x) != () or not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(
        x.dtype, np.integer):
      raise TypeError(
          "A traced observable coefficient must be a real scalar; got a traced value of "
          f"shape {np.shape(x)} and dtype {x.dtype}.")
    return x
  if isinstance(x, (numbers.Number, np.number)) or (
      hasattr(x, "shape") and np.shape(x) == ()):
    val = np.asarray(x)
    if np.iscomplexobj(val):
      if val.imag != 0:
        raise ValueError(f"Observable coefficients must be real; got {x!r}.")
      val = val.real
    return float(val)
  raise TypeError(f"Observables can only be scaled by real numbers; got {x!r}.")


def _pauli(char: str):
  def make(wires) -> Observable:
    ws = _as_wires(wires, char)
    if len(ws) != 1:
      raise ValueError(f"`wires` of {char} must be a single wire; got {wires!r}.")
    return Observable([(1.0, (Pauli(char, ws[0]),))])

  make.__name__ = make.__qualname__ = char  # qhess.circuits.observables.X (pickle, docs)
  make.__doc__ = f"""The Pauli-{char} observable on one wire.

  Args:
    wires: the wire, an int.

  Returns:
    an `Observable`.
  """
  return make


X = _pauli("X")
Y = _pauli("Y")
Z = _pauli("Z")
I = _pauli("I")  # noqa: E741  (PennyLane's name)


def Hermitian(matrix, wires) -> Observable:  # noqa: N802  (PennyLane's name)
  """A Hermitian matrix observable.

  Args:
    matrix: complex array of shape ``(2**k, 2**k)``; checked to be Hermitian when
      concrete. It may be a traced array (it is then not checked).
    wires: ``k`` distinct wires; the first is the most significant bit of the matrix
      index.

  Returns:
    an `Observable`.

  Raises:
    ValueError: when the shape does not match the wires or a concrete matrix is not
      Hermitian.

  Examples:
    >>> import numpy as np, qhess
    >>> qhess.Hermitian(np.diag([1.0, -1.0]), wires=0)
    Hermitian(wires=[0])
  """
  wires = _as_wires(wires, "Hermitian")
  shape = np.shape(matrix)
  d = 2 ** len(wires)
  if shape != (d, d):
    raise ValueError(
        f"`matrix` of Hermitian on {len(wires)} wire(s) must have shape ({d}, {d}); "
        f"got {shape}.")
  if not isinstance(matrix, jax.core.Tracer):
    m = np.asarray(matrix)
    if not np.allclose(m, m.conj().T, atol=1e-8):
      raise ValueError(
          "`matrix` of Hermitian must equal its conjugate transpose; got a matrix with "
          f"max |M - M†| = {np.max(np.abs(m - m.conj().T)):.3g}.")
  return Observable([(1.0, (HermitianFactor(matrix, wires),))])


# --------------------------------------------------------------------------- measurements


@dataclasses.dataclass(frozen=True, eq=False)
class Measurement:
  """A measurement returned by a circuit function.

  Attributes:
    kind: ``"expval"``, ``"var"`` or ``"probs"``.
    obs: the `Observable` (``None`` for probs).
    wires: the wires of ``probs`` (``None`` means all wires).
  """

  kind: str
  obs: Observable | None = None
  wires: tuple[int, ...] | None = None


def _check_obs(obs, fn: str):
  if not isinstance(obs, Observable):
    raise TypeError(f"`{fn}` takes an Observable (e.g. qhess.Z(0)); got {obs!r}.")
  return obs


def expval(obs: Observable) -> Measurement:
  """Expectation value ``<ψ|O|ψ>`` of an observable.

  Args:
    obs: an `Observable`.

  Returns:
    a `Measurement`; the circuit outputs a float array of shape ``()``.

  Raises:
    TypeError: when ``obs`` is not an `Observable`.

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x, wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> print(f"{float(f(0.5)):.4f}")
    0.8776
  """
  return Measurement("expval", _check_obs(obs, "expval"))


def var(obs: Observable) -> Measurement:
  """Variance ``<O²> - <O>²`` of an observable.

  Args:
    obs: an `Observable`.

  Returns:
    a `Measurement`; the circuit outputs a float array of shape ``()``.

  Raises:
    TypeError: when ``obs`` is not an `Observable`.

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x, wires=0)
    ...   return qhess.var(qhess.Z(0))
    >>> print(f"{float(f(0.5)):.4f}")
    0.2298
  """
  return Measurement("var", _check_obs(obs, "var"))


def probs(wires: int | Sequence[int] | None = None) -> Measurement:
  """Computational-basis probabilities of some wires.

  Args:
    wires: the wires to measure, in the order that sets the index bits (the first wire
      is the most significant bit); ``None`` means all wires of the circuit in order.

  Returns:
    a `Measurement`; the circuit outputs a float array of shape ``(2**len(wires),)``.

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RY(x, wires=1)
    ...   return qhess.probs(wires=(0, 1))
    >>> print(f(0.5).round(4))
    [0.9388 0.0612 0.     0.    ]
  """
  return Measurement("probs", None, None if wires is None else _as_wires(wires, "probs"))
