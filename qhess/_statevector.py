"""The simulation kernel: statevector evolution and raw measurements, batched.

The state of ``n`` qubits is a flat complex vector of length ``2**n``; wire 0 is the most
significant bit of the index, as in PennyLane. To apply a gate on wires ``w_1 < ... <
w_k`` the vector is *viewed* (a free reshape) with the split shape

    (2**w_1, 2, 2**(w_2 - w_1 - 1), 2, ..., 2, 2**(n - w_k - 1))

so that each gate wire is its own axis of length 2 (axis ``2i + 1``) and the other wires
are merged into the axes between. Every gate is then one fused elementwise expression
over slices of that low-rank view, with no transposes of the state (XLA compiles such
rank-≤7 expressions fast; a rank-n tensor with one axis per qubit compiles slowly):

- diagonal gates multiply by a phase array broadcast over the other axes;
- controlled gates pass the blocks with some control bit 0 through unchanged and apply
  the base gate to the block where all controls are 1, then concatenate the blocks;
- Pauli rotations ``exp(-i θ/2 P)`` (RX, IsingXX/YY, PauliRot of any width) are
  ``cos(θ/2)`` times the state plus ``sin(θ/2)`` times its copy with the X/Y wires'
  bits flipped and a constant phase pattern applied: two scaled copies per amplitude;
- every other gate on k ≤ 3 wires (rotations, bit flips, SWAP, dense matrices) builds
  each of its ``2**k`` output blocks as a scalar combination of the input blocks and
  concatenates them; with a constant matrix (a bit flip, SWAP, CNOT's X) zero terms
  vanish and unit ones are plain copies, so such gates are pure data movement. Larger
  gates use tensordot.

Expectation values of Z words are one weighted sum of the probabilities; Pauli words
with X or Y letters are grouped by the wires they flip, and each group is one sum of
the state's blocks against their mirror blocks (`_flip_expval`), with no ``P ψ`` built.

A barrier after each pass keeps XLA from fusing chains of gates into one loop (see
`_barrier`), so each pass reads and writes the state once. `evolve` makes fewer passes
than there are gates: single-qubit gates wait per wire and are multiplied together,
then fused into the next controlled gate on that wire; consecutive multi-qubit Pauli
rotations that flip the same wires (an IsingXX·IsingYY bond) and diagonal gates are one
pass (`_apply_flip_group`); a trailing run of permutation
and diagonal gates is folded into the measurement (`split_tail`); and a repeated block of
gates runs as one ``lax.scan`` (`repeated_blocks`). `count_passes` reports the result.

The public entries are `run` and `run_points`: a batch of gate-argument vectors for one
tape structure goes through one ``jit(vmap(...))``, compiled once per structure (the
structure is a static argument, the arguments are data).
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess._ops import CATALOGUE, gate_matrix

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


def _static_matrix(name: str, hyper):
  """The matrix of an argument-free gate as a NumPy constant (``None`` otherwise)."""
  spec = CATALOGUE[name]
  if spec.n_params or spec.from_consts is not None:
    return None
  with jax.ensure_compile_time_eval():
    return np.asarray(gate_matrix(name, (), hyper))


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
  # Everything else, bit flips included, is a small matrix combined from slices: XLA's
  # reverse op (jnp.flip) inside these batched chains compiles pathologically slowly.
  if spec.from_consts is not None:  # QubitUnitary, its conjugate, a channel (_density)
    matrix = spec.from_consts(consts[hyper])
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


def _op_matrix(op, params, consts):
  values = [params[i] for i in op.param_index]
  from_consts = CATALOGUE[op.name].from_consts
  if from_consts is not None:
    return from_consts(consts[op.hyper])
  return gate_matrix(op.name, values, op.hyper)


def _controls_one_qubit(op) -> bool:
  """One control wire and a single-qubit base gate (CNOT, CY, CRX, CRY)."""
  spec = CATALOGUE[op.name]
  return spec.kind == "controlled" and spec.controls == 1 and len(op.wires) == 2


def _apply_controlled_choice(psi, u0, u1, control: int, target: int, n: int):
  """One pass: the 2×2 ``u0`` on ``target`` where ``control`` is 0, ``u1`` where it is 1."""
  view = _View((control, target), n)
  x = jnp.reshape(psi, view.shape)
  axis = [view.axis[control]]
  blocks = {(b,): _matrix_on(_slice(x, view, axis, (b,)), u, (target,), view)
            for b, u in ((0, u0), (1, u1))}
  return jnp.reshape(_assemble(blocks, axis), (-1,))


def _barrier(psi):
  # Each gate reads its input at several offsets (slices); without a barrier XLA may
  # fuse a whole chain of gates into one loop and recompute earlier gates once per
  # read — exponential in depth, in compile and run time alike.
  return jax.lax.optimization_barrier(psi)


# Multi-qubit Pauli rotations and diagonal gates on at most this many wires in all are
# multiplied into one pending operator ``A + B F`` (`_flip_group_key`).
_MAX_GROUP_WIRES = 4


def _flip_group_key(op):
  """The wires a multi-qubit gate flips when it can join a flip group (`_apply_flip_group`):
  ``frozenset()`` for a diagonal gate, its X/Y wires for a Pauli rotation; ``None`` for
  every other gate."""
  spec = CATALOGUE[op.name]
  if len(op.wires) < 2 or spec.kind not in ("pauli", "diagonal"):
    return None
  if spec.kind == "diagonal":
    return frozenset()
  return frozenset(w for w, p in zip(op.wires, spec.pauli(op.hyper)) if p in "XY")


def _apply_flip_group(psi, ops, wires: Sequence[int], flips: frozenset, params, n: int):
  """Several Pauli rotations that flip the same wires ``flips``, and diagonal gates, all on
  ``wires``, in one pass.

  Each factor is ``D`` or ``c I - i s D_P F`` with ``D``, ``D_P`` diagonal over ``wires``
  and ``F`` the bit flip of ``flips``; since ``F D = D^F F`` (``D^F(b) = D(b ⊕ flips)``)
  and ``F F = I``, their product is ``A + B F`` with two diagonal patterns, accumulated
  on ``2**len(wires)`` entries. The state is then read once: ``A ψ + B (F ψ)``, against
  two passes or more gate by gate (an IsingXX·IsingYY bond, a run of ZZ phases).
  """
  wires = sorted(wires)
  shape = (2,) * len(wires)
  real = np.finfo(psi.dtype).dtype
  flip_axes = tuple(wires.index(w) for w in sorted(flips))

  def on_wires(t, op_wires):  # a (2,)*k array in op_wires order onto `wires`' axes
    t = jnp.transpose(t, np.argsort([wires.index(w) for w in op_wires]))
    return jnp.reshape(t, [2 if w in op_wires else 1 for w in wires])

  def flipped(t):
    return jnp.flip(t, flip_axes) if flip_axes else t

  a = jnp.ones(shape, psi.dtype)
  b = None
  for op in ops:
    spec = CATALOGUE[op.name]
    values = [params[k] for k in op.param_index]
    if spec.kind == "diagonal":
      d = on_wires(jnp.reshape(spec.diagonal(*values, op.hyper).astype(psi.dtype),
                               (2,) * len(op.wires)), op.wires)
      a, b = a * d, (None if b is None else b * d)
      continue
    word, theta = spec.pauli(op.hyper), values[0]
    if spec.conjugate:  # conj(exp(-i θ/2 P)) = exp(i θ/2 P*), P* = (-1)**(#Y) P
      theta = theta if word.count("Y") % 2 else -theta
    phase = -1j * _word_phase(word, op.wires, wires)  # -i s D_P, its constant part
    c = jax.lax.convert_element_type(jnp.cos(theta / 2), real)
    s = jax.lax.convert_element_type(jnp.sin(theta / 2), real)
    sd = s * phase.astype(psi.dtype)
    new_a = c * a if b is None else c * a + sd * flipped(b)
    b = sd * flipped(a) if b is None else c * b + sd * flipped(a)
    a = new_a
  view = _View(wires, n)
  x = jnp.reshape(psi, view.shape)
  a = jnp.reshape(jnp.broadcast_to(a, shape), view.bcast(wires))
  if b is None:
    return jnp.reshape(_cmul(a, x), (-1,))
  b = jnp.reshape(jnp.broadcast_to(b, shape), view.bcast(wires))
  axes = [view.axis[w] for w in sorted(flips)]
  blocks = {}
  for bits in itertools.product((0, 1), repeat=len(axes)):
    blocks[bits] = jax.lax.add(
        _cmul(_slice(a, view, axes, bits), _slice(x, view, axes, bits)),
        _cmul(_slice(b, view, axes, bits), _slice(x, view, axes, tuple(1 - v for v in bits))))
  return jnp.reshape(_assemble(blocks, axes), (-1,))


def _evolve_fused(operations, n: int, params, consts, psi):
  """`evolve` of a run of gates (no repeated blocks): the fusion rules.

  Gates are fused so that the state is read and written fewer times:

  - single-qubit gates on a wire are multiplied into one pending 2×2 matrix, applied
    only when a multi-qubit gate needs the wire (or at the end); RY then RZ is one pass;
  - a pending matrix ``U`` on the target of a singly controlled one-qubit gate (CNOT,
    CY, CRX, CRY with base ``B``) is fused with it: ``U`` where the control is 0 and
    ``B U`` where it is 1, one pass for both gates.
  - consecutive multi-qubit Pauli rotations that flip the same wires and diagonal gates,
    on at most `_MAX_GROUP_WIRES` wires together, are one pass (`_apply_flip_group`).

  Gates on disjoint wires commute, so the order of passes may differ from the gate
  order; the result does not (up to rounding).
  """
  dtype = psi.dtype
  pending: dict[int, tuple] = {}  # wire -> (2x2 matrix, the op when it is a single one)
  group = None  # (wires, flipped wires, ops): the pending flip group

  def apply_one(psi, op):
    return _barrier(apply_gate(psi, op.name, op.wires, [params[k] for k in op.param_index],
                               op.hyper, consts, n))

  def flush_group(psi):
    nonlocal group
    if group is not None:
      wires, flips, ops = group
      psi = (apply_one(psi, ops[0]) if len(ops) == 1 else
             _barrier(_apply_flip_group(psi, ops, wires, flips, params, n)))
      group = None
    return psi

  def flush(psi, wires):
    for w in wires:
      if w in pending:
        matrix, single = pending.pop(w)
        if single is not None:  # its own (cheaper) path: diagonal, bit flip, ...
          psi = apply_gate(psi, single.name, single.wires,
                           [params[k] for k in single.param_index], single.hyper, consts, n)
        else:
          psi = apply_matrix(psi, matrix, (w,), n)
        psi = _barrier(psi)
    return psi

  for op in operations:
    if len(op.wires) == 1:
      w = op.wires[0]
      if group is not None and w in group[0]:
        psi = flush_group(psi)
      matrix = _static_matrix(op.name, op.hyper)
      matrix = jnp.asarray(_op_matrix(op, params, consts) if matrix is None else matrix, dtype)
      pending[w] = (matrix @ pending[w][0], None) if w in pending else (matrix, op)
      continue
    key = _flip_group_key(op)
    if key is not None:
      if group is not None:
        wires = group[0] | set(op.wires)
        if (len(wires) <= _MAX_GROUP_WIRES
            and (not key or not group[1] or key == group[1])):
          psi = flush(psi, op.wires)  # single-qubit gates before it, on its wires
          group = (wires, group[1] or key, group[2] + [op])
          continue
        psi = flush_group(psi)
      psi = flush(psi, op.wires)
      group = (set(op.wires), key, [op])
      continue
    psi = flush_group(psi)
    if _controls_one_qubit(op) and op.wires[1] in pending:
      control, target = op.wires
      psi = flush(psi, (control,))
      spec = CATALOGUE[op.name]
      base = _static_matrix(spec.base, op.hyper)
      if base is None:
        base = gate_matrix(spec.base, [params[k] for k in op.param_index], op.hyper)
      u, _ = pending.pop(target)
      psi = _barrier(_apply_controlled_choice(psi, u, jnp.asarray(base, dtype) @ u, control,
                                              target, n))
      continue
    psi = flush(psi, op.wires)
    psi = apply_one(psi, op)
  return flush(flush_group(psi), sorted(pending))


# A block of gates repeated this many times in a row, covering at least this many gates,
# runs as one lax.scan (compiled once) instead of being unrolled.
_SCAN_MIN_REPEATS = 3
_SCAN_MIN_GATES = 24
_SCAN_MAX_BLOCK = 256


def repeated_blocks(operations) -> list[tuple[int, int, int]]:
  """``(start, block, repeats)`` for each run of a repeated gate block, left to right.

  Two blocks repeat when their gates have the same names, wires and static extras (their
  arguments may differ): the layers of a layered ansatz. At each position the block
  length covering most gates is taken (the shortest among equals).
  """
  keys = [(op.name, op.wires, op.hyper) for op in operations]
  ids = {}
  codes = np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)
  out, i, m = [], 0, len(codes)
  while i < m:
    best = (0, 0, 0)  # (coverage, block, repeats)
    for b in range(1, min(_SCAN_MAX_BLOCK, (m - i) // _SCAN_MIN_REPEATS) + 1):
      tail = codes[i + b:]
      same = tail == codes[i:m - b]  # same[k]: gate i+b+k equals gate i+k
      run = len(same) if same.all() else int(np.argmin(same))
      repeats = 1 + run // b
      if repeats >= _SCAN_MIN_REPEATS and b * repeats > best[0]:
        best = (b * repeats, b, repeats)
    if best[0] >= _SCAN_MIN_GATES:
      out.append((i, best[1], best[2]))
      i += best[0]
    else:
      i += 1
  return out


def segments(operations) -> list[tuple]:
  """``operations`` split as `evolve` runs them, in order: ``("ops", ops, None)`` for
  unrolled runs and ``("scan", local_block, index)`` for repeated blocks, where
  ``local_block``'s gates index their arguments ``0..k-1`` and ``index`` (int,
  ``(repeats, k)``) maps them to each repetition's arguments."""
  out, done = [], 0
  for start, block, repeats in repeated_blocks(operations):
    out.append(("ops", operations[done:start], None))
    ops = operations[start:start + repeats * block]
    index = np.array([[k for op in ops[r * block:(r + 1) * block] for k in op.param_index]
                      for r in range(repeats)], dtype=np.int32).reshape(repeats, -1)
    local, k = [], 0
    for op in ops[:block]:
      local.append(op._replace(param_index=tuple(range(k, k + len(op.param_index)))))
      k += len(op.param_index)
    out.append(("scan", tuple(local), index))
    done = start + repeats * block
  out.append(("ops", operations[done:], None))
  return out


def evolve(operations, n: int, params, consts, psi=None):
  """The flat state, shape ``(2**n,)``, after ``operations`` from ``psi`` (``|0...0>``).

  A block of gates repeated several times in a row (`repeated_blocks`: the layers of a
  layered ansatz) runs as a ``lax.scan`` over its repetitions, each with its own
  arguments, so that deep circuits compile in the time of one layer. Everything else is
  unrolled with the fusion rules of `_evolve_fused`.
  """
  if psi is None:
    psi = initial_state(n, params.dtype)
  for kind, ops, index in segments(operations):
    if kind == "ops":
      psi = _evolve_fused(ops, n, params, consts, psi)
      continue

    def body(psi, idx, local=ops):
      return _evolve_fused(local, n, params[idx], consts, psi), None

    psi, _ = jax.lax.scan(body, psi, jnp.asarray(index))
  return psi


def count_passes(operations, n: int, consts=()) -> int:
  """How many passes over the state `evolve` makes for ``operations`` (after fusion).

  Read off the traced computation (one barrier per pass), so it counts what runs.
  ``consts``: the tape's constant matrices (needed when ``operations`` hold a
  QubitUnitary or a channel; `Tape.consts`).
  """
  n_params = max([k + 1 for op in operations for k in op.param_index], default=0)
  jaxpr = jax.make_jaxpr(lambda p: evolve(operations, n, p, tuple(consts)))(
      jax.ShapeDtypeStruct((n_params,), jnp.float32))

  def count(jaxpr):
    total = 0
    for e in jaxpr.eqns:
      if e.primitive.name == "optimization_barrier":
        total += 1
      elif e.primitive.name == "scan":
        total += e.params["length"] * count(e.params["jaxpr"].jaxpr)
    return total

  return count(jaxpr.jaxpr)


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
  if callable(measurement):  # computes itself: density matrices, readout (_density.py)
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


def simulate_raw(key, params, consts):
  """Raw outputs of one circuit: float array of shape ``(n_raw,)``.

  Args:
    key: the kernel key ``(operations, raw_measurements, n_wires)`` of a tape.
    params: float array of shape ``(n_params,)``.
    consts: tuple of complex arrays (QubitUnitary and Hermitian matrices).
  """
  operations, raw_measurements, n = key
  cut = split_tail(operations, raw_measurements)
  psi = evolve(operations[:cut], n, params, consts)
  return jnp.concatenate([measure(psi, m, consts, n, operations[cut:])
                          for m in raw_measurements])


def kernel_key(tape) -> tuple:
  """What the kernel compiles for: operations, raw measurements, number of wires.

  A tape with channels is simulated as a density matrix: its key is that of the
  vectorized density matrix, a state of ``2 * n_wires`` wires; readout error replaces
  the measurements by the readout-flipped estimator (`_density.kernel_key`).
  """
  if any(CATALOGUE[op.name].kind in ("channel", "readout") for op in tape.operations):
    from qhess import _density  # pylint: disable=import-outside-toplevel  (imports this)
    return _density.kernel_key(tape)
  return (tape.operations, tape.raw_measurements, tape.n_wires)


def kernel_wires(tape) -> int:
  """Wires of the vector the kernel evolves: ``n_wires``, ``2 * n_wires`` with channels."""
  return kernel_key(tape)[2]


# Amplitudes per vmapped chunk when no batch_size is given: about 2**17 was fastest at
# 12 wires on a 2-core CPU (2**21 was 3x slower: the chunk no longer fits in cache), and
# it bounds memory at any width (one 20-wire state per chunk).
DEFAULT_CHUNK_AMPLITUDES = 2**17


def default_batch_size(n_wires: int) -> int:
  """States per chunk when the caller gives none: ``max(1, 2**17 // 2**n_wires)``."""
  return max(1, DEFAULT_CHUNK_AMPLITUDES >> n_wires)


def _map_batched(fn, xs, batch_size, devices=None):
  """``vmap(fn)`` over the leading axis of ``xs``, at most ``batch_size`` rows at a time.

  With several ``devices`` each chunk is sharded over them (GSPMD partitions the vmap);
  chunks are padded to a multiple of the device count.
  """
  batch = xs[0].shape[0]
  n_dev = 1 if not devices else len(devices)
  # As few chunks as batch_size allows, of equal size: padding stays below one row per
  # chunk and device (a chunk of exactly batch_size could pad almost a whole chunk).
  n_chunks = 1 if batch_size is None else -(-batch // batch_size)
  chunk = -(-batch // n_chunks)
  chunk = -(-chunk // n_dev) * n_dev
  n_chunks = -(-batch // chunk)
  pad = n_chunks * chunk - batch
  if n_chunks == 1 and pad == 0 and n_dev == 1:
    return jax.vmap(fn)(*xs)
  # Pad to whole chunks (lax.map would otherwise compile the remainder separately);
  # padding rows repeat the first row and are dropped afterwards.
  sharding = None
  if n_dev > 1:
    mesh = jax.sharding.Mesh(np.asarray(devices), ("points",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "points"))

  def chunked(x):
    x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])])
    x = jnp.reshape(x, (n_chunks, chunk) + x.shape[1:])
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)

  def one_chunk(c):
    out = jax.vmap(fn)(*c)
    if sharding is not None:
      out = jax.lax.with_sharding_constraint(
          out, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec("points")))
    return out

  xs = tuple(chunked(x) for x in xs)
  out = one_chunk([x[0] for x in xs])[None] if n_chunks == 1 else jax.lax.map(one_chunk, xs)
  return jnp.reshape(out, (n_chunks * chunk,) + out.shape[2:])[:batch]


@functools.partial(jax.jit, static_argnames=("key", "batch_size"))
def _run(key, params, consts, batch_size):
  # `simulate_raw` is looked up at trace time, so tests can count traces.
  return _map_batched(lambda p: simulate_raw(key, p, consts), (params,), batch_size)


@functools.partial(jax.jit, static_argnames=("key", "batch_size", "devices"))
def _run_points(key, theta, index, shift, consts, batch_size, devices):
  def one(idx, s):  # a point differs from theta in (at most) two entries
    return simulate_raw(key, theta.at[idx].add(s.astype(theta.dtype)), consts)
  return _map_batched(one, (index, shift), batch_size, devices)


@functools.partial(jax.jit, static_argnames=("key", "schedule", "batch_size", "devices",
                                             "sampler"))
def _run_shared(key, theta, consts, schedule, batch_size, devices, sampler=None, extras=()):
  operations, raw_measurements, n = key
  # A sampler rotates the final state into its measurement bases: no tail folding then.
  cut = len(operations) if sampler else split_tail(operations, raw_measurements)
  bounds = schedule.bounds
  table = initial_state(n, theta.dtype)[None]  # (1, 2**n): the states at boundary 0
  order = np.asarray(schedule.order)
  first = 0  # offset of group j's points in `order`

  def segment_fn(j, table):
    def run_segment(row, idx, s):
      params = theta.at[idx].add(s.astype(theta.dtype))
      return evolve(operations[bounds[j]:bounds[j + 1]], n, params, consts, psi=table[row])
    return run_segment

  outs = []
  for j, group in enumerate(schedule.points):
    if len(group.rows):
      def run_point(row, idx, s, *ex, table=table, begin=bounds[j], end=bounds[j + 1]):
        params = theta.at[idx].add(s.astype(theta.dtype))
        # Only segment j holds shifted gates: later gates take the unshifted arguments,
        # so their matrices are computed once for the whole batch, not once per point.
        mid = min(max(begin, cut), end)
        psi = evolve(operations[begin:mid], n, params, consts, psi=table[row])
        psi = evolve(operations[mid:max(mid, cut)], n, theta, consts, psi=psi)
        if sampler:
          return sampler(psi, consts, *ex)
        return jnp.concatenate([measure(psi, m, consts, n, operations[max(begin, cut):])
                                for m in raw_measurements])
      members = order[first:first + len(group.rows)]
      first += len(group.rows)
      inputs = tuple(map(jnp.asarray, group)) + tuple(e[members] for e in extras)
      outs.append(_map_batched(run_point, inputs, batch_size, devices))
    if j < len(schedule.segments):
      table = _map_batched(segment_fn(j, table), tuple(map(jnp.asarray, schedule.segments[j])),
                           batch_size, devices)  # (parents alive at boundary j+1, 2**n)
  y = jnp.concatenate(outs)
  # Back to the plan's point order.
  return jnp.zeros_like(y).at[jnp.asarray(order)].set(y)


def run_points_shared(key, theta, schedule, consts, batch_size: int | None = None,
                      devices=None) -> jax.Array:
  """Like `run_points`, evaluating the points as a prefix-sharing `Schedule`.

  Returns:
    float array of shape ``(n_points, n_raw)``, in the plan's point order.
  """
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  return _run_shared(key, theta, tuple(consts), schedule, batch_size, devices)


def run(key, params, consts, batch_size: int | None = None) -> jax.Array:
  """Raw outputs of a batch of circuits sharing one structure.

  Args:
    key: `kernel_key` of the tape.
    params: float array of shape ``(batch, n_params)``.
    consts: tuple of complex arrays shared by the batch.
    batch_size: at most this many states are live at once (``None``: all).

  Returns:
    float array of shape ``(batch, n_raw)``.
  """
  return _run(key, params, tuple(consts), batch_size)


def run_points(key, theta, index, shift, consts, batch_size: int | None = None,
               devices=None) -> jax.Array:
  """Raw outputs at sparse shifted points ``theta + shift`` (a plan's points).

  Args:
    key: `kernel_key` of the tape.
    theta: float array of shape ``(n_params,)``, the unshifted gate arguments.
    index: int array of shape ``(n_points, 2)``: shifted argument indices.
    shift: float array of shape ``(n_points, 2)``: their shifts (0 where unused).
    consts: tuple of complex arrays shared by all points.
    batch_size: at most this many states are live at once (``None``: all).
    devices: ``None`` or a sequence of devices to shard the points over.

  Returns:
    float array of shape ``(n_points, n_raw)``.
  """
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  return _run_points(key, theta, jnp.asarray(index), jnp.asarray(shift), tuple(consts),
                     batch_size, devices)


@functools.partial(jax.jit, static_argnames=("key", "sampler", "batch_size"))
def _sample_run(key, params, consts, sampler, batch_size):
  operations, _, n = key
  return _map_batched(lambda p: sampler(evolve(operations, n, p, consts), consts), (params,),
                      batch_size)


def sample_points_shared(key, theta, schedule, consts, sampler, batch_size: int | None = None,
                         devices=None):
  """Sampled counterpart of `run_points_shared`: ``sampler`` applied to each final state.

  Returns:
    the stacked ``sampler`` outputs, shape ``(n_points, ...)``, in the plan's order.
  """
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  return _run_shared(key, theta, tuple(consts), schedule, batch_size, devices, sampler)


def sample_run(key, params, consts, sampler, batch_size: int | None = None):
  """Sampled counterpart of `run`: ``sampler`` applied to each final state.

  The sampling itself (bases, probabilities, counts) is `_shots`' business; the kernel
  only evolves the states, chunked by ``batch_size`` like the exact path. ``sampler`` is
  deterministic (no keys, no shots), so the random draws stay out of the kernel's graph
  and are made once for the whole batch.

  Args:
    key: `kernel_key` of the tape.
    params: float array of shape ``(batch, n_params)``.
    consts: tuple of complex arrays shared by the batch.
    sampler: hashable callable ``(psi, consts) -> array``, e.g. the measured marginal
      probabilities (`_shots.Marginals`).
    batch_size: at most this many states are live at once (``None``: all).

  Returns:
    the stacked ``sampler`` outputs, shape ``(batch, ...)``.
  """
  return _sample_run(key, params, tuple(consts), sampler, batch_size)


def final_state(tape) -> jax.Array:
  """The final state vector of a tape, complex array of shape ``(2**n_wires,)``."""
  return evolve(tape.operations, tape.n_wires, tape.params, tape.consts)
