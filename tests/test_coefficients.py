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


# ------------------------------------------- Pauli sums weighed in the kernel (LiH-sized)


def _random_words(n, count, seed):
  rng = np.random.default_rng(seed)
  words = set()
  while len(words) < count:
    word = tuple((ch, w) for w, ch in enumerate(rng.choice(list("IXYZ"), size=n)) if ch != "I")
    words.add(word)
  return sorted(words)


def _observable(words, c):
  terms = []
  for k, word in enumerate(words):
    op = None
    for ch, w in word:
      op = getattr(qhess, ch)(w) if op is None else op @ getattr(qhess, ch)(w)
    terms.append(c[k] * (qhess.I(0) if op is None else op))
  return sum(terms)


@pytest.mark.parametrize("sign_matrix", [True, False], ids=["one-product", "per-term"])
def test_pauli_sum_against_its_dense_matrix(sign_matrix, monkeypatch):
  from qhess.simulate import measure as _measure
  if not sign_matrix:  # the wide-register branch: one sign vector per term
    monkeypatch.setattr(_measure, "_SIGN_MATRIX_ENTRIES", 0)
  n = 5
  words = _random_words(n, 40, seed=1)  # X, Y and Z letters, odd and even numbers of Y
  rng = np.random.default_rng(2)
  c = rng.normal(size=len(words))
  psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
  psi /= np.linalg.norm(psi)
  dense = np.asarray(_observable(words, c).matrix(wire_order=range(n)))
  fs = [tuple(w) for w in words]
  expval = jax.jit(lambda p, c: _measure.pauli_sum_expval(p, fs, c, n))(psi, c)
  applied = jax.jit(lambda p, c: _measure.pauli_sum_apply(p, fs, c, n))(psi, c)
  np.testing.assert_allclose(expval, np.real(np.vdot(psi, dense @ psi)), rtol=0, atol=1e-12)
  np.testing.assert_allclose(applied, dense @ psi, rtol=0, atol=1e-12)
  assert _measure.measurement_passes(
      [qhess.circuits.measurement.MeasurementSpec("expval", tuple((1.0, w) for w in fs))]
  ) == len({tuple(w for ch, w in word if ch in "XY") for word in fs})


N_WORDS = 4
WORDS = _random_words(N_WORDS, 16, seed=4)


@qhess.circuit(wires=N_WORDS)
def SUM(x, c):
  for w in range(N_WORDS):
    qhess.RY(x[w], wires=w)
  qhess.DoubleExcitation(x[4], wires=(0, 1, 2, 3))
  qhess.SingleExcitation(x[5] * x[0], wires=(1, 2))
  qhess.CNOT(wires=(2, 3))
  qhess.RX(x[6], wires=3)
  return qhess.expval(_observable(WORDS, c))


@pytest.mark.parametrize("evaluation", ["shared", "independent", "adjoint"])
def test_a_pauli_sum_as_data_weighed_in_the_kernel(evaluation):
  # Gate arguments only: the terms are folded into one raw output (one adjoint state);
  # with the coefficients too, each term is its own raw output. Both against jax.hessian
  # through the simulator (per-term measurements, weighed outside).
  x = jnp.asarray(np.random.default_rng(5).uniform(-2, 2, 7))
  c = jnp.asarray(np.random.default_rng(6).normal(size=len(WORDS)))
  # (the per-word raw outputs under "shared" compile the words once per segment: slow)
  for argnums in (0,) if evaluation == "shared" else (0, (0, 1)):
    v, g, h = jax.jit(qhess.value_grad_and_hessian(SUM, argnums=argnums,
                                                   evaluation=evaluation))(x, c)
    chex.assert_trees_all_close(v, SUM(x, c), **TOL)
    chex.assert_trees_all_close(g, jax.jacobian(SUM, argnums=argnums)(x, c), **TOL)
    chex.assert_trees_all_close(h, jax.hessian(SUM, argnums=argnums)(x, c), **TOL)


def _setup_kinds(circuit, argnums, *args):
  from qhess.derivatives import pipeline
  kinds = []

  def probe(*a):
    tape = pipeline._setup(circuit, argnums, True, "hessian", a, {}, fname="test", fold=True)[0]
    kinds.extend(m.kind for m in tape.raw_measurements)
    return 0
  jax.eval_shape(probe, *args)
  return kinds


def test_folding_only_without_coefficient_derivatives():
  x, c = jnp.zeros(7), jnp.ones(len(WORDS))
  assert _setup_kinds(SUM, 0, x, c) == ["expval_sum"]
  assert _setup_kinds(SUM, (0, 1), x, c) == ["expval"] * len(WORDS)


def test_auto_counts_the_measurement(monkeypatch):
  # The cost model's measurement term, by hand: a shallow circuit (6 RY, 5 CNOT; P = 6)
  # measuring a Pauli sum of 64 flip masks (every subset of the 6 wires) is dominated by
  # its measurement, which the shift rules repeat at every point and the adjoint method
  # once per circuit; measuring one Z word (on every wire), it is not.
  from qhess.derivatives import evaluate, options, pipeline
  monkeypatch.setattr(evaluate, "_MIN_SHARED_SAVING", 0.1)
  monkeypatch.setattr(evaluate, "_MIN_SHARED_WORK", 2**24)
  n = 6
  masks = [tuple(("X", w) for w in range(n) if k >> w & 1) for k in range(1, 2**n)]
  words = [tuple(("Z", w) for w in range(n))] + masks  # the first touches every wire

  def make(heavy):
    @qhess.circuit(wires=n)
    def f(x, c):
      for w in range(n):
        qhess.RY(x[w], wires=w)
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
      return qhess.expval(_observable(words if heavy else words[:1], c))
    return f

  opts = options._Options(evaluation="auto")
  choice = {}
  for heavy in (False, True):
    def probe(x, c, heavy=heavy):
      setup = pipeline._setup(make(heavy), 0, True, "hessian", (x, c), {}, fname="test",
                              fold=True)
      tape, plan, _ = pipeline._plan_from(setup, opts, "hessian", sampled=False)
      choice[heavy] = (pipeline._auto_picks_adjoint(tape, plan, opts), plan.n_points,
                       _measure_passes(tape))
      return 0
    jax.eval_shape(probe, jnp.zeros(n), jnp.ones(len(words)))
  points = choice[True][1]
  assert choice[False][1] == points and choice[True][2] == 64 and choice[False][2] == 1
  # shift: T·(L + passes), adjoint: 2·Σ2R_i·(3L + P + passes), chosen if 1.25× cheaper
  row_points, gates = 2 * n, 2 * n - 1
  for heavy, adjoint in ((False, False), (True, True)):
    passes = choice[heavy][2]
    shift = points * (gates + passes)
    model = 2.0 * row_points * (3 * gates + n + passes)
    assert (1.25 * model < shift) == adjoint == choice[heavy][0]


def _measure_passes(tape):
  from qhess.simulate import measure as _measure
  return _measure.measurement_passes(tape.raw_measurements)
