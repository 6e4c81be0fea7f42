"""Raw measurements of a state: Z words from probabilities, flipping words by blocks.

Expectation values of Z words are one weighted sum of the probabilities; Pauli words with
X or Y letters are grouped by the wires they flip, and each group is one sum of the
state's blocks against their mirror blocks (`_flip_expval`), with no ``P ψ`` built. A
trailing run of permutation and diagonal gates is folded into the measurement
(`split_tail`).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE
from qhess.simulate.gates import (_PAULI, _PAULI_PHASE, _View, _cmul, _slice, _static_matrix,
                                  _word_phase, apply_matrix)


def _apply_term(psi, factors, consts, n):
  for f in factors:
    if f[0] == "H":
      psi = apply_matrix(psi, consts[f[2]].astype(psi.dtype), f[1], n)
    else:
      psi = apply_matrix(psi, _PAULI[f[0]].astype(psi.dtype), (f[1],), n)
  return psi



def _z_diagonal(z_terms, n: int, dtype):
  """``Σ_t c_t (±1 signs of Z word t)`` as a flat ``(2**n,)`` array.

  Built from broadcasts of small sign arrays; it does not depend on the state, so under
  vmap it is computed once, and XLA fuses it into the single reduction that uses it.
  """
  total = None
  for c, factors in z_terms:
    wires = [f[1] for f in factors]
    if wires:
      view = _View(wires, n)
      signs = np.ones([1] * view.ndim)
      for w in wires:
        signs = signs * np.array([1.0, -1.0]).reshape(view.bcast([w]))
      term = jnp.reshape(jnp.broadcast_to(jnp.asarray(c * signs, dtype), view.shape), (-1,))
    else:
      term = jnp.full((2**n,), c, dtype)
    total = term if total is None else total + term
  return total



def _is_z_expval(m) -> bool:
  return m.kind == "expval" and all(f[0] == "Z" for _, fs in m.terms for f in fs)



def _classical(op) -> bool:
  """An argument-free gate that only permutes basis states (up to phases)."""
  spec = CATALOGUE[op.name]
  kind = CATALOGUE[spec.base].kind if spec.kind == "controlled" else spec.kind
  return spec.n_params == 0 and op.name != "QubitUnitary" and kind in ("permutation",
                                                                      "diagonal")



def split_tail(operations, raw_measurements) -> int:
  """Where the trailing run of classical gates starts, when it can be folded away.

  When every raw measurement is a function of the probabilities (``probs``, or an
  ``expval`` of Z words), a final permutation gate ``P`` (X, CNOT, SWAP, Toffoli, ...)
  only permutes them, and a final diagonal one (CZ, S, T, ...) leaves them as they are:
  ``Σ_k z_k |(Pψ)_k|² = Σ_k (|P|ᵀ z)_k |ψ_k|²``. Such a tail is not applied to the state;
  the observable's diagonal ``z`` is permuted instead (once, not per circuit) and the
  probabilities for ``probs`` are permuted as real vectors. Returns
  ``len(operations)`` when nothing can be folded.
  """
  if not all(m.kind == "probs" or _is_z_expval(m) for m in raw_measurements):
    return len(operations)
  cut = len(operations)
  while cut > 0 and _classical(operations[cut - 1]):
    cut -= 1
  return cut



def _permutations(tail):
  """``(|P|, wires)`` of the tail's permutation gates, in order (diagonal ones drop out)."""
  out = []
  for op in tail:
    m = np.abs(_static_matrix(op.name, op.hyper))
    if not np.array_equal(m, np.eye(len(m))):
      out.append((np.round(m), op.wires))
  return out



def _expval(psi, probs, terms, consts, n, tail=()):
  # Z words are diagonal: all of them together are one weighted sum of probabilities
  # (one pass over the state, not one per term); other terms need O ψ.
  z_terms = [(c, fs) for c, fs in terms if all(f[0] == "Z" for f in fs)]
  value = jnp.zeros((), probs.dtype)
  if z_terms:
    z = _z_diagonal(z_terms, n, probs.dtype)
    for m, wires in reversed(_permutations(tail)):  # z ← |P|ᵀ z, last gate first
      z = apply_matrix(z, m.T.astype(z.dtype), wires, n)
    value = jnp.sum(probs * z)
  words = {}  # the Pauli words with X or Y letters, by the wires they flip
  for c, fs in terms:
    if all(f[0] == "Z" for f in fs):
      continue
    if all(f[0] in _PAULI_PHASE for f in fs):  # Pauli words (on distinct wires)
      words.setdefault(tuple(sorted(f[1] for f in fs if f[0] in "XY")), []).append((c, fs))
    else:
      value = value + c * jnp.real(jnp.vdot(psi, _apply_term(psi, fs, consts, n)))
  for flips, group in words.items():
    value = value + _flip_expval(psi, flips, group, n)
  return value



def _flip_expval(psi, flips: tuple[int, ...], words, n: int):
  """``Σ_t c_t <ψ|P_t|ψ>`` for Pauli words ``P_t`` that all flip the bits of ``flips``.

  ``(P ψ)_b = phase(b) ψ_{b ⊕ flips}`` with a constant phase pattern over the Y and Z
  wires, so the words sharing their flipped wires (XX and YY on one bond) sum into one
  pattern, and ``<ψ|P|ψ>`` is a sum over the blocks of ``ψ`` (the flipped wires fixed) of
  each block against its mirror block: no ``P ψ`` is built. With real coefficients the
  summed word is Hermitian, so a block and its mirror contribute complex conjugates:
  only half of the blocks are read, their real part doubled. A block whose pattern is
  zero (XX + YY on ``00 ↔ 11``) is skipped, and a constant pattern multiplies the sum,
  not the block (measured at 10 wires: the Heisenberg chain's XX + YY terms 4.6× faster
  than multiplying and reducing every block).
  """
  wires = sorted({f[1] for _, fs in words for f in fs})
  view = _View(wires, n)
  pattern = np.zeros((2,) * len(wires), dtype=complex)
  for c, fs in words:
    pattern = pattern + c * _word_phase([p for p, _ in fs], [w for _, w in fs], wires)
  pattern = np.reshape(pattern, view.bcast(wires))
  hermitian = all(np.imag(c) == 0 for c, _ in words)
  x = jnp.reshape(psi, view.shape)
  axes = [view.axis[w] for w in flips]
  lax = jax.lax
  real = np.finfo(psi.dtype).dtype
  total = None
  for bits in itertools.product((0, 1), repeat=len(axes)):
    if hermitian and bits[0] == 1:  # the mirror of a block already read
      continue
    index = [slice(None)] * view.ndim
    for a, b in zip(axes, bits):
      index[a] = slice(b, b + 1)
    pat = pattern[tuple(index)]
    if not np.any(pat):
      continue
    a_blk = _slice(x, view, axes, bits)
    b_blk = _slice(x, view, axes, tuple(1 - b for b in bits))
    first = pat.reshape(-1)[0]
    const = first if np.all(pat == first) else None
    if const is None:  # a pattern over Z/Y wires inside the block: Re(conj(a) · pat b)
      b_blk, const = _cmul(pat.astype(psi.dtype), b_blk), 1.0
    # Re(const · Σ conj(a) b) = Re(const) Σ Re(conj(a) b) - Im(const) Σ Im(conj(a) b).
    # Written as a complex product: XLA's CPU reduction of it was 2-3× faster than of the
    # same product spelled out on real and imaginary parts (strided blocks at 10 wires).
    prod = lax.mul(lax.conj(a_blk), b_blk)
    part = None
    if np.real(const) != 0:
      part = lax.mul(jnp.sum(lax.real(prod)), np.asarray(np.real(const), real))
    if np.imag(const) != 0:
      term = lax.mul(jnp.sum(lax.imag(prod)), np.asarray(-np.imag(const), real))
      part = term if part is None else lax.add(part, term)
    if hermitian:
      part = lax.mul(part, np.asarray(2, real))
    total = part if total is None else lax.add(total, part)
  return jnp.zeros((), real) if total is None else total



# ------------------------------------------------------------------ Pauli sums as data


def _pauli_bits(factors, n: int) -> tuple[int, int, int]:
  """``(x, z, n_y)`` of a Pauli word: ``P = i^n_y X^x Z^z`` with ``x`` the bits it flips
  (its X and Y wires), ``z`` its Z and Y wires (``Y = i X Z``), wire 0 the top bit."""
  x = z = n_y = 0
  for char, w in factors:
    bit = 1 << (n - 1 - w)
    x |= bit if char in "XY" else 0
    z |= bit if char in "YZ" else 0
    n_y += char == "Y"
  return x, z, n_y


# A Pauli sum with more (terms × amplitudes) than this builds its flip-mask diagonals one
# term at a time (unrolled) instead of as one product with a (terms, 2**n) sign matrix.
_SIGN_MATRIX_ENTRIES = 2**23


def _pauli_diagonals(words, coeffs, n: int, dtype):
  """``(masks, p, q)``: ``Σ_t c_t P_t = Σ_f X^{x_f} D_f`` grouped by the bits ``x_f`` each
  word flips, with ``D_f`` diagonal; returned as ``e_f(b) = (D_f)_{b ⊕ x_f}``, i.e.
  ``(Σ_t c_t P_t ψ)_b = Σ_f e_f(b) ψ_{b ⊕ x_f}``, split into real parts ``p[f]`` and
  imaginary parts ``q[f]``, float arrays ``(2**n,)`` or ``None`` where a mask's words
  have no such part (real Hamiltonians: no ``q``); ``masks`` the distinct ``x_f``.

  ``words``: Pauli words (factors ``(char, wire)``); ``coeffs``: their real coefficients,
  a traced or concrete ``(T,)`` array. ``e_f(b) = Σ_{t: x_t = x_f} c_t i^{n_y,t}
  (-1)^{|(b ⊕ x_f) ∧ z_t|}``: the signs are computed from an iota in the program (no
  ``(T, 2**n)`` constant), and the grouped sums are one product with the ``(T, 2**n)``
  sign matrix, so the program's size does not grow with the number of terms. They do
  not depend on the state: under ``vmap`` they are computed once per call.
  """
  bits = np.array([_pauli_bits(fs, n) for fs in words], dtype=np.int64).reshape(-1, 3)
  masks, group = np.unique(bits[:, 0], return_inverse=True)
  group = np.reshape(group, (-1,))
  phase = (1j) ** (bits[:, 2] % 4)  # i^n_y: 1, i, -1, -i
  onehot = (group[None, :] == np.arange(len(masks))[:, None]).astype(np.float64)
  b = jax.lax.iota(np.int32, 2**n)
  x_t, z_t = bits[:, 0].astype(np.int32), bits[:, 1].astype(np.int32)

  def signs(x, z):  # (-1)^{|(b ⊕ x) ∧ z|}, one row per (x, z) pair
    odd = jax.lax.population_count((b[None] ^ x[:, None]) & z[:, None]) & 1
    return (1 - 2 * odd).astype(dtype)

  def grouped(weights):  # (F, T) NumPy -> per mask its (2**n,) sum, None where zero
    rows = [f for f in range(len(masks)) if np.any(weights[f])]
    if not rows:
      return [None] * len(masks)
    if len(words) * 2**n <= _SIGN_MATRIX_ENTRIES:
      w = jnp.asarray(weights[rows], dtype) * coeffs[None, :]
      return _scatter_rows(rows, w @ signs(x_t, z_t), len(masks))
    # Wide registers: per mask, the sum of its own words' sign vectors, elementwise from
    # the iota (XLA fuses it into the mask's reduction: no (F, 2**n) array is stored).
    out = []
    for f in range(len(masks)):
      terms = np.flatnonzero(weights[f])
      out.append(None if not len(terms) else sum(
          (coeffs[t] * weights[f, t]).astype(dtype) * signs(x_t[t:t + 1], z_t[t:t + 1])[0]
          for t in terms))
    return out

  return masks, grouped(onehot * np.real(phase)), grouped(onehot * np.imag(phase))


def _scatter_rows(rows, values, count: int) -> list:
  """``values[i]`` at position ``rows[i]`` of a list of ``count`` (None elsewhere)."""
  out = [None] * count
  for i, r in enumerate(rows):
    out[r] = values[i]
  return out


def _flip_view(mask: int, n: int):
  """The split view of ``mask``'s flipped wires and their axes, first axis first."""
  wires = [w for w in range(n) if (mask >> (n - 1 - w)) & 1]
  view = _View(wires, n)
  return view, [view.axis[w] for w in wires]


def _half(x, view, axes, bit: int):
  """``x`` on ``view`` with the first flipped wire at ``bit``; the block with bit 1 is
  reversed along the other flipped axes, so it lines up with its mirror (bit 0)."""
  blk = _slice(jnp.reshape(x, view.shape), view, axes[:1], (bit,))
  return jax.lax.rev(blk, tuple(axes[1:])) if bit else blk


def pauli_sum_expval(psi, words, coeffs, n: int):
  """``Σ_t c_t <ψ|P_t|ψ>`` of Pauli words with real (possibly traced) coefficients.

  Per distinct flip mask ``x``, ``Re Σ_b conj(ψ_b) e(b) ψ_{b⊕x}`` with ``e = p + iq`` its
  diagonal (`_pauli_diagonals`): the mask's words sum to a Hermitian operator, so the
  blocks with the first flipped bit 0 and their mirrors give conjugate halves: half of
  the state is read, against its mirror (a reversal of the other flipped axes), and the
  sum doubled: ``Σ p Re(conj(ψ_b) ψ_{b⊕x}) - q Im(...)``; a mask without imaginary (or
  real) diagonal skips that part. One reversal per mask, not one pass per term: LiH's
  276 words are 35 masks.
  """
  lax = jax.lax
  real = np.finfo(psi.dtype).dtype
  masks, p, q = _pauli_diagonals(words, coeffs, n, real)
  value = None
  for f, mask in enumerate(masks):
    if mask == 0:  # the diagonal words: a weighted sum of probabilities
      part = jnp.sum((lax.real(psi) ** 2 + lax.imag(psi) ** 2) * p[f])
    else:
      view, axes = _flip_view(int(mask), n)
      # conj(ψ_b) ψ_{b⊕x} as one complex product, then its real and imaginary parts
      # weighed: XLA's CPU reduction of it was 3.5× faster than of the same product
      # spelled out on real and imaginary parts (LiH's 35 masks, 10 wires).
      prod = lax.mul(lax.conj(_half(psi, view, axes, 0)), _half(psi, view, axes, 1))
      part = None
      if p[f] is not None:
        part = jnp.sum(_half(p[f], view, axes, 0) * lax.real(prod))
      if q[f] is not None:
        im = -jnp.sum(_half(q[f], view, axes, 0) * lax.imag(prod))
        part = im if part is None else part + im
      part = 2 * part
    value = part if value is None else value + part
  return jnp.zeros((), real) if value is None else value


def pauli_sum_apply(psi, words, coeffs, n: int):
  """``Σ_t c_t P_t ψ``: complex ``(2**n,)`` (the adjoint state of `pauli_sum_expval`):
  per flip mask, its diagonal times the reversal of the flipped wires' axes."""
  lax = jax.lax
  real = np.finfo(psi.dtype).dtype
  masks, p, q = _pauli_diagonals(words, coeffs, n, real)
  re = im = None
  for f, mask in enumerate(masks):
    g = psi
    if mask:
      view, axes = _flip_view(int(mask), n)
      g = jnp.reshape(lax.rev(jnp.reshape(psi, view.shape), tuple(axes)), (-1,))
    u, v = lax.real(g), lax.imag(g)
    r = i = None
    if p[f] is not None:
      r, i = p[f] * u, p[f] * v
    if q[f] is not None:
      r = -q[f] * v if r is None else r - q[f] * v
      i = q[f] * u if i is None else i + q[f] * u
    re = r if re is None else re + r
    im = i if im is None else im + i
  return jnp.zeros_like(psi) if re is None else lax.complex(re, im)


def _split_words(terms):
  """Indices of the Pauli-word terms and of the others (Hermitian factors)."""
  pauli = [i for i, (_, fs) in enumerate(terms) if all(f[0] in "XYZ" for f in fs)]
  return pauli, [i for i in range(len(terms)) if i not in set(pauli)]


def weighted_expval(psi, measurement, consts, n: int):
  """``Σ_t c_t <P_t>`` of an ``expval_sum`` measurement (coefficients ``consts[coeffs]``)."""
  coeffs = consts[measurement.coeffs]
  terms = measurement.terms
  pauli, other = _split_words(terms)
  value = jnp.zeros((), np.finfo(psi.dtype).dtype)
  if pauli:
    value = pauli_sum_expval(psi, [terms[i][1] for i in pauli], coeffs[np.asarray(pauli)], n)
  for i in other:
    value = value + coeffs[i] * jnp.real(jnp.vdot(psi, _apply_term(psi, terms[i][1], consts, n)))
  return value


def adjoint_state(psi, measurement, consts, n: int):
  """``O ψ`` for a raw ``expval_sum`` measurement ``<ψ|O|ψ>``: complex ``(2**n,)``."""
  coeffs = consts[measurement.coeffs]
  terms = measurement.terms
  pauli, other = _split_words(terms)
  out = jnp.zeros_like(psi)
  if pauli:
    out = pauli_sum_apply(psi, [terms[i][1] for i in pauli], coeffs[np.asarray(pauli)], n)
  for i in other:
    out = out + coeffs[i].astype(psi.dtype) * _apply_term(psi, terms[i][1], consts, n)
  return out



def measurement_passes(raw_measurements) -> int:
  """About how many passes over the state measuring ``raw_measurements`` once takes, in
  the cost model's unit (one gate application): ``probs`` and the Z words of an
  ``expval`` one, each distinct set of flipped wires one (`_flip_expval`,
  `pauli_sum_expval`), a term with a Hermitian factor one, ``<O²>`` two per term."""
  total = 0
  for m in raw_measurements:
    if callable(m) or m.kind == "probs":
      total += 1
      continue
    if m.kind == "expval_sq":
      total += 2 * len(m.terms)
      continue
    pauli, other = _split_words(m.terms)
    flips = {tuple(sorted(f[1] for f in m.terms[i][1] if f[0] in "XY")) for i in pauli}
    total += max(1, len(flips) + len(other))
  return total


def measure(psi, measurement, consts, n: int, tail=()):
  """One raw measurement of the flat state; float array of shape ``(raw_size,)``.

  ``tail``: classical gates still to be applied before measuring (see `split_tail`).
  """
  if callable(measurement):  # computes itself: density matrices, readout (`qhess.simulate.density`)
    return measurement(psi, consts)
  probs = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
  if measurement.kind == "probs":
    for m, wires in _permutations(tail):
      probs = apply_matrix(probs, m.astype(probs.dtype), wires, n)
    wires = measurement.wires
    view = _View(wires, n)
    p = jnp.sum(jnp.reshape(probs, view.shape), axis=tuple(range(0, view.ndim, 2)))
    # p's axes are in sorted wire order; put them in the requested order.
    p = jnp.transpose(p, np.argsort(np.argsort(wires))) if len(wires) > 1 else p
    return jnp.reshape(p, (-1,))
  if measurement.kind == "expval":
    value = _expval(psi, probs, measurement.terms, consts, n, tail)
  elif measurement.kind == "expval_sum" and not tail:
    value = weighted_expval(psi, measurement, consts, n)
  elif tail:
    raise ValueError("A classical tail is folded into probabilities only.")
  elif measurement.kind == "expval_sq":
    # <O²> = ||O ψ||² for Hermitian O.
    o_psi = sum(c * _apply_term(psi, fs, consts, n) for c, fs in measurement.terms)
    value = jnp.real(jnp.vdot(o_psi, o_psi))
  else:
    raise ValueError(f"The kernel computes raw measurements only; got {measurement.kind!r}.")
  return jnp.reshape(jnp.asarray(value, dtype=probs.dtype), (1,))
