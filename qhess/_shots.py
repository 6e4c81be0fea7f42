"""Finite-shot (sampled) evaluation: measurement groups, sampling, shot allocation, errors.

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
(`_statevector.sample_points_shared`) or independently — and returns the probabilities
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
from typing import Any, Callable, Sequence

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from qhess import _density
from qhess import _statevector

_SQRT_HALF = float(np.sqrt(0.5))
# Basis rotations: measuring in the Z basis after U measures U† Z U.
_ROTATION = {
    "X": np.array([[1, 1], [1, -1]], dtype=complex) * _SQRT_HALF,  # H
    "Y": np.array([[1, -1j], [1, 1j]], dtype=complex) * _SQRT_HALF,  # H·S†
}


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


@dataclasses.dataclass(frozen=True)
class Group:
  """One measured circuit per point (static).

  Attributes:
    rotations: tuple of ``(char, wire)`` with char ``"X"``/``"Y"``, and
      ``("H", wires, const_index)`` for Hermitian eigenbases.
    wires: the measured wires, sorted; outcome index bits are in this order, MSB first.
  """

  rotations: tuple
  wires: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class MeasurementGroups:
  """The groups of a tape's raw measurements and where each term is measured (static).

  Attributes:
    groups: tuple of `Group`.
    assign: per raw measurement: for ``expval`` a tuple with each term's group, for
      ``expval_sq`` and ``probs`` a 1-tuple with the group of the whole measurement.
  """

  groups: tuple[Group, ...]
  assign: tuple[tuple[int, ...], ...]

  @property
  def n_outcomes(self) -> int:
    """Outcomes per group after padding: ``2**max(k_g)``."""
    return 2 ** max(len(g.wires) for g in self.groups)


def _factor_bases(factors) -> dict:
  out = {}
  for f in factors:
    if f[0] == "H":
      for w in f[1]:
        out[w] = ("H", f[1], f[2])
    else:
      out[f[1]] = f[0]
  return out


@functools.lru_cache(maxsize=64)
def measurement_groups(raw_measurements: tuple) -> MeasurementGroups:
  """Greedy qubit-wise-commuting grouping of a tape's raw measurements.

  Raises:
    ValueError: for ``var`` of an observable whose terms do not commute qubit-wise.
  """
  bases: list[dict] = []

  def place(item: dict) -> int:
    for g, basis in enumerate(bases):
      if all(basis.get(w, b) == b for w, b in item.items()):
        basis.update(item)
        return g
    bases.append(dict(item))
    return len(bases) - 1

  assign = []
  for m in raw_measurements:
    if m.kind == "probs":
      assign.append((place({w: "Z" for w in m.wires}),))
    elif m.kind == "expval":
      assign.append(tuple(place(_factor_bases(fs)) for _, fs in m.terms))
    else:  # expval_sq: the whole observable in one basis
      item: dict = {}
      for _, fs in m.terms:
        for w, b in _factor_bases(fs).items():
          if item.get(w, b) != b:
            raise ValueError(
                "var of an observable whose terms do not commute qubit-wise cannot be "
                "sampled: <O> and <O²> must come from one measurement basis. Measure "
                "the terms' expectation values instead; got wire {w} in bases "
                f"{item[w]!r} and {b!r}.")
          item[w] = b
      assign.append((place(item),))
  if not bases:
    bases.append({})
  groups = []
  for basis in bases:
    rotations = []
    for w in sorted(basis):
      b = basis[w]
      if b in ("X", "Y"):
        rotations.append((b, w))
      elif isinstance(b, tuple) and b[1][0] == w:  # one entry per Hermitian factor
        rotations.append(b)
    groups.append(Group(tuple(rotations), tuple(sorted(basis))))
  return MeasurementGroups(tuple(groups), tuple(assign))


def _outcome_bits(group: Group) -> np.ndarray:
  """int array ``(2**k, k)``: the bit of each measured wire in each outcome."""
  k = len(group.wires)
  o = np.arange(2**k)[:, None]
  return (o >> (k - 1 - np.arange(k))[None, :]) & 1


def _term_values(group: Group, factors, consts, dtype) -> jax.Array:
  """Value of a product of factors for each outcome of ``group``, shape ``(2**k,)``."""
  bits = _outcome_bits(group)
  pos = {w: i for i, w in enumerate(group.wires)}
  values = jnp.ones(len(bits), dtype)
  for f in factors:
    if f[0] == "H":
      eig = jnp.linalg.eigvalsh(consts[f[2]]).astype(dtype)
      index = np.zeros(len(bits), dtype=int)
      for w in f[1]:  # eigenvalue index: the factor's wires in its own order, MSB first
        index = 2 * index + bits[:, pos[w]]
      values = values * eig[index]
    else:
      values = values * (1.0 - 2.0 * bits[:, pos[f[1]]]).astype(dtype)
  return values


def estimator_matrix(mg: MeasurementGroups, raw_measurements, consts, dtype) -> jax.Array:
  """``A`` of shape ``(n_raw, G, O)``: raw outputs ``Y_r = Σ_{g,o} A[r, g, o] f_{g,o}``.

  ``f_{g,o}`` are the outcome frequencies of group ``g``; padded outcomes have ``A = 0``.
  """
  n_groups, n_out = len(mg.groups), mg.n_outcomes
  rows = []
  for m, assign in zip(raw_measurements, mg.assign):
    if m.kind == "probs":
      (g,) = assign
      group = mg.groups[g]
      bits = _outcome_bits(group)
      col = np.zeros(len(bits), dtype=int)
      for w in m.wires:  # requested wire order, MSB first
        col = 2 * col + bits[:, group.wires.index(w)]
      block = np.zeros((2 ** len(m.wires), n_groups, n_out))
      block[col, g, np.arange(len(bits))] = 1.0
      rows.append(jnp.asarray(block, dtype))
      continue
    row = jnp.zeros((n_groups, n_out), dtype)
    if m.kind == "expval":
      for (c, fs), g in zip(m.terms, assign):
        vals = c * _term_values(mg.groups[g], fs, consts, dtype)
        row = row.at[g, :len(vals)].add(vals)
    else:  # expval_sq: (Σ_terms value)², per outcome of the common basis
      (g,) = assign
      vals = sum(c * _term_values(mg.groups[g], fs, consts, dtype) for c, fs in m.terms)
      vals = jnp.broadcast_to(vals, (2 ** len(mg.groups[g].wires),)) ** 2
      row = row.at[g, :len(vals)].set(vals)
    rows.append(row[None])
  return jnp.concatenate(rows)


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


@dataclasses.dataclass(frozen=True)
class Marginals:
  """Each group's outcome probabilities from a final state (hashable: a jit static).

  ``marginals(psi, consts)`` with ``psi`` of shape ``(2**n,)`` returns a float array of
  shape ``(G, O)``: group ``g``'s state rotated into its eigenbasis, marginalised onto its
  ``k_g`` wires (outcome bits in sorted wire order, MSB first), zero-padded to ``O``.
  Deterministic: the kernel maps it over the points; `draw_counts` then samples.
  """

  groups: tuple[Group, ...]
  n_wires: int
  n_outcomes: int
  readout: tuple[float, ...] | None = None  # per-wire flip probability of measured bits

  def __call__(self, psi, consts):
    n, out = self.n_wires, []
    # A vector of 4**n amplitudes is a density matrix (_density.py): U ρ U†, diagonal.
    mixed = psi.shape[0] != 2**n
    rotate = _density.apply_unitary if mixed else _statevector.apply_matrix
    for g in self.groups:
      phi = psi
      for rot in g.rotations:
        if rot[0] == "H":
          _, vecs = jnp.linalg.eigh(consts[rot[2]])
          phi = rotate(phi, jnp.conj(vecs.T).astype(phi.dtype), rot[1], n)
        else:
          phi = rotate(phi, _ROTATION[rot[0]].astype(phi.dtype), (rot[1],), n)
      probs = _density.diagonal(phi, n) if mixed else jnp.real(phi * jnp.conj(phi))
      view = _statevector._View(g.wires, n) if g.wires else None
      if view is None:
        marginal = jnp.sum(probs)[None]
      else:  # sum the unmeasured axes of the split view: (2,)*k in sorted wire order
        marginal = jnp.reshape(jnp.sum(jnp.reshape(probs, view.shape),
                                       axis=tuple(range(0, view.ndim, 2))), (-1,))
        if self.readout is not None:  # the measured bits flip (after the rotation)
          marginal = _density.flip_bits(marginal, tuple(self.readout[w] for w in g.wires))
      out.append(jnp.pad(marginal, (0, self.n_outcomes - marginal.shape[0])))
    return jnp.stack(out)  # (G, O)


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


# ------------------------------------------------------------------------------ sampling


def raw_from_counts(a, counts, shots) -> jax.Array:
  """Raw outputs ``(B, n_raw)`` from counts ``(B, G, O)`` and shots ``(B, G)``."""
  freq = counts / shots[..., None].astype(counts.dtype)
  return jnp.einsum("rgo,bgo->br", a, freq)


def _per_shot_values(jac, a):
  """``v`` of shape ``(K, B, G, O)``: each output's per-shot value of each outcome."""
  return jnp.einsum("kbr,rgo->kbgo", jac, a)


def _flat_jacobian(post: Callable, y):
  flat = lambda y_: jax.flatten_util.ravel_pytree(post(y_))[0]
  return jax.jacobian(flat)(y)  # (K, B, n_raw)


def _post_and_stderr(post: Callable, y, p, shots, a):
  """``(post(y), standard errors)``, the errors first order in ``post``'s layout (see
  the module doc).

  One `jax.vjp` gives the outputs and the Jacobian ``J`` (no second trace of ``post``).
  The per-shot variance ``Σ_o p_o v_o² - (Σ_o p_o v_o)²`` of ``v_o = Σ_r J_r A[r, o]``
  is contracted through the moments ``Σ_o p_o A[r, o] A[s, o]`` when there are fewer
  raw outputs than outcomes (``R <= O``: no ``(K, B, G, O)`` tensor), directly otherwise.
  """
  unravel = []

  def flat_post(y_):
    flat, unravel_fn = jax.flatten_util.ravel_pytree(post(y_))
    unravel.append(unravel_fn)
    return flat

  flat_out, vjp = jax.vjp(flat_post, y)
  jac = jax.vmap(lambda e: vjp(e)[0])(jnp.eye(flat_out.shape[0], dtype=flat_out.dtype))
  n = shots.astype(y.dtype)  # (B, G)
  p = p.astype(y.dtype)  # (B, G, O): the outcome frequencies
  n_raw, n_out = a.shape[0], a.shape[2]
  if n_raw <= n_out:
    m1 = jnp.einsum("bgo,rgo->bgr", p, a)
    m2 = jnp.einsum("bgo,rgo,sgo->bgrs", p, a, a)
    mean = jnp.einsum("kbr,bgr->kbg", jac, m1)
    second = jnp.einsum("kbr,kbs,bgrs->kbg", jac, jac, m2)
  else:
    v = _per_shot_values(jac, a)  # (K, B, G, O)
    mean = jnp.sum(p[None] * v, axis=-1)
    second = jnp.sum(p[None] * v**2, axis=-1)
  var = jnp.maximum(second - mean**2, 0.0)  # (K, B, G)
  var = var / jnp.maximum(n - 1, 1)[None]  # unbiased sample variance / N
  return unravel[0](flat_out), unravel[0](jnp.sqrt(jnp.sum(var, axis=(1, 2))))


def allocate(total: int, weights) -> jax.Array:
  """Integer shots ``>= 1`` summing to exactly ``total``, the rest ``∝ weights``.

  The shares ``q_c = (total - C) w_c / Σ w`` are rounded by cumulative sums: circuit
  ``c`` gets ``round(Σ_{c' <= c} q_c') - round(Σ_{c' < c} q_c')`` more shots, within one
  shot of ``q_c`` (up to the float rounding of the shares). The sum telescopes in
  integer arithmetic, so it is exact whatever that rounding.

  Args:
    total: the number of shots, at least ``len(weights)`` and at most the largest int of
      the default int dtype (int64 with x64, int32 = ``2**31 - 1`` without).
    weights: non-negative float array ``(C,)``; all zero means uniform.

  Returns:
    int array ``(C,)``, int64 with x64 and int32 without.

  Raises:
    ValueError: when ``total`` does not fit the int dtype.
  """
  int_dtype = jax.dtypes.canonicalize_dtype(np.int64)
  if total > np.iinfo(int_dtype).max:
    raise ValueError(
        f"`total` = {total} does not fit {np.dtype(int_dtype).name}: at most "
        f"{np.iinfo(int_dtype).max} shots without x64.")
  c = weights.shape[0]
  w = jnp.where(jnp.sum(weights) > 0, weights, jnp.ones_like(weights))
  extra = total - c
  cum = jax.lax.cummax(jnp.cumsum(w))  # non-decreasing, however the sums are ordered
  ends = jnp.floor(extra * (cum / cum[-1]) + 0.5)
  # The largest float not above `extra`, so that the conversion cannot overflow.
  top = np.asarray(extra, ends.dtype)
  if int(top) > extra:
    top = np.nextafter(top, np.zeros((), top.dtype))
  ends = jnp.clip(ends, 0, top).astype(int_dtype).at[-1].set(extra)
  return 1 + jnp.diff(ends, prepend=jnp.zeros(1, int_dtype))


def _neyman_weights(post, y, a, valid, counts=None, shots=None):
  """``s_c`` of every circuit ``(B·G,)``: see `ShotBudget`."""
  v = _per_shot_values(_flat_jacobian(post, y), a)  # (K, B, G, O)
  if counts is None:
    # Half the range of the values (Popoviciu's bound on the standard deviation);
    # padded outcomes are excluded by the valid mask (G, O).
    hi = jnp.max(jnp.where(valid[None, None], v, -jnp.inf), axis=-1)
    lo = jnp.min(jnp.where(valid[None, None], v, jnp.inf), axis=-1)
    var = jnp.where(jnp.any(valid, axis=-1)[None, None], (hi - lo) / 2, 0.0) ** 2
  else:
    p = (counts / shots[..., None].astype(counts.dtype))[None]
    var = jnp.maximum(jnp.sum(p * v**2, -1) - jnp.sum(p * v, -1) ** 2, 0.0)
  return jnp.reshape(jnp.sqrt(jnp.sum(var, axis=0)), (-1,))


def _unstack(tree, n: int) -> tuple:
  """A pytree with a leading axis of length ``n`` as a tuple of ``n`` pytrees."""
  return tuple(jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(n))


def estimate(post: Callable, tape, sample: Callable, n_points: int, shots, key, *,
             return_stderr: bool):
  """Sampled ``post(Y)`` (and its standard errors) for ``n_points`` circuits.

  The kernel runs once (``sample``: the groups' marginal probabilities at every point);
  the counts are then drawn by `draw_counts`, once per shot-vector entry (vmapped) or
  for the pilot and the main pass of a budget.

  Args:
    post: raw point values ``(B, n_raw)`` -> outputs (any pytree).
    tape: the tape (measurements, consts, dtype).
    sample: ``sample(marginals)`` -> ``(B, G, O)``, a `Marginals` mapped over the
      points (see `_statevector.sample_run`).
    n_points: ``B``.
    shots: a validated ``shots`` (int, tuple of ints, `ShotBudget`).
    key: a PRNG key.
    return_stderr: also return standard errors in the outputs' layout.

  Returns:
    the outputs (a tuple of them for a shot vector), or ``(outputs, stderrs)``.

  Raises:
    ValueError: when a budget is smaller than the number of circuits, or a count is not
      an exact integer in the tape's dtype (`check_counts_fit`).
  """
  raw_ms = tape.raw_measurements
  mg = measurement_groups(raw_ms)
  dtype = tape.params.dtype
  check_counts_fit(shots, dtype)
  b, g = n_points, len(mg.groups)
  if isinstance(shots, ShotBudget):  # before any tracing of the kernel
    check_budget(shots, b, g)
  a = estimator_matrix(mg, raw_ms, tape.consts, dtype)
  probs = sample(Marginals(mg.groups, tape.n_wires, mg.n_outcomes,
                           _density.readout_of(tape)))  # (B, G, O)

  def once(k, n, max_shots):  # n: float (B, G)
    counts = draw_counts(probs, n, jax.random.split(k, b), max_shots)
    return from_counts(post, a, counts, n, return_stderr=return_stderr)

  if isinstance(shots, tuple):
    # One batched computation over the entries (not a Python loop): the same draws as
    # entry i alone with fold_in(key, i).
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(len(shots)))
    n = jnp.broadcast_to(jnp.asarray(shots, dtype)[:, None, None], (len(shots), b, g))
    results = _unstack(jax.vmap(lambda k, n_: once(k, n_, max(shots)))(keys, n),
                       len(shots))
    if return_stderr:
      return tuple(r[0] for r in results), tuple(r[1] for r in results)
    return results
  if isinstance(shots, int):
    return once(key, jnp.full((b, g), shots, dtype), shots)
  k_pilot, k_main = jax.random.split(key)
  pilot_counts = None
  if shots.pilot and shots.strategy != "uniform":
    n_p = jnp.full((b, g), shots.pilot, dtype)
    pilot_counts = draw_counts(probs, n_p, jax.random.split(k_pilot, b))
  return once(k_main, budget_shots(shots, post, a, mg, b, dtype, pilot_counts), None)


def check_budget(shots: ShotBudget, b: int, g: int) -> None:
  """Raises unless a budget gives every one of the ``b·g`` circuits a shot (pilot too).

  Raises:
    ValueError: naming the budget and the number of circuits.
  """
  pilot = shots.pilot or 0
  need = b * g * (pilot + 1)
  if shots.total < need:
    raise ValueError(
        f"`shots` ShotBudget(total={shots.total}) is smaller than the number of circuits "
        f"({b * g} = {b} points x {g} measurement group(s))"
        + (f" times (pilot + 1) = {need}" if pilot else "")
        + "; every circuit needs at least one shot.")


def budget_shots(shots: ShotBudget, post: Callable, a, mg: MeasurementGroups, b: int,
                 dtype, pilot_counts=None) -> jax.Array:
  """The main pass's shots ``(B, G)`` (floats of ``dtype``) allocated by a budget.

  Args:
    shots: the budget (checked with `check_budget`).
    post: raw point values ``(B, n_raw)`` -> outputs; its Jacobian weighs the circuits.
    a: the estimator matrix ``(n_raw, G, O)``.
    mg: the measurement groups.
    b: the number of points ``B``.
    dtype: the float dtype of the counts.
    pilot_counts: ``None`` or the pilot pass's counts ``(B, G, O)`` (``shots.pilot``
      each); the pilot's shots are subtracted from the total either way.
  """
  g = len(mg.groups)
  remaining = shots.total - (shots.pilot or 0) * b * g
  valid = (np.arange(mg.n_outcomes)[None, :]
           < 2 ** np.array([len(grp.wires) for grp in mg.groups])[:, None])
  if shots.strategy == "uniform":
    weights = jnp.ones(b * g, dtype)
  elif pilot_counts is not None:
    n_p = jnp.full((b, g), shots.pilot, dtype)
    weights = _neyman_weights(post, raw_from_counts(a, pilot_counts, n_p), a, valid,
                              pilot_counts, n_p)
  else:
    weights = _neyman_weights(post, jnp.zeros((b, a.shape[0]), dtype), a, valid)
  return jnp.reshape(allocate(remaining, weights).astype(dtype), (b, g))


def from_counts(post: Callable, a, counts, shots, *, return_stderr: bool):
  """``post`` of the raw values estimated from outcome counts (and standard errors).

  The one estimator of sampled results, for simulated draws (`estimate`); counts
  measured elsewhere go through `from_frequencies`.

  Args:
    post: raw point values ``(B, n_raw)`` -> outputs (any pytree).
    a: the estimator matrix ``(n_raw, G, O)`` (`estimator_matrix`).
    counts: float array ``(B, G, O)``, each row summing to its shots.
    shots: float array ``(B, G)``: shots per circuit.
    return_stderr: also return first-order standard errors in the outputs' layout.
  """
  freq = counts / shots[..., None].astype(counts.dtype)
  return from_frequencies(post, a, freq, shots, return_stderr=return_stderr)


def from_frequencies(post: Callable, a, freq, shots, *, return_stderr: bool):
  """``post`` of the raw values estimated from outcome frequencies (and standard errors).

  `from_counts` with the division by the shots already done: for counts measured
  elsewhere (``qhess.hessian_experiments``), whose rows are normalised in float64 by
  the caller, so that counts of any finite scale (``1e306`` or denormal) give the same
  frequencies.

  Args:
    post: raw point values ``(B, n_raw)`` -> outputs (any pytree).
    a: the estimator matrix ``(n_raw, G, O)`` (`estimator_matrix`).
    freq: float array ``(B, G, O)``, each row summing to 1.
    shots: float array ``(B, G)``: shots per circuit (only the standard errors use them).
    return_stderr: also return first-order standard errors in the outputs' layout.
  """
  y = jnp.einsum("rgo,bgo->br", a, freq)
  return _post_and_stderr(post, y, freq, shots, a) if return_stderr else post(y)


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
    probs = _statevector.sample_run(
        _statevector.kernel_key(first), params, first.consts,
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
