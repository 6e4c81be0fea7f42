"""``evaluation="adjoint"``: rows by first-order shift rules of adjoint gradients.

References: `jax.jacobian`/`jax.hessian` of the dense oracle (`_dense.py`, independent of
qhess's kernel) or of qhess's own simulator, and the shift evaluation ``"shared"``. A
mutation (one gate's derivative with the wrong sign) must make the comparison fail.
Sharded evaluation over four host devices is checked in `_sharded_check.py`.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess
from _dense import jit_hessian, make_case
from qhess.derivatives import adjoint as _adjoint
from qhess.simulate import evolve as _evolve
from qhess.simulate import kernel as _kernel
from qhess.derivatives import options as _options
from qhess.derivatives import cache as _cache

ATOL = 1e-10


def _specs(n):
  """An expval of X, Y and Z factors, a variance of a sum, probabilities of two wires."""
  return [("expval", ("sum", ((0.7, ("prod", (("P", "Z", 0), ("P", "X", n - 1)))),
                              (-1.0, ("P", "Y", n // 2))))),
          ("var", ("sum", ((1.0, ("P", "X", 0)), (0.3, ("P", "Z", n - 1))))),
          ("probs", (n - 1, 0))]


@qhess.circuit(wires=2)
def _layered(x):
  # 3 layers of 8 gates: the forward kernel and the backward pass scan over the layers.
  for layer in range(3):
    qhess.RY(x[4 * layer], wires=0)
    qhess.RZ(x[4 * layer + 1], wires=0)
    qhess.S(wires=0)
    qhess.CRX(x[4 * layer + 2], wires=(0, 1))
    qhess.Hadamard(wires=1)
    qhess.IsingZZ(x[4 * layer + 3], wires=(0, 1))
    qhess.CNOT(wires=(1, 0))
    qhess.SX(wires=1)
  return qhess.expval(qhess.X(0) @ qhess.Y(1)), qhess.probs(wires=(1,))


@pytest.fixture(scope="module")
def layered():
  x = jnp.asarray(np.random.default_rng(3).uniform(-3, 3, 12))
  tape = _layered.tape(x)
  key = _kernel.kernel_key(tape)
  expected = jax.jit(jax.jacobian(lambda t: _kernel.simulate_raw(key, t, tape.consts)))
  return tape, key, expected(tape.params)


@pytest.mark.parametrize("mode", ["adjoint", "forward"])
def test_jacobian_equals_autodiff_through_the_kernel(layered, mode):
  tape, key, expected = layered
  assert _evolve.repeated_blocks(tape.operations)  # the scan path is exercised
  need = (0, 4, 5, 11)  # some columns only: the others are zero
  value, jac = jax.jit(lambda t: _adjoint.jacobian(key, t, tape.consts, need, mode=mode))(
      tape.params)
  expected = jnp.where(np.isin(np.arange(tape.num_params), need), expected, 0)
  chex.assert_trees_all_close(jac, expected, rtol=0, atol=1e-12)
  chex.assert_trees_all_close(value, _kernel.simulate_raw(key, tape.params, tape.consts),
                              rtol=0, atol=1e-12)


def test_hessian_equals_jax_hessian_whole_gate_set_every_measurement():
  # Every gate of the catalogue once on 3 wires (in random order), plus two random ones.
  rng = np.random.default_rng(7)
  ops = ref.random_circuit(rng, 3, n_extra=2)
  case = make_case(ops, 3, _specs(3))
  x = jnp.asarray(ref.flat_params(ops))
  got = qhess.hessian(case.circuit, evaluation="adjoint")(x)
  chex.assert_trees_all_close(got, jit_hessian(case.oracle)(x), rtol=0, atol=ATOL)


def _nonlinear_case():
  ops = [("RX", (0,), (0.0,)), ("CRY", (0, 1), (0.0,)), ("Rot", (1,), (0.0,) * 3),
         ("IsingXX", (0, 1), (0.0,)), ("U3", (0,), (0.0,) * 3)]

  def processing(x):  # tied and non-linear gate arguments
    return [x[0], jnp.sin(x[1]) * x[0], x[2], x[1] ** 2, jnp.exp(0.3 * x[2]), x[0] - x[2],
            x[1], jnp.cos(x[0]), x[2] * x[1]]

  specs = [("expval", ("sum", ((0.5, ("P", "X", 0)), (1.0, ("P", "Z", 1))))),
           ("var", ("P", "Y", 1)), ("probs", (1,))]
  return make_case(ops, 2, specs, processing)


@pytest.fixture(scope="module")
def nonlinear():
  return _nonlinear_case(), jnp.array([0.3, -1.1, 0.8])


def test_value_grad_and_hessian_hybrid_nonlinear_jit_and_vmap(nonlinear):
  case, _ = nonlinear
  vgh = qhess.value_grad_and_hessian(case.circuit, evaluation="adjoint")
  xs = jnp.asarray(np.random.default_rng(5).uniform(-2, 2, (2, 3)))
  got = jax.jit(jax.vmap(vgh))(xs)
  oracle = jax.jit(jax.vmap(lambda x: (case.oracle(x), jax.jacobian(case.oracle)(x),
                                       jax.hessian(case.oracle)(x))))
  chex.assert_trees_all_close(got, oracle(xs), rtol=0, atol=ATOL)


def test_gate_argnum_and_batch_size_match_shared(nonlinear):
  case, x = nonlinear
  got = qhess.value_grad_and_hessian(case.circuit, evaluation="adjoint", gate_argnum=[0, 2, 5],
                                     batch_size=3, hybrid=False)(x)
  expected = qhess.value_grad_and_hessian(case.circuit, gate_argnum=[0, 2, 5],
                                          hybrid=False)(x)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=ATOL)


def test_rows_are_symmetric_before_symmetrisation(nonlinear):
  case, x = nonlinear
  tape = case.circuit.tape(x)
  p = tape.num_params
  _, _, rows = _adjoint.derivatives(tape, _options._tape_spectra(tape), np.ones((p, p), bool),
                                    symmetrize=False)
  asymmetry = float(jnp.max(jnp.abs(rows - jnp.swapaxes(rows, 1, 2))))
  assert asymmetry < 1e-12, asymmetry


def test_gradient_of_the_hessian_equals_autodiff():
  @qhess.circuit(wires=1)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.RY(x[0] * x[1], wires=0)
    return qhess.expval(qhess.Z(0))

  def closed_form(x):  # <Z> after RY(b) RX(a) on |0>
    return jnp.cos(x[0]) * jnp.cos(x[0] * x[1])

  x = jnp.array([0.4, -0.7])
  got = jax.grad(lambda x: jnp.sum(qhess.hessian(f, evaluation="adjoint")(x) ** 2))(x)
  expected = jax.grad(lambda x: jnp.sum(jax.hessian(closed_form)(x) ** 2))(x)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=ATOL)


def test_wrong_derivative_sign_fails_the_comparison(nonlinear, monkeypatch):
  # Mutation: CRY's derivative with the wrong sign. The comparisons above must catch it.
  case, x = nonlinear
  original = _adjoint.gate_tangents

  def mutated(psi, op, params, consts, n):
    out = original(psi, op, params, consts, n)
    return -out if op.name == "CRY" else out

  monkeypatch.setattr(_adjoint, "gate_tangents", mutated)
  _adjoint._run.clear_cache()
  _cache._JIT_CACHE.clear()
  got = qhess.hessian(case.circuit, evaluation="adjoint")(x)
  error = max(float(jnp.max(jnp.abs(g - e)))
              for g, e in zip(got, jit_hessian(case.oracle)(x)))
  _adjoint._run.clear_cache()
  _cache._JIT_CACHE.clear()
  assert error > 1e-3, error


@qhess.circuit(wires=1)
def _rx(x):
  qhess.RX(x, wires=0)
  return qhess.expval(qhess.Z(0))


def test_adjoint_with_shots_is_an_error():
  with pytest.raises(ValueError, match='evaluation="adjoint" is exact only.*shots=100'):
    qhess.hessian(_rx, evaluation="adjoint", shots=100)
  with pytest.raises(ValueError, match='evaluation="adjoint" is exact only'):
    qhess.value_grad_and_hessian(_rx, evaluation="adjoint", shots=(10, 20))


@pytest.mark.parametrize("option", [dict(diagonal_shifts=[(0.5,)]),
                                    dict(off_diagonal_shifts=[(0.5,)]),
                                    dict(off_diagonal_rule="product")])
def test_adjoint_with_custom_shift_rules_is_an_error(option):
  name = next(iter(option))
  with pytest.raises(ValueError, match=f"`{name}` chooses shift rules.*adjoint"):
    qhess.hessian(_rx, evaluation="adjoint", **option)


def test_unknown_evaluation_names_the_choices():
  with pytest.raises(ValueError, match='"shared", "independent" or "adjoint"; got .adj.'):
    _options._Options(evaluation="adj")
