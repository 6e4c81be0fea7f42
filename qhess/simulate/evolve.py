"""Statevector evolution: a tape's gates applied in fused passes over a flat state.

One gate on the state is `qhess.simulate.gates`; measurements are
`qhess.simulate.measure`; the batched, jitted entry points are `qhess.simulate.kernel`.

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
- sparse gates (Givens rotations: the excitation gates, IsingXY, FermionicSWAP,
  OrbitalRotation) combine only their nonzero entries: two input blocks per rotated
  output block, one (a phase or a copy) per other block, on up to 4 wires;
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

The kernel's entries (`qhess.simulate.kernel.run`, ``run_points``) send a batch of
gate-argument vectors for one tape structure through one ``jit(vmap(...))``, compiled once
per structure (the structure is a static argument, the arguments are data).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE, data_matrix, gate_matrix
from qhess.simulate.gates import (_View, _assemble, _cmul, _matrix_on, _slice, _static_matrix,
                                  _word_phase, apply_gate, apply_matrix, initial_state)


def _op_matrix(op, params, consts):
  values = [params[i] for i in op.param_index]
  if CATALOGUE[op.name].from_consts is not None:
    return data_matrix(op.name, values, op.hyper, consts)
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


def _fuse_controlled(psi, op, u, params, n: int):
  """One pass for a pending 2×2 ``u`` on the target of ``op``, a singly controlled
  one-qubit gate with base ``B`` (`_controls_one_qubit`): ``u`` where the control is 0,
  ``B u`` where it is 1."""
  spec = CATALOGUE[op.name]
  base = _static_matrix(spec.base, op.hyper)
  if base is None:
    base = gate_matrix(spec.base, [params[k] for k in op.param_index], op.hyper)
  control, target = op.wires
  return _apply_controlled_choice(psi, u, jnp.asarray(base, u.dtype) @ u, control, target, n)


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
          psi = apply_one(psi, single)
        else:
          psi = _barrier(apply_matrix(psi, matrix, (w,), n))
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
      psi = flush(psi, op.wires[:1])  # the control's pending gate; the target's is fused
      psi = _barrier(_fuse_controlled(psi, op, pending.pop(op.wires[1])[0], params, n))
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


