"""Observable coefficients as data: traced coefficients, one compile for every value, and
derivatives with respect to them (issue 21, item 3).

References: `jax.hessian` / `jax.grad` through the simulator, whose value is the same
expectation value with the coefficients multiplied in.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.derivatives import hessian as _hessian

TOL = dict(rtol=0, atol=1e-10)


@pytest.fixture(autouse=True)
def always_share():
  """Overrides conftest.py's fixture: the cost model picks the evaluation here."""


@qhess.circuit(wires=2)
def ENERGY(x, c):
  qhess.RY(x[0], wires=0)
  qhess.CNOT(wires=(0, 1))
  qhess.RX(jnp.sin(x[1]), wires=1)
  h = (c[0] * qhess.Z(0) + c[1] * (qhess.X(0) @ qhess.X(1)) + c[2] * c[0] * qhess.Y(1)
       + 0.3 * qhess.Z(1))
  return qhess.expval(h), qhess.probs(wires=1)


X = jnp.array([0.4, -0.7])
C = jnp.array([0.5, -1.2, 0.8])


def test_traced_coefficients_are_data_and_the_value_matches():
  # Eagerly the coefficients are concrete (static); under a trace they are data.
  eager = ENERGY.tape(X, C).measurements[0]
  assert eager.coeffs is None
  spec = []
  jax.make_jaxpr(lambda c: spec.append(ENERGY.tape(X, c).measurements[0]) or 0)(C)
  assert spec[0].coeffs is not None and all(t[0] == 1.0 for t in spec[0].terms)
  chex.assert_trees_all_close(jax.jit(ENERGY)(X, C), ENERGY(X, C), **TOL)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)])
def test_hessian_with_respect_to_gates_and_coefficients(argnums):
  got = qhess.hessian(ENERGY, argnums=argnums)(X, C)
  chex.assert_trees_all_close(got, jax.hessian(ENERGY, argnums=argnums)(X, C), **TOL)


def test_value_grad_hessian_adjoint_and_vmap():
  v, g, h = qhess.value_grad_and_hessian(ENERGY, argnums=(0, 1))(X, C)
  chex.assert_trees_all_close(v, ENERGY(X, C), **TOL)
  chex.assert_trees_all_close(g, jax.jacobian(ENERGY, argnums=(0, 1))(X, C), **TOL)
  chex.assert_trees_all_close(h, jax.hessian(ENERGY, argnums=(0, 1))(X, C), **TOL)
  adj = qhess.hessian(ENERGY, argnums=(0, 1), evaluation="adjoint")(X, C)
  chex.assert_trees_all_close(adj, h, **TOL)
  cs = jnp.stack([C, 2 * C, -C])
  batched = jax.jit(jax.vmap(qhess.hessian(ENERGY), in_axes=(None, 0)))(X, cs)
  chex.assert_trees_all_close(batched, jax.vmap(jax.hessian(ENERGY), in_axes=(None, 0))(X, cs),
                              **TOL)


def test_a_scan_over_coefficients_compiles_once(monkeypatch):
  traces = []
  derivatives = _hessian._derivatives
  monkeypatch.setattr(_hessian, "_derivatives",
                      lambda *a, **k: traces.append(1) or derivatives(*a, **k))
  scan = qhess.circuit(wires=2)(ENERGY.fn)  # a new circuit: nothing compiled yet
  hess = qhess.hessian(scan)
  rng = np.random.default_rng(3)
  for _ in range(10):  # a "geometry scan": new coefficients each time
    c = jnp.asarray(rng.normal(size=3))
    chex.assert_trees_all_close(hess(X, c), jax.hessian(ENERGY)(X, c), **TOL)
  assert len(traces) == 1


def test_shots_with_traced_coefficients(key):
  hess, err = qhess.hessian(ENERGY, argnums=(0, 1), shots=20_000, return_stderr=True)(
      X, C, key=key)
  exact = jax.hessian(ENERGY, argnums=(0, 1))(X, C)
  z = jax.tree_util.tree_map(lambda h, e, s: np.abs(h - e) / np.maximum(s, 1e-12),
                             hess, exact, err)
  assert max(float(np.max(v)) for v in jax.tree_util.tree_leaves(z)) < 5


def test_variance_with_traced_coefficients_is_refused():
  @qhess.circuit(wires=1)
  def variance(x, c):
    qhess.RY(x[0], wires=0)
    return qhess.var(c[0] * qhess.Z(0))

  with pytest.raises(TypeError, match=r"qhess.var of an observable with traced "
                     r"coefficients .*only qhess.expval"):
    qhess.hessian(variance)(X, C)


def test_pennylane_hamiltonian_coefficients_stay_data():
  qml = pytest.importorskip("pennylane")
  dev = qml.device("default.qubit", wires=2)

  @qml.qnode(dev)
  def qnode(x, c):
    qml.RY(x[0], wires=0)
    qml.CNOT(wires=[0, 1])
    qml.RX(x[1], wires=1)
    return qml.expval(qml.Hamiltonian(c, [qml.Z(0), qml.X(0) @ qml.X(1), qml.Y(1)]))

  circuit = qhess.from_pennylane(qnode)
  got = jax.jit(qhess.hessian(circuit, argnums=(0, 1)))(X, C)
  chex.assert_trees_all_close(got, jax.hessian(circuit, argnums=(0, 1))(X, C), **TOL)
  chex.assert_trees_all_close(circuit(X, C), qnode(X, C), **TOL)
