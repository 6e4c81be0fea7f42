"""The batched kernel: a tape structure's key, and its points run in one ``jit(vmap)``.

`kernel_key` is what the kernel compiles for (operations, raw measurements, wires); a
noisy tape's key is its vectorized density matrix (`qhess.simulate.density`). `run`,
`run_points` and `run_points_shared` evaluate a batch of gate-argument vectors, chunked
by ``batch_size`` and sharded over ``devices``; `sample_run` and `sample_points_shared`
do the same with a sampler applied to each state.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE
from qhess.simulate.gates import initial_state
from qhess.simulate.measure import measure, split_tail
from qhess.simulate.evolve import evolve
from qhess.simulate import noisy as _noisy


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
  the measurements by the readout-flipped estimator (`_noisy.kernel_key`).
  """
  if any(CATALOGUE[op.name].kind in ("channel", "readout") for op in tape.operations):
    return _noisy.kernel_key(tape)
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



class Progress(NamedTuple):
  """A static progress report of one kernel call: ``label`` and its ``total`` rows."""

  label: str
  total: int


_ACTIVE_BARS: dict[str, list] = {}  # label -> [bar (or None), rows done, start time]


def _report_progress(rows, _dependency, *, progress: Progress) -> None:
  """Host side of progress: a tqdm bar when tqdm is installed, else a line per step."""
  import time  # pylint: disable=import-outside-toplevel
  state = _ACTIVE_BARS.get(progress.label)
  if state is None:
    try:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=progress.total, desc=progress.label, unit="circuit")
    except ImportError:
      bar = None
    state = _ACTIVE_BARS[progress.label] = [bar, 0, time.perf_counter()]
  bar, done, start = state
  state[1] = done = done + int(rows)
  if bar is not None:
    bar.update(int(rows))
  else:
    elapsed = time.perf_counter() - start
    left = elapsed * (progress.total - done) / max(done, 1)
    print(f"{progress.label}: {done}/{progress.total} circuits, {elapsed:.1f} s, "
          f"about {left:.1f} s left", flush=True)
  if done >= progress.total:
    if bar is not None:
      bar.close()
    del _ACTIVE_BARS[progress.label]


def _map_batched(fn, xs, batch_size, devices=None, progress: Progress | None = None):
  """``vmap(fn)`` over the leading axis of ``xs``, at most ``batch_size`` rows at a time.

  With several ``devices`` each chunk is sharded over them (GSPMD partitions the vmap);
  chunks are padded to a multiple of the device count. With ``progress``, each chunk
  reports its rows to the host when it is done (`jax.debug.callback`, also under jit).
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
  def done(out, rows):  # report a finished chunk; its output is the callback's operand
    if progress is not None:
      jax.debug.callback(functools.partial(_report_progress, progress=progress), rows,
                         jnp.ravel(out)[:1])
    return out

  if n_chunks == 1 and pad == 0 and n_dev == 1:
    return done(jax.vmap(fn)(*xs), batch)
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
    i, c = c[0], c[1:]
    out = jax.vmap(fn)(*c)
    if sharding is not None:
      out = jax.lax.with_sharding_constraint(
          out, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec("points")))
    return done(out, jnp.minimum(chunk, batch - i * chunk))  # real rows, padding aside

  xs = (jnp.arange(n_chunks),) + tuple(chunked(x) for x in xs)
  out = (one_chunk([x[0] for x in xs])[None] if n_chunks == 1
         else jax.lax.map(one_chunk, xs))
  return jnp.reshape(out, (n_chunks * chunk,) + out.shape[2:])[:batch]



@functools.partial(jax.jit, static_argnames=("key", "batch_size"))
def _run(key, params, consts, batch_size):
  # `simulate_raw` is looked up at trace time, so tests can count traces.
  return _map_batched(lambda p: simulate_raw(key, p, consts), (params,), batch_size)



@functools.partial(jax.jit, static_argnames=("key", "batch_size", "devices", "progress"))
def _run_points(key, theta, index, shift, consts, batch_size, devices, progress=None):
  def one(idx, s):  # a point differs from theta in (at most) two entries
    return simulate_raw(key, theta.at[idx].add(s.astype(theta.dtype)), consts)
  return _map_batched(one, (index, shift), batch_size, devices, progress)



@functools.partial(jax.jit, static_argnames=("key", "schedule", "batch_size", "devices",
                                             "sampler", "progress"))
def _run_shared(key, theta, consts, schedule, batch_size, devices, sampler=None, extras=(),
                progress=None):
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
      outs.append(_map_batched(run_point, inputs, batch_size, devices, progress))
    if j < len(schedule.segments):
      table = _map_batched(segment_fn(j, table), tuple(map(jnp.asarray, schedule.segments[j])),
                           batch_size, devices)  # (parents alive at boundary j+1, 2**n)
  y = jnp.concatenate(outs)
  # Back to the plan's point order.
  return jnp.zeros_like(y).at[jnp.asarray(order)].set(y)



def run_points_shared(key, theta, schedule, consts, batch_size: int | None = None,
                      devices=None, progress: Progress | None = None) -> jax.Array:
  """Like `run_points`, evaluating the points as a prefix-sharing `Schedule`.

  Returns:
    float array of shape ``(n_points, n_raw)``, in the plan's point order.
  """
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  return _run_shared(key, theta, tuple(consts), schedule, batch_size, devices,
                     progress=progress)



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
               devices=None, progress: Progress | None = None) -> jax.Array:
  """Raw outputs at sparse shifted points ``theta + shift`` (a plan's points).

  Args:
    key: `kernel_key` of the tape.
    theta: float array of shape ``(n_params,)``, the unshifted gate arguments.
    index: int array of shape ``(n_points, 2)``: shifted argument indices.
    shift: float array of shape ``(n_points, 2)``: their shifts (0 where unused).
    consts: tuple of complex arrays shared by all points.
    batch_size: at most this many states are live at once (``None``: all).
    devices: ``None`` or a sequence of devices to shard the points over.
    progress: ``None``, or a `Progress` to report the circuits done as chunks finish.

  Returns:
    float array of shape ``(n_points, n_raw)``.
  """
  devices = None if devices is None or len(devices) < 2 else tuple(devices)
  return _run_points(key, theta, jnp.asarray(index), jnp.asarray(shift), tuple(consts),
                     batch_size, devices, progress)



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
