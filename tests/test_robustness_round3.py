"""No silent wrong answers, round 3: constants in the classical processing, large angles,
partial selections on imported circuits, counts of circuits against what runs.

Each test compares with an independent reference (`jax.hessian` through the simulator or a
closed form evaluated in NumPy float64) or checks a clear error. Circuits are tiny.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference
import qhess
from qhess.derivatives import options as _options
from qhess.derivatives import pipeline as _pipeline

TOL = dict(rtol=0, atol=1e-10)


@pytest.fixture(autouse=True)
def always_share():
  """Overrides conftest.py's fixture: the cost model picks the evaluation here."""


@qhess.circuit(wires=2)
def EXAMPLE(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


def _example_hessian(x) -> np.ndarray:
  """EXAMPLE is (1 + cos x0)/2 - (1 - cos x0)/2 · cos x1; NumPy float64 reduces its
  arguments correctly at any magnitude."""
  x = np.asarray(x, dtype=np.float64)
  c0, s0, c1, s1 = np.cos(x[0]), np.sin(x[0]), np.cos(x[1]), np.sin(x[1])
  return np.array([[-c0 * (1 + c1) / 2, s0 * s1 / 2], [s0 * s1 / 2, (1 - c0) / 2 * c1]])


def test_example_closed_form_is_jax_hessian():
  x = jnp.array([0.5, -1.2])
  chex.assert_trees_all_close(_example_hessian(x), jax.hessian(EXAMPLE)(x), **TOL)


# ------------------------------------------------- constants in the classical processing

SCALE = 0.2
TABLE = {"a": 0.2}
ARRAY = np.array([0.2])


@qhess.circuit(wires=1)
def PROCESSED(x):
  qhess.RX(x[0] * SCALE, wires=0)
  qhess.RY(x[0] * TABLE["a"], wires=0)
  qhess.RZ(jnp.sin(x[0] * ARRAY[0]), wires=0)
  return qhess.expval(qhess.X(0))


def test_changed_processing_constant_is_a_new_hessian():
  # A global float, a value in a closed-over dict and an entry of a global NumPy array
  # (changed in place): each is in the recorded computation, so each change must give
  # the Hessian jax.hessian gives (the compiled Hessian is keyed on the jaxpr's values).
  global SCALE
  x = jnp.array([0.7])
  hess = qhess.hessian(PROCESSED)
  results = []
  for change in (None, "scale", "table", "array"):
    if change == "scale":
      SCALE = 3.0
    elif change == "table":
      TABLE["a"] = 1.5
    elif change == "array":
      ARRAY[0] = 2.5
    got = hess(x)
    chex.assert_trees_all_close(got, jax.hessian(PROCESSED)(x), **TOL)
    results.append(float(got[0, 0]))
  assert len(set(results)) == 4


# ------------------------------------------------------------------------- large angles

@pytest.mark.parametrize("dtype, magnitudes, atol", [
    ("float64", (1e9, -1e12, 1e15), 1e-12),
    ("float32", (1e6, -1e9), 2e-6),
], ids=["float64", "float32"])
def test_large_angles_keep_the_hessian(dtype, magnitudes, atol):
  # θ + π/2 computed directly rounds the shift to the precision of θ (a spacing of 64
  # at 1e9 in float32); reducing θ modulo its period first keeps it exact.
  def check():
    for big in magnitudes:
      x = jnp.array([big, big + 1.3], dtype=dtype)
      expected = _example_hessian(np.asarray(x))  # of the stored (rounded) values
      for rule in ("diagonal", "product"):
        got = qhess.hessian(EXAMPLE, off_diagonal_rule=rule)(x)
        assert got.dtype == np.dtype(dtype)
        chex.assert_trees_all_close(np.asarray(got, np.float64), expected, rtol=0,
                                    atol=atol)
      tapes, post = qhess.hessian_tapes(EXAMPLE.tape(x))
      chex.assert_trees_all_close(np.asarray(post(qhess.execute(tapes)), np.float64),
                                  expected, rtol=0, atol=atol)

  if dtype == "float32":
    with _reference.float32_mode():
      check()
  else:
    check()


def test_reduce_angles_is_exact_and_differentiable():
  from qhess.circuits.catalogue import Spectrum
  from qhess.shift.rules import reduce_angles

  spectra = [Spectrum(1.0, 1), Spectrum(0.5, 2), None, Spectrum(1.0, 1)]
  theta = jnp.array([1e15, -1e12, 1e15, 3.0])
  got = np.asarray(reduce_angles(theta, spectra))
  # cos and sin of the stored values (NumPy reduces exactly): the same point
  for g, t, per in zip(got, np.asarray(theta), (2 * np.pi, 4 * np.pi, None, 2 * np.pi)):
    if per is None:
      assert g == t
      continue
    assert abs(g) <= per / 2 + 1e-12
    np.testing.assert_allclose([np.cos(g / 2), np.sin(g / 2)] if per > 7 else
                               [np.cos(g), np.sin(g)],
                               [np.cos(t / 2), np.sin(t / 2)] if per > 7 else
                               [np.cos(t), np.sin(t)], rtol=0, atol=1e-14)
  assert got[3] == 3.0  # within half a period: unchanged
  chex.assert_trees_all_close(jax.grad(lambda t: reduce_angles(t, spectra).sum())(theta),
                              jnp.ones(4), **TOL)


# ------------------------------------------------- selections on imported circuits

def test_gate_argnum_refuses_decomposition_pieces():
  qml = pytest.importorskip("pennylane")
  dev = qml.device("default.qubit", wires=4)

  @qml.qnode(dev)
  def qnode(x):
    qml.BasisState(np.array([1, 1, 0, 0]), wires=range(4))
    qml.ctrl(qml.RY, control=(0, 1))(x[0], wires=2)  # RY(θ/2), CCX, RY(-θ/2), CCX
    qml.ctrl(qml.RY, control=(0, 1))(x[0], wires=3)
    qml.RY(x[1], wires=0)
    return qml.expval(qml.Z(0) + qml.X(1) @ qml.X(2))

  circuit = qhess.from_pennylane(qnode)
  x = jnp.array([0.3, 0.5])
  n = circuit.tape(x).num_params
  assert n > 2  # each controlled rotation is recorded as two rotations
  with pytest.raises(ValueError, match=r"indexes the tape's gate arguments.*after any "
                     r"decomposition.*input element 0 .*feeds gate arguments 0 \(RY\), 1 "
                     r"\(RY\).*selects \[0, 1\] of them"):
    qhess.hessian(circuit, gate_argnum=[0, 1])(x)
  # all of them (the rotations of x0, and x1's): the inputs' Hessian
  chex.assert_trees_all_close(qhess.hessian(circuit, gate_argnum=list(range(n)))(x),
                              jax.hessian(circuit)(x), **TOL)
  # at gate level the pieces are what is asked for
  assert qhess.hessian(circuit, hybrid=False, gate_argnum=[0, 1])(x).shape == (n, n)


# ----------------------------------------------------------- counts against what runs

@qhess.circuit(wires=2)
def HYBRID(x):
  qhess.RX(jnp.sin(x[0]) * x[1], wires=0)
  qhess.CRY(x[1] ** 2, wires=(0, 1))
  qhess.RZ(x[0], wires=1)
  return qhess.expval(qhess.X(1) + qhess.Z(0))


def test_count_circuits_matches_the_tapes_and_the_plan():

  x = jnp.array([0.3, 0.8])
  tapes, post = qhess.hessian_tapes(HYBRID, off_diagonal_rule="product")(x)
  count = qhess.optimize.count_circuits(qhess.hessian, HYBRID, hybrid=False,
                                        off_diagonal_rule="product")
  assert count(x).points == len(tapes) == 26
  chex.assert_trees_all_close(post(qhess.execute(tapes)),
                              qhess.hessian(HYBRID, hybrid=False)(x), **TOL)
  # hybrid: the chain rule through sin(x0)·x1 and x1² needs the first-order points too;
  # the count is the plan `qhess.hessian` evaluates
  hybrid = qhess.optimize.count_circuits(qhess.hessian, HYBRID,
                                         off_diagonal_rule="product")(x)
  opts = _options._Options(off_diagonal_rule="product")
  _, plan, _ = _pipeline.derivative_plan(HYBRID, opts, 0, True, "hessian", (x,), {},
                                        sampled=False, fname="test")
  assert hybrid.points == plan.n_points == 29
  chex.assert_trees_all_close(qhess.hessian(HYBRID, off_diagonal_rule="product")(x),
                              jax.hessian(HYBRID)(x), **TOL)


# ------------------------------------------------------------- adjoint on noisy circuits

def test_adjoint_on_noise_is_the_noisy_sweep():
  # Once refused; evaluation="adjoint" now runs the density-matrix sweep
  # (qhess.derivatives.adjoint_noisy), exact like the shift rules.
  @qhess.circuit(wires=1)
  def noisy(x):
    qhess.RX(x[0], wires=0)
    qhess.DepolarizingChannel(0.1, wires=0)
    return qhess.expval(qhess.Z(0))

  x = jnp.array([0.4])
  closed = -(1 - 4 * 0.1 / 3) * np.cos(x)[None]  # (1 - 4p/3) · (-cos x), depolarized RX
  for evaluation in ("adjoint", "auto"):
    chex.assert_trees_all_close(qhess.hessian(noisy, evaluation=evaluation)(x), closed,
                                **TOL)
  readout = qhess.with_noise(EXAMPLE, readout=0.05)
  y = jnp.array([0.4, 0.2])[:readout.n_wires]
  chex.assert_trees_all_close(qhess.hessian(readout, evaluation="adjoint")(y),
                              jax.hessian(readout)(y), **TOL)
