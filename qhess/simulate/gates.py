"""One gate on a flat state vector, viewed with a low-rank split shape.

See `qhess.simulate.evolve` for the view: each gate is one fused elementwise pass over
slices of the view; `apply_gate` is the entry (also used by the adjoint method).
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE, data_matrix, gate_matrix


_MAX_SLICE_SUM_WIRES = 3  # beyond this a dense gate uses tensordot (2**k terms grow fast)



class _View:
  """The split-shape view of an ``n``-qubit state for a set of wires (see module doc)."""

  def __init__(self, wires: Sequence[int], n: int):
    ws = sorted(set(wires))
    shape, prev = [], -1
    for w in ws:
      shape += [2 ** (w - prev - 1), 2]
      prev = w
    shape.append(2 ** (n - prev - 1))
    self.shape = tuple(shape)
    self.axis = {w: 2 * i + 1 for i, w in enumerate(ws)}
    self.ndim = len(shape)

  def bcast(self, wires: Sequence[int]) -> list[int]:
    """Broadcast shape with length-2 axes at ``wires`` and 1 elsewhere."""
    axes = {self.axis[w] for w in wires}
    return [2 if a in axes else 1 for a in range(self.ndim)]

  def place(self, t, wires: Sequence[int]):
    """A ``(2,)*k`` array indexed in ``wires`` order, placed on the view's axes."""
    if len(wires) > 1:
      t = jnp.transpose(t, np.argsort([self.axis[w] for w in wires]))
    return jnp.reshape(t, self.bcast(wires))



def _slice(x, view: _View, axes: Sequence[int], bits: Sequence[int]):
  """The block of ``x`` with axis ``axes[i]`` fixed to ``bits[i]`` (kept, length 1).

  The kernel is written in ``lax`` primitives: it traces thousands of them per circuit,
  and ``jnp``'s wrappers (indexing, operators, ``real``) cost several times more to
  trace than the primitive each emits.
  """
  start, limit = [0] * view.ndim, list(x.shape)
  for a, b in zip(axes, bits):
    start[a], limit[a] = b, b + 1
  return jax.lax.slice(x, start, limit)



def _assemble(blocks, axes: Sequence[int]):
  """Concatenates ``blocks[bits]`` (``bits`` over ``len(axes)`` wires) back into a view."""
  def rec(prefix):
    if len(prefix) == len(axes):
      return blocks[prefix]
    return jax.lax.concatenate([rec(prefix + (0,)), rec(prefix + (1,))], axes[len(prefix)])
  return rec(())



def _cmul(c, x):
  """``c * x`` for a complex ``x``, written out in real arithmetic.

  XLA's CPU backend multiplies complex arrays by a complex factor that is computed in
  the same program (a gate's phase or matrix entry) 10-20x more slowly than the same
  product spelled out on real and imaginary parts (measured: ten batched RZ passes at 10
  wires, 0.63 s against 0.044 s). A NumPy constant with a zero real or imaginary part
  costs one real product per part. ``c`` is a scalar or broadcasts against ``x`` (size-1
  axes of the same rank).
  """
  lax = jax.lax
  xr, xi = lax.real(x), lax.imag(x)
  if isinstance(c, (np.generic, np.ndarray)):
    cr, ci = np.real(c).astype(xr.dtype), np.imag(c).astype(xr.dtype)
    if not np.any(ci):
      return lax.complex(lax.mul(xr, cr), lax.mul(xi, cr))
    if not np.any(cr):
      return lax.complex(lax.neg(lax.mul(xi, ci)), lax.mul(xr, ci))
  else:
    cr, ci = lax.real(c), lax.imag(c)
  return lax.complex(lax.sub(lax.mul(xr, cr), lax.mul(xi, ci)),
                     lax.add(lax.mul(xi, cr), lax.mul(xr, ci)))



def _combine(coeffs, xs):
  """``Σ_i c_i x_i``; with NumPy coefficients, zero terms vanish and ±1 multiply nothing."""
  out = None
  for c, x in zip(coeffs, xs):
    if isinstance(c, np.generic):
      if c == 0:
        continue
      term = x if c == 1 else (jax.lax.neg(x) if c == -1 else _cmul(c, x))
    else:
      term = _cmul(c, x)
    out = term if out is None else jax.lax.add(out, term)
  return jnp.zeros_like(xs[0]) if out is None else out



def _matrix_on(x, matrix, wires: Sequence[int], view: _View):
  """``matrix`` (shape ``(2**k, 2**k)``, gate wire order) applied on ``wires`` of ``x``.

  Each of the ``2**k`` output blocks (the gate wires fixed to some bits) is a linear
  combination of the input blocks with scalar coefficients, and the output is their
  concatenation: a scalar times a block vectorizes well, and a constant (NumPy) matrix
  such as a bit flip becomes pure data movement. Measured on a 2-core CPU, this is about
  twice as fast as broadcasting matrix columns over both halves at once.
  """
  k = len(wires)
  axes = [view.axis[w] for w in wires]
  if k > _MAX_SLICE_SUM_WIRES:
    mt = jnp.reshape(jnp.asarray(matrix, x.dtype), (2,) * (2 * k))
    out = jnp.tensordot(mt, x, axes=(list(range(k, 2 * k)), axes))
    return jnp.moveaxis(out, list(range(k)), axes)
  d = 2**k
  if isinstance(matrix, np.ndarray):
    entries = list(matrix.astype(x.dtype).reshape(-1))  # NumPy scalars must not promote
  else:                                                  # complex64
    flat = jax.lax.reshape(jnp.asarray(matrix, x.dtype), (d * d,))
    entries = [jax.lax.squeeze(jax.lax.slice(flat, (i,), (i + 1,)), (0,)) for i in range(d * d)]
  all_bits = list(itertools.product((0, 1), repeat=k))
  xs = [_slice(x, view, axes, bits) for bits in all_bits]
  blocks = {out: _combine(entries[r * d:(r + 1) * d], xs) for r, out in enumerate(all_bits)}
  return _assemble(blocks, axes)



_PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}



@functools.cache
def _static_matrix(name: str, hyper):
  """The matrix of an argument-free gate as a NumPy constant (``None`` otherwise).

  Cached (read-only), and built in NumPy for controlled gates: computing it with
  `jax.numpy` outside a trace compiles a handful of small XLA programs per gate kind
  (0.3 s of a first call).
  """
  spec = CATALOGUE[name]
  if spec.n_params or spec.from_consts is not None:
    return None
  if spec.kind == "controlled":
    base = _static_matrix(spec.base, hyper)
    d = base.shape[0]
    out = np.eye(d * 2**spec.controls, dtype=complex)
    out[-d:, -d:] = base
  else:
    with jax.ensure_compile_time_eval():
      out = np.array(gate_matrix(name, (), hyper))
  out.flags.writeable = False
  return out



# Output bit b of P x on a wire with letter P reads input bit b ^ flip with factor
# _PAULI_PHASE[P][b]: X|1-b>, Y: -i (b = 0) and +i (b = 1), Z: (-1)**b.
_PAULI_PHASE = {"X": (1, 1), "Y": (-1j, 1j), "Z": (1, -1)}



def _word_phase(word, word_wires: Sequence[int], wires: Sequence[int]) -> np.ndarray:
  """The constant phase pattern of the Pauli word ``word`` on ``word_wires`` (letters
  X, Y, Z, I), over the axes of the sorted ``wires``: a complex NumPy array with axis
  ``i`` of length 2 where ``wires[i]`` carries a Y or Z letter and 1 elsewhere."""
  out = np.ones([1] * len(wires), dtype=complex)
  for w, letter in zip(word_wires, word):
    if letter in "YZ":
      axis = [1] * len(wires)
      axis[list(wires).index(w)] = 2
      out = out * np.reshape(np.asarray(_PAULI_PHASE[letter], dtype=complex), axis)
  return out



def _pauli_rotation_on(x, theta, word: str, wires: Sequence[int], view: _View):
  """``exp(-i θ/2 P) x = cos(θ/2) x - i sin(θ/2) P x`` for the Pauli word ``P`` on ``wires``.

  ``P x`` is ``x`` with the bits of the X and Y wires flipped (block copies) times a
  constant phase pattern over the Y and Z wires, so the gate costs two scaled copies of
  the state whatever its width, where its ``2**k × 2**k`` matrix would combine ``2**k``
  blocks per output block (a dense contraction beyond three wires). The pattern's entries
  are all real or all imaginary (``i`` to the number of Y letters, times signs), which
  `_cmul` turns into one real product per part.
  """
  letters = [(w, p) for w, p in zip(wires, word) if p != "I"]
  phased = sorted(w for w, p in letters if p in "YZ")
  if phased:
    # The -i of -i sin(θ/2) P folded in; broadcast shape over the view's axes.
    pattern = np.reshape((-1j * _word_phase(word, wires, phased)).astype(x.dtype),
                         view.bcast(phased))
  else:
    pattern = np.full([1] * view.ndim, -1j, dtype=x.dtype)
  lax = jax.lax
  real = np.finfo(x.dtype).dtype
  c = lax.convert_element_type(jnp.cos(theta / 2), real)
  s = lax.convert_element_type(jnp.sin(theta / 2), real)

  def block(xb, fb, pat):  # c xb + s (pat fb), in real arithmetic
    moved = _cmul(pat.reshape(())[()] if pat.size == 1 else pat, fb)  # NumPy scalar or array
    return lax.complex(lax.add(lax.mul(lax.real(xb), c), lax.mul(lax.real(moved), s)),
                       lax.add(lax.mul(lax.imag(xb), c), lax.mul(lax.imag(moved), s)))

  flip_axes = [view.axis[w] for w, p in letters if p in "XY"]
  if not flip_axes:
    return block(x, x, pattern)
  # Output block ``bits`` (the flipped wires fixed) reads input block ``1 - bits``.
  blocks = {}
  for bits in itertools.product((0, 1), repeat=len(flip_axes)):
    index = [slice(None)] * view.ndim
    for a, b in zip(flip_axes, bits):
      if pattern.shape[a] == 2:
        index[a] = slice(b, b + 1)
    blocks[bits] = block(_slice(x, view, flip_axes, bits),
                         _slice(x, view, flip_axes, tuple(1 - b for b in bits)),
                         pattern[tuple(index)])
  return _assemble(blocks, flip_axes)



def _scale(c, x):
  """``c * x`` for a NumPy constant (`_combine`'s rules), a traced real scalar (one real
  product per part) or a traced complex scalar (`_cmul`)."""
  if isinstance(c, (np.generic, np.ndarray)):
    return _combine([c], [x])
  if not jnp.issubdtype(c.dtype, jnp.complexfloating):
    c = jax.lax.convert_element_type(c, np.finfo(x.dtype).dtype)
    return jax.lax.complex(jax.lax.mul(jax.lax.real(x), c), jax.lax.mul(jax.lax.imag(x), c))
  return _cmul(jax.lax.convert_element_type(c, x.dtype), x)



def _sparse_on(x, entries: dict, wires: Sequence[int], view: _View):
  """A ``"sparse"`` gate (its nonzero ``entries``, `qhess.circuits.generator_matrices`)
  on ``wires`` of ``x``: each output block (the gate wires fixed to some bits) is the
  sum of its few entries times input blocks: two for a Givens-rotated block, one (a
  phase, or a plain copy for a constant 1) for the others; never a dense matrix."""
  k = len(wires)
  axes = [view.axis[w] for w in wires]
  all_bits = list(itertools.product((0, 1), repeat=k))
  rows: dict[int, list] = {}
  for (r, c), value in sorted(entries.items()):
    rows.setdefault(r, []).append((c, value))
  inputs: dict[int, jax.Array] = {}

  def block(c):
    if c not in inputs:
      inputs[c] = _slice(x, view, axes, all_bits[c])
    return inputs[c]

  out = {}
  for r, bits in enumerate(all_bits):
    terms = [_scale(v, block(c)) for c, v in rows.get(r, ())]
    out[bits] = terms[0] if terms else jnp.zeros_like(block(r))
    for t in terms[1:]:
      out[bits] = jax.lax.add(out[bits], t)
  return _assemble(out, axes)



def _gate_on(x, name: str, wires: Sequence[int], params, hyper, consts, view: _View):
  spec = CATALOGUE[name]
  if spec.kind == "controlled":
    # Only the block where every control is 1 changes: the others are passed through.
    c = spec.controls
    axes = [view.axis[w] for w in wires[:c]]
    blocks = {bits: _slice(x, view, axes, bits) for bits in itertools.product((0, 1), repeat=c)}
    ones = (1,) * c
    blocks[ones] = _gate_on(blocks[ones], spec.base, wires[c:], params, hyper, consts, view)
    return _assemble(blocks, axes)
  if spec.kind == "diagonal":
    diag = spec.diagonal(*params, hyper).astype(x.dtype)
    return _cmul(view.place(jnp.reshape(diag, (2,) * len(wires)), wires), x)
  if spec.kind == "pauli":
    word, theta = spec.pauli(hyper), params[0]
    if spec.conjugate:  # conj(exp(-i θ/2 P)) = exp(i θ/2 P*), P* = (-1)**(#Y) P
      theta = theta if word.count("Y") % 2 else -theta
    return _pauli_rotation_on(x, theta, word, wires, view)
  if spec.kind == "sparse":
    return _sparse_on(x, spec.entries(*params, hyper), wires, view)
  # Everything else, bit flips included, is a small matrix combined from slices: XLA's
  # reverse op (jnp.flip) inside these batched chains compiles pathologically slowly.
  if spec.from_consts is not None:  # QubitUnitary, Evolution, conjugates, channels
    matrix = data_matrix(name, params, hyper, consts)
  else:
    matrix = _static_matrix(name, hyper)
    if matrix is None:
      matrix = gate_matrix(name, params, hyper)
  return _matrix_on(x, matrix, wires, view)



def apply_gate(psi, name: str, wires: Sequence[int], params, hyper, consts, n: int):
  """Applies one catalogue gate to the flat state ``psi`` of shape ``(2**n,)``."""
  view = _View(wires, n)
  out = _gate_on(jnp.reshape(psi, view.shape), name, wires, params, hyper, consts, view)
  return jnp.reshape(out, (-1,))



def apply_matrix(psi, matrix, wires: Sequence[int], n: int):
  """A ``(2**k, 2**k)`` matrix (gate wire order) applied to ``wires`` of a flat state."""
  view = _View(wires, n)
  return jnp.reshape(_matrix_on(jnp.reshape(psi, view.shape), matrix, wires, view), (-1,))



def initial_state(n: int, dtype) -> jax.Array:
  """``|0...0>`` as a flat complex vector; complex128 for float64 ``dtype``."""
  cdtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
  return jnp.zeros(2**n, dtype=cdtype).at[0].set(1.0)
