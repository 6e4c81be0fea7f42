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
  elif tail:
    raise ValueError("A classical tail is folded into probabilities only.")
  elif measurement.kind == "expval_sq":
    # <O²> = ||O ψ||² for Hermitian O.
    o_psi = sum(c * _apply_term(psi, fs, consts, n) for c, fs in measurement.terms)
    value = jnp.real(jnp.vdot(o_psi, o_psi))
  else:
    raise ValueError(f"The kernel computes raw measurements only; got {measurement.kind!r}.")
  return jnp.reshape(jnp.asarray(value, dtype=probs.dtype), (1,))
