"""The simulation kernel: statevector evolution and raw measurements, batched.

The state of ``n`` qubits is kept as a tensor of shape ``(2,) * n``; axis ``w`` is wire
``w`` (wire 0 is the most significant bit of the flat index, as in PennyLane). Viewing
the flat vector this way is a free reshape, and every gate becomes one fused elementwise
expression over slices of that tensor — no whole-state transposes:

- diagonal gates multiply by a phase tensor that broadcasts over the other axes;
- Pauli rotations are ``cos(θ/2) ψ - i sin(θ/2) Pψ`` where ``Pψ`` flips axes (a reversed
  view) and multiplies by phases;
- bit-flip gates (X, Y, SWAP) are reversed views; controlled gates select between the
  base gate's output and ``ψ`` with a broadcast boolean mask of the control bits;
- dense k-qubit gates (k ≤ 3) sum ``2**k`` products of a matrix column and a state slice.

The public entry is `run`: a batch of gate-argument vectors of shape ``(batch, n_params)``
for one tape structure goes through one ``jit(vmap(...))``, compiled once per structure
(the structure is a static argument, the arguments are data).
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess._ops import CATALOGUE

_MAX_SLICE_SUM_WIRES = 3  # beyond this a dense gate uses tensordot (2**k terms grow fast)


def _bcast_shape(n: int, wires: Sequence[int]) -> list[int]:
  return [2 if a in wires else 1 for a in range(n)]


def _on_axes(t, wires: Sequence[int], n: int):
  """Places a ``(2,)*k`` tensor indexed in ``wires`` order onto the state's axes."""
  t = jnp.transpose(t, np.argsort(wires)) if len(wires) > 1 else t
  return jnp.reshape(t, _bcast_shape(n, wires))


def _bit_mask(wires: Sequence[int], n: int) -> np.ndarray:
  """Boolean tensor (broadcastable to the state) that is True where all ``wires`` are 1."""
  mask = np.ones([1] * n, dtype=bool)
  for w in wires:
    mask = mask & np.arange(2).astype(bool).reshape(_bcast_shape(n, [w]))
  return mask


def apply_matrix(psi, matrix, wires: Sequence[int], n: int):
  """``matrix`` (shape ``(2**k, 2**k)``, gate wire order) applied to ``wires`` of ``psi``."""
  k = len(wires)
  if k > _MAX_SLICE_SUM_WIRES:
    mt = jnp.reshape(matrix, (2,) * (2 * k))
    out = jnp.tensordot(mt, psi, axes=(list(range(k, 2 * k)), list(wires)))
    return jnp.moveaxis(out, list(range(k)), list(wires))
  mt = jnp.reshape(matrix, (2,) * (2 * k))  # (out bits..., in bits...) in gate order
  out = None
  for bits in itertools.product((0, 1), repeat=k):
    index = [slice(None)] * n
    for w, b in zip(wires, bits):
      index[w] = slice(b, b + 1)
    column = _on_axes(mt[(slice(None),) * k + bits], wires, n)
    term = column * psi[tuple(index)]
    out = term if out is None else out + term
  return out


def apply_pauli_word(psi, word: str, wires: Sequence[int], n: int):
  """``P ψ`` for a Pauli word ``P`` (one letter of ``IXYZ`` per wire)."""
  flip_axes = tuple(w for c, w in zip(word, wires) if c in "XY")
  out = jnp.flip(psi, axis=flip_axes) if flip_axes else psi
  phase = np.ones([1] * n, dtype=complex)
  # After the flip, out[b] holds psi[1 - b]; Y|b> = i(-1)^b |1-b> gives phase [-i, i].
  factors = {"Y": np.array([-1j, 1j]), "Z": np.array([1.0, -1.0])}
  for c, w in zip(word, wires):
    if c in factors:
      phase = phase * factors[c].reshape(_bcast_shape(n, [w]))
  if np.all(phase == 1):
    return out
  if np.all(phase.imag == 0):
    phase = phase.real
  return out * phase.astype(_real_dtype(psi.dtype) if np.isrealobj(phase) else psi.dtype)


def _real_dtype(cdtype):
  return jnp.finfo(cdtype).dtype


def apply_gate(psi, name: str, wires: Sequence[int], params, hyper, consts, n: int):
  """Applies one catalogue gate to the state tensor ``psi`` of shape ``(2,)*n``."""
  spec = CATALOGUE[name]
  if spec.kind == "controlled":
    c = spec.controls
    target = apply_gate(psi, spec.base, wires[c:], params, hyper, consts, n)
    return jnp.where(_bit_mask(wires[:c], n), target, psi)
  if spec.kind == "diagonal":
    diag = spec.diagonal(*params, hyper).astype(psi.dtype)
    return psi * _on_axes(jnp.reshape(diag, (2,) * len(wires)), wires, n)
  if spec.kind == "pauli":
    (theta,) = params
    word = spec.pauli(hyper)
    cos, sin = jnp.cos(theta / 2), jnp.sin(theta / 2)
    return cos * psi - 1j * sin * apply_pauli_word(psi, word, wires, n)
  if spec.kind == "permutation":
    if name == "SWAP":
      a, b = wires
      differ = _bit_mask([a], n) ^ _bit_mask([b], n)
      return jnp.where(differ, jnp.flip(psi, axis=(a, b)), psi)
    return apply_pauli_word(psi, spec.pauli(hyper), wires, n)
  if name == "QubitUnitary":
    return apply_matrix(psi, consts[hyper], wires, n)
  return apply_matrix(psi, spec.matrix(*params, hyper).astype(psi.dtype), wires, n)


def evolve(operations, n: int, params, consts):
  """The final state tensor, shape ``(2,)*n``, of ``operations`` from ``|0...0>``."""
  cdtype = jnp.complex128 if params.dtype == jnp.float64 else jnp.complex64
  psi = jnp.zeros((2,) * n, dtype=cdtype).at[(0,) * n].set(1.0)
  for op in operations:
    psi = apply_gate(psi, op.name, op.wires, [params[i] for i in op.param_index],
                     op.hyper, consts, n)
  return psi


def _apply_term(psi, factors, consts, n):
  for f in factors:
    if f[0] == "H":
      psi = apply_matrix(psi, consts[f[2]].astype(psi.dtype), f[1], n)
    else:
      psi = apply_pauli_word(psi, f[0], (f[1],), n)
  return psi


def _term_expval(psi, probs, factors, consts, n):
  if all(f[0] == "Z" for f in factors):
    # Z words are diagonal: a signed sum of probabilities, no second state needed.
    signs = np.ones([1] * n)
    for f in factors:
      signs = signs * np.array([1.0, -1.0]).reshape(_bcast_shape(n, [f[1]]))
    return jnp.sum(probs * signs.astype(probs.dtype))
  return jnp.real(jnp.vdot(psi, _apply_term(psi, factors, consts, n)))


def measure(psi, measurement, consts, n: int):
  """One raw measurement of the state tensor; float array of shape ``(raw_size,)``."""
  probs = jnp.real(psi * jnp.conj(psi))
  if measurement.kind == "probs":
    wires = measurement.wires
    other = tuple(a for a in range(n) if a not in wires)
    p = jnp.sum(probs, axis=other) if other else probs  # axes in sorted wire order
    p = jnp.transpose(p, np.argsort(np.argsort(wires))) if len(wires) > 1 else p
    return jnp.reshape(p, (-1,))
  if measurement.kind == "expval":
    value = sum(c * _term_expval(psi, probs, fs, consts, n) for c, fs in measurement.terms)
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
  psi = evolve(operations, n, params, consts)
  return jnp.concatenate([measure(psi, m, consts, n) for m in raw_measurements])


def kernel_key(tape) -> tuple:
  """What the kernel compiles for: operations, raw measurements, number of wires."""
  return (tape.operations, tape.raw_measurements, tape.n_wires)


def _map_batched(fn, xs, batch_size):
  """``vmap(fn)`` over the leading axis of ``xs``, at most ``batch_size`` rows at a time."""
  batch = xs[0].shape[0]
  if batch_size is None or batch <= batch_size:
    return jax.vmap(fn)(*xs)
  # Pad to a multiple of the chunk: lax.map would otherwise compile the remainder
  # separately. Padding rows repeat the first row and are dropped afterwards.
  n_chunks = -(-batch // batch_size)
  pad = n_chunks * batch_size - batch

  def chunked(x):
    x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])])
    return jnp.reshape(x, (n_chunks, batch_size) + x.shape[1:])

  out = jax.lax.map(lambda c: jax.vmap(fn)(*c), tuple(chunked(x) for x in xs))
  return jnp.reshape(out, (n_chunks * batch_size,) + out.shape[2:])[:batch]


@functools.partial(jax.jit, static_argnames=("key", "batch_size"))
def _run(key, params, consts, batch_size):
  # `simulate_raw` is looked up at trace time, so tests can count traces.
  return _map_batched(lambda p: simulate_raw(key, p, consts), (params,), batch_size)


@functools.partial(jax.jit, static_argnames=("key", "batch_size"))
def _run_points(key, theta, index, shift, consts, batch_size):
  def one(idx, s):  # a point differs from theta in (at most) two entries
    return simulate_raw(key, theta.at[idx].add(s.astype(theta.dtype)), consts)
  return _map_batched(one, (index, shift), batch_size)


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


def run_points(key, theta, index, shift, consts, batch_size: int | None = None) -> jax.Array:
  """Raw outputs at sparse shifted points ``theta + shift`` (a plan's points).

  Args:
    key: `kernel_key` of the tape.
    theta: float array of shape ``(n_params,)``, the unshifted gate arguments.
    index: int array of shape ``(n_points, 2)``: shifted argument indices.
    shift: float array of shape ``(n_points, 2)``: their shifts (0 where unused).
    consts: tuple of complex arrays shared by all points.
    batch_size: at most this many states are live at once (``None``: all).

  Returns:
    float array of shape ``(n_points, n_raw)``.
  """
  return _run_points(key, theta, jnp.asarray(index), jnp.asarray(shift), tuple(consts),
                     batch_size)


def final_state(tape) -> jax.Array:
  """The final state vector of a tape, complex array of shape ``(2**n_wires,)``."""
  psi = evolve(tape.operations, tape.n_wires, tape.params, tape.consts)
  return jnp.reshape(psi, (-1,))
