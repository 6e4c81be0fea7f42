"""An independent NumPy reference simulator, random circuits and random observables.

Nothing here imports qhess's gate matrices or kernel: every matrix is written out below
in PennyLane's conventions, and a circuit is simulated by building its full
``(2**n, 2**n)`` unitary from ``np.kron``. Wire 0 is the most significant bit.

A circuit is a list of ops ``(name, wires, args)``; ``args`` are the positional gate
arguments as qhess takes them: real angles first (``N_REAL[name]`` of them), then the
Pauli word of ``PauliRot`` or the matrix of ``QubitUnitary``. `qhess_circuit` turns such
a list into a qhess circuit of a flat parameter array (the real angles in order, see
`flat_params`); `circuit_state` simulates it here.

An observable is a small tree (see `Obs`), turned into a qhess `Observable` by
`qhess_observable` and into a dense matrix by `observable_matrix`.

Other test modules import this file (``import _reference as ref``).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from typing import Any, Callable

import jax
import numpy as np
import scipy.linalg

# ---------------------------------------------------------------------- gate matrices

_I2 = np.eye(2, dtype=complex)
PAULI = {
    "I": _I2,
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def kron_all(mats) -> np.ndarray:
  return functools.reduce(np.kron, mats, np.ones((1, 1), dtype=complex))


def pauli_word_matrix(word: str) -> np.ndarray:
  return kron_all(PAULI[c] for c in word)


def controlled(u: np.ndarray) -> np.ndarray:
  """``|0><0| ⊗ I + |1><1| ⊗ u``: the first wire controls ``u`` on the others."""
  d = u.shape[0]
  out = np.eye(2 * d, dtype=complex)
  out[d:, d:] = u
  return out


def rx(t):
  c, s = np.cos(t / 2), np.sin(t / 2)
  return np.array([[c, -1j * s], [-1j * s, c]])


def ry(t):
  c, s = np.cos(t / 2), np.sin(t / 2)
  return np.array([[c, -s], [s, c]], dtype=complex)


def rz(t):
  return np.array([[np.exp(-0.5j * t), 0], [0, np.exp(0.5j * t)]])


def phase_shift(p):
  return np.array([[1, 0], [0, np.exp(1j * p)]])


def rot(phi, theta, omega):
  return rz(omega) @ ry(theta) @ rz(phi)


def u3(theta, phi, delta):
  c, s = np.cos(theta / 2), np.sin(theta / 2)
  return np.array([
      [c, -np.exp(1j * delta) * s],
      [np.exp(1j * phi) * s, np.exp(1j * (phi + delta)) * c],
  ])


def pauli_rot(theta, word):
  # A matrix exponential, not the cos/sin closed form, to stay independent of qhess.
  return scipy.linalg.expm(-0.5j * theta * pauli_word_matrix(word))


_SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)

# name -> (number of real arguments, number of wires or None, matrix function)
# The matrix function takes the gate's args (and, for variable-width gates, the wires).
GATES: dict[str, tuple[int, int | None, Callable[..., np.ndarray]]] = {
    "RX": (1, 1, rx),
    "RY": (1, 1, ry),
    "RZ": (1, 1, rz),
    "PhaseShift": (1, 1, phase_shift),
    "Rot": (3, 1, rot),
    "U3": (3, 1, u3),
    "CRX": (1, 2, lambda t: controlled(rx(t))),
    "CRY": (1, 2, lambda t: controlled(ry(t))),
    "CRZ": (1, 2, lambda t: controlled(rz(t))),
    "ControlledPhaseShift": (1, 2, lambda p: np.diag([1, 1, 1, np.exp(1j * p)])),
    "IsingXX": (1, 2, lambda t: pauli_rot(t, "XX")),
    "IsingYY": (1, 2, lambda t: pauli_rot(t, "YY")),
    "IsingZZ": (1, 2, lambda t: pauli_rot(t, "ZZ")),
    "MultiRZ": (1, None, lambda t, *, wires: pauli_rot(t, "Z" * len(wires))),
    "PauliRot": (1, None, lambda t, word, *, wires: pauli_rot(t, word)),
    "Hadamard": (0, 1, lambda: np.array([[1, 1], [1, -1]]) / np.sqrt(2)),
    "PauliX": (0, 1, lambda: PAULI["X"]),
    "PauliY": (0, 1, lambda: PAULI["Y"]),
    "PauliZ": (0, 1, lambda: PAULI["Z"]),
    "S": (0, 1, lambda: np.diag([1, 1j])),
    "T": (0, 1, lambda: np.diag([1, np.exp(0.25j * np.pi)])),
    "SX": (0, 1, lambda: 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])),
    "CNOT": (0, 2, lambda: controlled(PAULI["X"])),
    "CZ": (0, 2, lambda: controlled(PAULI["Z"])),
    "CY": (0, 2, lambda: controlled(PAULI["Y"])),
    "SWAP": (0, 2, lambda: _SWAP),
    "Toffoli": (0, 3, lambda: controlled(controlled(PAULI["X"]))),
    "QubitUnitary": (0, None, lambda u, *, wires: np.asarray(u)),
}
GATE_NAMES = tuple(GATES)


def _givens(d: int, a: int, b: int, t, rest=1.0) -> np.ndarray:
  """``[[c, -s], [s, c]]`` on basis states ``a, b`` of ``d``, ``rest`` on the others."""
  u = np.diag(np.full(d, rest, dtype=complex))
  c, s = np.cos(t / 2), np.sin(t / 2)
  u[a, a], u[a, b], u[b, a], u[b, b] = c, -s, s, c
  return u


def _orbital_rotation(t) -> np.ndarray:
  # PennyLane's decomposition: FermionicSWAP(π) on (1, 2) around SE(0, 1) SE(2, 3); the
  # fermionic swap is the SWAP of wires 1, 2 with a -1 on |11>.
  fswap = embed(np.diag([1, 1, 1, -1]) @ _SWAP, (1, 2), 4)
  se = embed(_givens(4, 1, 2, t), (0, 1), 4) @ embed(_givens(4, 1, 2, t), (2, 3), 4)
  return fswap @ se @ fswap


def _fermionic_swap(t) -> np.ndarray:
  c, s, p = np.cos(t / 2), np.sin(t / 2), np.exp(0.5j * t)
  return np.array([[1, 0, 0, 0], [0, p * c, -1j * p * s, 0], [0, -1j * p * s, p * c, 0],
                   [0, 0, 0, np.exp(1j * t)]])


def _phase_at(position: int, d: int = 4):
  return lambda p: np.diag([np.exp(1j * p) if i == position else 1 for i in range(d)])


# The generator gates (SingleExcitation ... Evolution), written out as above; not in
# `GATES`, so random circuits leave them out (test_generator_gates.py covers them).
# PCPhase takes ``dim`` and Evolution its generator matrix after the angle.
GENERATOR_GATES: dict[str, tuple[int, int | None, Callable[..., np.ndarray]]] = {
    "SingleExcitation": (1, 2, lambda t: _givens(4, 1, 2, t)),
    "SingleExcitationPlus": (1, 2, lambda t: _givens(4, 1, 2, t, np.exp(0.5j * t))),
    "SingleExcitationMinus": (1, 2, lambda t: _givens(4, 1, 2, t, np.exp(-0.5j * t))),
    "DoubleExcitation": (1, 4, lambda t: _givens(16, 3, 12, t)),
    "DoubleExcitationPlus": (1, 4, lambda t: _givens(16, 3, 12, t, np.exp(0.5j * t))),
    "DoubleExcitationMinus": (1, 4, lambda t: _givens(16, 3, 12, t, np.exp(-0.5j * t))),
    "OrbitalRotation": (1, 4, _orbital_rotation),
    "FermionicSWAP": (1, 2, _fermionic_swap),
    "IsingXY": (1, 2, lambda t: scipy.linalg.expm(
        0.25j * t * (pauli_word_matrix("XX") + pauli_word_matrix("YY")))),
    "CPhaseShift00": (1, 2, _phase_at(0)),
    "CPhaseShift01": (1, 2, _phase_at(1)),
    "CPhaseShift10": (1, 2, _phase_at(2)),
    "U1": (1, 1, phase_shift),
    "PCPhase": (1, None, lambda t, dim, *, wires: np.diag(np.where(
        np.arange(2 ** len(wires)) < dim, np.exp(1j * t), np.exp(-1j * t)))),
    "Evolution": (1, None, lambda t, g, *, wires: scipy.linalg.expm(-1j * t * np.asarray(g))),
}
N_REAL = {name: spec[0] for name, spec in {**GATES, **GENERATOR_GATES}.items()}


def gate_matrix(name: str, args, wires) -> np.ndarray:
  """The gate's matrix in its own wire order (first wire = most significant bit)."""
  _, n_wires, fn = GATES[name] if name in GATES else GENERATOR_GATES[name]
  if n_wires is None:
    return np.asarray(fn(*args, wires=wires), dtype=complex)
  return np.asarray(fn(*args), dtype=complex)


# ---------------------------------------------------------------------------- simulator


def _index(bits) -> int:
  return int("".join(str(int(b)) for b in bits), 2) if len(bits) else 0


def _bits(index: int, n: int) -> list[int]:
  return [(index >> (n - 1 - w)) & 1 for w in range(n)]


def embed(mat: np.ndarray, wires, n: int) -> np.ndarray:
  """``mat`` on ``wires`` (in that order) of ``n`` qubits, identity on the rest.

  Permutes the wires so that ``wires`` come first, applies ``mat ⊗ I`` and permutes back.
  """
  wires = list(wires)
  order = wires + [w for w in range(n) if w not in wires]
  perm = np.zeros((2**n, 2**n))
  for i in range(2**n):
    bits = _bits(i, n)
    perm[_index([bits[w] for w in order]), i] = 1.0
  full = np.kron(mat, np.eye(2 ** (n - len(wires))))
  return perm.T @ full @ perm


def circuit_unitary(ops, n: int) -> np.ndarray:
  u = np.eye(2**n, dtype=complex)
  for name, wires, args in ops:
    u = embed(gate_matrix(name, args, wires), wires, n) @ u
  return u


def circuit_state(ops, n: int) -> np.ndarray:
  """Final state of ``ops`` applied to ``|0...0>``, complex array of shape ``(2**n,)``."""
  return circuit_unitary(ops, n)[:, 0]


def ref_probs(state: np.ndarray, wires, n: int) -> np.ndarray:
  """Marginal probabilities of ``wires``; the first of them is the most significant bit."""
  out = np.zeros(2 ** len(wires))
  for i, amp in enumerate(state):
    bits = _bits(i, n)
    out[_index([bits[w] for w in wires])] += abs(amp) ** 2
  return out


def ref_expval(state: np.ndarray, obs: Obs, n: int) -> float:
  value = np.vdot(state, observable_matrix(obs, n) @ state)
  assert abs(value.imag) < 1e-9
  return float(value.real)


def ref_var(state: np.ndarray, obs: Obs, n: int) -> float:
  m = observable_matrix(obs, n)
  return float(np.vdot(state, m @ m @ state).real - np.vdot(state, m @ state).real ** 2)


# -------------------------------------------------------------------------- observables
# Obs is a tree:
#   ("P", char, wire)                       a Pauli (or I) on one wire
#   ("H", matrix, wires)                    a Hermitian matrix
#   ("sum", ((coeff, Obs), ...))            a real linear combination
#   ("prod", (Obs, ...))                    a tensor product on disjoint wires
Obs = tuple


def observable_matrix(obs: Obs, n: int) -> np.ndarray:
  kind = obs[0]
  if kind == "P":
    return embed(PAULI[obs[1]], [obs[2]], n)
  if kind == "H":
    return embed(np.asarray(obs[1], dtype=complex), obs[2], n)
  if kind == "sum":
    return sum(c * observable_matrix(o, n) for c, o in obs[1])
  if kind == "prod":
    return functools.reduce(operator.matmul, (observable_matrix(o, n) for o in obs[1]))
  raise ValueError(kind)


def qhess_observable(obs: Obs):
  """The same observable built with qhess's X/Y/Z/I/Hermitian, ``+``, ``*`` and ``@``."""
  import qhess  # the converters need qhess; the simulator above does not

  kind = obs[0]
  if kind == "P":
    return getattr(qhess, obs[1])(obs[2])
  if kind == "H":
    return qhess.Hermitian(obs[1], wires=obs[2])
  if kind == "sum":
    terms = [c * qhess_observable(o) for c, o in obs[1]]
    return functools.reduce(operator.add, terms)
  if kind == "prod":
    return functools.reduce(operator.matmul, (qhess_observable(o) for o in obs[1]))
  raise ValueError(kind)


def random_unitary(rng: np.random.Generator, d: int) -> np.ndarray:
  z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
  q, r = np.linalg.qr(z)
  return q * (np.diag(r) / np.abs(np.diag(r)))


def random_hermitian(rng: np.random.Generator, d: int) -> np.ndarray:
  a = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
  return (a + a.conj().T) / 2


def _random_wires(rng, n: int, k: int) -> tuple[int, ...]:
  return tuple(int(w) for w in rng.choice(n, size=k, replace=False))


def random_pauli_word(rng, n: int, wires=None, letters: str = "XYZ") -> Obs:
  """A product of single-qubit Paulis on distinct wires (random order)."""
  if wires is None:
    wires = _random_wires(rng, n, int(rng.integers(1, n + 1)))
  factors = tuple(("P", str(rng.choice(list(letters))), w) for w in wires)
  return factors[0] if len(factors) == 1 else ("prod", factors)


def random_pauli_sum(rng, n: int, n_terms: int = 3) -> Obs:
  return ("sum", tuple((float(rng.uniform(-1, 1)), random_pauli_word(rng, n, letters="IXYZ"))
                       for _ in range(n_terms)))


def random_hermitian_obs(rng, n: int) -> Obs:
  k = int(rng.integers(1, min(n, 2) + 1))
  return ("H", random_hermitian(rng, 2**k), _random_wires(rng, n, k))


def random_product(rng, n: int) -> Obs:
  """A tensor product of 2..3 factors (Paulis, Hermitians, sums of Paulis) built with @.

  Needs ``n >= 2``.
  """
  wires = _random_wires(rng, n, n)
  n_factors = int(rng.integers(2, min(n, 3) + 1))
  cuts = np.sort(rng.choice(np.arange(1, n), size=n_factors - 1, replace=False))
  factors = []
  for group in np.split(np.array(wires), cuts):
    group = tuple(int(w) for w in group[:2])
    choice = rng.integers(3)
    if choice == 0:
      factors.append(random_pauli_word(rng, n, wires=group))
    elif choice == 1:
      factors.append(("H", random_hermitian(rng, 2 ** len(group)), group))
    else:
      terms = tuple((float(rng.uniform(-1, 1)), random_pauli_word(rng, n, wires=group))
                    for _ in range(2))
      factors.append(("sum", terms))
  return ("prod", tuple(factors))


OBSERVABLE_KINDS = ("word", "sum", "hermitian", "product")


def random_observable(rng, n: int, kind: str | None = None) -> Obs:
  """A random observable of one of `OBSERVABLE_KINDS` (products need ``n >= 2``)."""
  if kind is None:
    kind = str(rng.choice(OBSERVABLE_KINDS if n >= 2 else OBSERVABLE_KINDS[:3]))
  if kind == "word":
    return random_pauli_word(rng, n)
  if kind == "sum":
    return random_pauli_sum(rng, n)
  if kind == "hermitian":
    return random_hermitian_obs(rng, n)
  if kind == "product":
    return random_product(rng, n)
  raise ValueError(kind)


# ------------------------------------------------------------------------------ circuits


def random_op(rng: np.random.Generator, name: str, n: int):
  n_real, n_wires, _ = GATES[name]
  if n_wires is None:
    k = int(rng.integers(1, min(n, 4) + 1))  # QubitUnitary on 4 wires: tensordot path
  else:
    k = n_wires
  wires = _random_wires(rng, n, k)
  args = tuple(float(a) for a in rng.uniform(-2 * np.pi, 2 * np.pi, size=n_real))
  if name == "PauliRot":
    args += ("".join(rng.choice(list("IXYZ"), size=k)),)
  elif name == "QubitUnitary":
    args += (random_unitary(rng, 2**k),)
  return (name, wires, args)


def random_circuit(rng: np.random.Generator, n: int, n_extra: int = 5, gates=GATE_NAMES):
  """Every gate of ``gates`` that fits on ``n`` wires once, in random order, plus
  ``n_extra`` random ones: a list of ``(name, wires, args)``."""
  fitting = [g for g in gates if (GATES[g][1] or 1) <= n]
  names = list(rng.permutation(fitting)) + list(rng.choice(fitting, size=n_extra))
  return [random_op(rng, str(name), n) for name in names]


def flat_params(ops) -> np.ndarray:
  """The real gate arguments of ``ops`` in order, float array of shape ``(n_params,)``."""
  return np.array([a for name, _, args in ops for a in args[:N_REAL[name]]], dtype=float)


def with_params(ops, params):
  """``ops`` with their real gate arguments replaced by ``params`` (in order)."""
  params = [float(p) for p in np.asarray(params)]
  out, k = [], 0
  for name, wires, args in ops:
    r = N_REAL[name]
    out.append((name, wires, tuple(params[k:k + r]) + tuple(args[r:])))
    k += r
  return out


def apply_ops(ops, params) -> None:
  """Calls the qhess gates of ``ops`` with the real arguments taken from ``params``.

  Call it inside a qhess circuit function; ``params`` may be traced.
  """
  import qhess

  k = 0
  for name, wires, args in ops:
    r = N_REAL[name]
    getattr(qhess, name)(*(params[k + i] for i in range(r)), *args[r:], wires=wires)
    k += r


def qhess_circuit(ops, n: int, measurements: Any):
  """A qhess circuit of a flat parameter array applying ``ops``.

  Args:
    ops: list of ``(name, wires, args)``.
    n: number of wires.
    measurements: a qhess measurement, a tuple of them, or a function of no arguments
      returning either (called inside the circuit).
  """
  import qhess

  @qhess.circuit(wires=n)
  def circuit(params):
    apply_ops(ops, params)
    return measurements() if callable(measurements) else measurements

  return circuit


# ------------------------------------------------------------------------------ dtypes


@contextlib.contextmanager
def float32_mode():
  """Runs the body with ``jax_enable_x64`` off (float32/complex64), then restores it."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", False)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)
