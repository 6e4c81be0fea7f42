"""Estimates from sampled points: the post-processed outputs and their standard errors.

`estimate` runs a plan's points through a sampler, turns counts into raw values
(`raw_from_counts`) and the raw values into the outputs by ``post``, with first-order
standard errors from the Jacobian of ``post``. `from_counts` and `from_frequencies` do
the same for counts measured elsewhere.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp

from qhess.simulate import density as _density
from qhess.derivatives.budget import budget_shots, check_budget
from qhess.simulate.groups import Marginals, estimator_matrix, measurement_groups
from qhess.simulate.sampling import ShotBudget, check_counts_fit, draw_counts
from qhess.derivatives.variance import _per_shot_values


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
      points (see `qhess.simulate.kernel.sample_run`).
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
