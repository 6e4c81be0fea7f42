"""Finite shots at the edges: counts beyond int32, non-differentiability, exact
allocation, and a sampling graph whose size does not grow with the circuit.

The circuit ``f`` is one wire, RX(x[0]) then <Z>: its Hessian is -cos(x[0]).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.derivatives import budget as _budget
from qhess.derivatives import estimators as _estimators

X = jnp.array([0.5])
EXACT = -np.cos(0.5)


@qhess.circuit(wires=1)
def f(x):
  qhess.RX(x[0], wires=0)
  return qhess.expval(qhess.Z(0))


def test_shots_beyond_int32_are_counted_exactly():
  key = jax.random.key(0)
  # 2**32 + 1 wrapped to 1 shot in int32 ([[-1.]], stderr 0); 10**12 gave NaN.
  h, err = qhess.hessian(f, shots=2**32 + 1, return_stderr=True)(X, key=key)
  # Standard error of the estimate: sqrt(sum_t c_t^2 (1 - <Z>_t^2) / N) < 1e-5.
  assert 0 < float(err[0, 0]) < 1e-5
  assert abs(float(h[0, 0]) - EXACT) < 6 * float(err[0, 0])
  h = qhess.hessian(f, shots=qhess.ShotBudget(total=2**32 + 50))(X, key=key)
  assert abs(float(h[0, 0]) - EXACT) < 1e-4
  value = f.sample(10**12, key)(X)
  assert abs(float(value) - np.cos(0.5)) < 1e-5
  (out,) = qhess.execute([f.tape(X)], shots=(2**31, 10**12), key=key)
  assert all(abs(float(v) - np.cos(0.5)) < 1e-4 for v in out)


@pytest.mark.parametrize("make", [
    lambda: qhess.hessian(f, shots=10**20),
    lambda: qhess.hessian(f, shots=(10, 2**53 + 1)),
    lambda: qhess.ShotBudget(total=10**20),
    lambda: f.sample(10**20, jax.random.key(0)),
], ids=["hessian", "shot_vector", "budget", "sample"])
def test_shots_beyond_float64_integers_rejected(make):
  with pytest.raises(ValueError, match=r"must be at most 2\*\*53 = 9007199254740992.*got "
                                       r"(100000000000000000000|9007199254740993)"):
    make()


def test_shots_beyond_float32_integers_rejected_without_x64(float32):
  key = jax.random.key(0)
  x = jnp.array([0.5], jnp.float32)
  with pytest.raises(ValueError, match=r"`shots` = 16777217 .* 2\*\*24 = 16777216 .*x64"):
    qhess.hessian(f, shots=2**24 + 1)(x, key=key)
  with pytest.raises(ValueError, match=r"`ShotBudget.total` = 100000007 .*2\*\*24"):
    qhess.hessian(f, shots=qhess.ShotBudget(10**8 + 7))(x, key=key)
  with pytest.raises(ValueError, match=r"`shots\[1\]` = 16777217 .*2\*\*24"):
    qhess.execute([f.tape(x)], shots=(10, 2**24 + 1), key=key)


@pytest.mark.parametrize("total", [10**8 + 7, 2**31 - 1])
def test_allocate_sums_exactly_in_float32(float32, total):
  weights = jnp.array([0.0, 1.0, 3.0, 0.25, 10.0, 0.0, 2.0, 1e-3], jnp.float32)
  n = np.asarray(_budget.allocate(total, weights)).astype(np.int64)
  assert n.sum() == total and n.min() >= 1
  # Proportional up to rounding (float32 shares of ~2**31 are off by ~2**31 / 2**24).
  quota = 1 + (total - 8) * np.asarray(weights, np.float64) / float(np.sum(weights))
  assert np.all(np.abs(n - quota) <= 1 + 4 * total / 2**24)


def test_allocate_sums_exactly_beyond_int32():
  weights = jnp.array([1.0, 3.0, 0.5, 1e-9, 7.0])
  total = 10**15 + 7
  n = np.asarray(_budget.allocate(total, weights)).astype(np.int64)
  assert n.sum() == total and n.min() >= 1
  quota = 1 + (total - 5) * np.asarray(weights) / float(np.sum(weights))
  assert np.all(np.abs(n - quota) <= 2.0)


def test_sampled_hessian_not_differentiable():
  key = jax.random.key(0)
  h = qhess.hessian(f, shots=10**6)
  # jax.grad used to return [0.] here (the true derivative is 0.4048).
  with pytest.raises(TypeError, match="cannot be differentiated.*shots=None"):
    jax.grad(lambda x: h(jnp.sin(x), key=key)[0, 0])(X)
  with pytest.raises(TypeError, match="cannot be differentiated"):
    jax.jacfwd(lambda x: f.sample(1000, key)(x))(X)
  # Without differentiation, and under vmap over keys, it still runs.
  hs = jax.vmap(lambda k: h(jnp.sin(X), key=k))(jax.random.split(key, 2))
  assert hs.shape == (2, 1, 1)


def _count(jaxpr, names) -> int:
  n = 0
  for eqn in jaxpr.eqns:
    n += eqn.primitive.name in names
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if hasattr(sub, "eqns"):
          n += _count(sub, names)
        elif hasattr(sub, "jaxpr"):
          n += _count(getattr(sub.jaxpr, "jaxpr", sub.jaxpr), names)
  return n


def _layers(n_layers, observable):
  @qhess.circuit(wires=2)
  def c(x):
    for k in range(n_layers):
      qhess.RY(x[2 * k], wires=0)
      qhess.RX(x[2 * k + 1], wires=1)
      qhess.CNOT(wires=(0, 1))
    return qhess.expval(observable)
  return c


def test_sampling_graph_small_and_traced_once_over_keys(monkeypatch):
  # XLA's compile time grew with every random-number site: one binomial sampler per
  # measurement group, tree level and prefix-sharing segment (52-84 s for 6 wires).
  # The counts are now drawn by one batched sampler: its sites are independent of the
  # number of points, schedule segments and measurement groups.
  key = jax.random.key(0)
  sites = {}
  # Two layers suffice: 4 parameters give 33 points and several segments against 1
  # parameter's 5 points (three layers, 73 points, only traced for longer).
  for n_layers, name in [(1, "Z"), (2, "Z"), (2, "ZX")]:
    obs = qhess.Z(0) @ qhess.Z(1)
    if name == "ZX":  # a second measurement group
      obs = obs + 0.5 * qhess.X(0)
    c = _layers(n_layers, obs)
    x = jnp.linspace(0.1, 1.0, 2 * n_layers)
    h = qhess.hessian(c, shots=1000, return_stderr=True)
    jaxpr = jax.make_jaxpr(lambda x, k: h(x, key=k))(x, key).jaxpr
    sites[n_layers, name] = _count(jaxpr, {"random_bits"})
  assert len(set(sites.values())) == 1, sites
  assert sites[1, "Z"] <= 8, sites
  # Only the key changes, or a vmap over keys: no new trace (hence no compilation).
  calls = []
  estimate = _estimators.estimate
  monkeypatch.setattr(_estimators, "estimate", lambda *a, **k: calls.append(1) or estimate(*a, **k))
  h = qhess.hessian(_layers(1, qhess.Z(0)), shots=100, return_stderr=True)
  keys = jax.random.split(key, 4)
  x = jnp.array([0.3, 0.4])
  a, b = h(x, key=keys[0]), h(x, key=keys[1])
  assert not np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
  batched = jax.vmap(lambda k: h(x, key=k))
  batched(keys[:2])
  batched(keys[2:])
  assert len(calls) == 1
