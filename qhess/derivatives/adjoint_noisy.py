"""The exact Hessian of a noisy circuit by a second-order adjoint sweep over its density
matrix, with no shifted circuits.

A noisy tape runs as its vectorized density matrix ``v`` (`qhess.simulate.density`), a
state of ``2n`` wires evolved by blocks ``v_k = B_k(θ) v_{k-1}``: each gate ``U`` as
``U ⊗ conj(U)`` (two kernel gates), each channel as its superoperator. Every raw output
is *linear* in the final ``v``: ``R = Re<λ_L, v_L>`` with a fixed ``λ_L`` (the
measurement's cotangent), so the gradient is the adjoint sum

    ∂R/∂θ_j = Σ_k Re<λ_k, ∂_j B_k v_{k-1}>,        λ_{k-1} = B_k† λ_k,

and its derivative along θ_i is again a backward sweep, of the tangents
``μ^(i)_k = ∂λ_k/∂θ_i``, which start at the blocks that hold θ_i and follow the λ's:

    μ^(i)_{k-1} = B_k† μ^(i)_k + (∂_i B_k)† λ_k,
    A_ij = Σ_k Re<μ^(i)_k, ∂_j B_k v_{k-1}>        (blocks of θ_j before those of θ_i),
    D_ij = Σ_k Re<λ_k, ∂_i ∂_j B_k v_{k-1}>         (both in one block),
    ∂²R/∂θ_i∂θ_j = A_ij + A_ji + D_ij.

So one backward sweep carries ``2 + P`` states (``v``, ``λ``, one ``μ`` per Hessian row)
through the blocks, after one forward sweep, against the shift rules' ``O(P²)`` circuits.
The forward states are not stored: ``v`` is un-computed through gates (``U ⊗ conj(U)``
is unitary), and restored at each channel (not invertible) from the state saved before it
in the forward sweep — one stored state per channel. The rows are processed in chunks of
``batch_size`` (the default: as many as fit `_STACK_BYTES`), each chunk one backward
sweep (`jax.lax.map`), so memory is ``(2 + chunk + channels)`` states whatever ``P``;
several raw outputs take one sweep each.

Gate derivatives are not written by hand, as in `qhess.derivatives.adjoint` (whose block
fusion this module reuses): a run of single-qubit gates on one wire is one 2×2 matrix,
differentiated by `jax.jacfwd` and contracted with the 2×2 cross matrices of the swept
states and ``v`` (one read of each); a multi-qubit gate's ``∂U v`` is the tangent of the
kernel's own gate application.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE
from qhess.derivatives import adjoint as _adjoint
from qhess.derivatives import evaluate as _evaluate
from qhess.simulate import evolve as sv
from qhess.simulate import gates as _gates
from qhess.simulate import kernel as _kernel
from qhess.simulate import measure as _measure
from qhess.simulate import memory as _memory
from qhess.simulate import noisy as _noisy


# The swept states of one chunk (v, λ and the chunk's μ's) take at most about this many
# bytes when no batch_size is given; more rows are split into chunks (one sweep each).
_STACK_BYTES = 2**29


def is_noisy(tape) -> bool:
  """Whether a tape has channels or readout error (this module's method applies)."""
  return any(CATALOGUE[op.name].kind in ("channel", "readout") for op in tape.operations)


def _is_channel(op) -> bool:
  return CATALOGUE[op.name].kind == "channel" or op.name == "Superoperator"


def _runs(operations) -> tuple:
  """The density key's operations as ``("gates", ops)`` and ``("channel", op)`` runs."""
  out, gates = [], []
  for op in operations:
    if _is_channel(op):
      if gates:
        out.append(("gates", tuple(gates)))
        gates = []
      out.append(("channel", op))
    else:
      gates.append(op)
  if gates:
    out.append(("gates", tuple(gates)))
  return tuple(out)


def _forward(runs, n: int, theta, consts):
  """The final vector and the vector before each channel (the backward sweep's restores)."""
  v = _gates.initial_state(n, theta.dtype)
  saved = []
  for kind, ops in runs:
    if kind == "gates":
      v = sv.evolve(ops, n, theta, consts, psi=v)
    else:
      saved.append(v)
      v = sv._barrier(_gates.apply_gate(v, ops.name, ops.wires, [], ops.hyper, consts, n))
  return v, saved


# ------------------------------------------------------------------ one block, backwards


def _real_overlaps(stack, tangents):
  """``Re<stack_r|t_a>``: float ``(rows, n_args)``, a row at a time (`jax.lax.map`:
  XLA's CPU reduction over the whole stack at once holds copies of it)."""
  return jax.lax.map(lambda s: 0.5 * _adjoint._overlaps(s[None], tangents)[0], stack)


def _cross(stack, v, wire: int, n: int):
  """``C[r, a, b] = Σ_rest conj(stack_r[a, rest]) v[b, rest]`` on ``wire``: complex
  ``(rows, 2, 2)``, a row at a time (as `_real_overlaps`), each one fused reduction of
  the broadcast product (no slices of the row)."""
  view = _gates._View((wire,), n)
  x = jnp.reshape(v, view.shape)[None, :, None]  # (1, pre, 1, 2, post)

  def one(s):
    row = jnp.reshape(s, view.shape)[:, :, None]  # (pre, 2, 1, post)
    return jnp.sum(jnp.conj(row)[None] * x, axis=(0, 1, 4))

  return jax.lax.map(one, stack)


def _gate_pieces(v, lam, block, params, consts, n: int):
  """A multi-qubit gate's ``∂U v`` and ``Re<λ|∂_a∂_b U v>``: complex ``(k, N)`` and
  float ``(k, k)`` for its ``k`` arguments (tangents of the kernel's gate application)."""
  op, p = block[0], jnp.stack(list(params[0]))
  k = p.shape[0]
  basis = jnp.eye(k, dtype=p.dtype)

  def apply(t):
    return _gates.apply_gate(v, op.name, op.wires, [t[a] for a in range(k)], op.hyper,
                             consts, n)

  def tangent(t, a):
    return jax.jvp(apply, (t,), (basis[a],))[1]

  tangents = jnp.stack([tangent(p, a) for a in range(k)])
  second = [[jax.jvp(lambda t, a=a: tangent(t, a), (p,), (basis[b],))[1]
             for b in range(k)] for a in range(k)]
  dd = jnp.stack([0.5 * _adjoint._overlaps(lam[None], jnp.stack(row))[0] for row in second])
  return tangents, dd


def _run_matrix(block, consts):
  def matrix(t):
    return _adjoint._block_matrix(block, t, consts)
  return matrix


def _sources(lam, block, params, consts, n: int):
  """``(∂_a B)† λ`` for the block's arguments: complex ``(k, N)`` (where the μ's start)."""
  pvec = jnp.stack([p for ps in params for p in ps])
  basis = jnp.eye(pvec.shape[0], dtype=pvec.dtype)
  if len(block[0].wires) > 1:
    op = block[0]

    def inverse(t):
      return _adjoint.apply_inverse(lam, op, [t[a] for a in range(t.shape[0])], consts, n)

    return jnp.stack([jax.jvp(inverse, (pvec,), (e,))[1] for e in basis])
  dm = jax.jacfwd(_run_matrix(block, consts))(pvec)  # (2, 2, k)
  daggers = jnp.conj(jnp.moveaxis(dm, 2, 0)).swapaxes(1, 2).astype(lam.dtype)
  return jax.vmap(lambda m: _gates.apply_matrix(lam, m, block[0].wires, n))(daggers)


def _block_derivatives(v, stack, block, params, consts, n: int):
  """``(g, dd)`` of one block: ``g[r, a] = Re<stack_r|∂_a B v>`` float ``(rows, k)``
  (row 0, ``v`` itself, unused: slicing it off would copy the stack) and
  ``dd[a, b] = Re<λ|∂_a∂_b B v>`` (``λ = stack[1]``)."""
  if len(block[0].wires) > 1:
    tangents, dd = _gate_pieces(v, stack[1], block, params, consts, n)
    return _real_overlaps(stack, tangents), dd
  # A run of single-qubit gates on one wire: its 2×2 matrix's derivatives against the
  # cross matrices C_r[a, b] = Σ_rest conj(stack_r[a, rest]) v[b, rest].
  pvec = jnp.stack([p for ps in params for p in ps])
  matrix = _run_matrix(block, consts)
  dm = jax.jacfwd(matrix)(pvec)  # (2, 2, k)
  d2m = jax.jacfwd(jax.jacfwd(matrix))(pvec)  # (2, 2, k, k)
  cross = _cross(stack, v, block[0].wires[0], n)  # (rows, 2, 2)
  g = jnp.real(jnp.einsum("abk,rab->rk", dm.astype(cross.dtype), cross))
  dd = jnp.real(jnp.einsum("abkl,ab->kl", d2m.astype(cross.dtype), cross[1]))
  return g, dd


def _un_compute(stack, block, params, consts, n: int):
  """``B†`` on every swept state (``B† = B⁻¹`` on ``v``: a block of gates is unitary);
  no barrier yet (the sources are added first, `_block_step`)."""
  if len(block) == 1:
    def inverse(s):
      return _adjoint.apply_inverse(s, block[0], params[0], consts, n)
  else:
    pvec = [p for ps in params for p in ps]
    dagger = _adjoint._dagger(_adjoint._block_matrix(block, pvec, consts))

    def inverse(s):
      return _gates.apply_matrix(s, dagger.astype(s.dtype), block[0].wires, n)
  return jax.vmap(inverse)(stack)


def _block_step(carry, block, theta, consts, n: int, rows, need: frozenset):
  """One block of the backward sweep: ``carry = (stack, grad, a, d)`` with ``stack``
  ``(2 + c, N)`` = v, λ, the chunk's μ's after the block (before it on return)."""
  stack, grad, a, d = carry
  params = [[theta[k] for k in op.param_index] for op in block]
  index = np.asarray([k for op in block for k in op.param_index], dtype=np.int64)
  prev = _un_compute(stack, block, params, consts, n)
  wanted = np.asarray([k in need for k in index], dtype=bool)
  if not wanted.any():
    return sv._barrier(prev), grad, a, d
  keep, cols = np.nonzero(wanted)[0], index[wanted]
  sources = _sources(stack[1], block, params, consts, n) if rows.shape[0] else None
  for s, col in zip(keep, cols if rows.shape[0] else ()):  # μ^(col) starts: (∂B)† λ
    hit = rows == col
    pos = 2 + jnp.argmax(hit)
    row = jax.lax.dynamic_index_in_dim(prev, pos, keepdims=True)
    row = row + jnp.where(jnp.any(hit), sources[s], 0)[None]
    prev = jax.lax.dynamic_update_index_in_dim(prev, row, pos, 0)
  # Updated before the barrier: rows of a barrier's output are updated in a copy.
  prev = sv._barrier(prev)
  g, dd = _block_derivatives(prev[0], stack, block, params, consts, n)
  grad = grad.at[cols].add(g[1, keep])
  a = a.at[:, cols].add(g[2:, keep])
  d = d.at[cols[:, None], cols[None, :]].add(dd[np.ix_(keep, keep)])
  # The reductions read the stack after the block: done before the next block starts, so
  # that at most two stacks are alive (XLA would otherwise defer them).
  return sv._barrier((prev, grad, a, d))


# ------------------------------------------------------------------ one sweep


def _sweep(runs, n: int, theta, consts, v_final, saved, lam, rows, need: frozenset,
           report):
  """One backward sweep for the adjoint state ``lam`` and the μ rows ``rows`` (global
  argument indices, ``P`` for padding): ``(grad (P,), a (c, P), d (P, P))``."""
  p, c = theta.shape[0], rows.shape[0]
  real = theta.dtype
  stack = jnp.concatenate([v_final[None], lam[None], jnp.zeros((c,) + lam.shape, lam.dtype)])
  carry = (stack, jnp.zeros(p, real), jnp.zeros((c, p), real), jnp.zeros((p, p), real))
  saved = list(saved)
  for kind, ops in reversed(runs):
    stack, grad, a, d = carry
    if kind == "channel":  # adjoint of the superoperator; v from the forward sweep
      swept = jax.vmap(lambda s, op=ops: _adjoint.apply_inverse(s, op, [], consts, n))(stack[1:])
      carry = (sv._barrier(jnp.concatenate([saved.pop()[None], swept])), grad, a, d)
      continue
    for block in reversed(_adjoint._blocks(ops)):
      carry = _block_step(carry, block, theta, consts, n, rows, need)
    if report is not None:
      # The dependency is the small gradient, not the stack (a callback on a slice of
      # the stack kept more stacks alive: 6.5 GiB against 3.7 GiB at 10 × 2).
      jax.debug.callback(functools.partial(_kernel._report_progress, progress=report), 1,
                         carry[1][:1])
  return carry[1:]


def _adjoint_states(key, v, consts):
  """Raw values ``(n_raw,)`` and the adjoint states ``λ_r`` ``(n_raw, N)`` with
  ``R_r = Re<λ_r, v>`` (every raw output is linear in the density vector)."""
  _, raw_measurements, n = key

  def measure(v):
    return jnp.concatenate([_measure.measure(v, m, consts, n) for m in raw_measurements])

  value, vjp = jax.vjp(measure, v)
  # For a real-linear f(v) = Re Σ conj(λ) v, JAX's cotangent is conj(λ).
  (ct,) = jax.vmap(vjp)(jnp.eye(value.shape[0], dtype=value.dtype))
  return value, jnp.conj(ct)


@functools.partial(jax.jit, static_argnames=("key", "need", "chunks", "report"))
def _run(key, theta, consts, need, chunks, report=None):
  operations, _, n = key
  runs = _runs(operations)
  v_final, saved = _forward(runs, n, theta, consts)
  value, lam = _adjoint_states(key, v_final, consts)
  n_raw = value.shape[0]
  rows = jnp.asarray(chunks, dtype=jnp.int32)  # (n_chunks, c)
  n_chunks = rows.shape[0]
  need = frozenset(need)

  def one(item):
    r, j = item // n_chunks, item % n_chunks
    return _sweep(runs, n, theta, consts, v_final, saved, lam[r], rows[j], need, report)

  grad, a, d = jax.lax.map(one, jnp.arange(n_raw * n_chunks))
  p = theta.shape[0]
  grad = jnp.reshape(grad, (n_raw, n_chunks, p))[:, 0]
  d = jnp.reshape(d, (n_raw, n_chunks, p, p))[:, 0]
  a = jnp.reshape(a, (n_raw, -1, p))  # rows of all chunks, padding rows last
  flat = jnp.reshape(rows, (-1,))
  a = jnp.zeros((n_raw, p, p), a.dtype).at[:, flat].add(a, mode="drop")
  return value, grad, a + jnp.swapaxes(a, 1, 2) + d


# ------------------------------------------------------------------ the entry point


def row_chunks(rows: Sequence[int], p: int, n_wires: int, dtype,
               batch_size: int | None) -> tuple:
  """The Hessian rows in chunks of equal size (padded with ``p``), one sweep each:
  ``batch_size`` rows, or as many as keep a chunk's swept states within `_STACK_BYTES`."""
  rows = [int(k) for k in rows]
  if not rows:
    return ((),)
  state = 2**n_wires * 2 * np.dtype(dtype).itemsize
  size = batch_size or max(1, _STACK_BYTES // state - 2)
  n_chunks = -(-len(rows) // size)
  size = -(-len(rows) // n_chunks)
  rows += [p] * (n_chunks * size - len(rows))
  return tuple(tuple(rows[i * size:(i + 1) * size]) for i in range(n_chunks))


def _check_memory(key, tape, chunks, what: str) -> None:
  """Refuses a sweep whose states cannot fit: the chunk's swept states (with working
  copies), the λ's, and one stored state per channel."""
  n2, dtype = key[2], tape.params.dtype
  channels = sum(1 for op in key[0] if _is_channel(op))
  n_raw = sum(m.raw_size for m in tape.raw_measurements)
  state = 2**n2 * 2 * np.dtype(dtype).itemsize
  stack = 2 + len(chunks[0])
  need = (stack * _memory.WORKING_COPIES + channels + n_raw + 1) * state
  avail = _memory.available_memory(None) if need > 2**26 else None
  if avail is None or need <= avail:
    return
  fit = avail // state - channels - n_raw - 1
  hint = (f"pass batch_size={max(1, fit // _memory.WORKING_COPIES - 2)} (Hessian rows per "
          "sweep)" if fit >= 3 * _memory.WORKING_COPIES else
          'use evaluation="independent" (one density matrix at a time)')
  raise ValueError(
      f"{what}: the noisy adjoint method sweeps {stack} density matrices of "
      f"{tape.n_wires} wires ({_memory._size(state)} each) and stores {channels} (one per "
      f"channel): about {_memory._size(need)}, more than the {_memory._size(avail)} "
      f"available; {hint}.")


def derivatives(tape, mask: np.ndarray, *, grad_args: Sequence[int] = (),
                need_value: bool = False, hessian: bool = True,
                batch_size: int | None = None, what: str = "qhess.hessian",
                progress: bool = False):
  """R0, ∂R and ∂²R of a noisy tape's raw outputs at its arguments, exactly, by the
  second-order adjoint sweep of the module doc (the layout of
  `qhess.derivatives.adjoint.derivatives`).

  Args:
    tape: the recorded `Tape` (channels and/or readout error; pruned to its light cone).
    mask: bool array ``(P, P)``, symmetric: the Hessian entries to compute (others 0).
    grad_args: arguments whose first derivative is returned (others 0).
    need_value: return R0 (it is computed anyway).
    hessian: ``False``: first derivatives only (one sweep of ``v`` and ``λ``).
    batch_size: Hessian rows per backward sweep (``None``: as many as fit `_STACK_BYTES`).
    what: the caller, for errors and progress.
    progress: report each swept run of gates (`qhess.simulate.kernel.Progress`).

  Returns:
    ``(value, grad, hess)``: float arrays ``(n_raw,)``, ``(n_raw, P)``, ``(n_raw, P, P)``.

  Raises:
    ValueError: when the swept states cannot fit in memory.
  """
  key = _noisy.density_key(tape)
  p, dtype = tape.num_params, tape.params.dtype
  mask = np.asarray(mask, dtype=bool)
  rows = np.nonzero(mask.any(axis=1))[0] if hessian else np.zeros(0, np.int64)
  need = frozenset(int(k) for k in np.concatenate([rows, np.asarray(grad_args, np.int64)]))
  chunks = row_chunks(rows, p, key[2], dtype, batch_size)
  _check_memory(key, tape, chunks, what)
  report = None
  if progress:
    n_raw = sum(m.raw_size for m in tape.raw_measurements)
    steps = sum(1 for kind, _ in _runs(key[0]) if kind == "gates")
    report = _kernel.Progress(f"{what} (noisy adjoint, runs of gates swept)",
                              n_raw * len(chunks) * steps)
  value, grad, hess = _run(key, tape.params, tuple(tape.consts), tuple(sorted(need)),
                           chunks, report)
  hess = jnp.where(mask, hess, 0) if hessian else jnp.zeros_like(hess)
  grad = jnp.where(np.isin(np.arange(p), np.asarray(grad_args, np.int64)), grad, 0)
  return (value if need_value else jnp.zeros_like(value)), grad, hess


# ------------------------------------------------------------------ the cost model

# `evaluation="auto"` for a noisy tape: the shift rules apply `Schedule.gate_applications`
# (prefix-shared) or T·L (independent) kernel gates to one density vector each; a sweep
# applies each of the L kernel gates to its 2 + c swept states and reads them once more
# per parametrized gate, once per raw output and row chunk, after one forward pass.
# Measured on this project's 2-core CPU (bench/results/noise-adjoint-2026-12-08-vm.md):
# at 10 × 2 (HEA, P = 40) the model's units are 310,000 (shift, T = 2381) against 8,000
# (sweeps) for about 7 minutes against 18 s: a swept-state unit costs about 1.6 shift
# units (`_SWEEP_PASS_COST`, rounded up); the margin is the pure adjoint's. The sweep
# compiles about 4x longer than the shift evaluation (4 × 2: 5.4 s against 1.4 s, warm
# 0.5 ms against 2.4 ms), so below `_MIN_SWEEP_WORK` amplitude updates of shift work (a
# few hundred ms) the shift rules are kept.
_SWEEP_PASS_COST = 2.0
_MIN_SWEEP_WORK = 2**26


def sweep_units(tape, rows: int, batch_size: int | None = None) -> int:
  """The noisy adjoint's cost in gate applications to one density vector."""
  key = _noisy.density_key(tape)
  ops = key[0]
  param_ops = sum(1 for op in ops if op.param_index)
  n_raw = sum(m.raw_size for m in tape.raw_measurements)
  chunks = row_chunks(range(rows), rows, key[2], tape.params.dtype, batch_size)
  per_sweep = (2 + len(chunks[0])) * (len(ops) + param_ops)
  return len(ops) + n_raw * len(chunks) * per_sweep


def shift_units(tape, plan, opts) -> int:
  """The shift evaluation's cost in the same units: the prefix-sharing schedule's gate
  applications, or T·L independently (`qhess.derivatives.evaluate._shared_schedule`)."""
  schedule = _evaluate._shared_schedule(tape, plan, opts)
  if schedule is not None:
    return int(schedule.gate_applications)
  return plan.n_points * len(_kernel.kernel_key(tape)[0])


def pays(tape, plan, opts, rows: int) -> bool:
  """Whether `evaluation="auto"` runs the noisy adjoint method on ``tape`` (pruned to its
  light cone, with channels or readout error) for ``rows`` Hessian rows instead of
  ``plan``'s shifted circuits; never with custom shifts (the user asked for those rules)."""
  if opts.custom_shifts or rows == 0:
    return False
  shift = shift_units(tape, plan, opts)
  if shift * 2**_kernel.kernel_wires(tape) < _MIN_SWEEP_WORK:
    return False
  sweep = _SWEEP_PASS_COST * sweep_units(tape, rows, opts.batch_size)
  return _evaluate._ADJOINT_MARGIN * sweep < shift
