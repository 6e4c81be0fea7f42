"""The noisy adjoint method (qhess.derivatives.adjoint_noisy): exact Hessians of circuits
with channels and readout error by a second-order sweep over the density matrix.

References: ``jax.hessian`` through the density-matrix simulator (forward autodiff of
the kernel, which the sweep does not use) and the shift rules (`evaluation="independent"`).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.derivatives import adjoint_noisy as _an
from qhess.derivatives import evaluate as _evaluate

_KRAUS = np.stack([np.sqrt(0.9) * np.eye(2), np.sqrt(0.1) * np.array([[0, 1], [1, 0]])])


@qhess.circuit(wires=3)
def noisy(p):
  a, b = p["a"], p["b"]
  qhess.RX(a[0], wires=0)
  qhess.Rot(a[1], a[2], a[3], wires=1)  # three arguments on one wire
  qhess.DepolarizingChannel(0.05, wires=0)
  qhess.CRX(a[4], wires=(0, 2))  # a multi-qubit gate with an argument
  qhess.AmplitudeDamping(0.2, wires=2)
  qhess.IsingXX(b, wires=(1, 2))
  qhess.GeneralizedAmplitudeDamping(0.1, 0.3, wires=1)
  qhess.CNOT(wires=(2, 0))
  qhess.PhaseDamping(0.15, wires=0)
  qhess.RY(b, wires=0)  # the same argument in two gates
  qhess.BitFlip(0.05, wires=1)
  qhess.QubitChannel(_KRAUS, wires=2)
  qhess.RZ(a[5], wires=2)
  return (qhess.expval(qhess.Z(0) @ qhess.Z(2)), qhess.var(qhess.X(1)),
          qhess.probs(wires=[0, 2]), qhess.expval(0.5 * qhess.Y(1) + qhess.X(0) @ qhess.Z(1)))


def _params(dtype=jnp.float64, seed=3):
  rng = np.random.default_rng(seed)
  return {"a": jnp.asarray(rng.uniform(-2, 2, 6), dtype), "b": jnp.asarray(0.7, dtype)}


def test_noisy_adjoint_equals_jax_hessian_and_shift_rules():
  p = _params()
  expected = jax.hessian(noisy)(p)  # autodiff through the density-matrix simulator
  got = jax.jit(qhess.hessian(noisy, evaluation="adjoint"))(p)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)
  shift = qhess.hessian(noisy, evaluation="independent")(p)
  chex.assert_trees_all_close(got, shift, rtol=0, atol=1e-10)
  # Not vacuous: the Hessian is far from zero in every output.
  assert all(float(jnp.max(jnp.abs(jax.tree.leaves(h)[0]))) > 0.01 for h in expected)
  # Rows in chunks of two (one sweep each): the same Hessian.
  chunked = qhess.hessian(noisy, evaluation="adjoint", batch_size=2)(p)
  chex.assert_trees_all_close(chunked, expected, rtol=0, atol=1e-10)


def test_noisy_adjoint_value_grad_and_gradient():
  p = _params(seed=5)
  value, grad, hess = qhess.value_grad_and_hessian(noisy, evaluation="adjoint")(p)
  chex.assert_trees_all_close(value, noisy(p), rtol=0, atol=1e-12)
  chex.assert_trees_all_close(grad, jax.jacobian(noisy)(p), rtol=0, atol=1e-10)
  chex.assert_trees_all_close(hess, jax.hessian(noisy)(p), rtol=0, atol=1e-10)
  g = qhess.gradient(noisy, evaluation="adjoint")(p)
  chex.assert_trees_all_close(g, jax.jacobian(noisy)(p), rtol=0, atol=1e-10)
def test_noisy_adjoint_float32(float32):
  p32 = _params(jnp.float32, seed=5)
  got = qhess.hessian(noisy, evaluation="adjoint")(p32)
  assert jax.tree.leaves(got)[0].dtype == jnp.float32
  expected = qhess.hessian(noisy, evaluation="independent")(p32)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=2e-5)


@qhess.circuit(wires=2)
def _base(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  qhess.RY(x[2], wires=1)
  return qhess.expval(qhess.X(0) @ qhess.Z(1)), qhess.probs(wires=[1, 0])


def test_readout_error_with_and_without_channels():
  x = jnp.array([0.4, -1.3, 0.9])
  ro = qhess.with_noise(_base, readout=(0.02, 0.07))  # readout alone: a pure state
  both = qhess.with_noise(ro, {"CRY": lambda op: qhess.PhaseFlip(0.1, wires=op.wires[1])})
  for f in (ro, both):
    got = qhess.hessian(f, evaluation="adjoint")(x)
    chex.assert_trees_all_close(got, jax.hessian(f)(x), rtol=0, atol=1e-10)


def _choice(circuit, x, **options):
  """Whether evaluation="auto" runs the (noisy) adjoint method on ``circuit`` at ``x``."""
  return qhess.evaluation_method(qhess.hessian, circuit, **options)(x) == "adjoint"


def _hea(n, layers):
  @qhess.circuit(wires=n)
  def f(x):
    k = 0
    for _ in range(layers):
      for w in range(n):
        qhess.RY(x[k], wires=w)
        qhess.RZ(x[k + 1], wires=w)
        k += 2
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
        qhess.DepolarizingChannel(0.01, wires=w + 1)
    return qhess.expval(qhess.Z(0) @ qhess.Z(n - 1))
  return f


def test_auto_cost_model_for_noisy_circuits(monkeypatch):
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_SAVING", 0.1)  # production thresholds
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_WORK", 2**24)
  # 6 wires x 2 layers: 853 shifted 12-wire circuits against two sweeps of 26 states
  x = jnp.linspace(0.1, 1.0, 24)
  assert _choice(_hea(6, 2), x)
  # the user's own shift rules are kept
  assert not _choice(_hea(6, 2), x, off_diagonal_rule="product")
  # a small circuit: milliseconds either way, the shift rules compile faster
  assert not _choice(_hea(2, 1), jnp.array([0.1, 0.2, 0.3, 0.4]))
  # the same model in numbers: the sweep's units grow with P, the shift rules' with P²
  tape = _hea(6, 2).tape(x)
  assert _an.sweep_units(tape, 24) < _an.sweep_units(tape, 48) < 2 * _an.sweep_units(tape, 24)


def test_noisy_adjoint_bad_inputs(monkeypatch):
  p = _params()
  from qhess.simulate import memory
  monkeypatch.setattr(memory, "available_memory", lambda devices=None: 2**20)
  monkeypatch.setattr(_an, "_STACK_BYTES", 2**40)
  x = jnp.zeros(40)
  with pytest.raises(ValueError, match=r"noisy adjoint method sweeps .* density matrices of "
                                       r"10 wires .*available; use evaluation=\"independent\""):
    qhess.hessian(_hea(10, 1), evaluation="adjoint")(x[:20])
  with pytest.raises(ValueError, match="batch_size"):
    qhess.hessian(noisy, evaluation="adjoint", batch_size=0)(p)
