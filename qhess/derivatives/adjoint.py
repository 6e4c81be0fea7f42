"""Adjoint evaluation: shift one index, adjoint-differentiate the other.

Row ``i`` of the Hessian of the raw outputs R(θ) is the derivative along θ_i of the
gradient, and the gradient is a trigonometric polynomial in θ_i with the same
frequencies as R, so the first-order shift rule of argument ``i`` (2R_i points,
`_shift_rules.first_order`) applied to the *gradients* of the shifted circuits is exact:

    ∂²R/∂θ_i∂θ_j = Σ_s c_{i,s} ∂R/∂θ_j (θ + s e_i).

Each shifted circuit's Jacobian ∂R/∂θ comes from the adjoint method (Jones and Gacon,
"Efficient calculation of gradients in classical simulations of variational quantum
algorithms", arXiv:2009.02823): one forward pass to ψ_L, the adjoint states
λ_r = M_r ψ_L of the raw outputs ``R_r = <ψ_L|M_r|ψ_L>``, then one backward pass that
un-computes ψ_{k-1} = U_k† ψ_k and λ_{k-1} = U_k† λ_k gate by gate and accumulates

    ∂R_r/∂θ_a = 2 Re <λ_{r,k}| ∂U_k/∂θ_a |ψ_{k-1}>     (θ_a an argument of gate k).

Only ψ, the λ's and one derivative state are alive at any time, whatever the depth, so
memory is O(batch · (2 + n_raw) states); runs of repeated layers are a reversed
``lax.scan``, as in the forward kernel. For many raw outputs (``probs`` of several
wires) forward mode is cheaper: when a circuit has more raw outputs than needed
arguments, its Jacobian is `jax.jacfwd` through the kernel instead (memory O(P) states,
still independent of the depth).

The shifted circuits are one batch (``vmap``, chunked by ``batch_size`` and sharded over
``devices`` like the shift-rule kernel), and the shift coefficients are contracted
against their stacked values and Jacobians. The result is symmetrised, ``(H + Hᵀ)/2``.

Gate derivatives are not written by hand. For a multi-qubit gate, ``∂U/∂θ_a ψ`` is the
tangent of the kernel's own gate application (`qhess.simulate.gates.apply_gate`) along θ_a
(`jax.jvp`), so every gate of the catalogue, with its fast path (diagonal, controlled,
Pauli rotation, dense), differentiates itself. A run of single-qubit gates on one wire
is one 2×2 matrix ``B(θ)``: its derivatives (`jax.jacfwd` of the matrix) are contracted
with the cross matrix ``C_ab = Σ_rest conj(λ[a, rest]) ψ[b, rest]``, one read of ψ and
λ for all of the run's arguments (`_cross`).
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.shift import rules as _shift_rules
from qhess.simulate import evolve as sv
from qhess.circuits.catalogue import CATALOGUE, Spectrum, data_matrix, gate_matrix
from qhess.circuits.generator_matrices import dagger_entries
from qhess.simulate import memory as _memory
from qhess.simulate import gates as _gates
from qhess.simulate import measure as _measure
from qhess.simulate import kernel as _kernel


# ------------------------------------------------------------------ one gate, backwards


def _dagger(matrix):
  if isinstance(matrix, np.ndarray):
    return np.conj(matrix).T
  return jnp.conj(jnp.swapaxes(matrix, -1, -2))


def _inverse_on(x, name: str, wires: Sequence[int], params, hyper, consts, view):
  """``U†`` of one catalogue gate on the split view ``x``.

  Mirrors `qhess.simulate.gates._gate_on`.
  """
  spec = CATALOGUE[name]
  if spec.kind == "controlled":
    c = spec.controls
    axes = [view.axis[w] for w in wires[:c]]
    blocks = {bits: _gates._slice(x, view, axes, bits)
              for bits in itertools.product((0, 1), repeat=c)}
    ones = (1,) * c
    blocks[ones] = _inverse_on(blocks[ones], spec.base, wires[c:], params, hyper, consts,
                               view)
    return _gates._assemble(blocks, axes)
  if spec.kind == "diagonal":
    diag = jnp.conj(spec.diagonal(*params, hyper)).astype(x.dtype)
    return _gates._cmul(view.place(jnp.reshape(diag, (2,) * len(wires)), wires), x)
  if spec.kind == "sparse":  # U† of a Givens rotation: its entries transposed, conjugated
    return _gates._sparse_on(x, dagger_entries(spec.entries(*params, hyper)), wires, view)
  if spec.from_consts is not None:  # QubitUnitary, Evolution
    matrix = data_matrix(name, params, hyper, consts)
  else:
    matrix = _gates._static_matrix(name, hyper)
    if matrix is None:
      matrix = gate_matrix(name, params, hyper)
  return _gates._matrix_on(x, _dagger(matrix), wires, view)


def apply_inverse(psi, op, params, consts, n: int):
  """``U†ψ`` for the gate ``op`` with arguments ``params`` (a sequence of scalars)."""
  view = _gates._View(op.wires, n)
  out = _inverse_on(jnp.reshape(psi, view.shape), op.name, op.wires, params, op.hyper,
                    consts, view)
  return jnp.reshape(out, (-1,))


def gate_tangents(psi, op, params, consts, n: int):
  """``∂U/∂θ_a ψ`` for each argument ``a`` of ``op``: complex array ``(n_args, 2**n)``.

  The tangent of the kernel's own gate application, so it is exact for every gate kind.
  """
  p = jnp.stack(list(params))

  def apply(t):
    return _gates.apply_gate(psi, op.name, op.wires, [t[a] for a in range(len(params))],
                         op.hyper, consts, n)

  basis = jnp.eye(len(params), dtype=p.dtype)
  return jnp.stack([jax.jvp(apply, (p,), (basis[a],))[1] for a in range(len(params))])


def _overlaps(lam, tangents):
  """``2 Re <λ_r|t_a>``: float array ``(n_lam, n_args)``, in real arithmetic."""
  # Elementwise products and a sum, not a dot: XLA's CPU dot of a (1, N) by (N, 1)
  # block, batched over the points, is many times slower than the fused reduction.
  lam, tangents = lam[:, None], tangents[None]
  prod = (jax.lax.real(lam) * jax.lax.real(tangents)
          + jax.lax.imag(lam) * jax.lax.imag(tangents))
  return 2 * jnp.sum(prod, axis=-1)


def _blocks(ops) -> list[tuple]:
  """The backward pass's fusion of a run of gates, in forward order: each block is one
  multi-qubit gate, or the run of single-qubit gates on one wire between two gates that
  touch it (as `qhess.simulate.evolve._evolve_fused` gathers them: gates on other wires commute)."""
  blocks, pending = [], {}
  for op in ops:
    if len(op.wires) == 1:
      pending.setdefault(op.wires[0], []).append(op)
      continue
    for w in op.wires:
      if w in pending:
        blocks.append(tuple(pending.pop(w)))
    blocks.append((op,))
  return blocks + [tuple(pending.pop(w)) for w in sorted(pending)]


def _op_matrix(op, params, consts):
  if CATALOGUE[op.name].from_consts is not None:  # QubitUnitary, Evolution
    return data_matrix(op.name, params, op.hyper, consts)
  matrix = _gates._static_matrix(op.name, op.hyper)
  return gate_matrix(op.name, params, op.hyper) if matrix is None else jnp.asarray(matrix)


def _cross(lam, psi, wire: int, n: int):
  """``C[r, a, b] = Σ_rest conj(λ_r[a, rest]) ψ[b, rest]`` on ``wire``: complex
  ``(n_lam, 2, 2)``, as sums of complex products (XLA's CPU reduction of the complex
  product is faster than of its real spelling)."""
  view = _gates._View((wire,), n)
  x = jnp.reshape(psi, view.shape)
  lv = jnp.reshape(lam, (lam.shape[0],) + view.shape)
  rows = []
  for a in (0, 1):
    la = jax.lax.conj(jax.lax.slice_in_dim(lv, a, a + 1, axis=2))
    rows.append(jnp.stack([
        jnp.sum(jax.lax.mul(la, jax.lax.slice_in_dim(x, b, b + 1, axis=1)[None]),
                axis=(1, 2, 3)) for b in (0, 1)], axis=-1))
  return jnp.stack(rows, axis=1)


def _block_matrix(block, pvec, consts):
  """The matrix of a run of single-qubit gates (or of one gate) as a function of its
  arguments ``pvec`` (the block's arguments in order): complex ``(2**k, 2**k)``."""
  matrix, k = None, 0
  for op in block:
    m = len(op.param_index)
    u = _op_matrix(op, [pvec[k + a] for a in range(m)], consts)
    k += m
    matrix = u if matrix is None else u @ matrix
  return matrix


def _sparse_grad(prev_psi, lam, op, params, n: int):
  """``2 Re <λ|∂U/∂θ_a|ψ>`` of a ``"sparse"`` gate (a Givens rotation, phases on the rest):
  float ``(n_lam, n_args)``.

  Only its entries that depend on θ have a derivative (a constant 1 has none: for the
  excitation gates, 4 of 16 or 18 entries), so the overlap is a sum over those entries
  ``(r, c)`` of ``∂v_rc · Σ conj(λ[r]) ψ[c]`` on the gate's blocks: two blocks of
  ``2**n / 2**k`` amplitudes each, not a tangent state of the whole register (and no
  block assembled back into one).
  """
  spec = CATALOGUE[op.name]
  k = len(op.wires)
  keys = [key for key, v in sorted(spec.entries(*params, op.hyper).items())
          if not isinstance(v, (np.generic, np.ndarray, complex, float, int))]
  if not keys:
    return jnp.zeros((lam.shape[0], len(params)), np.finfo(prev_psi.dtype).dtype)

  def values(p):
    entries = spec.entries(*[p[a] for a in range(len(params))], op.hyper)
    return jnp.stack([jnp.asarray(entries[key]) * (1 + 0j) for key in keys])

  deriv = jax.jacfwd(values)(jnp.stack(list(params))).astype(prev_psi.dtype)  # (E, n_args)
  view = _gates._View(op.wires, n)
  axes = [view.axis[w] for w in op.wires]
  bits = list(itertools.product((0, 1), repeat=k))
  x = jnp.reshape(prev_psi, view.shape)
  lv = jnp.reshape(lam, (lam.shape[0],) + view.shape)
  cross = []
  for r, c in keys:  # Σ conj(λ_l[r]) ψ[c] over the block: complex (n_lam,)
    lam_r = _block(lv, [a + 1 for a in axes], bits[r])
    psi_c = _block(x, axes, bits[c])
    prod = jax.lax.mul(jax.lax.conj(lam_r), psi_c[None])
    cross.append(jnp.sum(prod, axis=tuple(range(1, prod.ndim))))
  cross = jnp.stack(cross, axis=1)  # (n_lam, E)
  # Σ_e cross[l, e] deriv[e, a] as products and a sum (not a dot: XLA's CPU dot of these
  # tiny batched operands compiles and runs slowly)
  return 2 * jnp.sum(jnp.real(cross[:, :, None] * deriv[None]), axis=1)


def _block(x, axes, bits):
  """``x`` with axis ``axes[i]`` fixed to ``bits[i]`` (kept, length 1)."""
  start, limit = [0] * x.ndim, list(x.shape)
  for a, b in zip(axes, bits):
    start[a], limit[a] = b, b + 1
  return jax.lax.slice(x, start, limit)


def _block_grad(prev_psi, lam, block, params, consts, n: int):
  """``2 Re <λ|∂B/∂θ_a|ψ>`` for the block's arguments: float ``(n_lam, n_args)``.

  A multi-qubit gate takes one tangent state ``∂B/∂θ_a ψ`` per argument, reduced with
  the λ's; a run of single-qubit gates contracts its matrix derivatives with the 2×2
  cross matrix of λ and ψ on its wire (`_cross`), one read of both for all arguments.
  """
  if len(block[0].wires) > 1 and CATALOGUE[block[0].name].kind == "sparse":
    return _sparse_grad(prev_psi, lam, block[0], params[0], n)
  if len(block[0].wires) > 1:  # a multi-qubit gate: the tangent of its own fast path
    return _overlaps(lam, gate_tangents(prev_psi, block[0], params[0], consts, n))
  # Single-qubit gates on one wire: <λ|∂B ψ> = Σ_ab ∂B_ab C_ab with the 2×2 cross matrix
  # C_ab = Σ_rest conj(λ[a, rest]) ψ[b, rest], read once for all of the run's arguments
  # (a tangent state per argument reads ψ and λ once each: at 20 wires, where passes
  # are bound by memory bandwidth, that was most of the backward pass).
  pvec = jnp.stack([p for ps in params for p in ps])
  dm = jax.jacfwd(lambda v: _block_matrix(block, v, consts))(pvec)  # (2, 2, n_args)
  cross = _cross(lam, prev_psi, block[0].wires[0], n)  # (n_lam, 2, 2)
  dm = dm.astype(cross.dtype)
  return 2 * jnp.real(jnp.einsum("abk,lab->lk", dm, cross))


def _backward_block(states, block, params, consts, n: int, grad: bool):
  """One block of the backward pass.

  Args:
    states: complex array ``(1 + n_lam, 2**n)``: ψ then the adjoint states λ after the
      block.
    block: a tuple of operations (`_blocks`).
    params: per operation, the sequence of its argument scalars.
    grad: whether to compute this block's derivatives.

  Returns:
    ``(states before the block, g)`` with ``g`` float ``(n_lam, n_args)`` (``None``
    without grad), ``n_args`` the block's arguments in order.
  """
  if len(block) == 1:  # one gate: its own fast path (diagonal, controlled, ...)
    def inverse(s):
      return apply_inverse(s, block[0], params[0], consts, n)
  else:  # a run on one wire: one 2×2 pass
    pvec = [p for ps in params for p in ps]
    dagger = _dagger(_block_matrix(block, pvec, consts))

    def inverse(s):
      return _gates.apply_matrix(s, dagger.astype(s.dtype), block[0].wires, n)
  # ψ and the λ's are un-computed in one pass over the stacked states.
  prev = sv._barrier(jax.vmap(inverse)(states))
  g = _block_grad(prev[0], states[1:], block, params, consts, n) if grad else None
  return prev, g


# ------------------------------------------------------------------ one circuit


def _backward_run(states, ops, params, consts, n: int, need: frozenset):
  """Backward over a run of gates; ``(states, [(param_index, g (n_lam, k))])``."""
  cols = []
  for block in reversed(_blocks(ops)):
    index = tuple(k for op in block for k in op.param_index)
    grad = any(k in need for k in index)
    states, g = _backward_block(
        states, block, [[params[k] for k in op.param_index] for op in block], consts, n,
        grad)
    if grad:
      cols.append((index, g))
  return states, cols


def _adjoint_states(psi, raw_measurements, consts, n: int, tail):
  """Raw values ``(n_raw,)`` and adjoint states ``λ_r = M_r ψ`` ``(n_raw, 2**n)``.

  A Pauli sum with coefficients as data (``expval_sum``) applies itself
  (`_measure.adjoint_state`: one pass per flip mask); other measurements take λ from
  the cotangents of their measurement (`jax.vjp`).
  """
  if not tail and all(m.kind == "expval_sum" for m in raw_measurements):
    lam = jnp.stack([_measure.adjoint_state(psi, m, consts, n) for m in raw_measurements])
    value = jnp.real(jnp.einsum("j,rj->r", jnp.conj(psi), lam))
    return value, lam

  def measure(psi):
    return jnp.concatenate([_measure.measure(psi, m, consts, n, tail) for m in raw_measurements])

  value, vjp = jax.vjp(measure, psi)
  # JAX's cotangent of a real f(ψ) = <ψ|M|ψ> is 2·conj(Mψ) (for f = |z|², grad is
  # 2·conj(z)): the adjoint state λ = Mψ is conj(cotangent) / 2.
  (ct,) = jax.vmap(vjp)(jnp.eye(value.shape[0], dtype=value.dtype))
  return value, jnp.conj(ct) / 2


def _adjoint_jacobian(key, theta, consts, need: frozenset):
  """Value ``(n_raw,)`` and Jacobian ``(n_raw, P)`` by the adjoint method."""
  operations, raw_measurements, n = key
  cut = _measure.split_tail(operations, raw_measurements)
  ops, tail = operations[:cut], operations[cut:]
  psi = sv.evolve(ops, n, theta, consts)

  value, lam = _adjoint_states(psi, raw_measurements, consts, n, tail)
  n_raw = value.shape[0]
  states = jnp.concatenate([psi[None], lam])  # (1 + n_raw, 2**n)

  index, values = [], []
  for kind, seg, seg_index in reversed(sv.segments(ops)):
    if kind == "ops":
      states, cols = _backward_run(states, seg, theta, consts, n, need)
      for idx, g in cols:
        index.extend(idx)
        values.append(g)
      continue
    wanted = bool(need.intersection(seg_index.reshape(-1).tolist()))
    block_need = frozenset(range(seg_index.shape[1])) if wanted else frozenset()

    def body(states, idx, seg=seg, block_need=block_need):
      states, cols = _backward_run(states, seg, theta[idx], consts, n, block_need)
      g = (jnp.concatenate([c for _, c in cols], axis=1) if cols
           else jnp.zeros((n_raw, 0), theta.dtype))
      return states, g

    states, gs = jax.lax.scan(body, states, jnp.asarray(seg_index), reverse=True)
    if wanted:  # gs: (repeats, n_raw, k); its columns are the block's local `order`
      local_order = [k for block in reversed(_blocks(seg)) for op in block
                     for k in op.param_index]
      cols = seg_index[:, local_order]  # (repeats, k), global indices
      index.extend(cols.reshape(-1).tolist())
      values.append(jnp.reshape(jnp.moveaxis(gs, 0, 1), (n_raw, -1)))
  jac = jnp.zeros((n_raw, theta.shape[0]), theta.dtype)
  if index:
    jac = jac.at[:, np.asarray(index)].set(jnp.concatenate(values, axis=1))
  return value, jac


def _forward_jacobian(key, theta, consts, need: frozenset):
  """Value and Jacobian by forward mode over the ``need``ed arguments (`jax.jacfwd`)."""
  cols = np.asarray(sorted(need), dtype=np.int32)

  def f(t):
    return _kernel.simulate_raw(key, theta.at[cols].set(t), consts)

  value = _kernel.simulate_raw(key, theta, consts)
  jac = jnp.zeros((value.shape[0], theta.shape[0]), theta.dtype)
  if len(cols):
    jac = jac.at[:, cols].set(jax.jacfwd(f)(theta[cols]))
  return value, jac


def use_forward(n_raw: int, n_need: int) -> bool:
  """Forward mode when the circuit has more raw outputs than needed arguments: it then
  propagates fewer states (one tangent per argument against one adjoint per output)."""
  return n_raw > n_need


def jacobian(key, theta, consts, need: Sequence[int] | None = None, *, mode: str | None = None):
  """Raw outputs and their Jacobian for one circuit, exact (adjoint or forward mode).

  Args:
    key: `qhess.simulate.kernel.kernel_key` of a tape.
    theta: float array ``(P,)``, the gate arguments.
    consts: tuple of complex arrays (QubitUnitary and Hermitian matrices).
    need: the arguments whose columns are computed (``None``: all); others are zero.
    mode: ``"adjoint"``, ``"forward"`` or ``None`` (the cheaper, `use_forward`).

  Returns:
    ``(value, jac)``: float arrays ``(n_raw,)`` and ``(n_raw, P)``.
  """
  need = frozenset(range(theta.shape[0]) if need is None else (int(k) for k in need))
  if mode is None:
    n_raw = sum(m.raw_size for m in key[1])
    mode = "forward" if use_forward(n_raw, len(need)) else "adjoint"
  fn = _forward_jacobian if mode == "forward" else _adjoint_jacobian
  value, jac = fn(key, theta, tuple(consts), need)
  if len(need) < theta.shape[0]:  # a scanned block computes all of its columns
    jac = jnp.where(np.isin(np.arange(theta.shape[0]), sorted(need)), jac, 0)
  return value, jac


# ------------------------------------------------------------------ the batch of rows


def _states_per_point(n_raw: int, n_need: int) -> int:
  """Live states per shifted circuit: ψ, the adjoints (or tangents) and a derivative."""
  return 2 + min(n_raw, n_need)


@functools.partial(jax.jit, static_argnames=("key", "need", "batch_size", "devices",
                                             "progress"))
def _run(key, theta, arg, shift, consts, need, batch_size, devices, progress=None):
  def one(i, s):  # value and Jacobian of the circuit at theta + s e_i: (n_raw, 1 + P)
    value, jac = jacobian(key, theta.at[i].add(s.astype(theta.dtype)), consts, need)
    return jnp.concatenate([value[:, None], jac], axis=1)
  return _kernel._map_batched(one, (arg, shift), batch_size, devices, progress)


def row_points(spectra: Sequence[Spectrum], rows: Sequence[int]):
  """The shifted points of the rows: ``(arg, shift, coef)``, arrays of shape ``(T,)``.

  Row ``i`` takes the default first-order rule of argument ``i`` (2R_i points).
  """
  arg, shift, coef = [], [], []
  for i in rows:
    recipe = _shift_rules.first_order(spectra[i])
    arg += [int(i)] * len(recipe.shifts)
    shift += list(recipe.shifts)
    coef += list(recipe.coeffs)
  return (np.asarray(arg, np.int32), np.asarray(shift, np.float64),
          np.asarray(coef, np.float64))


def derivatives(tape, spectra: Sequence[Spectrum], mask: np.ndarray, *,
                grad_args: Sequence[int] = (), need_value: bool = False,
                batch_size: int | None = None, devices=None, symmetrize: bool = True,
                what: str = "qhess.hessian", progress: bool = False):
  """R0, ∂R and ∂²R of a tape's raw outputs at its arguments (the layout of
  `_hessian._contract`), by shifting the row index and differentiating the other.

  Args:
    tape: the recorded `Tape`.
    spectra: one `Spectrum` per gate argument.
    mask: bool array ``(P, P)``, symmetric: the Hessian entries to compute (others 0).
    grad_args: arguments whose first derivative is returned (others 0).
    need_value: also return R0 (one more forward pass), else zeros.
    batch_size: shifted circuits per chunk (``None``: the default for the width).
    devices: ``None`` or devices to shard the shifted circuits over.
    symmetrize: return ``(H + Hᵀ)/2`` (else the rows as computed, for accuracy checks).
    what: the caller, for memory errors.

  Returns:
    ``(value, grad, hess)``: float arrays ``(n_raw,)``, ``(n_raw, P)``, ``(n_raw, P, P)``.

  Raises:
    ValueError: when a chunk of states cannot fit in memory (`_memory.check_memory`),
      or for a tape with noise channels or readout error.
  """
  noisy = sorted({op.name for op in tape.operations
                  if CATALOGUE[op.name].kind == "channel" or op.name == "ReadoutError"})
  if noisy:
    raise ValueError(
        f'{what}: evaluation="adjoint" differentiates a pure state by un-computing its '
        f"gates, and this circuit has noise ({', '.join(noisy)}): its state is a density "
        "matrix, and a channel or a readout error cannot be un-computed. Use "
        'evaluation="shared" or "independent": the shift rules are exact for noisy '
        "circuits too.")
  key = _kernel.kernel_key(tape)
  n, p, dtype = tape.n_wires, tape.num_params, tape.params.dtype
  n_raw = sum(m.raw_size for m in tape.raw_measurements)
  mask = np.asarray(mask, dtype=bool)
  rows = np.nonzero(mask.any(axis=1))[0]
  need = frozenset(int(k) for k in rows)
  arg, shift, coef = row_points(spectra, rows)
  value = (_kernel.simulate_raw(key, tape.params, tape.consts) if need_value
           else jnp.zeros(n_raw, dtype))
  if len(arg) == 0:
    return value, jnp.zeros((n_raw, p), dtype), jnp.zeros((n_raw, p, p), dtype)
  per_point = _states_per_point(n_raw, len(need))
  if batch_size is None:  # the kernel's default chunk, in states
    batch_size = max(1, _kernel.default_batch_size(n) // per_point)
  _memory.check_memory(n, len(arg) * per_point, dtype, batch_size=batch_size * per_point,
                        devices=devices, what=what)
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  # Arguments reduced modulo their periods: a shift keeps its precision at any angle.
  theta = _shift_rules.reduce_angles(tape.params, spectra)
  report = _kernel.Progress(f"{what} (adjoint)", len(arg)) if progress else None
  y = _run(key, theta, jnp.asarray(arg), jnp.asarray(shift), tuple(tape.consts),
           need, batch_size, devices, report)  # (T, n_raw, 1 + P)
  c = jnp.asarray(coef, dtype)
  hess = jnp.zeros((p, n_raw, p), dtype).at[arg].add(c[:, None, None] * y[:, :, 1:])
  hess = jnp.moveaxis(hess, 1, 0)  # (n_raw, P, P): hess[r, i] is row i
  if symmetrize:
    hess = 0.5 * (hess + jnp.swapaxes(hess, 1, 2))
  hess = jnp.where(mask, hess, 0)
  grad = jnp.zeros((p, n_raw), dtype).at[arg].add(c[:, None] * y[:, :, 0])
  return value, jnp.where(np.isin(np.arange(p), grad_args), grad.T, 0), hess



def gradient(tape, grad_args: Sequence[int], *, need_value: bool = False):
  """R0 and ∂R of a tape's raw outputs at its arguments, in the layout of `derivatives`
  (its ∂²R is zero): one adjoint pass (or forward mode, `use_forward`) at θ, no shifted
  circuits, where the shift rules run ``2R_i`` circuits per argument.

  Args:
    tape: the recorded `Tape` (pure: no channels).
    grad_args: the arguments whose first derivative is returned (others 0).
    need_value: return R0 too, else zeros.

  Returns:
    ``(value, grad, hess)``: float arrays ``(n_raw,)``, ``(n_raw, P)``, ``(n_raw, P, P)``.
  """
  key = _kernel.kernel_key(tape)
  p, dtype = tape.num_params, tape.params.dtype
  value, jac = jacobian(key, tape.params, tuple(tape.consts), grad_args)
  if not need_value:
    value = jnp.zeros_like(value)
  return value, jac, jnp.zeros((value.shape[0], p, p), dtype)
