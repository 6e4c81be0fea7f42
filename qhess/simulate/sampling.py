"""Finite-shot (sampled) evaluation: drawing counts, shot options, sampling tapes.

Measurement groups and their estimators are in `qhess.simulate.groups`; estimates and
standard errors of derivatives in `qhess.derivatives.estimators`, shot budgets in
`qhess.derivatives.budget`. What follows describes the whole sampled path.

A sampled circuit is measured like hardware would measure it. Each raw measurement of a
tape (``<O>``, ``<O²>``, probabilities) is assigned to a *measurement group*: a set of
single-wire bases (X, Y, Z) and Hermitian eigenbases that are measured together in one
circuit. Terms of an observable that commute qubit-wise share a group (greedy, in the
order they appear, across all measurements of the tape); a ``var(O)`` needs ``O``'s
terms to commute qubit-wise, so that ``<O>`` and ``<O²>`` come from the same samples.

**How shots are counted**: one *circuit* is one (point, group) pair. ``shots=N`` gives
every circuit ``N`` shots, so a tape with ``G`` groups costs ``G·N`` shots per shifted
point; a `ShotBudget` counts every shot of every circuit (pilot included).

Sampling one circuit: evolve the state, rotate the group's wires into the measured
eigenbasis (H for X, H·S† for Y, V† for a Hermitian with eigenvectors V), take the
marginal probabilities of the ``2**k`` outcomes of its ``k`` wires, and draw the outcome
counts from the multinomial distribution by binary splitting — one binomial per node of
the tree over the wires (``2**k - 1`` draws, ``k`` sequential levels). The cost is
``O(2**n)`` per circuit whatever the shot count (never ``O(shots · 2**n)``), and the
counts have a fixed shape, so circuits with different shot counts share one jitted,
vmapped computation. When the shot count is fixed (not a budget) and small next to
``2**k``, each shot is drawn instead (inverse CDF, ``O(shots · k)``), which is cheaper
than ``2**k`` binomials. Every raw output is a fixed linear function of the outcome
frequencies (`estimator_matrix`): parities for Pauli words, eigenvalues for Hermitian
factors, indicator sums for ``probs``.

**How the sampling graph stays small** (it decides the compile time): the kernel maps a
deterministic `Marginals` over the points — prefix-shared like the exact path
(`_kernel.sample_points_shared`) or independently — and returns the probabilities
``(B, G, O)``, padded to ``O = 2**max_g k_g`` outcomes. The counts of all points and
groups are then drawn by ONE call of `draw_counts`, vmapped over points and groups,
whose tree levels run as one `jax.lax.scan` over fixed-shape node arrays: the binomial
sampler (two rejection loops, about a second of XLA compile each time it appears with a
new shape) is in the graph once, not once per group, level and schedule segment. A shot
vector is one vmap over its entries, a budget's pilot reuses the same probabilities, and
the standard errors take the outputs and the Jacobian from one `jax.vjp`. (A 6-wire,
2-layer sampled Hessian with errors: 53 CPU seconds from trace to compiled code when
the draws sat inside the kernel, 23 now, of which about 13 are the kernel itself.)

**How counts are represented**: as floats of the computation's dtype, because the
binomial sampler draws floats. They are exact integers up to ``2**53`` in float64 and
``2**24`` in float32 (without x64); larger counts are rejected with a ValueError
(`check_counts_fit`) rather than rounded. `allocate` splits a budget in integer
arithmetic (int64 with x64, int32 without), so the allocations sum exactly to the total.
Sampled results are random estimates: differentiating them raises (`no_derivatives`).

Standard errors (first order, the delta method): the outputs ``F(Y)`` (Hessian, value,
gradient) are functions of the raw point values ``Y``; with ``J = ∂F/∂Y`` and the
per-shot value ``v_o = Σ_r J_r A[r, g, o]`` of outcome ``o`` in circuit ``(t, g)``,
``Var(F) ≈ Σ_{t,g} σ̂²_{t,g} / N_{t,g}`` where ``σ̂²`` is the sample variance of ``v``.
For a single Pauli word and a linear F this is ``Σ_t c_t² σ̂_t² / N_t``.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any, Sequence

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from qhess.simulate import density as _density
from qhess.simulate import kernel as _kernel
from qhess.simulate.groups import raw_from_counts
from qhess.simulate.groups import Marginals, estimator_matrix, measurement_groups


@dataclasses.dataclass(frozen=True)
class ShotBudget:
  """A total number of shots, allocated across the shifted circuits.

  ``strategy="neyman"`` uses Neyman allocation (J. Neyman, "On the two different
  aspects of the representative method", J. R. Stat. Soc. 97 (1934) 558): to minimise
  ``Σ_k Var(F_k) = Σ_c s_c² / N_c`` at a fixed ``Σ_c N_c``, give circuit ``c`` shots
  ``N_c ∝ s_c``, where ``s_c² = Σ_k Var_1shot(∂F_k/∂Y_c · Y_c)`` is the per-shot variance
  it contributes, summed over all output entries ``k``. For a plain Hessian of one Pauli
  word this is ``N_t ∝ σ_t · sqrt(Σ_ij c_{ij,t}²)`` with the plan's coefficients ``c``.
  Without a pilot, ``σ_t`` is bounded by half the range of the measured values (the
  observable's norm for a Pauli word: Popoviciu's inequality) and the derivatives ``J``
  are taken at ``Y = 0`` (exact for expectation values and probabilities, the linear
  part for variances). With ``pilot=m`` every circuit first gets ``m`` shots, from which
  ``σ_t`` and ``J`` are estimated; only the main pass enters the result (so the
  allocation does not bias it). ``strategy="uniform"`` splits the total evenly.

  Every circuit gets at least one shot; the rest is split in proportion to ``s_c`` and
  rounded by cumulative sums in integer arithmetic (`allocate`), so the shots (pilot
  included) sum to exactly ``total``. Counts are floats of the computation's dtype:
  ``total`` may be at most ``2**53`` (``2**24`` without x64, checked at the call).

  Attributes:
    total: the total number of shots, a positive int.
    strategy: ``"neyman"`` or ``"uniform"``.
    pilot: ``None`` or shots per circuit of a first pass that estimates ``σ_t``.

  Raises:
    TypeError: for a non-integer ``total`` or ``pilot``.
    ValueError: for a non-positive ``total`` or ``pilot``, one above ``2**53``, or an
      unknown ``strategy``.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> budget = qhess.ShotBudget(total=30_000)
    >>> h = qhess.hessian(f, shots=budget)(jnp.array([0.3]), key=jax.random.key(0))
    >>> bool(abs(h[0, 0] + jnp.cos(0.3)) < 0.05)
    True
  """

  total: int
  strategy: str = "neyman"
  pilot: int | None = None

  def __post_init__(self):
    object.__setattr__(self, "total", _check_count(self.total, "ShotBudget.total"))
    if self.strategy not in ("neyman", "uniform"):
      raise ValueError(
          f'`ShotBudget.strategy` must be "neyman" or "uniform"; got {self.strategy!r}.')
    if self.pilot is not None:
      object.__setattr__(self, "pilot", _check_count(self.pilot, "ShotBudget.pilot"))


# Shot counts are floats of the computation's dtype (the binomial sampler draws floats):
# integers are exact up to 2**53 in float64 and 2**24 in float32 (without x64).
_MAX_COUNT_BITS = 53


def _check_count(n, name: str) -> int:
  if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)):
    raise TypeError(f"`{name}` must be a positive int; got {n!r} ({type(n).__name__}).")
  if n < 1:
    raise ValueError(f"`{name}` must be a positive int; got {n}.")
  if n > 2**_MAX_COUNT_BITS:
    raise ValueError(
        f"`{name}` must be at most 2**{_MAX_COUNT_BITS} = {2**_MAX_COUNT_BITS} (shots are "
        f"counted in float64, exact up to there); got {n}.")
  return int(n)


def check_counts_fit(shots, dtype) -> None:
  """Raises unless every count of ``shots`` is an exact integer in ``dtype``.

  Counts are carried as ``dtype`` floats: exact up to ``2**24`` in float32 (x64 off)
  and ``2**53`` in float64. A `ShotBudget`'s total bounds every circuit's share.

  Raises:
    ValueError: for a count above the limit, naming it, the limit and the dtype.
  """
  dtype = np.dtype(dtype)
  bits = np.finfo(dtype).nmant + 1
  if isinstance(shots, ShotBudget):
    items = [("ShotBudget.total", shots.total)]
  elif isinstance(shots, tuple):
    items = [(f"shots[{i}]", n) for i, n in enumerate(shots)]
  else:
    items = [("shots", shots)]
  for name, n in items:
    if n > 2**bits:
      hint = ("; enable x64 (jax.config.update('jax_enable_x64', True)) to count up to "
              f"2**{_MAX_COUNT_BITS}" if bits < _MAX_COUNT_BITS else "")
      raise ValueError(
          f"`{name}` = {n} is too many shots for {dtype.name}: counts are {dtype.name} "
          f"numbers, exact up to 2**{bits} = {2**bits} shots{hint}.")


def check_shots(shots, *, allow_budget: bool = True):
  """``shots`` validated: ``None``, an int, a tuple of ints (a shot vector) or a budget.

  Raises:
    TypeError: for a non-integer count or an object of another kind.
    ValueError: for a count below 1 or above ``2**53``, an empty shot vector, or a
      budget where none is allowed.
  """
  if shots is None:
    return None
  if isinstance(shots, ShotBudget):
    if not allow_budget:
      raise ValueError(
          "`shots` must be an int or a tuple of ints here; a ShotBudget allocates shots "
          "across the circuits of a Hessian (qhess.hessian, value_grad_and_hessian).")
    return shots
  if isinstance(shots, (tuple, list)):
    if not shots:
      raise ValueError("`shots` as a shot vector must be a non-empty tuple of ints; got ().")
    return tuple(_check_count(n, f"shots[{i}]") for i, n in enumerate(shots))
  return _check_count(shots, "shots")


def check_key(key) -> jax.Array:
  """The PRNG key, required with ``shots``; raw ``uint32`` keys are wrapped.

  Raises:
    ValueError: when ``key`` is None.
    TypeError: when ``key`` is not a PRNG key.
  """
  if key is None:
    raise ValueError(
        "`key` is required when `shots` is set: pass a PRNG key, e.g. "
        "key=jax.random.key(0); got None.")
  if not hasattr(key, "dtype"):
    raise TypeError(f"`key` must be a jax PRNG key (jax.random.key(0)); got {key!r}.")
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(
          f"`key` must be a single PRNG key; got a key array of shape {key.shape} "
          "(use jax.vmap over keys for repetitions).")
    return key
  if key.dtype == jnp.uint32 and key.shape == (2,):
    return jax.random.wrap_key_data(key)
  raise TypeError(
      f"`key` must be a jax PRNG key (jax.random.key(0)); got an array of dtype "
      f"{key.dtype} and shape {key.shape}.")


def shots_key(shots) -> Any:
  """A hashable cache key for a validated ``shots`` value."""
  if isinstance(shots, ShotBudget):
    return ("budget", shots.total, shots.strategy, shots.pilot)
  return ("shots", shots)


# --------------------------------------------------------------------- measurement groups


# Below this many shots per outcome, counts come from individual draws (about 25 ns a
# shot on a 2-core CPU) rather than from binary splitting (about 270 ns an outcome).
_DRAWS_PER_OUTCOME = 4


def _multinomial_by_draws(key, n, probs, max_shots: int) -> jax.Array:
  """Counts of ``n <= max_shots`` draws: ``max_shots`` inverse-CDF draws, the first
  ``n`` kept: ``O(max_shots log K)``."""
  cdf = jnp.cumsum(probs)
  cdf = cdf / cdf[-1]  # exactly 1 at the end, so every uniform in [0, 1) lands
  u = jax.random.uniform(key, (max_shots,), dtype=probs.dtype)
  outcome = jnp.searchsorted(cdf, u, side="right")  # zero-probability outcomes: never
  kept = (jnp.arange(max_shots) < n).astype(probs.dtype)
  return jnp.zeros(probs.shape[0], probs.dtype).at[outcome].add(kept)


def _multinomial(key, n, probs, k: int, max_shots: int | None = None) -> jax.Array:
  """Counts of ``n`` draws over ``2**k`` outcomes (a float array of shape ``(2**k,)``).

  By binary splitting, ``O(2**k)`` binomial draws whatever ``n``; or, when ``n`` is known
  to be at most ``max_shots`` and that is small next to ``2**k``, by drawing each shot.
  The ``k`` levels of the splitting tree run as one `jax.lax.scan` over a fixed-shape
  array of ``2**(k-1)`` nodes (level ``l`` uses the first ``2**l``, the rest hold no
  shots), so the binomial sampler appears once in the graph: XLA compiles it once
  rather than once per level shape (about a second each on a 2-core CPU).
  """
  if max_shots is not None and max_shots <= _DRAWS_PER_OUTCOME * 2**k:
    return _multinomial_by_draws(key, n, probs, max_shots)
  n = jnp.asarray(n, probs.dtype)
  if k == 0:
    return n[None]
  half = 2 ** (k - 1)
  # Node masses in heap order: node i has children 2i and 2i + 1, level l is nodes
  # 2**l .. 2**(l+1) - 1 and the leaves 2**k .. 2**(k+1) - 1 are the outcomes.
  levels = [probs]
  for _ in range(k):
    levels.insert(0, jnp.sum(jnp.reshape(levels[0], (-1, 2)), axis=-1))
  tree = jnp.concatenate([jnp.zeros(1, probs.dtype)] + levels)  # (2**(k+1),)

  def split_level(counts, xs):  # counts (2**k,): level l's node counts first, then 0
    lkey, level = xs
    node = jnp.left_shift(1, level) + jnp.arange(half)  # (half,), in bounds for l < k
    left, right = tree[2 * node], tree[2 * node + 1]
    mass = left + right
    q0 = jnp.clip(jnp.where(mass > 0, left / jnp.where(mass > 0, mass, 1), 1), 0, 1)
    parent = counts[:half]
    c0 = jax.random.binomial(lkey, parent, q0, dtype=probs.dtype)
    c0 = jnp.clip(jnp.round(c0), 0, parent)
    return jnp.reshape(jnp.stack([c0, parent - c0], axis=-1), (-1,)), None

  counts = jnp.zeros(2**k, probs.dtype).at[0].set(n)
  counts, _ = jax.lax.scan(split_level, counts, (jax.random.split(key, k), jnp.arange(k)))
  return counts


@functools.partial(jax.jit, static_argnames=("max_shots",))
def draw_counts(probs, shots, keys, max_shots: int | None = None) -> jax.Array:
  """Multinomial outcome counts of a batch of circuits, one vectorized draw.

  Args:
    probs: float array ``(B, G, O)``: each group's outcome probabilities, ``O = 2**k``.
    shots: float array ``(B, G)``: shots per circuit (exact integers).
    keys: PRNG key array ``(B,)``, one per point; group ``g`` uses ``split(key, G)[g]``.
    max_shots: ``None`` or a bound on every entry of ``shots`` (`_multinomial`).

  Returns:
    float array ``(B, G, O)`` of counts, each row summing to its shots.
  """
  k = probs.shape[-1].bit_length() - 1

  def point(key, n_row, p_row):
    gkeys = jax.random.split(key, n_row.shape[0])
    return jax.vmap(lambda gk, n, p: _multinomial(gk, n, p, k, max_shots))(gkeys, n_row, p_row)

  return jax.vmap(point)(keys, shots, probs)


# ------------------------------------------------------------------------------ sampling


def sample_tapes(tapes: Sequence, shots, key, batch_size=None) -> list:
  """Sampled outputs of tapes (see `qhess.execute`); one PRNG key per tape position.

  Raises:
    TypeError: when differentiated (`no_derivatives`).
    ValueError: for counts that the tapes' dtype cannot hold (`check_counts_fit`).
  """
  shots = check_shots(shots, allow_budget=False)
  key = check_key(key)
  keys = jax.random.split(key, len(tapes))
  groups: dict[tuple, list[int]] = {}
  for i, tape in enumerate(tapes):
    groups.setdefault((tape.structure, tuple(id(c) for c in tape.consts)), []).append(i)
  results: list[Any] = [None] * len(tapes)
  vector = shots if isinstance(shots, tuple) else (shots,)
  for indices in groups.values():
    first = tapes[indices[0]]
    params = no_derivatives(jnp.stack([tapes[i].params for i in indices]))
    check_counts_fit(shots, params.dtype)
    mg = measurement_groups(first.raw_measurements)
    a = estimator_matrix(mg, first.raw_measurements, first.consts, params.dtype)
    probs = _kernel.sample_run(
        _kernel.kernel_key(first), params, first.consts,
        Marginals(mg.groups, first.n_wires, mg.n_outcomes, _density.readout_of(first)),
        batch_size)  # (B, G, O)
    # Entry j of a shot vector: fold_in(key_i, j) for tape i; all entries in one vmap.
    sub = jnp.stack([jnp.stack([jax.random.fold_in(keys[i], j) for i in indices])
                     for j in range(len(vector))])  # (S, B)
    n = jnp.broadcast_to(jnp.asarray(vector, params.dtype)[:, None, None],
                         (len(vector), len(indices), len(mg.groups)))
    parts = jax.vmap(lambda k, n_: raw_from_counts(
        a, draw_counts(probs, n_, k, max(vector)), n_))(sub, n)  # (S, B, n_raw)
    for row, i in enumerate(indices):
      outs = tuple(tapes[i].finalize(y[row]) for y in parts)
      results[i] = outs if isinstance(shots, tuple) else outs[0]
  return results


@jax.custom_jvp
def _not_differentiable(x):
  return x



@_not_differentiable.defjvp
def _not_differentiable_jvp(primals, tangents):
  del primals, tangents
  raise TypeError(
      "A sampled result (shots=...) cannot be differentiated: it is a random estimate, and "
      "differentiating its samples does not estimate the derivative (it gave 0). "
      "Differentiate the exact result (shots=None), or estimate the derivative from "
      "sampled results at shifted inputs.")



def no_derivatives(tree):
  """``tree`` unchanged, but differentiating through its float leaves raises TypeError."""
  def guard(x):
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact):
      return _not_differentiable(x)
    return x
  return jax.tree_util.tree_map(guard, tree)
