"""Matrices of the generator gates: Givens rotations, phase gates and `Evolution`'s data.

The excitation gates, `OrbitalRotation`, `FermionicSWAP` and `IsingXY` are *sparse*
(`qhess.circuits.catalogue`'s kind ``"sparse"``): each mixes pairs of basis states of its
wires by a 2×2 rotation (a Givens rotation) and multiplies every other basis state by a
phase. Their matrices are written here as the entries that can be nonzero,
``{(row, col): value}`` over the gate's basis (wire ``wires[0]`` the most significant bit,
PennyLane's convention), a fixed pattern whatever the angle: the kernel
(`qhess.simulate.gates`) combines only those, two amplitudes per rotated block and one per
phased block, where a dense ``16 × 16`` matrix would combine sixteen. A value is a NumPy
constant (``1``: a plain copy) or a traced real or complex scalar.

`CPhaseShift00` ... `CPhaseShift10`, `U1` and `PCPhase` are diagonal. `Evolution`'s matrix
``exp(-iθG) = V diag(exp(-iθλ)) V†`` is built from the eigendecomposition of ``G``, held in
``Tape.consts`` as one complex array of shape ``(d + 1, d)``: the eigenvectors ``V`` (the
first ``d`` rows) and the eigenvalues ``λ`` (the last row).

Nothing here imports the rest of qhess: the catalogue (`qhess.circuits.catalogue`) builds
its entries from these functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_ONE = np.complex128(1.0)


def expi(phi):
  """``exp(i φ)`` of a real scalar or array, from its cosine and sine (complex)."""
  phi = jnp.asarray(phi)
  return jax.lax.complex(jnp.cos(phi), jnp.sin(phi))


def _real(x):
  """A traced real scalar as a float array (0-d), for the kernel's real products."""
  return jnp.asarray(x)


def _givens(theta):
  """``[[c, -s], [s, c]]`` with ``c, s = cos(θ/2), sin(θ/2)``: rows and columns ``(a, b)``."""
  c, s = _real(jnp.cos(theta / 2)), _real(jnp.sin(theta / 2))
  return ((c, -s), (s, c))


def _rotation_entries(d: int, pair: tuple[int, int], block, rest) -> dict:
  """Entries of a gate rotating the basis states ``pair = (a, b)`` by the 2×2 ``block``
  and multiplying every other basis state of ``d`` by ``rest`` (a scalar or a function
  of the basis index)."""
  out = {}
  for i, r in enumerate(pair):
    for j, c in enumerate(pair):
      out[(r, c)] = block[i][j]
  for r in range(d):
    if r not in pair:
      out[(r, r)] = rest(r) if callable(rest) else rest
  return out


def _neg(v):
  return -v


def single_excitation(theta, hyper=None, phase: int = 0) -> dict:
  """SingleExcitation(±): the Givens rotation of ``|01>, |10>``; ``|00>, |11>`` get
  ``exp(i phase θ/2)`` (``phase`` = 0, +1 or -1 for the plain, Plus and Minus gates)."""
  rest = _ONE if phase == 0 else expi(phase * theta / 2)
  return _rotation_entries(4, (1, 2), _givens(theta), rest)


def double_excitation(theta, hyper=None, phase: int = 0) -> dict:
  """DoubleExcitation(±): the Givens rotation of ``|0011>, |1100>`` (indices 3 and 12);
  the other 14 states get ``exp(i phase θ/2)``."""
  rest = _ONE if phase == 0 else expi(phase * theta / 2)
  return _rotation_entries(16, (3, 12), _givens(theta), rest)


def ising_xy(theta, hyper=None) -> dict:
  """IsingXY: ``[[c, i s], [i s, c]]`` on ``|01>, |10>``, identity on ``|00>, |11>``."""
  c, s = _real(jnp.cos(theta / 2)), _real(jnp.sin(theta / 2))
  i_s = jax.lax.complex(jnp.zeros_like(s), s)
  return _rotation_entries(4, (1, 2), ((c, i_s), (i_s, c)), _ONE)


def fermionic_swap(theta, hyper=None) -> dict:
  """FermionicSWAP: ``exp(iθ/2) [[c, -i s], [-i s, c]]`` on ``|01>, |10>``, ``1`` on
  ``|00>`` and ``exp(iθ)`` on ``|11>``."""
  c, s = jnp.cos(theta / 2), jnp.sin(theta / 2)
  p = expi(theta / 2)
  diag, off = p * c, p * jax.lax.complex(jnp.zeros_like(s), -s)
  full = expi(theta)
  return _rotation_entries(4, (1, 2), ((diag, off), (off, diag)),
                           lambda r: _ONE if r == 0 else full)


def orbital_rotation(theta, hyper=None) -> dict:
  """OrbitalRotation on wires ``(0, 1, 2, 3)``: ``CZ₁₂ (SE₀₂ ⊗ SE₁₃) CZ₁₂``, where
  ``SE₀₂`` and ``SE₁₃`` are SingleExcitation on wires (0, 2) and (1, 3) (they commute)
  and ``CZ₁₂`` the fermionic sign of wires 1 and 2 (PennyLane's ``FermionicSWAP(π)``
  around ``SE₀₁ SE₂₃``): entry by entry, the product of two Givens rotations with signs."""
  one = single_excitation(theta)
  out = {}
  for (r1, c1), v1 in one.items():  # on bits (0, 2) of the 4-wire index
    for (r2, c2), v2 in one.items():  # on bits (1, 3)
      row, col = _interleave(r1, r2), _interleave(c1, c2)
      value = v2 if v1 is _ONE else v1 if v2 is _ONE else v1 * v2
      if _sign(row) * _sign(col) < 0:
        value = -value
      out[(row, col)] = value
  return out


def _sign(index: int) -> int:
  """``-1`` when wires 1 and 2 of a 4-wire basis index are both 1 (CZ₁₂'s entry)."""
  return -1 if (index >> 1) & 3 == 3 else 1


def _interleave(first: int, second: int) -> int:
  """The 4-bit index with bits (0, 2) from the 2-bit ``first`` and (1, 3) from ``second``
  (bit 0 the most significant)."""
  f0, f1 = first >> 1, first & 1
  s0, s1 = second >> 1, second & 1
  return (f0 << 3) | (s0 << 2) | (f1 << 1) | s1


def entries_matrix(entries: dict, d: int):
  """The dense ``(d, d)`` matrix of sparse ``entries`` (zeros elsewhere), complex."""
  rows = []
  for r in range(d):
    rows.append(jnp.stack([jnp.asarray(entries.get((r, c), 0.0)) * (1 + 0j)
                           for c in range(d)]))
  return jnp.stack(rows)


def conj_entries(entries: dict) -> dict:
  """The entries of the complex-conjugate matrix."""
  return {k: _conj(v) for k, v in entries.items()}


def dagger_entries(entries: dict) -> dict:
  """The entries of the conjugate transpose."""
  return {(c, r): _conj(v) for (r, c), v in entries.items()}


def _conj(v):
  if isinstance(v, (np.generic, np.ndarray)):
    return np.conj(v)
  if jnp.issubdtype(jnp.asarray(v).dtype, jnp.complexfloating):
    return jnp.conj(v)
  return v


# ------------------------------------------------------------------------ diagonal gates


def cphase_diag(position: int):
  """The diagonal of CPhaseShift00/01/10: ``exp(iφ)`` at basis state ``position``."""
  def diag(phi, hyper=None):
    ones = jnp.ones_like(phi) * (1 + 0j)
    return jnp.stack([expi(phi) if r == position else ones for r in range(4)])
  return diag


def pcphase_diag(phi, hyper):
  """PCPhase's diagonal: ``exp(iφ)`` on the first ``dim`` basis states, ``exp(-iφ)`` on
  the rest; ``hyper = (dim, 2**k)`` (PennyLane's ``dimension`` hyperparameter)."""
  dim, d = hyper
  p = expi(phi)
  return jnp.where(np.arange(d) < dim, p, jnp.conj(p))


# ------------------------------------------------------------------------------ Evolution


def evolution_data(generator: np.ndarray) -> np.ndarray:
  """``G``'s eigenvectors and eigenvalues as one complex array ``(d + 1, d)``."""
  lam, vecs = np.linalg.eigh(np.asarray(generator, dtype=complex))
  return np.concatenate([vecs, lam[None, :].astype(complex)])


def evolution_generator(data):
  """``G = V diag(λ) V†`` back from `evolution_data` (NumPy or JAX)."""
  d = data.shape[-1]
  g = (data[:d] * data[d].real[None, :]) @ data[:d].conj().T
  return (g + g.conj().T) / 2


def evolution_matrix(data, theta):
  """``exp(-iθG) = V diag(exp(-iθλ)) V†`` from `evolution_data`: complex ``(d, d)``."""
  d = data.shape[-1]
  vecs, lam = data[:d], jnp.real(data[d])
  phases = expi(-theta * lam).astype(data.dtype)
  return (vecs * phases[None, :]) @ jnp.conj(vecs).T


def frequencies(eigenvalues, atol: float = 1e-9) -> list[float]:
  """The distinct positive differences of ``eigenvalues`` (merged within ``atol``)."""
  lam = np.sort(np.asarray(eigenvalues, dtype=float))
  diffs = np.sort((lam[:, None] - lam[None, :]).ravel())
  out: list[float] = []
  for v in diffs[diffs > atol]:
    if not out or v - out[-1] > atol:
      out.append(float(v))
  return out


def equidistant(freqs, max_count: int = 64, atol: float = 1e-9):
  """``(base, count)`` of the smallest grid ``{l·base : l = 1..count}`` holding every
  frequency of ``freqs`` (within ``atol``), or ``None`` when none has at most
  ``max_count`` points. Frequencies on such a grid make an exact shift rule (a superset of
  the true frequencies only adds terms with zero weight); ``()`` gives ``(1.0, 1)``."""
  freqs = np.asarray(freqs, dtype=float)
  if not freqs.size:
    return 1.0, 1
  for m in range(1, max_count + 1):  # base = smallest frequency / m
    base = freqs[0] / m
    multiples = freqs / base
    if np.all(np.abs(multiples - np.round(multiples)) * base <= atol):
      count = int(np.round(multiples[-1]))
      if count <= max_count:
        return _snap(base), count
      return None
  return None


def _snap(base: float) -> float:
  """``base`` rounded to a fraction with a small denominator when it is one (``0.5``),
  else to 12 significant digits (the same spectrum from a generator rebuilt from its
  eigendecomposition, e.g. after a round trip through PennyLane)."""
  for q in range(1, 65):
    p = round(base * q)
    if p and abs(base - p / q) <= 1e-12 * max(1.0, base):
      return p / q
  return float(f"{base:.12g}")


# ------------------------------------------------------------------------------ generators

_P = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]),
      "Z": np.diag([1.0, -1.0])}


def _word(word: str) -> np.ndarray:
  out = np.ones((1, 1), dtype=complex)
  for ch in word:
    out = np.kron(out, _P[ch])
  return out


def _givens_generator(d: int, a: int, b: int, rest: float) -> np.ndarray:
  """``σ_y / 2`` on the pair ``(a, b)`` (``exp(-iθG)`` rotates it by ``[[c, -s], [s, c]]``)
  and ``rest`` on the other diagonal entries."""
  g = np.diag(np.full(d, rest, dtype=complex))
  g[a, a] = g[b, b] = 0
  g[a, b], g[b, a] = -0.5j, 0.5j
  return g


def _on_wires(g2: np.ndarray, wires: tuple[int, int], n: int = 4) -> np.ndarray:
  """A two-wire operator on ``wires`` of ``n`` wires (the others untouched)."""
  d = 2**n
  out = np.zeros((d, d), dtype=complex)
  shift = [n - 1 - w for w in wires]
  for r in range(d):
    for c in range(d):
      rest = ~((1 << shift[0]) | (1 << shift[1]))
      if (r & rest) == (c & rest):
        ri = ((r >> shift[0]) & 1) * 2 + ((r >> shift[1]) & 1)
        ci = ((c >> shift[0]) & 1) * 2 + ((c >> shift[1]) & 1)
        out[r, c] = g2[ri, ci]
  return out


def generator(name: str, hyper=None) -> np.ndarray:
  """``G`` of a generator gate, in NumPy: the gate is exactly ``exp(-iθG)`` (global phase
  included), PennyLane's matrix. Its eigenvalue differences are the gate's frequencies."""
  phase = {"Plus": 0.5, "Minus": -0.5}
  if name.startswith("SingleExcitation"):
    return _givens_generator(4, 1, 2, -phase.get(name[16:], 0.0))
  if name.startswith("DoubleExcitation"):
    return _givens_generator(16, 3, 12, -phase.get(name[16:], 0.0))
  if name == "OrbitalRotation":
    se = _givens_generator(4, 1, 2, 0.0)
    cz = np.diag([_sign(i) for i in range(16)]).astype(complex)
    return cz @ (_on_wires(se, (0, 2)) + _on_wires(se, (1, 3))) @ cz
  if name == "FermionicSWAP":
    return (_word("XX") + _word("YY") + _word("ZI") + _word("IZ")) / 4 - np.eye(4) / 2
  if name == "IsingXY":
    return -(_word("XX") + _word("YY")) / 4
  if name.startswith("CPhaseShift"):
    g = np.zeros((4, 4), dtype=complex)
    g[int(name[-2:], 2), int(name[-2:], 2)] = -1
    return g
  if name in ("U1", "PhaseShift"):
    return np.diag([0, -1.0]).astype(complex)
  if name == "PCPhase":
    dim, d = hyper
    return np.diag(np.where(np.arange(d) < dim, -1.0, 1.0)).astype(complex)
  raise ValueError(f"No generator table for {name!r}.")


def pauli_terms(matrix, atol: float = 1e-12) -> dict[str, float]:
  """The real Pauli decomposition ``{word: c}`` of a Hermitian ``(2**k, 2**k)`` matrix
  (wire 0 the first letter); a diagonal one by its Walsh transform (Z words only)."""
  m = np.asarray(matrix, dtype=complex)
  k = int(round(np.log2(m.shape[0])))
  if np.allclose(m, np.diag(np.diag(m)), atol=atol):
    coeffs = np.real(np.diag(m)).copy()
    for bit in range(k):  # in-place Walsh-Hadamard transform, bit `bit` from the top
      step = 2 ** (k - 1 - bit)
      view = coeffs.reshape(-1, 2, step)
      view[:, 0], view[:, 1] = (view[:, 0] + view[:, 1]) / 2, (view[:, 0] - view[:, 1]) / 2
    words = ["".join("Z" if (s >> (k - 1 - b)) & 1 else "I" for b in range(k))
             for s in range(2**k)]
    return {w: float(c) for w, c in zip(words, coeffs) if abs(c) > atol}
  out = {}
  for letters in np.ndindex(*(4,) * k):
    word = "".join("IXYZ"[i] for i in letters)
    c = np.trace(_word(word) @ m).real / 2**k
    if abs(c) > atol:
      out[word] = float(c)
  return out


def _commute(a: str, b: str) -> bool:
  return sum(x != "I" and y != "I" and x != y for x, y in zip(a, b)) % 2 == 0


def commuting_groups(terms: dict[str, float]) -> list[dict[str, float]] | None:
  """``terms`` split into groups of pairwise commuting Pauli words whose sums commute
  with each other, so that ``exp(-iθ Σ) = Π_groups Π_words exp(-iθ c P)`` exactly; ``None``
  when the greedy split does not give commuting sums."""
  groups: list[dict[str, float]] = []
  for word, c in terms.items():
    for g in groups:
      if all(_commute(word, w) for w in g):
        g[word] = c
        break
    else:
      groups.append({word: c})
  sums = [sum(c * _word(w) for w, c in g.items()) for g in groups]
  for i, a in enumerate(sums):
    for b in sums[i + 1:]:
      if not np.allclose(a @ b, b @ a, atol=1e-10):
        return None
  return groups
