"""Gate catalogue: what each gate is, how to apply it, and its shift-rule frequencies.

Matrices follow PennyLane's conventions so that circuits move over unchanged. Each gate
has a *kind*, which says how its matrix is built and how the kernel (`qhess.simulate`)
applies it:

- ``"diagonal"``: a phase multiplication by the gate's diagonal (the cheapest path);
- ``"controlled"``: a base gate applied to the block where all control bits are 1;
- ``"pauli"``: ``exp(-i θ/2 P) = cos(θ/2) I - i sin(θ/2) P`` for a Pauli word ``P``;
- ``"permutation"``: bit flips with phases (X, Y, SWAP);
- ``"sparse"``: a fixed pattern of nonzero entries (``entries``): Givens rotations of
  pairs of basis states with phases on the others (the excitation gates, IsingXY,
  FermionicSWAP, OrbitalRotation; `qhess.circuits.generator_matrices`);
- ``"dense"``: an explicit matrix.

A Pauli rotation is the state plus its bit-flipped copy times a constant phase pattern,
two scaled copies whatever its width. The last two are applied as small matrices whose
output blocks are scalar combinations of blocks of the state (`gate_matrix`; a constant
matrix such as a bit flip becomes plain copies): XLA's reverse op, the natural way to
flip bits, compiles pathologically slowly inside long batched gate chains.

Each gate argument also carries its frequency spectrum ``{l * base : l = 1..count}``
(the differences of the generator's eigenvalues), which `qhess.shift.rules` turns into
parameter-shift rules.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from qhess.circuits import generator_matrices as _gm


class Spectrum(NamedTuple):
  """Equidistant frequencies ``base, 2*base, ..., count*base`` of one gate argument."""

  base: float
  count: int


_ONE = Spectrum(1.0, 1)  # exp(-i θ G) with G's eigenvalues ±1/2 (or 0, 1)
_CONTROLLED = Spectrum(0.5, 2)  # controlled rotation: eigenvalues {0, 0, ±1/2}
_GIVENS = Spectrum(0.5, 2)  # a Givens rotation of two basis states: eigenvalues {0.., ±1/2}
# OrbitalRotation: two commuting Givens generators, eigenvalues {0, ±1/2, ±1}.
_ORBITAL = Spectrum(0.5, 4)
_PCPHASE = Spectrum(2.0, 1)  # PCPhase: exp(iφ (2Π - I)), eigenvalues ±1


class DataKey(NamedTuple):
  """The ``hyper`` of an `Evolution` gate: its data's index in ``Tape.consts`` and the
  spectrum of its argument (from its generator's eigenvalues, per gate)."""

  index: int
  spectrum: Spectrum


@dataclasses.dataclass(frozen=True)
class GateSpec:
  """Static description of one gate type.

  Attributes:
    name: PennyLane's name of the gate.
    n_params: number of scalar arguments.
    n_wires: number of wires, or ``None`` when it is given by the ``wires`` argument.
    kind: how the kernel applies it (see the module docstring).
    spectra: one `Spectrum` per argument.
    label: short text used in drawings.
    matrix: ``(*params, hyper) -> complex array (2**k, 2**k)`` for dense gates.
    diagonal: ``(*params, hyper) -> complex array (2**k,)`` for diagonal gates.
    pauli: ``hyper -> str``, the Pauli word of a ``"pauli"`` gate (the rotation's
      generator) or of a ``"permutation"`` gate other than SWAP (the gate itself).
    controls: for controlled gates, the number of leading control wires.
    base: for controlled gates, the name of the gate applied to the target wires.
    from_consts: for gates whose matrix is data (``Tape.consts[hyper]``): ``const ->
      matrix``; QubitUnitary, its conjugate and channels (see `qhess.simulate.density`).
    conjugate: the complex conjugate of the ``"pauli"`` gate of the same name without
      the ``*`` (density matrices' column wires, `qhess.simulate.density`).
    entries: for ``"sparse"`` gates, ``(*params, hyper) -> {(row, col): value}``, the
      entries that can be nonzero (a fixed pattern; NumPy constants or traced scalars).
    spectra_of: ``hyper -> spectra`` when the spectra depend on the gate instance
      (`Evolution`); `op_spectra` reads it.
  """

  name: str
  n_params: int
  n_wires: int | None
  kind: str
  spectra: tuple[Spectrum, ...] = ()
  label: str = ""
  matrix: Callable | None = None
  diagonal: Callable | None = None
  pauli: Callable | None = None
  controls: int = 0
  base: str | None = None
  from_consts: Callable | None = None
  conjugate: bool = False
  entries: Callable | None = None
  spectra_of: Callable | None = None


def _cs(theta):
  return jnp.cos(theta / 2), jnp.sin(theta / 2)


def _complex(x):
  return jnp.asarray(x) * (1 + 0j)


# ``exp(i φ)`` of a real scalar, from its cosine and sine. Phases are built from real
# scalars and stacked rather than taken as ``jnp.exp`` of a complex vector: under vmap
# XLA's CPU backend otherwise multiplies the state by the broadcast phase vector about
# 20x more slowly (measured: ten batched RZ passes at 10 wires, 0.57 s against 0.023 s).
_expi = _gm.expi


def _rx(theta, hyper=None):
  c, s = _cs(theta)
  return jnp.array([[c, -1j * s], [-1j * s, c]])


def _ry(theta, hyper=None):
  c, s = _cs(theta)
  return _complex(jnp.array([[c, -s], [s, c]]))


def _rz_diag(theta, hyper=None):
  return jnp.stack([_expi(-0.5 * theta), _expi(0.5 * theta)])


def _phase_diag(phi, hyper=None):
  return jnp.stack([jnp.ones_like(phi) * (1 + 0j), _expi(phi)])


def _rot(phi, theta, omega, hyper=None):
  # Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)
  c, s = _cs(theta)
  return jnp.array([
      [_expi(-0.5 * (phi + omega)) * c, -_expi(0.5 * (phi - omega)) * s],
      [_expi(-0.5 * (phi - omega)) * s, _expi(0.5 * (phi + omega)) * c],
  ])


def _u3(theta, phi, delta, hyper=None):
  c, s = _cs(theta)
  return jnp.array([
      [c * (1 + 0j), -_expi(delta) * s],
      [_expi(phi) * s, _expi(phi + delta) * c],
  ])


def _parity_signs(k: int) -> np.ndarray:
  """(-1)**popcount(b) for b in 0..2**k-1: the eigenvalues of Z⊗...⊗Z."""
  bits = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
  return 1 - 2 * (bits.sum(axis=1) % 2)


def _multirz_diag(theta, hyper):
  k = hyper
  minus, plus = _expi(-0.5 * theta), _expi(0.5 * theta)
  return jnp.stack([minus if sign > 0 else plus for sign in _parity_signs(k)])


def _isingzz_diag(theta, hyper=None):
  return _multirz_diag(theta, 2)


def _crz_diag(theta, hyper=None):
  ones = jnp.ones_like(theta) * (1 + 0j)
  return jnp.concatenate([jnp.stack([ones, ones]), _rz_diag(theta)])


def _cphase_diag(phi, hyper=None):
  ones = jnp.ones_like(phi) * (1 + 0j)
  return jnp.stack([ones, ones, ones, _expi(phi)])


def _pauli_matrix(word: str) -> np.ndarray:
  mats = {
      "I": np.eye(2),
      "X": np.array([[0, 1], [1, 0]]),
      "Y": np.array([[0, -1j], [1j, 0]]),
      "Z": np.diag([1, -1]),
  }
  out = np.ones((1, 1), dtype=complex)
  for ch in word:
    out = np.kron(out, mats[ch])
  return out


def _pauli_rot_matrix(theta, word):
  c, s = _cs(theta)
  return c * np.eye(2 ** len(word)) - 1j * s * _pauli_matrix(word)


def _const(mat):
  mat = np.asarray(mat, dtype=complex)
  return lambda hyper=None: jnp.asarray(mat)


_SQRT2 = np.sqrt(0.5)
_FIXED_DENSE = {
    "Hadamard": ("H", [[_SQRT2, _SQRT2], [_SQRT2, -_SQRT2]]),
    "SX": ("SX", [[0.5 + 0.5j, 0.5 - 0.5j], [0.5 - 0.5j, 0.5 + 0.5j]]),
}
_FIXED_DIAGONAL = {
    "PauliZ": ("Z", 1, [1, -1]),
    "S": ("S", 1, [1, 1j]),
    "T": ("T", 1, [1, np.exp(0.25j * np.pi)]),
    "CZ": ("Z", 2, [1, 1, 1, -1]),
}


def _build_catalogue() -> dict[str, GateSpec]:
  specs = [
      GateSpec("RX", 1, 1, "pauli", (_ONE,), "RX", matrix=_rx, pauli=lambda h: "X"),
      GateSpec("RY", 1, 1, "dense", (_ONE,), "RY", matrix=_ry),
      GateSpec("RZ", 1, 1, "diagonal", (_ONE,), "RZ", diagonal=_rz_diag),
      GateSpec("PhaseShift", 1, 1, "diagonal", (_ONE,), "Rϕ", diagonal=_phase_diag),
      GateSpec("Rot", 3, 1, "dense", (_ONE,) * 3, "Rot", matrix=_rot),
      GateSpec("U3", 3, 1, "dense", (_ONE,) * 3, "U3", matrix=_u3),
      GateSpec("CRX", 1, 2, "controlled", (_CONTROLLED,), "RX", controls=1, base="RX"),
      GateSpec("CRY", 1, 2, "controlled", (_CONTROLLED,), "RY", controls=1, base="RY"),
      GateSpec("CRZ", 1, 2, "diagonal", (_CONTROLLED,), "RZ", diagonal=_crz_diag),
      GateSpec("ControlledPhaseShift", 1, 2, "diagonal", (_ONE,), "Rϕ",
               diagonal=_cphase_diag),
      GateSpec("IsingXX", 1, 2, "pauli", (_ONE,), "IsingXX", pauli=lambda h: "XX"),
      GateSpec("IsingYY", 1, 2, "pauli", (_ONE,), "IsingYY", pauli=lambda h: "YY"),
      GateSpec("IsingZZ", 1, 2, "diagonal", (_ONE,), "IsingZZ", diagonal=_isingzz_diag),
      GateSpec("MultiRZ", 1, None, "diagonal", (_ONE,), "MultiRZ",
               diagonal=_multirz_diag),
      GateSpec("PauliRot", 1, None, "pauli", (_ONE,), "R", pauli=lambda h: h),
      GateSpec("PauliX", 0, 1, "permutation", (), "X", pauli=lambda h: "X"),
      GateSpec("PauliY", 0, 1, "permutation", (), "Y", pauli=lambda h: "Y"),
      GateSpec("CNOT", 0, 2, "controlled", (), "X", controls=1, base="PauliX"),
      GateSpec("CY", 0, 2, "controlled", (), "Y", controls=1, base="PauliY"),
      GateSpec("Toffoli", 0, 3, "controlled", (), "X", controls=2, base="PauliX"),
      GateSpec("SWAP", 0, 2, "permutation", (), "SWAP"),
      GateSpec("QubitUnitary", 0, None, "dense", (), "U", matrix=None,
               from_consts=lambda m: m),
      *_generator_specs(),
  ]
  for name, (label, mat) in _FIXED_DENSE.items():
    specs.append(GateSpec(name, 0, 1, "dense", (), label, matrix=_const(mat)))
  for name, (label, k, diag) in _FIXED_DIAGONAL.items():
    d = np.asarray(diag, dtype=complex)
    specs.append(GateSpec(name, 0, k, "diagonal", (), label,
                          diagonal=lambda hyper=None, d=d: jnp.asarray(d)))
  catalogue = {s.name: s for s in specs}
  # Mixed-state simulation (`qhess.simulate.density`) applies conj(U) on the column wires.
  for name in [n for n in catalogue if n not in _REAL_GATES]:
    catalogue[name + "*"] = _conjugate(catalogue[name])
  for name, (label, n_wires) in _CHANNELS.items():
    catalogue[name] = GateSpec(name, 0, n_wires, "channel", (), label,
                               from_consts=_superoperator)
  # A channel with concrete Kraus operators, its superoperator (rows of complex) as hyper.
  catalogue["Superoperator"] = GateSpec(
      "Superoperator", 0, None, "dense", (), "S",
      matrix=lambda hyper: np.asarray(hyper, dtype=complex))
  return catalogue


def _generator_specs() -> list[GateSpec]:
  """The generator gates (`qhess.circuits.generator_matrices`): PennyLane's names,
  argument order, matrices and wire order; spectra from their generators' eigenvalues."""
  specs = []
  for suffix, phase in (("", 0), ("Plus", 1), ("Minus", -1)):
    spectrum = _GIVENS if phase == 0 else _ONE  # ±: eigenvalues ±1/2 only
    specs += [
        GateSpec("SingleExcitation" + suffix, 1, 2, "sparse", (spectrum,), "G" + suffix[:1],
                 entries=lambda t, h=None, p=phase: _gm.single_excitation(t, h, p)),
        GateSpec("DoubleExcitation" + suffix, 1, 4, "sparse", (spectrum,),
                 "G²" + suffix[:1],
                 entries=lambda t, h=None, p=phase: _gm.double_excitation(t, h, p))]
  specs += [
      GateSpec("OrbitalRotation", 1, 4, "sparse", (_ORBITAL,), "OrbitalRotation",
               entries=_gm.orbital_rotation),
      GateSpec("FermionicSWAP", 1, 2, "sparse", (_ONE,), "fSWAP",
               entries=_gm.fermionic_swap),
      GateSpec("IsingXY", 1, 2, "sparse", (_GIVENS,), "IsingXY", entries=_gm.ising_xy),
      GateSpec("U1", 1, 1, "diagonal", (_ONE,), "U1", diagonal=_phase_diag),
      GateSpec("PCPhase", 1, None, "diagonal", (_PCPHASE,), "∏_ϕ",
               diagonal=_gm.pcphase_diag),
      GateSpec("Evolution", 1, None, "dense", (), "Exp", from_consts=_gm.evolution_matrix,
               spectra_of=lambda hyper: (hyper.spectrum,)),
  ]
  for position, bits in enumerate(("00", "01", "10")):
    specs.append(GateSpec("CPhaseShift" + bits, 1, 2, "diagonal", (_ONE,), "Rϕ" + bits,
                          diagonal=_gm.cphase_diag(position)))
  return specs


# Gates with real matrices: their conjugate is the gate itself.
_REAL_GATES = frozenset({"RY", "CRY", "Hadamard", "PauliX", "PauliZ", "CNOT", "CZ",
                         "SWAP", "Toffoli", "SingleExcitation", "DoubleExcitation",
                         "OrbitalRotation"})

# Noise channels (PennyLane's names): label and wire count (None: given by `wires`).
# Their Kraus operators are data (``Tape.consts[hyper]``, shape ``(r, 2**k, 2**k)``).
_CHANNELS = {
    "DepolarizingChannel": ("Depol", 1),
    "AmplitudeDamping": ("AmpDamp", 1),
    "GeneralizedAmplitudeDamping": ("GenAmpDamp", 1),
    "PhaseDamping": ("PhaseDamp", 1),
    "BitFlip": ("BitFlip", 1),
    "PhaseFlip": ("PhaseFlip", 1),
    "PauliError": ("PauliError", None),
    "QubitChannel": ("Channel", None),
}

# A readout error on the measured bits (`qhess.simulate.noise`): the last operation of a tape, its
# ``hyper`` the flip probability of each wire.
_READOUT = GateSpec("ReadoutError", 0, None, "readout", (), "RO")


def _superoperator(kraus):
  """``Σ_k K_k ⊗ conj(K_k)`` of a Kraus stack ``(r, d, d)``: shape ``(d², d²)``, acting
  on a density matrix vectorized row-major (rows' wires first, then the columns')."""
  d = kraus.shape[-1]
  return jnp.reshape(jnp.einsum("kab,kcd->acbd", kraus, jnp.conj(kraus)), (d * d, d * d))


def _conjugate(spec: GateSpec) -> GateSpec:
  """The gate whose matrix is the complex conjugate of ``spec``'s (same arguments)."""
  name = spec.name + "*"
  if spec.kind == "diagonal":
    return dataclasses.replace(
        spec, name=name, diagonal=lambda *a, d=spec.diagonal: jnp.conj(d(*a)))
  if spec.kind == "controlled":
    base = spec.base if spec.base in _REAL_GATES else spec.base + "*"
    return dataclasses.replace(spec, name=name, base=base)
  if spec.from_consts is not None:
    return dataclasses.replace(
        spec, name=name, from_consts=lambda m, *p, f=spec.from_consts: jnp.conj(f(m, *p)))
  if spec.kind == "sparse":
    return dataclasses.replace(
        spec, name=name, entries=lambda *a, e=spec.entries: _gm.conj_entries(e(*a)))
  if spec.kind == "pauli":  # conj(exp(-i θ/2 P)) is again a rotation about P
    return dataclasses.replace(spec, name=name, conjugate=True)
  # permutation and dense gates: an explicit matrix.
  return dataclasses.replace(
      spec, name=name, kind="dense", pauli=None,
      matrix=lambda *a, g=spec.name: jnp.conj(gate_matrix(g, a[:-1], a[-1])))


CATALOGUE: dict[str, GateSpec] = _build_catalogue()
# The unitary gates a circuit can call (not the conjugates, channels and readout entries
# that mixed-state simulation adds).
GATE_NAMES: tuple[str, ...] = tuple(
    name for name, spec in CATALOGUE.items()
    if spec.kind not in ("channel", "readout") and not name.endswith("*")
    and name != "Superoperator")
CATALOGUE["ReadoutError"] = _READOUT


def gate_matrix(name: str, params, hyper=None) -> jnp.ndarray:
  """The full matrix of a gate (any kind), in the gate's own wire order.

  Used by fusion and by the tests' cross-checks; the kernel prefers cheaper paths.

  Args:
    name: a gate name from `CATALOGUE`.
    params: the gate's scalar arguments.
    hyper: the gate's static extra (Pauli word, wire count) or, for ``QubitUnitary``,
      its matrix.

  Returns:
    complex array of shape ``(2**k, 2**k)``.
  """
  spec = CATALOGUE[name]
  if name == "QubitUnitary":
    return jnp.asarray(hyper) * (1 + 0j)
  if name == "SWAP":
    return jnp.asarray(np.eye(4)[[0, 2, 1, 3]] * (1 + 0j))
  if spec.kind == "controlled":
    base = gate_matrix(spec.base, params, hyper)
    d = base.shape[0]
    n = d * 2**spec.controls
    out = jnp.eye(n, dtype=base.dtype)
    return out.at[n - d:, n - d:].set(base)
  if spec.kind == "diagonal":
    return jnp.diag(spec.diagonal(*params, hyper))
  if spec.kind == "pauli":
    matrix = _pauli_rot_matrix(params[0], spec.pauli(hyper))
    return jnp.conj(matrix) if spec.conjugate else matrix
  if spec.kind == "permutation":
    return jnp.asarray(_pauli_matrix(spec.pauli(hyper)))
  if spec.kind == "sparse":
    return _gm.entries_matrix(spec.entries(*params, hyper), 2**spec.n_wires)
  return spec.matrix(*params, hyper)


def op_spectra(name: str, hyper) -> tuple[Spectrum, ...]:
  """The spectra of a gate's arguments: its catalogue entry's, or its instance's."""
  spec = CATALOGUE[name]
  return spec.spectra_of(hyper) if spec.spectra_of is not None else spec.spectra


def data_matrix(name: str, params, hyper, consts):
  """The matrix of a gate whose matrix is data (``from_consts``: QubitUnitary, Evolution,
  their conjugates, channels), from ``Tape.consts`` and its arguments."""
  index = hyper.index if isinstance(hyper, DataKey) else hyper
  return CATALOGUE[name].from_consts(consts[index], *params)
