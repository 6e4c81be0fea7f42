"""Shot budgets: a total number of shots allocated across circuits.

`budget_shots` allocates a `ShotBudget` by Neyman allocation (shots proportional to each
circuit's contribution to the standard error of the outputs); `allocate` rounds a
weighting to integers that sum to the total.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from qhess.derivatives.variance import _flat_jacobian, _per_shot_values
from qhess.simulate.groups import raw_from_counts
from qhess.simulate.groups import MeasurementGroups
from qhess.simulate.sampling import ShotBudget



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
