"""The generator gates' recording functions: excitations, phases, `PCPhase`, `Evolution`.

Each gate is ``exp(-iφG)`` for a generator ``G`` with a few distinct eigenvalues; the
differences of those eigenvalues are the frequencies of the gate's argument, which alone
decide its parameter-shift rule (`qhess.shift.rules`): ``{1}`` the two-term rule, ``{1/2,
1}`` (the excitation gates, IsingXY) the four-term rule, ``{1/2, 1, 3/2, 2}``
(OrbitalRotation) the eight-term rule. The gates are native: one gate argument each, one
kernel pass each (`qhess.simulate.gates`: Givens rotations of two amplitudes, phases on
the rest), where a decomposition (PennyLane decomposes DoubleExcitation into eight RY
rotations sharing the angle) multiplies the shifted circuits of a Hessian.

Matrices, argument order and wire order are PennyLane's (`qml.SingleExcitation`, ...), so
`from_pennylane` and `to_pennylane` map them one to one.
"""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits import generator_matrices as _gm
from qhess.circuits import observables as _observables
from qhess.circuits import tape as _tape
from qhess.circuits.catalogue import DataKey, Spectrum

# name -> (summary and matrix, generator and frequencies, example: (wires, prep, obs),
# the example's printed value and Hessian)
_DOCS = {
    "SingleExcitation": (
        "Givens rotation of ``|01>, |10>``: ``[[c, -s], [s, c]]`` on them (``c, s = "
        "cos(φ/2), sin(φ/2)``), identity on ``|00>, |11>``.",
        "``G = (Y⊗X - X⊗Y)/4``, eigenvalues ``0, 0, ±1/2``: frequencies ``{1/2, 1}``, "
        "the four-term rule", ((0, 1), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "SingleExcitationPlus": (
        "SingleExcitation on ``|01>, |10>`` and the phase ``exp(iφ/2)`` on ``|00>, "
        "|11>``.",
        "``G = (Y⊗X - X⊗Y)/4 - (I + Z⊗Z)/4``, eigenvalues ``-1/2, -1/2, ±1/2``: the "
        "frequency ``{1}``, the two-term rule", ((0, 1), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "SingleExcitationMinus": (
        "SingleExcitation on ``|01>, |10>`` and the phase ``exp(-iφ/2)`` on ``|00>, "
        "|11>``.",
        "``G = (Y⊗X - X⊗Y)/4 + (I + Z⊗Z)/4``, eigenvalues ``1/2, 1/2, ±1/2``: the "
        "frequency ``{1}``, the two-term rule", ((0, 1), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "DoubleExcitation": (
        "Givens rotation of ``|0011>, |1100>`` (indices 3 and 12): ``[[c, -s], [s, c]]`` "
        "on them (``c, s = cos(φ/2), sin(φ/2)``), identity on the other 14 states.",
        "``G`` has eigenvalues ``±1/2`` on the rotated pair and 14 zeros: frequencies "
        "``{1/2, 1}``, the four-term rule", ((0, 1, 2, 3), "X0 X1", "qhess.Z(0)"),
        "(-0.8776, 0.8776)"),
    "DoubleExcitationPlus": (
        "DoubleExcitation on ``|0011>, |1100>`` and the phase ``exp(iφ/2)`` on the "
        "other 14 states.",
        "``G``'s eigenvalues are ``±1/2`` on the pair and ``-1/2`` elsewhere: the "
        "frequency ``{1}``, the two-term rule", ((0, 1, 2, 3), "X0 X1", "qhess.Z(0)"),
        "(-0.8776, 0.8776)"),
    "DoubleExcitationMinus": (
        "DoubleExcitation on ``|0011>, |1100>`` and the phase ``exp(-iφ/2)`` on the "
        "other 14 states.",
        "``G``'s eigenvalues are ``±1/2`` on the pair and ``1/2`` elsewhere: the "
        "frequency ``{1}``, the two-term rule", ((0, 1, 2, 3), "X0 X1", "qhess.Z(0)"),
        "(-0.8776, 0.8776)"),
    "OrbitalRotation": (
        "Spin-adapted orbital rotation on wires ``(a↑, a↓, b↑, b↓)``: SingleExcitation "
        "on wires (0, 2) times SingleExcitation on wires (1, 3), with the fermionic "
        "sign of wires 1 and 2 (``CZ₁₂ (SE₀₂ SE₁₃) CZ₁₂``; PennyLane's matrix).",
        "``G`` is the sum of two commuting excitation generators, eigenvalues ``0, ±1/2, "
        "±1``: frequencies ``{1/2, 1, 3/2, 2}``, the eight-term rule",
        ((0, 1, 2, 3), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "FermionicSWAP": (
        "Fermionic swap rotation: ``exp(iφ/2) [[c, -i s], [-i s, c]]`` on ``|01>, |10>`` "
        "(``c, s = cos(φ/2), sin(φ/2)``), ``1`` on ``|00>`` and ``exp(iφ)`` on ``|11>``; "
        "``φ = π`` swaps two fermionic modes.",
        "``G = (X⊗X + Y⊗Y)/4 + (Z⊗I + I⊗Z)/4 - I/2``, eigenvalues ``0, 0, -1, -1``: the "
        "frequency ``{1}``, the two-term rule", ((0, 1), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "IsingXY": (
        "Ising XY coupling ``exp(iφ (X⊗X + Y⊗Y)/4)``: ``[[c, i s], [i s, c]]`` on "
        "``|01>, |10>`` (``c, s = cos(φ/2), sin(φ/2)``), identity on ``|00>, |11>``.",
        "``G = -(X⊗X + Y⊗Y)/4``, eigenvalues ``0, 0, ±1/2``: frequencies ``{1/2, 1}``, the "
        "four-term rule", ((0, 1), "X0", "qhess.Z(0)"), "(-0.8776, 0.8776)"),
    "CPhaseShift00": (
        "Phase shift on ``|00>``: ``diag(exp(iφ), 1, 1, 1)``.",
        "``G = -|00><00|``, eigenvalues ``-1, 0, 0, 0``: the frequency ``{1}``, the "
        "two-term rule", ((0, 1), "H0 H1", "qhess.X(0) @ qhess.X(1)"), "(0.9388, -0.4388)"),
    "CPhaseShift01": (
        "Phase shift on ``|01>``: ``diag(1, exp(iφ), 1, 1)``.",
        "``G = -|01><01|``: the frequency ``{1}``, the two-term rule",
        ((0, 1), "H0 H1", "qhess.X(0) @ qhess.X(1)"), "(0.9388, -0.4388)"),
    "CPhaseShift10": (
        "Phase shift on ``|10>``: ``diag(1, 1, exp(iφ), 1)``.",
        "``G = -|10><10|``: the frequency ``{1}``, the two-term rule",
        ((0, 1), "H0 H1", "qhess.X(0) @ qhess.X(1)"), "(0.9388, -0.4388)"),
    "U1": (
        "U1 gate ``diag(1, exp(iφ))`` (the same matrix as `PhaseShift`).",
        "``G = -|1><1|``: the frequency ``{1}``, the two-term rule",
        ((0,), "H0", "qhess.X(0)"), "(0.8776, -0.8776)"),
}


def _example(name: str, wires, prep: str, obs: str, result: str) -> str:
  """The docstring example of a one-argument gate: a value and its Hessian at 0.5."""
  gates = {"X": "PauliX", "H": "Hadamard"}
  lines = ["  Examples:", "    >>> import qhess", f"    >>> @qhess.circuit(wires={len(wires)})",
           "    ... def f(phi):"]
  lines += [f"    ...   qhess.{gates[g[0]]}(wires={g[1:]})" for g in prep.split()]
  lines += [f"    ...   qhess.{name}(phi, wires={wires})",
            f"    ...   return qhess.expval({obs})",
            "    >>> round(float(f(0.5)), 4), round(float(qhess.hessian(f)(0.5)), 4)",
            f"    {result}"]
  return "\n".join(lines) + "\n"


def _doc(name: str) -> str:
  summary, generator, (wires, prep, obs), result = _DOCS[name]
  k = len(wires)
  text = textwrap.fill(
      f"{summary} Call inside a function decorated with `qhess.circuit`: "
      f"``qhess.{name}(phi, wires)``. The matrix is PennyLane's ``qml.{name}``; "
      f"``wires[0]`` is the most significant bit of its basis index. As ``exp(-iφG)``: "
      f"{generator}.", width=86, subsequent_indent="  ", break_on_hyphens=False)
  what = ("1 wire, an int or a sequence of one int" if k == 1
          else f"{k} distinct wires, a sequence of {k} ints")
  return f"""{text}

  Args:
    phi: gate argument, a real scalar (float or 0-d array), shape ``()``.
    wires: {what}, in PennyLane's order.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for a wire outside the circuit, repeated wires or a non-scalar argument.
    TypeError: for the wrong number of arguments.

{_example(name, wires, prep, obs, result)}"""


def _gate(name: str):
  fn = _tape._make_gate(name, ("phi",), "")
  fn.__doc__ = _doc(name)
  return fn


GATES = {name: _gate(name) for name in _DOCS}
__test__ = {name: fn.__doc__ for name, fn in GATES.items()}  # their examples, doctested


def PCPhase(phi, dim: int, wires) -> None:  # noqa: N802
  """Projector-controlled phase ``exp(iφ (2Π - I))``, ``Π`` the projector onto the first
  ``dim`` basis states: ``exp(iφ)`` on states ``0 .. dim-1``, ``exp(-iφ)`` on the rest.

  PennyLane's ``qml.PCPhase(phi, dim, wires)`` (its ``dimension`` hyperparameter is
  ``(dim, 2**len(wires))``); ``wires[0]`` is the most significant bit of the basis index.
  As ``exp(-iφG)``: ``G = I - 2Π``, eigenvalues ``±1``: the frequency ``{2}``, the
  two-term rule with shifts ``±π/4``.

  Args:
    phi: gate argument, a real scalar (float or 0-d array), shape ``()``.
    dim: an int, ``0 <= dim <= 2**len(wires)``; static (part of the circuit's structure).
    wires: one or more distinct wires.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for ``dim`` out of range, a wire outside the circuit, repeated wires or a
      non-scalar argument.
    TypeError: for a non-integer ``dim``.

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=2)
    ... def f(phi):
    ...   qhess.Hadamard(wires=0)
    ...   qhess.Hadamard(wires=1)
    ...   qhess.PCPhase(phi, 1, wires=(0, 1))
    ...   return qhess.expval(qhess.X(0) @ qhess.X(1))
    >>> round(float(f(0.5)), 4), round(float(qhess.hessian(f)(0.5)), 4)
    (0.7702, -1.0806)
  """
  rec = _tape._ACTIVE.get()
  if rec is None:
    _tape._record("PCPhase", (phi,), wires)  # raises the outside-a-circuit error
  k = len(_tape._check_wires(rec, wires, "PCPhase", None))
  if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
    raise TypeError(f"PCPhase: `dim` must be an int; got {dim!r}.")
  if not 0 <= dim <= 2**k:
    raise ValueError(f"PCPhase: `dim` must be in 0..{2**k} on {k} wire(s); got {dim}.")
  _tape._record("PCPhase", (phi,), wires, hyper=(int(dim), 2**k), argnames=("phi",))


_MAX_GRID = 64  # the most frequencies of Evolution's equidistant grid


def Evolution(generator, theta, wires=None) -> None:  # noqa: N802
  """The evolution ``exp(-iθG)`` under a Hermitian generator ``G``.

  ``G`` is a constant: a Hermitian matrix, or a qhess observable (a Pauli sum such as
  ``0.5 * qhess.X(0) @ qhess.X(1) + qhess.Z(1)``, or `Hermitian`). The argument's
  frequencies are the distinct differences of ``G``'s eigenvalues, and the shift rule
  needs them on an equidistant grid ``{l·base : l = 1..R}``: the smallest such grid with at
  most 64 points is taken (exact: frequencies of the grid that ``G`` lacks get zero
  weight), e.g. ``{1, 3}`` on ``{1, 2, 3}``; incommensurate differences (``{1, √2}``) are
  refused. PennyLane's ``qml.evolve(G, theta)`` (``qml.ops.Evolution``).

  ``G``'s eigendecomposition is data of the tape (``Tape.consts``, like a QubitUnitary's
  matrix) and its spectrum part of the structure; the kernel applies the ``2**k × 2**k``
  matrix ``V diag(exp(-iθλ)) V†``.

  Args:
    generator: a Hermitian complex array ``(2**k, 2**k)`` (concrete; the first of
      ``wires`` is the most significant bit of its index), or a qhess `Observable`.
    theta: gate argument, a real scalar (float or 0-d array), shape ``()``.
    wires: ``k`` distinct wires. For an observable ``None`` means its own wires; given,
      it must contain them and orders the matrix.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for a matrix of the wrong shape or not Hermitian, an observable's wire
      missing from ``wires``, eigenvalue differences on no equidistant grid (the message
      lists them), a wire outside the circuit or a non-scalar ``theta``.
    TypeError: for a traced (non-constant) generator.

  Examples:
    >>> import numpy as np, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(theta):
    ...   qhess.Evolution(0.5 * qhess.X(0) @ qhess.Y(1) + qhess.Z(0), theta)
    ...   return qhess.expval(qhess.Z(0))
    >>> f.tape(0.5).operations[0].hyper.spectrum  # eigenvalues ±sqrt(5)/2
    Spectrum(base=2.2360679775, count=1)
    >>> round(float(f(0.5)), 4), round(float(qhess.hessian(f)(0.5)), 4)
    (0.8875, -0.4375)
  """
  rec = _tape._ACTIVE.get()
  if rec is None:
    _tape._record("Evolution", (theta,), wires)  # raises the outside-a-circuit error
  matrix, wires = _generator_matrix(rec, generator, wires)
  freqs = _gm.frequencies(np.linalg.eigvalsh(matrix))
  grid = _gm.equidistant(freqs, _MAX_GRID)
  if grid is None:
    raise ValueError(
        "Evolution: the parameter-shift rule needs equidistant frequencies l·base "
        f"(l = 1..R, R <= {_MAX_GRID}), but the differences of the generator's "
        f"eigenvalues are {[round(f, 10) for f in freqs]}, on no such grid. Split the "
        "generator into commuting parts with commensurate spectra, or use gates with "
        "their own arguments.")
  cdtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
  index = rec.add_const(jnp.asarray(_gm.evolution_data(matrix), dtype=cdtype))
  _tape._record("Evolution", (theta,), wires, hyper=DataKey(index, Spectrum(*grid)),
                argnames=("theta",))


def _generator_matrix(rec, generator, wires) -> tuple[np.ndarray, tuple[int, ...]]:
  """``G`` as a concrete Hermitian NumPy matrix on the gate's wires, and the wires."""
  if isinstance(generator, _observables.Observable):
    if wires is None:
      wires = generator.wires
    wires = _tape._check_wires(rec, wires, "Evolution", None)
    try:
      with jax.ensure_compile_time_eval():
        generator = generator.matrix(wire_order=wires)
    except ValueError as err:
      raise ValueError(f"Evolution: {err}") from None
  elif wires is None:
    raise TypeError("Evolution: a generator matrix needs `wires`.")
  else:
    wires = _tape._check_wires(rec, wires, "Evolution", None)
  if isinstance(generator, jax.core.Tracer):
    raise TypeError(
        "Evolution: the generator must be a constant (its eigenvalues decide the shift "
        "rule when the circuit is traced); got a traced value. Put the parameter in "
        "`theta` instead.")
  matrix = np.asarray(generator, dtype=complex)
  d = 2 ** len(wires)
  if matrix.shape != (d, d):
    raise ValueError(
        f"Evolution: the generator on {len(wires)} wire(s) must have shape ({d}, {d}); "
        f"got {matrix.shape}.")
  err = float(np.max(np.abs(matrix - matrix.conj().T)))
  if err > 1e-8 * max(1.0, float(np.max(np.abs(matrix)))):
    raise ValueError(f"Evolution: the generator must be Hermitian; got max |G - G†| = "
                     f"{err:.3g}.")
  return (matrix + matrix.conj().T) / 2, wires
