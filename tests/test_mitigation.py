"""Error mitigation (qhess.interop.mitigation): readout through M3, ZNE through mitiq.

Results are synthesized from exact register probabilities of each PUB's circuit
(`test_primitives._exact_register_probs`): a known assignment matrix applied to them
(readout), or a known decay with the scale factor (ZNE), so that mitigation must give
the exact Hessian back; the standard errors are checked against closed forms and the
spread of repeated draws.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import pytest

import qhess

N = 4000
_A = {0: np.array([[0.95, 0.08], [0.05, 0.92]]), 1: np.array([[0.9, 0.15], [0.1, 0.85]]),
      2: np.array([[0.97, 0.04], [0.03, 0.96]]), 3: np.array([[0.93, 0.1], [0.07, 0.9]]),
      4: np.array([[0.96, 0.06], [0.04, 0.94]])}


@qhess.circuit(wires=3)
def _f(x):
  for w in range(3):
    qhess.RY(x[w], wires=w)
  qhess.CNOT(wires=(0, 1))
  qhess.CRX(x[3], wires=(1, 2))
  return qhess.expval(0.8 * qhess.Z(0) @ qhess.Z(2) - 0.5 * qhess.Y(0) @ qhess.X(1)
                      + 0.6 * qhess.Z(1) + 0.3 * qhess.X(2))


_X = jnp.array([0.3, -0.7, 1.1, 0.4])


@pytest.fixture(scope="module")
def deps():
  for name in ("qiskit", "qiskit_ibm_runtime.fake_provider", "mthree", "mitiq"):
    pytest.importorskip(name)
  from test_primitives import _exact_register_probs  # pylint: disable=import-outside-toplevel
  return _exact_register_probs


@pytest.fixture(scope="module")
def setup(deps):
  experiments, post = qhess.hessian_experiments(_f, shots=N, return_stderr=True)(_X)
  return experiments, post, qhess.hessian(_f)(_X)


def _assign(p: np.ndarray, qubits, matrices) -> np.ndarray:
  """Register probabilities ``(B, 2**k)`` (bit ``c`` on ``qubits[c]``) read through
  each qubit's assignment matrix ``A[measured, prepared]``."""
  k = len(qubits)
  t = p.reshape((-1,) + (2,) * k)
  for c, q in enumerate(qubits):  # bit c is axis k - c (most significant first)
    t = np.moveaxis(np.tensordot(matrices[q], t, axes=([1], [k - c])), 0, k - c)
  return t.reshape(p.shape)


def _decayed(pubs, probs, rate, power=1):
  """Each PUB's probabilities pulled toward uniform by ``rate * λ**power`` (λ its scale
  factor): every expectation value is that polynomial in λ."""
  out = []
  for i, p in enumerate(probs):
    eps = rate * pubs.zne.scale_factors[pubs.scales[i]] ** power
    out.append((1 - eps) * p + eps / p.shape[1])
  return out


def test_readout_with_given_matrices_recovers_the_exact_hessian(setup, deps):
  experiments, post, exact = setup
  fake = pytest.importorskip("qiskit_ibm_runtime.fake_provider")
  # No backend: bits are the wires; with a layout: the physical qubits it chose.
  for pubs in (qhess.to_sampler_pubs(experiments),
               qhess.to_sampler_pubs(experiments, fake.FakeManilaV2(), seed_transpiler=3,
                                     initial_layout=[4, 2, 0])):
    noisy = [N * _assign(p, q, _A) for p, q in zip(deps(pubs), pubs.qubits)]
    raw, raw_err = post(noisy, pubs)
    assert np.max(np.abs(raw - exact)) > 0.05  # readout errors bias the Hessian
    got, err = post(noisy, pubs, readout=qhess.readout_calibration(_A))
    # M3 solves in float32: the quasi-probabilities are exact to about 1e-7
    np.testing.assert_allclose(got, exact, atol=5e-7, rtol=0)
  # routed: the measured physical qubits are not the wires (each has its own matrix)
  assert any(q != w for q, w in zip(pubs.qubits, pubs.bit_wires))


def test_readout_stderr_is_the_overhead_times_the_measured_spread(setup, deps):
  experiments, post, _ = setup
  same = {q: _A[1] for q in range(3)}  # one matrix: one overhead for every experiment
  pubs = qhess.to_sampler_pubs(experiments)
  assert all(len(q) == 3 for q in pubs.qubits)
  noisy = [N * _assign(p, q, same) for p, q in zip(deps(pubs), pubs.qubits)]
  _, raw_err = post(noisy, pubs)
  _, err = post(noisy, pubs, readout=qhess.readout_calibration(same))
  gamma = np.abs(np.linalg.inv(_A[1])).sum(axis=0).max() ** 3  # the 1-norm of the inverse
  np.testing.assert_allclose(err, gamma * raw_err, rtol=1e-4)


def test_readout_stderr_against_repeated_draws(deps):
  @qhess.circuit(wires=2)
  def g(x):
    qhess.RY(x[0], wires=0)
    qhess.CNOT(wires=(0, 1))
    qhess.RX(x[1], wires=1)
    return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.4 * qhess.Z(1))

  x = jnp.array([0.6, -0.9])
  experiments, post = qhess.hessian_experiments(g, shots=2000, return_stderr=True)(x)
  pubs = qhess.to_sampler_pubs(experiments)
  cal = qhess.readout_calibration(_A)
  noisy = [_assign(p, q, _A) for p, q in zip(deps(pubs), pubs.qubits)]
  rng = np.random.default_rng(0)
  draws = [post([np.stack([rng.multinomial(2000, r / r.sum()) for r in p]) for p in noisy],
                pubs, readout=cal) for _ in range(80)]
  hs, errs = np.array([d[0] for d in draws]), np.array([d[1] for d in draws])
  ratio = errs.mean(axis=0) / hs.std(axis=0)
  assert np.all((ratio > 0.75) & (ratio < 1.6)), ratio  # conservative, not loose
  sem = hs.std(axis=0) / np.sqrt(len(hs))
  assert np.all(np.abs(hs.mean(axis=0) - qhess.hessian(g)(x)) < 4 * sem)  # unbiased


@pytest.mark.parametrize("factors, extrapolation, power", [
    ((1, 3, 5), "richardson", 1), ((1, 3, 5), "richardson", 2), ((1, 3), "linear", 1),
    ((1, 2, 3.5), "linear", 1)])
def test_zne_recovers_the_exact_hessian_of_a_known_decay(setup, deps, factors,
                                                         extrapolation, power):
  experiments, post, exact = setup
  zne = qhess.ZNE(factors, extrapolation)
  pubs = qhess.to_sampler_pubs(experiments, zne=zne)
  assert len(pubs) == 2 * len(factors) and pubs.scales == tuple(
      s for s in range(len(factors)) for _ in range(2))
  probs = deps(pubs)
  got, _ = post([N * p for p in _decayed(pubs, probs, 0.04, power)], pubs)
  np.testing.assert_allclose(got, exact, atol=1e-10, rtol=0)
  # composable with readout mitigation
  noisy = [N * _assign(p, q, _A) for p, q in zip(_decayed(pubs, probs, 0.04, power),
                                                  pubs.qubits)]
  got, _ = post(noisy, pubs, readout=qhess.readout_calibration(_A))
  np.testing.assert_allclose(got, exact, atol=2e-6, rtol=0)


def test_zne_stderr_through_the_weights(setup, deps):
  experiments, post, _ = setup
  zne = qhess.ZNE((1, 3, 5))
  lam = np.array([1.0, 3.0, 5.0])  # Richardson's closed form
  w = np.array([np.prod([lam[j] / (lam[j] - lam[i]) for j in range(3) if j != i])
                for i in range(3)])
  np.testing.assert_allclose(zne.weights, w, rtol=1e-10)
  assert zne.variance_factor == pytest.approx(np.sum(w**2))
  pubs = qhess.to_sampler_pubs(experiments, zne=zne)
  results = [N * p for p in _decayed(pubs, deps(pubs), 0.05)]
  _, err = post(results, pubs)
  per_scale = [post(t)[1] for t in pubs.tables(results)]  # each scale alone
  expected = np.sqrt(sum(wl**2 * e**2 for wl, e in zip(w, per_scale)))
  np.testing.assert_allclose(err, expected, rtol=1e-10)


def test_folds_keep_parameters_and_transpile_once_per_group_and_scale(setup, deps,
                                                                      monkeypatch):
  from qiskit.quantum_info import Operator  # pylint: disable=import-outside-toplevel
  from test_primitives import _counting  # pylint: disable=import-outside-toplevel
  fake = pytest.importorskip("qiskit_ibm_runtime.fake_provider")
  experiments, post, exact = setup
  calls = _counting(monkeypatch)
  for folding in ("global", "gates_at_random"):
    calls.clear()
    zne = qhess.ZNE((1, 3, 4.2), folding=folding, seed=7)
    pubs = qhess.to_sampler_pubs(experiments, fake.FakeManilaV2(), zne=zne,
                                 optimization_level=3, seed_transpiler=2)
    assert len(calls) == len(pubs) == 2 * 3  # one transpile per group and scale factor
    assert all({p.vector.name for p in pub.circuit.parameters} == {"theta"} for pub in pubs)
    ops = [sum(n for g, n in pub.circuit.count_ops().items() if g in ("cx", "ecr"))
           for pub in pubs]
    assert ops[2] >= 2.5 * ops[0] and ops[4] >= ops[2]  # the folds survive level 3
    # noiseless, the folded circuits are the circuit: every scale gives the exact Hessian
    got, _ = post([N * p for p in deps(pubs)], pubs)
    np.testing.assert_allclose(got, exact, atol=1e-9, rtol=0)
  from qiskit import QuantumCircuit  # pylint: disable=import-outside-toplevel
  from qiskit.circuit import ParameterVector  # pylint: disable=import-outside-toplevel
  theta = ParameterVector("t", 2)
  qc = QuantumCircuit(3)
  qc.ry(theta[0], 0)
  qc.cx(0, 1)
  qc.rzz(theta[1], 1, 2)
  qc.h(2)
  for folding, factor in (("global", 3), ("global", 2.6), ("gates_at_random", 2.2)):
    folded = qhess.ZNE((1, 3), folding=folding, seed=1).fold(qc, factor)
    assert set(folded.parameters) == set(qc.parameters)
    assert len(folded) > 1.8 * len(qc)
    v = [0.3, -1.1]
    assert Operator(folded.assign_parameters(v)).equiv(Operator(qc.assign_parameters(v)))


def test_bad_inputs(setup, deps):
  experiments, post, _ = setup
  with pytest.raises(ValueError, match=r"finite and >= 1"):
    qhess.ZNE((0.5, 1, 3))
  with pytest.raises(ValueError, match="at least two"):
    qhess.ZNE((3,))
  with pytest.raises(ValueError, match="distinct"):
    qhess.ZNE((1, 3, 3))
  with pytest.raises(TypeError, match="real numbers"):
    qhess.ZNE((1, "3"))
  with pytest.raises(ValueError, match="`extrapolation` must be one of"):
    qhess.ZNE((1, 3), "exponential")
  with pytest.raises(ValueError, match="not linear"):
    qhess.ZNE((1, 3), lambda s, v: max(v))
  with pytest.raises(ValueError, match="`folding` must be one of"):
    qhess.ZNE((1, 3), folding="layers")
  with pytest.raises(TypeError, match="`zne` must be a qhess.ZNE"):
    qhess.to_sampler_pubs(experiments, zne="1,3")
  zpubs = qhess.to_sampler_pubs(experiments, zne=(1, 3))
  with pytest.raises(ValueError, match="ZNE scale factors"):
    zpubs.counts([np.ones((len(r), 8)) for r in zpubs.rows])
  pubs = qhess.to_sampler_pubs(experiments)
  probs = [N * p for p in deps(pubs)]
  with pytest.raises(ValueError, match=r"physical qubit\(s\) \[2\] with no readout"):
    post(probs, pubs, readout=qhess.readout_calibration({0: _A[0], 1: _A[1]}))
  with pytest.raises(ValueError, match="columns summing to 1"):
    qhess.readout_calibration({0: [[0.9, 0.1], [0.2, 0.9]]})
  with pytest.raises(ValueError, match="must be 2x2"):
    qhess.readout_calibration([np.eye(4)])
  with pytest.raises(TypeError, match="BackendV2 or per-qubit"):
    qhess.readout_calibration("ibm_brisbane")
  with pytest.raises(ValueError, match="pass them, post\\(result, pubs, readout"):
    post(probs, readout=qhess.readout_calibration(_A))
  with pytest.raises(TypeError, match="`readout` must be a qhess.readout_calibration"):
    post(probs, pubs, readout=_A)
  # raw counts stay non-negative; only mitigated quasi-probabilities may not be
  bad = [p.copy() for p in probs]
  bad[0][0, 0] = -1.0
  with pytest.raises(ValueError, match="must be non-negative"):
    post(bad, pubs)


def test_missing_extra_names_it(monkeypatch):
  for name in [m for m in sys.modules if m.split(".")[0] in ("mthree", "mitiq")]:
    monkeypatch.setitem(sys.modules, name, None)
  monkeypatch.setitem(sys.modules, "mthree", None)
  monkeypatch.setitem(sys.modules, "mitiq", None)
  with pytest.raises(ImportError, match=r"'mitiq'.*pip install \"qhess\[mitigation\]\""):
    qhess.ZNE((1, 3))
  with pytest.raises(ImportError, match=r"'mthree'.*pip install \"qhess\[mitigation\]\""):
    qhess.readout_calibration(_A)


def test_import_qhess_loads_no_mitigation_library():
  import subprocess  # pylint: disable=import-outside-toplevel
  code = ("import sys, qhess; bad = [m for m in ('mthree', 'mitiq', 'cirq') "
          "if m in sys.modules]; assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True)
