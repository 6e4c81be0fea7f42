"""Second-order optimisers for circuits, fed by `qhess.value_grad_and_hessian`.

Pure functions in the style of optax: each constructor validates its hyperparameters
and returns an `Optimizer`, a pair ``init(params) -> state`` and
``update(state, params, value, grad, hess, *, stderr=None) -> (new_params, state)``,
both jittable and vmappable (e.g. over a batch of starting points). ``params`` may be
any pytree; ``grad`` and ``hess`` are laid out as `qhess.value_grad_and_hessian` (and
`jax.grad`, `jax.hessian`) lay them out, and the linear algebra runs on the flat view
(`jax.flatten_util.ravel_pytree`): a ``(n_params, n_params)`` matrix, eigendecomposed
once per step (``n_params`` up to a few hundred).

The loop (one batch of circuits per iteration)::

    vgh = jax.jit(qhess.value_grad_and_hessian(circuit))
    opt = qhess.optimize.damped_newton()
    state = opt.init(params)
    for _ in range(20):
      value, grad, hess = vgh(params)
      params, state = opt.update(state, params, value, grad, hess)

Accepting or rejecting a step needs the objective at the proposed point. Rather than
spend a batch of circuits on that value alone, ``update`` returns the *candidate* and
keeps the last accepted point (with its value, gradient and Hessian) in the state; the
next call, which gets the candidate's value with its gradient and Hessian from the same
batch, accepts it (the candidate becomes the base of the next step) or rejects it (the
next step starts again from the stored point, with more damping or a smaller trust
region). A rejection thus costs one batch, exactly like an accepted step, and no
method ever runs an extra circuit. The last accepted point is `accepted_params`.

Methods (the step ``δ`` solves ``(H̃ + λ I) δ = -g`` in the eigenbasis of ``H``):

- `newton`: ``H̃ = H`` with a fixed damping: plain Newton, which converges to any
  stationary point, saddles and maxima included.
- `damped_newton`: Levenberg–Marquardt damping adapted from the ratio ``ρ`` of the
  actual to the predicted decrease (Nielsen's rule: K. Madsen, H. B. Nielsen,
  O. Tingleff, "Methods for non-linear least squares problems", 2nd ed., DTU 2004,
  eq. 3.16), on ``H`` shifted to be positive semi-definite, so that every step
  descends the quadratic model.
- `trust_region`: the exact minimiser of the quadratic model in a ball of radius ``Δ``
  (J. Nocedal, S. J. Wright, "Numerical Optimization", 2nd ed., Springer 2006,
  Alg. 4.1 and Sec. 4.3, hard case included), ``Δ`` adapted from ``ρ``.
- `saddle_free_newton`: ``H̃ = |H|``, the absolute values of the eigenvalues
  (Y. Dauphin et al., "Identifying and attacking the saddle point problem in
  high-dimensional non-convex optimization", NeurIPS 2014), with the adaptive damping
  of `damped_newton`: negative curvature repels instead of attracting.

With shots, pass ``stderr`` (from ``value_grad_and_hessian(..., return_stderr=True)``):
the damping (or the trust-region shift) is then at least the Hessian's standard error,
``‖SE(H)‖_F`` (the Frobenius norm of the entry-wise standard errors, which bounds the
expected spectral norm of the noise, so sampled curvature cannot produce huge steps),
and a change of the value within two standard errors of the difference does not count
as an increase.

Non-finite numbers never reach the parameters of the adaptive methods: a point whose
value, gradient, Hessian or standard errors hold a NaN or an infinity is rejected (the
next candidate starts again from the last accepted point, with more damping or a
smaller trust region), and a step that overflows is not taken (the candidate is the
accepted point itself, the damping grown or the region shrunk as on a rejection). A
later finite point is judged as usual. `newton` has no such safeguard.

`count_circuits` says how many circuits (and shots) one call of `qhess.hessian` or
`qhess.value_grad_and_hessian` runs, classical processing (``hybrid``) and measurement
groups included: the price of one step of every method here.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.derivatives.counting import CircuitCount as CircuitCount
from qhess.derivatives.counting import count_circuits as count_circuits
from qhess.derivatives.flat import flat_inputs as _flat_inputs
from jax.flatten_util import ravel_pytree


__all__ = ["CircuitCount", "NewtonState", "Optimizer", "accepted_params", "count_circuits",
           "damped_newton", "newton", "saddle_free_newton", "trust_region"]

# A change of the value within this many standard errors of the difference is noise.
_NOISE_SIGMAS = 2.0
# Nielsen's rule doubles the damping's growth factor on every rejection; capped here so
# that a long run of rejections (at convergence, where ρ is rounding noise) cannot
# overflow it.
_MAX_NU = 2.0**30
_MIN_RADIUS = 1e-14
# Decreases below this many ulps of the value are rounding.
_ROUNDING = 16.0


class NewtonState(NamedTuple):
  """The state of every optimiser of this module (arrays; a vmapped state has a leading
  batch axis on each).

  Attributes:
    count: int32, shape ``()``: updates so far.
    damping: shape ``()``: the damping ``λ`` of the next step (the trust radius ``Δ``
      for `trust_region`).
    nu: shape ``()``: Nielsen's growth factor of the damping on rejection.
    params: shape ``(n_params,)``: the last accepted point, flat (see `accepted_params`).
    value: shape ``()``: the objective there.
    grad: shape ``(n_params,)``: its gradient there.
    hess: shape ``(n_params, n_params)``: its Hessian there.
    value_stderr: shape ``()``: the value's standard error there (0 when exact).
    hess_stderr: shape ``()``: ``‖SE(H)‖_F`` there (0 when exact).
    predicted: shape ``()``: the decrease the quadratic model predicts for the pending
      step (the candidate returned by the last update).
    step_norm: shape ``()``: the pending step's length ``‖δ‖``.
    accepted: bool, shape ``()``: whether the last update accepted the point it got.
    n_rejected: int32, shape ``()``: rejected points so far (those with non-finite
      inputs included; ``n_rejected == count`` while no point has been accepted).
  """

  count: jax.Array  # shape=(), int32
  damping: jax.Array  # shape=()
  nu: jax.Array  # shape=()
  params: jax.Array  # shape=(n_params,)
  value: jax.Array  # shape=()
  grad: jax.Array  # shape=(n_params,)
  hess: jax.Array  # shape=(n_params, n_params)
  value_stderr: jax.Array  # shape=()
  hess_stderr: jax.Array  # shape=()
  predicted: jax.Array  # shape=()
  step_norm: jax.Array  # shape=()
  accepted: jax.Array  # shape=(), bool
  n_rejected: jax.Array  # shape=(), int32


class Optimizer(NamedTuple):
  """A pair of pure functions, as optax's ``GradientTransformation``.

  Attributes:
    init: ``init(params) -> NewtonState``.
    update: ``update(state, params, value, grad, hess, *, stderr=None) ->
      (new_params, new_state)``: ``params`` is the point at which ``value`` (a scalar),
      ``grad`` and ``hess`` (laid out as `jax.grad` and `jax.hessian` lay them out for
      ``params``) were evaluated, normally the ``new_params`` of the previous call;
      ``stderr`` is ``None`` or the ``(value, grad, hess)`` standard errors that
      ``qhess.value_grad_and_hessian(..., return_stderr=True)`` returns.
  """

  init: Callable[..., NewtonState]
  update: Callable[..., tuple[Any, NewtonState]]


# ----------------------------------------------------------------- validation helpers


def _check_real(x, name: str, fname: str, *, positive: bool, finite: bool = True,
                below: float | None = None) -> float:
  """``x`` as a float, or a TypeError/ValueError naming ``name`` and the range."""
  if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
    raise TypeError(f"{fname}: `{name}` must be a real number; got {x!r}.")
  x = float(x)
  ok = (x > 0 if positive else x >= 0) and (math.isfinite(x) or not finite) and (
      below is None or x < below)
  if not ok:
    what = ("a positive" if positive else "a non-negative") + (" finite" if finite else "")
    bound = "" if below is None else f" below {below:g}"
    raise ValueError(f"{fname}: `{name}` must be {what} number{bound}; got {x!r}.")
  return x


def _check_order(small: float, large: float, small_name: str, large_name: str,
                 fname: str) -> None:
  if small > large:
    raise ValueError(
        f"{fname}: `{small_name}` must be <= `{large_name}`; got {small_name}={small:g} and "
        f"{large_name}={large:g}.")


def _init(params, damping: float) -> NewtonState:
  """The state before the first update: nothing accepted, the damping at ``damping``."""
  x, _ = ravel_pytree(params)
  n = x.shape[0]
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
  zero = jnp.zeros((), dtype)
  return NewtonState(
      count=jnp.zeros((), jnp.int32), damping=jnp.asarray(damping, dtype),
      nu=jnp.asarray(2.0, dtype), params=x.astype(dtype), value=zero,
      grad=jnp.zeros((n,), dtype), hess=jnp.zeros((n, n), dtype), value_stderr=zero,
      hess_stderr=zero, predicted=zero, step_norm=zero, accepted=jnp.zeros((), bool),
      n_rejected=jnp.zeros((), jnp.int32))


def _solve(gt, d):
  """The step ``s = -gt/d`` in the eigenbasis for effective eigenvalues ``d``, zero
  where ``d`` vanishes within rounding (a pseudo-inverse)."""
  tiny = jnp.finfo(d.dtype).eps * jnp.maximum(jnp.max(jnp.abs(d), initial=0.0), 1.0)
  safe = jnp.abs(d) > tiny
  return jnp.where(safe, -gt / jnp.where(safe, d, 1.0), 0.0)  # (n,)


def _predicted(h, s, gt):
  """The quadratic model's decrease ``-(gᵀδ + ½ δᵀHδ)`` in the eigenbasis."""
  return -(gt @ s + 0.5 * jnp.sum(h * s**2))


def _tr_step(h, gt, radius, floor):
  """The trust-region subproblem ``min gᵀs + ½ sᵀ diag(h) s, ‖s‖ ≤ Δ`` in the eigenbasis.

  Nocedal & Wright Sec. 4.3: ``s(μ) = -gt/(h + μ)`` with ``μ ≥ max(0, -h_min)``;
  ``μ = 0`` when the Newton step is inside, else ``‖s(μ)‖ = Δ`` (bisection: ``‖s(μ)‖``
  decreases in ``μ``); in the hard case (``g`` orthogonal to the lowest eigenvector),
  ``s(-h_min)`` plus a multiple of that eigenvector reaching the boundary. ``μ`` is at
  least ``floor`` (the Hessian's noise).
  """
  h_min = jnp.min(h)
  lo = jnp.maximum(0.0, -h_min)
  g_norm = jnp.linalg.norm(gt)

  def norm(mu):
    d = h + mu
    safe = d > 0
    return jnp.sqrt(jnp.sum(jnp.where(safe, gt / jnp.where(safe, d, 1.0), 0.0) ** 2))

  # ‖s(μ)‖ <= ‖g‖ / (μ - lo) for μ > lo, so the root lies below hi.
  hi = lo + g_norm / radius + jnp.finfo(h.dtype).tiny

  def bisect(_, bounds):
    a, b = bounds
    m = 0.5 * (a + b)
    outside = norm(m) > radius
    return jnp.where(outside, m, a), jnp.where(outside, b, m)

  _, mu_b = jax.lax.fori_loop(0, 200, bisect, (lo, hi))
  newton_inside = (h_min > 0) & (norm(0.0) <= radius)
  mu = jnp.maximum(jnp.where(newton_inside, 0.0, mu_b), floor)
  d = h + mu
  safe = d > jnp.finfo(h.dtype).eps * jnp.maximum(jnp.max(jnp.abs(h), initial=0.0), 1.0)
  s = jnp.where(safe, -gt / jnp.where(safe, d, 1.0), 0.0)
  # Hard case: the boundary is not reached along the gradient's components; move along
  # the lowest eigenvector (μ = -h_min, above the noise floor) to the boundary.
  hard = (h_min < 0) & (mu <= lo * (1 + 1e-12) + jnp.finfo(h.dtype).tiny) & ~newton_inside
  tau = jnp.sqrt(jnp.maximum(radius**2 - jnp.sum(s**2), 0.0))
  return s.at[jnp.argmin(h)].add(jnp.where(hard, tau, 0.0))


def _make(fname: str, mode: str, *, damping: float, min_damping: float = 0.0,
          max_damping: float = math.inf, accept_ratio: float = 0.0,
          max_step: float = math.inf) -> Optimizer:
  """The shared engine; ``mode`` is newton, damped, saddle_free or trust_region."""
  bounds = (min_damping, max_damping)

  def update_fn(state: NewtonState, params, value, grad, hess, *, stderr=None):
    dtype = state.value.dtype
    *point, unravel = _flat_inputs(params, value, grad, hess, stderr, dtype, fname)
    if point[0].shape != state.params.shape:
      raise ValueError(f"{fname}: `params` has {point[0].shape[0]} entries; `state` was "
                       f"initialised for {state.params.shape[0]}.")
    if mode == "newton":
      accept, lam, nu, base = jnp.ones((), bool), state.damping, state.nu, point
    else:
      accept, evidence = _judge_candidate(state, point, accept_ratio)
      lam, nu = _adapt_damping(state, mode, accept, evidence, bounds)
      # The next step starts from the candidate if accepted, else from the stored point.
      stored = (state.params, state.value, state.grad, state.hess, state.value_stderr,
                state.hess_stderr)
      base = [jnp.where(accept, new, old) for new, old in zip(point, stored)]
    proposal = _propose_step(base, lam, mode, max_step)
    if mode != "newton":
      proposal, (lam, nu) = _drop_overflow(base[0], proposal, lam, nu, mode, bounds)
    s, step, predicted = proposal
    new_state = NewtonState(
        count=state.count + 1, damping=lam.astype(dtype), nu=jnp.asarray(nu, dtype),
        params=base[0], value=base[1], grad=base[2], hess=base[3], value_stderr=base[4],
        hess_stderr=base[5], predicted=predicted.astype(dtype),
        step_norm=jnp.linalg.norm(s).astype(dtype), accepted=accept,
        n_rejected=state.n_rejected + (~accept).astype(jnp.int32))
    return unravel(base[0] + step), new_state

  return Optimizer(lambda params: _init(params, damping), update_fn)


def _judge_candidate(state: NewtonState, point, accept_ratio: float):
  """Judge the pending step by its candidate: ``accept, (first, stalled, ρ)``."""
  _, f, g, h, se_f, se_h = point
  # No point accepted yet: every update so far was a rejection (only non-finite inputs
  # reject a first point; the next call is then again the first).
  first = state.count == state.n_rejected
  # A non-finite value, gradient, Hessian or standard error would turn the step, and
  # every one after it, into NaN: such a point is rejected like an increase.
  finite = (jnp.isfinite(f) & jnp.all(jnp.isfinite(g)) & jnp.all(jnp.isfinite(h))
            & jnp.isfinite(se_f) & jnp.isfinite(se_h))
  actual = state.value - f  # decrease achieved by the pending step
  pred = state.predicted
  # Differences at the level of rounding (or, with shots, of the noise) are no evidence
  # either way: they neither reject a point nor change the damping.
  rounding = _ROUNDING * jnp.finfo(f.dtype).eps * jnp.maximum(jnp.abs(state.value), 1.0)
  slack = _NOISE_SIGMAS * jnp.sqrt(state.value_stderr**2 + se_f**2) + rounding
  accept = finite & (first | (actual + slack > accept_ratio * pred))
  stalled = pred <= rounding
  rho = jnp.where(finite & (pred > 0), actual / jnp.where(pred > 0, pred, 1.0), -1.0)
  return accept, (first, stalled, rho)


def _adapt_damping(state: NewtonState, mode: str, accept, evidence, bounds):
  """The next ``λ`` (``Δ`` for trust_region) and ``ν``, after the verdict on the candidate."""
  first, stalled, rho = evidence
  lam, nu = state.damping, state.nu
  if mode == "trust_region":
    # Nocedal & Wright Alg. 4.1: shrink on a poor model, grow on a good one whose step
    # reached the boundary.
    at_boundary = state.step_norm >= 0.99 * lam
    lam_new = jnp.where(rho < 0.25, 0.25 * lam,
                        jnp.where((rho > 0.75) & at_boundary, 2.0 * lam, lam))
    nu_new = nu
  else:
    # Nielsen's rule (Madsen, Nielsen & Tingleff 2004, eq. 3.16): on acceptance
    # λ·max(1/3, 1 - (2ρ - 1)³) and ν = 2; on rejection λ·ν and ν doubles.
    r = jnp.clip(rho, 0.0, 1.0)
    lam_new = jnp.where(accept, lam * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * r - 1.0)**3),
                        lam * nu)
    nu_new = jnp.where(accept, 2.0, jnp.minimum(2.0 * nu, _MAX_NU))
  keep = first | (stalled & accept)
  return jnp.where(keep, lam, jnp.clip(lam_new, *bounds)), jnp.where(keep, nu, nu_new)


def _propose_step(base, lam, mode: str, max_step: float):
  """The step from ``base``: ``(s, δ, predicted decrease)``, ``s`` in the eigenbasis."""
  _, _, g, h, _, se_h = base
  # Symmetrise: a sampled Hessian is symmetric only up to its noise.
  ev, vecs = jnp.linalg.eigh(0.5 * (h + h.T))
  gt = vecs.T @ g  # (n,)
  s = _eigen_step(ev, gt, lam, se_h, mode, max_step)
  return s, vecs @ s, _predicted(ev, s, gt)


def _eigen_step(ev, gt, lam, floor, mode: str, max_step: float):
  """The step for ``mode`` in the eigenbasis (eigenvalues ``ev``), with damping ``lam``."""
  if mode == "trust_region":
    return _tr_step(ev, gt, lam, floor)
  if mode == "newton":
    return _solve(gt, ev + lam)
  lam_eff = jnp.maximum(lam, floor)
  if mode == "damped":
    # Shift H to positive definite by twice its most negative eigenvalue (that one
    # becomes its magnitude, as in saddle-free Newton), then damp: every step descends
    # the model, and none is huge along negative curvature.
    d = ev - 2.0 * jnp.min(ev, initial=0.0) + lam_eff
  else:  # saddle_free
    d = jnp.abs(ev) + lam_eff
  s = _solve(gt, d)
  # Gate angles are periodic: a step longer than ``max_step`` is shortened (the model
  # still decreases along it, d being positive).
  norm = jnp.linalg.norm(s)
  return s * jnp.minimum(1.0, max_step / jnp.where(norm > 0, norm, 1.0))


def _drop_overflow(x, proposal, lam, nu, mode: str, bounds):
  """A step that overflows (huge inputs) is not taken; ``λ`` grows (``Δ`` shrinks) instead."""
  step, predicted = proposal[1:]
  s_ok = jnp.all(jnp.isfinite(x + step)) & jnp.isfinite(predicted)
  proposal = tuple(jnp.where(s_ok, v, 0.0) for v in proposal)
  if mode == "trust_region":
    lam_rej, nu_rej = 0.25 * lam, nu
  else:
    lam_rej, nu_rej = lam * nu, jnp.minimum(2.0 * nu, _MAX_NU)
  return proposal, (jnp.where(s_ok, lam, jnp.clip(lam_rej, *bounds)),
                    jnp.where(s_ok, nu, nu_rej))



# ----------------------------------------------------------------- public constructors


def newton(damping: float = 0.0) -> Optimizer:
  """Plain Newton steps ``δ = -(H + λ I)⁻¹ g`` with a fixed damping ``λ``, no safeguard.

  Every point is accepted (``stderr``, if given, is not used). On a quadratic form with
  ``λ = 0`` one step reaches the stationary point, and near any non-degenerate
  stationary point (minimum, saddle or maximum) the iteration converges to it
  quadratically. Directions with ``H + λ I`` singular (an eigenvalue within rounding of
  0) get no step (a pseudo-inverse).

  Args:
    damping: ``λ >= 0``, added to every eigenvalue of the Hessian.

  Returns:
    an `Optimizer`.

  Raises:
    TypeError: for a non-real ``damping``.
    ValueError: for a negative or non-finite ``damping``.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> vgh = jax.jit(qhess.value_grad_and_hessian(f))
    >>> opt = qhess.optimize.newton()
    >>> x = jnp.array([2.5])
    >>> state = opt.init(x)
    >>> for _ in range(4):
    ...   x, state = opt.update(state, x, *vgh(x))
    >>> print(x.round(6))  # cos x is minimal at π
    [3.141593]
  """
  fname = "qhess.optimize.newton"
  damping = _check_real(damping, "damping", fname, positive=False)
  return _make(fname, "newton", damping=damping)


def _adaptive(fname: str, mode: str, damping, min_damping, max_damping, accept_ratio,
              max_step):
  damping = _check_real(damping, "damping", fname, positive=True)
  min_damping = _check_real(min_damping, "min_damping", fname, positive=True)
  max_damping = _check_real(max_damping, "max_damping", fname, positive=True, finite=False)
  accept_ratio = _check_real(accept_ratio, "accept_ratio", fname, positive=False, below=0.25)
  _check_order(min_damping, damping, "min_damping", "damping", fname)
  max_step = _check_real(max_step, "max_step", fname, positive=True, finite=False)
  _check_order(damping, max_damping, "damping", "max_damping", fname)
  return _make(fname, mode, damping=damping, min_damping=min_damping,
               max_damping=max_damping, accept_ratio=accept_ratio, max_step=max_step)


def damped_newton(damping: float = 0.1, *, min_damping: float = 1e-12,
                  max_damping: float = 1e12, accept_ratio: float = 0.0,
                  max_step: float = 1.0) -> Optimizer:
  """Newton with Levenberg–Marquardt damping adapted to how well the model predicts.

  The step is ``δ = -(H + σ I + λ I)⁻¹ g`` with ``σ = 2 max(0, -λ_min(H))`` (the shift
  that makes ``H`` positive definite, its most negative eigenvalue turned into its
  magnitude, so every step descends the quadratic model ``m(δ) = gᵀδ + ½ δᵀHδ`` and
  none is huge along negative curvature; near a minimum ``σ = 0``). The next call
  compares the actual decrease at the candidate with the predicted ``-m(δ)``: the
  candidate is accepted when ``actual > accept_ratio · predicted`` (a step that
  increases the objective never is) and its value, gradient, Hessian and standard
  errors are finite (a NaN or infinity rejects it), and the damping follows Nielsen's rule (Madsen,
  Nielsen & Tingleff 2004, eq. 3.16): on acceptance ``λ ← λ · max(1/3, 1 - (2ρ - 1)³)``
  with ``ρ = actual/predicted``, on rejection ``λ ← λ · ν`` with ``ν`` doubling on every
  consecutive rejection. ``λ`` stays within ``[min_damping, max_damping]``, and with
  ``stderr`` it is at least the Hessian's standard error (see the module docs).

  Args:
    damping: the initial ``λ > 0``.
    min_damping: the least ``λ``, ``> 0`` (with a small value the steps near a minimum
      are Newton steps and converge quadratically).
    max_damping: the largest ``λ``, ``>= damping``.
    accept_ratio: the least ``ρ`` accepted, in ``[0, 0.25)``.
    max_step: the longest step ``‖δ‖ > 0`` (longer ones are shortened): gate angles
      are periodic, so a step of radians is already far; ``math.inf`` for none.

  Returns:
    an `Optimizer`.

  Raises:
    TypeError: for a non-real hyperparameter.
    ValueError: for a hyperparameter out of its range (named in the message), or
      ``min_damping <= damping <= max_damping`` violated.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RY(x[0], wires=0)
    ...   qhess.RY(x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.5 * qhess.X(0))
    >>> vgh = jax.jit(qhess.value_grad_and_hessian(f))
    >>> opt = qhess.optimize.damped_newton()
    >>> x = jnp.array([0.3, 0.4])
    >>> state = opt.init(x)
    >>> for _ in range(15):
    ...   x, state = opt.update(state, x, *vgh(x))
    >>> print(round(float(state.value), 6))  # the minimum is -sqrt(1 + 0.25)
    -1.118034
  """
  return _adaptive("qhess.optimize.damped_newton", "damped", damping, min_damping,
                   max_damping, accept_ratio, max_step)


def saddle_free_newton(damping: float = 0.1, *, min_damping: float = 1e-12,
                       max_damping: float = 1e12, accept_ratio: float = 0.0,
                  max_step: float = 1.0) -> Optimizer:
  """Saddle-free Newton: ``δ = -(|H| + λ I)⁻¹ g``, ``|H|`` through the eigendecomposition.

  ``|H| = V |Λ| Vᵀ`` (Dauphin et al., NeurIPS 2014) rescales each eigendirection by its
  curvature's magnitude, so along negative curvature the step goes downhill (away
  from a saddle or maximum) where plain Newton would go uphill, towards it. Near a
  minimum it is Newton's step. The damping ``λ`` adapts, and candidates are accepted
  or rejected, as in `damped_newton`.

  Its arguments (``damping`` ... ``max_step``) are those of `damped_newton`.

  Returns:
    an `Optimizer`.

  Raises:
    TypeError, ValueError: as `damped_newton`.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):  # cos x0 cos x1: a saddle at (π/2, π/2), minima at (0, π), (π, 0)
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.RY(x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> vgh = jax.jit(qhess.value_grad_and_hessian(f))
    >>> opt = qhess.optimize.saddle_free_newton()
    >>> x = jnp.array([1.6, 1.5])  # next to the saddle
    >>> state = opt.init(x)
    >>> for _ in range(10):
    ...   x, state = opt.update(state, x, *vgh(x))
    >>> print(round(float(state.value), 6))
    -1.0
  """
  return _adaptive("qhess.optimize.saddle_free_newton", "saddle_free", damping,
                   min_damping, max_damping, accept_ratio, max_step)


def trust_region(radius: float = 0.5, *, max_radius: float = 2 * math.pi,
                 accept_ratio: float = 0.0) -> Optimizer:
  """The exact minimiser of the quadratic model in a ball, the radius adapted.

  The step solves ``min_δ gᵀδ + ½ δᵀHδ`` subject to ``‖δ‖ <= Δ`` (Nocedal & Wright
  2006, Sec. 4.3: ``δ = -(H + μ I)⁻¹ g`` with ``μ >= max(0, -λ_min(H))``, found by
  bisection on the eigendecomposition; the "hard case" moves along the lowest
  eigenvector), so negative curvature is followed to the boundary. The candidate is
  accepted when ``actual > accept_ratio · predicted`` and its inputs are finite (a NaN
  or infinity rejects it); ``Δ`` is quartered when ``ρ < 1/4`` or on such a rejection
  and doubled (up to ``max_radius``) when ``ρ > 3/4`` and the step reached the boundary
  (Alg. 4.1). With ``stderr``, ``μ`` is at least the Hessian's standard error.

  Args:
    radius: the initial ``Δ > 0`` (in the parameters' units: radians for gate angles).
    max_radius: the largest ``Δ``, ``>= radius``.
    accept_ratio: the least ``ρ`` accepted, in ``[0, 0.25)``.

  Returns:
    an `Optimizer` (its state's ``damping`` field holds ``Δ``).

  Raises:
    TypeError: for a non-real hyperparameter.
    ValueError: for a hyperparameter out of its range (named in the message), or
      ``radius > max_radius``.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.RY(x[1], wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> vgh = jax.jit(qhess.value_grad_and_hessian(f))
    >>> opt = qhess.optimize.trust_region()
    >>> x = jnp.array([0.1, 0.2])  # next to the maximum cos x0 cos x1 = 1
    >>> state = opt.init(x)
    >>> for _ in range(12):
    ...   x, state = opt.update(state, x, *vgh(x))
    >>> print(round(float(state.value), 6))
    -1.0
  """
  fname = "qhess.optimize.trust_region"
  radius = _check_real(radius, "radius", fname, positive=True)
  max_radius = _check_real(max_radius, "max_radius", fname, positive=True, finite=False)
  accept_ratio = _check_real(accept_ratio, "accept_ratio", fname, positive=False, below=0.25)
  _check_order(radius, max_radius, "radius", "max_radius", fname)
  # (a floor on Δ keeps it from underflowing to 0, from where it could never grow)
  return _make(fname, "trust_region", damping=radius, min_damping=_MIN_RADIUS,
               max_damping=max_radius, accept_ratio=accept_ratio)


def accepted_params(state: NewtonState, params):
  """The last accepted point (the best so far), laid out as ``params``.

  ``update`` returns candidates, some of which the next call rejects; this is the point
  whose value is ``state.value``.

  Args:
    state: a `NewtonState`.
    params: any pytree laid out as the optimised parameters (e.g. the latest ones).

  Returns:
    a pytree like ``params``.

  Raises:
    ValueError: when ``params`` does not have ``state.params.shape[0]`` entries.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> opt = qhess.optimize.damped_newton()
    >>> state = opt.init({"a": jnp.zeros(2)})
    >>> best = qhess.optimize.accepted_params(state, {"a": jnp.ones(2)})
    >>> {k: v.tolist() for k, v in best.items()}
    {'a': [0.0, 0.0]}
  """
  x, unravel = ravel_pytree(params)
  if x.shape[-1:] != state.params.shape[-1:] or x.ndim != 1:
    raise ValueError(
        f"`params` has {x.shape[0]} entries; `state` holds {state.params.shape[-1]}.")
  return unravel(state.params.astype(x.dtype))
