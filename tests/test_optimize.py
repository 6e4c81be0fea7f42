"""qhess.optimize: Newton-type steps, their adaptation, jit/vmap/pytrees, circuit counts.

References are independent of the code under test: quadratic forms with a known
minimiser, the exact ground energy of a 2-qubit transverse-field Ising Hamiltonian by
NumPy diagonalisation (the ansatz below can represent the ground state, so its best
energy is that), a circuit with an analytically known saddle, and the circuit counts
of `qhess.hessian_tapes` / `qhess.hessian_experiments` and of the docstring formulas.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess import optimize
from qhess.derivatives import counting as _counting

# ----------------------------------------------------------------------- fixtures

# A positive definite quadratic form f(x) = ½ (x - x*)ᵀ A (x - x*) + c.
_A = np.array([[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.5]])
_X_STAR = np.array([0.4, -1.2, 0.7])


def _quadratic(x):
  d = x - _X_STAR
  return 0.5 * d @ _A @ d + 1.5


def _vgh(fun):
  return lambda x: (fun(x), jax.grad(fun)(x), jax.hessian(fun)(x))


def _tfim_2(x):  # ansatz: RY layer, CNOT, RY layer (real amplitudes)
  qhess.RY(x[0], wires=0)
  qhess.RY(x[1], wires=1)
  qhess.CNOT(wires=(0, 1))
  qhess.RY(x[2], wires=0)
  qhess.RY(x[3], wires=1)
  return qhess.expval(-1.0 * (qhess.Z(0) @ qhess.Z(1)) - (qhess.X(0) + qhess.X(1)))


TFIM = qhess.circuit(_tfim_2, wires=2)


def _tfim_ground_energy() -> float:
  z, x, i = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.eye(2)
  h = -np.kron(z, z) - (np.kron(x, i) + np.kron(i, x))
  return float(np.linalg.eigvalsh(h)[0])


@qhess.circuit(wires=2)
def SADDLE(x):
  # <Z0 Z1> = cos x0 cos x1 (a product state). Its gradient
  # (-sin x0 cos x1, -cos x0 sin x1) vanishes at (π/2, π/2), where the Hessian is
  # [[0, 1], [1, 0]] (eigenvalues ±1): a saddle, value 0. The minima are -1, at
  # (0, π) and (π, 0) (mod 2π).
  qhess.RX(x[0], wires=0)
  qhess.RY(x[1], wires=1)
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


@pytest.fixture(scope="module")
def tfim_vgh():
  return jax.jit(qhess.value_grad_and_hessian(TFIM))


@pytest.fixture(scope="module")
def saddle_vgh():
  return jax.jit(qhess.value_grad_and_hessian(SADDLE))


def _run(opt, vgh, x, n_steps, update=None):
  update = jax.jit(opt.update) if update is None else update
  state = opt.init(x)
  for _ in range(n_steps):
    x, state = update(state, x, *vgh(x))
  return x, state


# ----------------------------------------------------------------- quadratic forms


@pytest.mark.parametrize("make, atol", [
    (lambda: optimize.newton(), 1e-12),
    # (the adaptive methods carry a damping; at its floor the step is Newton's)
    (lambda: optimize.damped_newton(1e-12, max_step=math.inf), 1e-10),
    (lambda: optimize.saddle_free_newton(1e-12, max_step=math.inf), 1e-10),
    (lambda: optimize.trust_region(6.0), 1e-12),
], ids=["newton", "damped_newton", "saddle_free_newton", "trust_region"])
def test_optimizer_quadratic_converges_in_one_step(make, atol):
  opt = make()
  x0 = jnp.array([3.0, 1.0, -2.0])
  x1, _ = opt.update(opt.init(x0), x0, *_vgh(_quadratic)(x0))
  chex.assert_trees_all_close(x1, jnp.asarray(_X_STAR), atol=atol, rtol=0.0)


def test_optimizer_pytree_params_match_flat():
  # The same quadratic on a dict {"a": (2,), "b": ()} and on the flat vector.
  def unflat(x):
    return {"a": x[:2], "b": x[2]}

  def fun_tree(p):
    return _quadratic(jnp.concatenate([p["a"], p["b"][None]]))

  opt = optimize.saddle_free_newton(0.3)
  x = jnp.array([3.0, 1.0, -2.0])
  p = unflat(x)
  state_x, state_p = opt.init(x), opt.init(p)
  for _ in range(3):
    x, state_x = opt.update(state_x, x, *_vgh(_quadratic)(x))
    p, state_p = opt.update(state_p, p, *_vgh(fun_tree)(p))
    chex.assert_trees_all_close(p, unflat(x), atol=1e-12, rtol=0.0)
  assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(unflat(x))
  chex.assert_trees_all_close(optimize.accepted_params(state_p, p), unflat(state_x.params),
                              atol=1e-12, rtol=0.0)


# ----------------------------------------------------------------- adaptation


def test_damped_newton_rejects_an_increase_and_grows_damping():
  opt = optimize.damped_newton(0.5, max_step=math.inf)
  x0 = jnp.array([3.0, 1.0, -2.0])
  f0, g0, h0 = _vgh(_quadratic)(x0)
  x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0)
  # The step solves (A + λ I) δ = -g (A is positive definite).
  expected = x0 - np.linalg.solve(_A + 0.5 * np.eye(3), g0)
  chex.assert_trees_all_close(x1, expected, atol=1e-12, rtol=0.0)
  assert bool(s1.accepted) and float(s1.damping) == 0.5
  # Report a value above f0 at the candidate: rejected, back to x0, more damping.
  x2, s2 = opt.update(s1, x1, f0 + 1.0, g0, h0)
  assert not bool(s2.accepted) and int(s2.n_rejected) == 1
  assert float(s2.damping) == 0.5 * 2.0  # Nielsen: λ·ν, ν = 2
  chex.assert_trees_all_close(s2.params, x0, atol=0.0, rtol=0.0)
  expected = x0 - np.linalg.solve(_A + 1.0 * np.eye(3), g0)
  chex.assert_trees_all_close(x2, expected, atol=1e-12, rtol=0.0)
  # A second rejection: ν doubled, λ·4.
  x3, s3 = opt.update(s2, x2, f0 + 1.0, g0, h0)
  assert not bool(s3.accepted) and float(s3.damping) == 4.0
  # The true value at a candidate: the model is exact (ρ = 1), accepted, λ/3.
  _, s4 = opt.update(s3, x3, *_vgh(_quadratic)(x3))
  assert bool(s4.accepted)
  chex.assert_trees_all_close(s4.damping, 4.0 / 3.0, atol=1e-12, rtol=0.0)
  chex.assert_trees_all_close(s4.params, x3, atol=0.0, rtol=0.0)


def test_trust_region_rejects_an_increase_and_shrinks():
  opt = optimize.trust_region(0.5)
  x0 = jnp.array([3.0, 1.0, -2.0])
  f0, g0, h0 = _vgh(_quadratic)(x0)
  x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0)
  # The Newton step is longer than 0.5, so the step lies on the boundary.
  chex.assert_trees_all_close(jnp.linalg.norm(x1 - x0), 0.5, atol=1e-9, rtol=0.0)
  x2, s2 = opt.update(s1, x1, f0 + 1.0, g0, h0)
  assert not bool(s2.accepted) and float(s2.damping) == 0.125
  chex.assert_trees_all_close(jnp.linalg.norm(x2 - x0), 0.125, atol=1e-9, rtol=0.0)
  # Exact model at a boundary step: accepted and the radius doubles.
  _, s3 = opt.update(s2, x2, *_vgh(_quadratic)(x2))
  assert bool(s3.accepted) and float(s3.damping) == 0.25


def test_optimizer_stderr_floors_the_damping():
  x0 = jnp.array([3.0, 1.0, -2.0])
  f0, g0, h0 = _vgh(_quadratic)(x0)
  se_h = jnp.full((3, 3), 10.0)  # ‖SE(H)‖_F = 30
  stderr = (jnp.asarray(0.0), jnp.zeros(3), se_h)
  # A is positive definite: |A| = A, no shift, and the Newton step (length 4.3) lies inside Δ = 6;
  # each method's step is then -(A + 30 I)⁻¹ g.
  for opt in [optimize.damped_newton(0.5, max_step=math.inf),
              optimize.saddle_free_newton(0.5, max_step=math.inf),
              optimize.trust_region(6.0)]:
    x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0, stderr=stderr)
    chex.assert_trees_all_close(s1.hess_stderr, 30.0, atol=1e-12, rtol=0.0)
    expected = x0 - np.linalg.solve(_A + 30.0 * np.eye(3), g0)
    chex.assert_trees_all_close(x1, expected, atol=1e-12, rtol=0.0)


def test_optimizer_stderr_tolerates_noise_in_the_value():
  opt = optimize.damped_newton(0.5)
  x0 = jnp.array([3.0, 1.0, -2.0])
  f0, g0, h0 = _vgh(_quadratic)(x0)
  noisy = (jnp.asarray(0.1), jnp.zeros(3), jnp.zeros((3, 3)))
  x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0, stderr=noisy)
  # An increase of 0.2 < 2·sqrt(0.1² + 0.1²) is noise: accepted; exact: rejected.
  _, s2 = opt.update(s1, x1, f0 + 0.2, g0, h0, stderr=noisy)
  assert bool(s2.accepted)
  x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0)
  _, s2 = opt.update(s1, x1, f0 + 0.2, g0, h0)
  assert not bool(s2.accepted)
  # An increase of 0.3 > 2·sqrt(0.1² + 0.1²): rejected also with noise.
  x1, s1 = opt.update(opt.init(x0), x0, f0, g0, h0, stderr=noisy)
  _, s2 = opt.update(s1, x1, f0 + 0.3, g0, h0, stderr=noisy)
  assert not bool(s2.accepted)


# ----------------------------------------------------------------- non-finite inputs

_BAD_INPUTS = {  # (value, grad, hess) at the candidate -> one of them not finite
    "nan_hessian": lambda f, g, h: (f, g, h.at[0, 1].set(jnp.nan)),
    "inf_gradient": lambda f, g, h: (f, g.at[2].set(jnp.inf), h),
    "nan_value": lambda f, g, h: (jnp.nan, g, h),
    "inf_hessian": lambda f, g, h: (f, g, h.at[1, 1].set(-jnp.inf)),
}


@pytest.mark.parametrize("make", [
    lambda: optimize.damped_newton(0.5, max_step=math.inf),
    lambda: optimize.saddle_free_newton(0.5, max_step=math.inf),
    lambda: optimize.trust_region(0.5),
], ids=["damped_newton", "saddle_free_newton", "trust_region"])
def test_optimizer_non_finite_inputs_are_rejections(make):
  opt = make()
  update = jax.jit(opt.update)  # one compile per method; every call below reuses it
  x0 = jnp.array([3.0, 1.0, -2.0])
  f0, g0, h0 = _vgh(_quadratic)(x0)
  x1, s1 = update(opt.init(x0), x0, f0, g0, h0)
  # The reference: the candidate rejected for an increase (checked against NumPy in
  # the rejection tests above: λ·ν = 1 and the step -(A + I)⁻¹ g, or Δ/4 = 0.125).
  x_inc, s_inc = update(s1, x1, f0 + 1.0, g0, h0)
  for name, bad in _BAD_INPUTS.items():
    x2, s2 = update(s1, x1, *bad(*_vgh(_quadratic)(x1)))
    assert not bool(s2.accepted) and int(s2.n_rejected) == 1, name
    assert bool(jnp.all(jnp.isfinite(x2))), name
    chex.assert_trees_all_close(s2.params, x0, atol=0.0, rtol=0.0)  # the last good point
    chex.assert_trees_all_close((x2, s2), (x_inc, s_inc), atol=1e-12, rtol=0.0)
  # A later finite point is judged as usual, and the run converges.
  x, state = x2, s2
  for _ in range(8):
    x, state = update(state, x, *_vgh(_quadratic)(x))
  assert int(state.n_rejected) == 1
  chex.assert_trees_all_close(x, jnp.asarray(_X_STAR), atol=1e-10, rtol=0.0)
  # Non-finite at the very first point: nothing to step from, the parameters stay and
  # the next (finite) call is a first call again.
  x_first, s_first = update(opt.init(x0), x0, f0, g0, h0.at[2, 0].set(jnp.nan))
  assert not bool(s_first.accepted) and int(s_first.n_rejected) == 1
  chex.assert_trees_all_close(x_first, x0, atol=0.0, rtol=0.0)
  chex.assert_trees_all_close(s_first.damping, s1.damping, atol=0.0, rtol=0.0)
  x_again, s_again = update(s_first, x0, f0, g0, h0)
  assert bool(s_again.accepted)
  chex.assert_trees_all_close(x_again, x1, atol=1e-12, rtol=0.0)
  chex.assert_trees_all_close(s_again.params, s1.params, atol=0.0, rtol=0.0)


def test_optimizer_step_that_overflows_is_not_taken():
  opt = optimize.damped_newton(0.5, max_step=math.inf)
  update = jax.jit(opt.update)
  x0 = jnp.array([3.0, 1.0, -2.0])
  # Finite inputs whose step -g/λ overflows: the candidate is x0 itself, λ·ν.
  huge = jnp.full(3, 1e308)
  x1, s1 = update(opt.init(x0), x0, jnp.asarray(1.0), huge, jnp.zeros((3, 3)))
  chex.assert_trees_all_close(x1, x0, atol=0.0, rtol=0.0)
  assert float(s1.damping) == 1.0 and float(s1.nu) == 4.0 and float(s1.predicted) == 0.0


def test_optimizer_non_finite_inputs_vmapped_per_start():
  # Under vmap the rejection is per start: the other start steps as it does alone.
  opt = optimize.damped_newton(0.5, max_step=math.inf)
  step = jax.jit(jax.vmap(opt.update))
  xs = jnp.array([[3.0, 1.0, -2.0], [1.0, 0.0, 0.5]])
  vgh = jax.vmap(_vgh(_quadratic))
  x1, s1 = step(jax.vmap(opt.init)(xs), xs, *vgh(xs))
  f1, g1, h1 = vgh(x1)
  x2, s2 = step(s1, x1, f1, g1.at[0, 1].set(jnp.nan), h1)
  assert s2.accepted.tolist() == [False, True]
  chex.assert_trees_all_close(s2.params[0], xs[0], atol=0.0, rtol=0.0)
  assert bool(jnp.all(jnp.isfinite(x2)))
  x, state = _run(opt, _vgh(_quadratic), xs[1], 2)
  chex.assert_trees_all_close(x2[1], x, atol=1e-12, rtol=0.0)


# ----------------------------------------------------------------- circuits


def test_optimizer_vqe_reaches_the_ground_energy(tfim_vgh):
  e0 = _tfim_ground_energy()
  starts = jax.random.uniform(jax.random.key(1), (3, 4), minval=-np.pi, maxval=np.pi)
  for opt in [optimize.damped_newton(), optimize.saddle_free_newton(),
              optimize.trust_region()]:
    update = jax.jit(opt.update)
    for x in starts:
      state = opt.init(x)
      for _ in range(16):  # (all converge to 1e-9 within 13 steps)
        x, state = update(state, x, *tfim_vgh(x))
      assert abs(float(state.value) - e0) < 1e-6
      got = float(TFIM(optimize.accepted_params(state, x)))
      assert abs(got - e0) < 1e-6


def test_optimizer_vmap_over_starts_matches_loop(tfim_vgh):
  starts = jax.random.uniform(jax.random.key(2), (3, 4), minval=-np.pi, maxval=np.pi)
  opt = optimize.damped_newton()
  vgh_batch = jax.jit(jax.vmap(qhess.value_grad_and_hessian(TFIM)))
  step = jax.jit(jax.vmap(opt.update))
  xs, states = starts, jax.vmap(opt.init)(starts)
  for _ in range(4):
    xs, states = step(states, xs, *vgh_batch(xs))
  update = jax.jit(opt.update)  # (not vmapped: the loop's)
  for i in range(3):
    x, state = _run(opt, tfim_vgh, starts[i], 4, update)
    chex.assert_trees_all_close(xs[i], x, atol=1e-10, rtol=0.0)
    chex.assert_trees_all_close(states.value[i], state.value, atol=1e-12, rtol=0.0)


def test_optimizer_saddle_free_escapes_where_newton_converges(saddle_vgh):
  saddle = jnp.array([np.pi / 2, np.pi / 2])
  x0 = saddle + jnp.array([0.1, -0.05])
  x, state = _run(optimize.newton(), saddle_vgh, x0, 6)
  chex.assert_trees_all_close(x, saddle, atol=1e-10, rtol=0.0)
  assert abs(float(state.value)) < 1e-10
  for opt in [optimize.saddle_free_newton(), optimize.damped_newton(),
              optimize.trust_region()]:
    x, state = _run(opt, saddle_vgh, x0, 12)
    assert float(state.value) < -1.0 + 1e-8  # a minimum, -1
    assert float(jnp.linalg.norm(x - saddle)) > 1.0


# ----------------------------------------------------------------- circuit counts


def _three_args(x):
  qhess.RX(x[0], wires=0)
  qhess.RY(0.3, wires=1)  # a constant: no circuits with hybrid=True
  qhess.CNOT(wires=(0, 1))
  qhess.RY(2 * x[1], wires=1)
  return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.5 * qhess.X(1))


THREE_ARGS = qhess.circuit(_three_args, wires=2)


def test_count_circuits_matches_tapes_experiments_and_formulas():
  x = jnp.array([0.5, 0.2])
  count = _counting.count_circuits
  # hybrid=False: all three gate arguments; the product rule's tapes are PennyLane's.
  got = count(qhess.hessian, THREE_ARGS, hybrid=False, off_diagonal_rule="product")(x)
  assert got.points == len(qhess.hessian_tapes(THREE_ARGS.tape(x))[0]) == 1 + 3 + 2 * 3 * 2
  assert (got.groups, got.circuits, got.shots) == (2, 2 * got.points, None)
  # Default (diagonal) rule: (3P² - P + 2)/2; with the gradient 1 + 2P + 3P(P-1)/2.
  assert count(qhess.hessian, THREE_ARGS, hybrid=False)(x).points == (27 - 3 + 2) // 2
  assert count(qhess.hessian, THREE_ARGS)(x).points == (12 - 2 + 2) // 2  # P = 2
  assert count(qhess.value_grad_and_hessian, THREE_ARGS)(x).points == 1 + 4 + 3
  # With shots: the product rule, and the experiments of a device.
  got = count(qhess.hessian, THREE_ARGS, shots=100)(x)
  experiments, _ = qhess.hessian_experiments(THREE_ARGS, shots=100)(x)
  assert got.circuits == len(experiments) and got.shots == 100 * len(experiments)
  assert got.points == 1 + 2 + 4
  got = count(qhess.value_grad_and_hessian, THREE_ARGS, shots=(10, 30))(x)
  assert got.points == 1 + 4 + 4 and got.shots == 40 * got.circuits
  got = count(qhess.value_grad_and_hessian, THREE_ARGS, batch_size=4, evaluation="shared",
              shots=qhess.ShotBudget(5000), return_stderr=True)(x)
  assert got.shots == 5000


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize("make, match", [
    (lambda: optimize.newton(-1.0), r"`damping` must be a non-negative finite number; got -1.0"),
    (lambda: optimize.newton(math.nan), r"`damping` must be a non-negative finite"),
    (lambda: optimize.damped_newton(0.0), r"`damping` must be a positive finite number; got 0.0"),
    (lambda: optimize.damped_newton(math.inf), r"`damping` must be a positive finite"),
    (lambda: optimize.damped_newton(min_damping=0.0), r"`min_damping` must be a positive"),
    (lambda: optimize.damped_newton(max_damping=-1.0), r"`max_damping` must be a positive"),
    (lambda: optimize.saddle_free_newton(accept_ratio=0.25),
     r"`accept_ratio` must be a non-negative finite number below 0.25; got 0.25"),
    (lambda: optimize.saddle_free_newton(max_step=0.0), r"`max_step` must be a positive"),
    (lambda: optimize.damped_newton(1e-3, min_damping=1e-2),
     r"`min_damping` must be <= `damping`; got min_damping=0.01 and damping=0.001"),
    (lambda: optimize.saddle_free_newton(10.0, max_damping=1.0),
     r"`damping` must be <= `max_damping`"),
    (lambda: optimize.trust_region(0.0), r"trust_region: `radius` must be a positive"),
    (lambda: optimize.trust_region(max_radius=math.nan), r"`max_radius` must be a positive"),
    (lambda: optimize.trust_region(accept_ratio=-0.1), r"`accept_ratio` must be a non-neg"),
    (lambda: optimize.trust_region(3.0, max_radius=1.0),
     r"`radius` must be <= `max_radius`; got radius=3 and max_radius=1"),
])
def test_optimizer_bad_hyperparameters_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("make", [
    lambda: optimize.newton("0.1"), lambda: optimize.damped_newton(True),
    lambda: optimize.saddle_free_newton(max_step=None),
    lambda: optimize.trust_region(jnp.array(0.5))])
def test_optimizer_non_real_hyperparameters_raise(make):
  with pytest.raises(TypeError, match=r"must be a real number; got"):
    make()


def test_optimizer_update_bad_inputs_raise():
  opt = optimize.damped_newton()
  x = jnp.array([3.0, 1.0, -2.0])
  f, g, h = _vgh(_quadratic)(x)
  state = opt.init(x)
  with pytest.raises(ValueError, match=r"`value` must be a scalar .*got shape \(3,\)"):
    opt.update(state, x, g, g, h)
  with pytest.raises(ValueError, match=r"`grad` must be laid out as `params` \(leaf sizes "
                     r"\[3\]\); got leaf sizes \[2\]"):
    opt.update(state, x, f, g[:2], h)
  with pytest.raises(ValueError, match=r"`hess` must be laid out as jax.hessian lays it "
                     r"out .*got 1 block\(s\) of sizes \[6\]"):
    opt.update(state, x, f, g, h[:2])
  with pytest.raises(ValueError, match=r"`params` has 2 entries; `state` was initialised "
                     r"for 3"):
    opt.update(state, x[:2], f, g[:2], h[:2, :2])
  with pytest.raises(TypeError, match=r"`stderr` must be None or the \(value, grad, hess\) "
                     r"standard errors .*got tuple of length 2"):
    opt.update(state, x, f, g, h, stderr=(f, g))
  with pytest.raises(ValueError, match=r"`stderr\[0\]` \(the value's standard error\) must "
                     r"be a scalar; got shape \(3,\)"):
    opt.update(state, x, f, g, h, stderr=(g, g, h))
  with pytest.raises(ValueError, match=r"`stderr\[2\]` must be laid out"):
    opt.update(state, x, f, g, h, stderr=(f, g, g))
  with pytest.raises(ValueError, match=r"`params` has 2 entries; `state` holds 3"):
    optimize.accepted_params(state, x[:2])


def test_count_circuits_bad_arguments_raise():
  with pytest.raises(TypeError, match=r"`fn` must be qhess.hessian, "
                     r"qhess.value_grad_and_hessian or qhess.gradient; got 'hessian'"):
    _counting.count_circuits(jax.hessian, THREE_ARGS)
  with pytest.raises(TypeError, match=r"takes a circuit made with @qhess.circuit"):
    _counting.count_circuits(qhess.hessian, _three_args)
  with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['shot'\]"):
    _counting.count_circuits(qhess.hessian, THREE_ARGS, shot=10)
  with pytest.raises(TypeError, match=r"`hybrid` must be a bool; got 1"):
    _counting.count_circuits(qhess.hessian, THREE_ARGS, hybrid=1)
  with pytest.raises(ValueError, match=r"off_diagonal_rule"):
    _counting.count_circuits(qhess.hessian, THREE_ARGS, off_diagonal_rule="x")
