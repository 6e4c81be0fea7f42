"""Hardware round trip (qhess.interop.experiments, qhess.interop.qiskit), checked against
Qiskit and Aer.

Runs when the qiskit extra is installed (``pip install -e .[qiskit]``; CI installs it).
Exports are checked by simulating them in Aer (statevectors to 1e-10 up to a global
phase, Qiskit's little-endian qubit order reversed); measured counts from Aer go back
through ``post``; imported circuits are checked against Qiskit's own statevector
expectation values and their Hessians against `jax.hessian`.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _dense
import _reference as ref
import qhess

qiskit = pytest.importorskip("qiskit")
qiskit_aer = pytest.importorskip("qiskit_aer")
pytest.importorskip("qiskit_qasm3_import")
from qiskit.circuit import Parameter  # noqa: E402
from qiskit.quantum_info import SparsePauliOp, Statevector  # noqa: E402

ATOL = 1e-10


def _aer(**options):
  # One thread and a fixed method: Aer's default parallel, automatic setup runs these
  # small circuits about 4x slower on a shared 2-core machine.
  return qiskit_aer.AerSimulator(method="statevector", max_parallel_threads=1, **options)


def _big_endian(sv, n: int) -> np.ndarray:
  """A Qiskit statevector (qubit 0 least significant) in qhess's order (wire 0 most)."""
  return np.asarray(sv).reshape((2,) * n).transpose(tuple(range(n))[::-1]).reshape(-1)


def _aer_state(qc) -> np.ndarray:
  qc = qc.remove_final_measurements(inplace=False)
  qc.save_statevector()
  result = _aer().run(qc).result()
  return _big_endian(result.get_statevector(), qc.num_qubits)


def _assert_equal_up_to_phase(got, expected, atol=ATOL):
  overlap = np.vdot(got, expected)
  phase = overlap / abs(overlap)
  np.testing.assert_allclose(got * phase, expected, atol=atol, rtol=0)


def _aer_probabilities(experiments) -> list[np.ndarray]:
  """Exact outcome probabilities of each experiment from Aer, in Qiskit's order."""
  circuits = []
  for e in experiments:
    qc = qhess.to_qiskit(e.tape, measure=False)
    qc.save_probabilities(list(e.wires))
    circuits.append(qc)
  result = _aer().run(circuits).result()
  return [np.asarray(result.data(i)["probabilities"]) for i in range(len(circuits))]


# ------------------------------------------------------------------------------ export

# Every catalogue gate at least once on 3 wires (in random order), PauliRot with each
# letter and a single active letter, MultiRZ on one and three wires, a one-wire
# QubitUnitary (ZYZ); a two-wire QubitUnitary is added for Qiskit only.
_RNG = np.random.default_rng(11)
_ALL_GATES = ref.random_circuit(
    _RNG, 3, n_extra=0, gates=[g for g in ref.GATE_NAMES if g != "QubitUnitary"]) + [
        ("PauliRot", (2, 0, 1), (0.7, "XYZ")), ("PauliRot", (1, 2), (-1.3, "IY")),
        ("MultiRZ", (1,), (0.4,)), ("MultiRZ", (0, 2, 1), (2.1,)),
        ("QubitUnitary", (1,), (ref.random_unitary(_RNG, 2),)),
        ("PauliRot", (0, 1, 2), (0.9, "ZIX"))]
_UNITARY_2 = ("QubitUnitary", (2, 0), (ref.random_unitary(_RNG, 4),))


def _tape(ops, n=3, measurement=None):
  circuit = ref.qhess_circuit(ops, n, measurement or qhess.probs(wires=(2, 0)))
  return circuit.tape(jnp.asarray(ref.flat_params(ops)))


def test_export_every_gate_matches_aer_statevector():
  # The expected state is the reference simulator's (qhess's kernel equals it to 1e-12
  # in test_statevector.py); a jitted qhess.final_state of this circuit compiles ~5 s.
  tape = _tape(_ALL_GATES)
  assert {op.name for op in tape.operations} == set(ref.GATE_NAMES)
  expected = ref.circuit_state(_ALL_GATES, 3)
  program = qhess.to_openqasm(tape)
  from_qasm = qiskit.qasm3.loads(program)
  assert from_qasm.num_clbits == 2
  _assert_equal_up_to_phase(_aer_state(from_qasm), expected)
  _assert_equal_up_to_phase(_aer_state(qhess.to_qiskit(tape)), expected)
  # A QubitUnitary on two wires: Qiskit keeps the matrix (qubits reversed), QASM refuses.
  tape2 = _tape(_ALL_GATES + [_UNITARY_2])
  _assert_equal_up_to_phase(_aer_state(qhess.to_qiskit(tape2)),
                            ref.circuit_state(_ALL_GATES + [_UNITARY_2], 3))
  with pytest.raises(ValueError, match="QubitUnitary on 2 wires"):
    qhess.to_openqasm(tape2)


def test_to_openqasm_writes_full_precision_and_measures_probs_wires():
  x = np.array([np.pi / 3, np.nextafter(0.1, 1.0), -2.0 / 7.0])  # last bits matter

  @qhess.circuit(wires=3)
  def f(x):
    qhess.RX(x[0], wires=2)
    qhess.CRZ(x[1], wires=(2, 0))
    qhess.U3(x[2], x[0], x[1], wires=1)
    return qhess.probs(wires=(1, 2))

  program = qhess.to_openqasm(f.tape(jnp.asarray(x)))
  assert "bit[2] c;" in program and "include \"stdgates.inc\";" in program
  assert program.endswith("c[0] = measure q[1];\nc[1] = measure q[2];\n")
  qc = qiskit.qasm3.loads(program)
  params = [float(p) for ins in qc.data for p in ins.operation.params]
  assert params == [x[0], x[1], x[2], x[0], x[1]]  # exactly: repr round-trips
  measured = [(qc.find_bit(i.qubits[0]).index, qc.find_bit(i.clbits[0]).index)
              for i in qc.data if i.operation.name == "measure"]
  assert measured == [(1, 0), (2, 1)]
  assert "measure" not in qhess.to_openqasm(f.tape(jnp.asarray(x)), measure=False)


def test_bit_order_of_counts_is_qiskits_little_endian():
  # |wire0 wire1> = |1 0>: c[0] (wire 0) is 1, c[1] is 0; Qiskit prints c[1] first.
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x[0], wires=1)
    qhess.PauliX(wires=0)
    qhess.RX(-x[0], wires=1)
    return qhess.probs(wires=(0, 1))

  qc = qhess.to_qiskit(f.tape(jnp.array([0.3])))
  counts = _aer(seed_simulator=1).run(qc, shots=50).result().get_counts()
  assert dict(counts) == {"01": 50}


# ------------------------------------------------------------------------- experiments

_H = np.array([[0.6, 0.3 - 0.4j], [0.3 + 0.4j, -0.2]])


@qhess.circuit(wires=3)
def _e2e(x):
  qhess.RY(x[0], wires=0)
  qhess.IsingXX(x[1], wires=(0, 1))
  qhess.CRY(x[0] * x[2], wires=(1, 2))  # non-linear: the chain rule's gradient terms
  qhess.Rot(x[2], 0.4, x[1], wires=2)
  qhess.CNOT(wires=(2, 0))
  return qhess.expval(0.8 * qhess.X(0) @ qhess.Y(2) + qhess.Z(1) - 0.5 * qhess.Y(1)
                      + 0.3 * qhess.Hermitian(_H, wires=2))


_X = jnp.array([0.7, -0.4, 1.1])
N_SHOTS = 2000


@pytest.fixture(scope="module")
def e2e():
  """Experiments (with standard errors), their exact Aer probabilities, the exact Hessian."""
  experiments, post = qhess.hessian_experiments(_e2e, shots=N_SHOTS, return_stderr=True)(_X)
  return experiments, post, _aer_probabilities(experiments), qhess.hessian(_e2e)(_X)


def test_experiments_measure_in_the_groups_bases(e2e):
  experiments, post, probs, exact = e2e
  n_ops = len(_e2e.tape(_X).operations)
  # Group 0 measures X(0) @ Y(2) and Z(1): H on wire 0, S† (as Z·S) and H on wire 2.
  # Group 1 measures Y(1) and the Hermitian on wire 2: S†·H on wire 1, V† on wire 2.
  tails = [[(op.name, op.wires) for op in e.tape.operations[n_ops:]] for e in experiments[:2]]
  assert tails[0] == [("Hadamard", (0,)), ("PauliZ", (2,)), ("S", (2,)), ("Hadamard", (2,))]
  assert tails[1] == [("PauliZ", (1,)), ("S", (1,)), ("Hadamard", (1,)),
                      ("QubitUnitary", (2,))]
  assert [e.wires for e in experiments[:2]] == [(0, 1, 2), (1, 2)]
  assert [(e.point, e.group) for e in experiments[:3]] == [(0, 0), (0, 1), (1, 0)]
  assert all(e.shots == N_SHOTS and e.entry == 0 for e in experiments)
  assert qhess.to_openqasm(experiments[0].tape).endswith(
      "h q[0];\nsdg q[2];\nh q[2];\nc[0] = measure q[0];\nc[1] = measure q[1];\n"
      "c[2] = measure q[2];\n")
  # Their OpenQASM programs (with a ZYZ-decomposed V†) measure the same probabilities.
  for e, p in zip(experiments[:2], probs[:2]):
    qc = qiskit.qasm3.loads(qhess.to_openqasm(e.tape)).remove_final_measurements(
        inplace=False)
    qc.save_probabilities(list(e.wires))
    np.testing.assert_allclose(_aer().run(qc).result().data(0)["probabilities"], p,
                               atol=ATOL, rtol=0)
  # Exact probabilities (Aer's, in Qiskit's bit order) give the exact Hessian.
  got, err = post([p * N_SHOTS for p in probs])
  np.testing.assert_allclose(got, exact, atol=ATOL, rtol=0)
  assert np.all(err >= 0)


def test_aer_shots_give_the_hessian_within_errors(e2e):
  experiments, post, _, exact = e2e
  circuits = [qhess.to_qiskit(e.tape) for e in experiments]
  result = _aer(seed_simulator=7).run(circuits, shots=N_SHOTS).result()
  got, err = post([result.get_counts(i) for i in range(len(circuits))])
  assert got.shape == exact.shape == err.shape
  assert np.all(np.abs(got - exact) <= 4.5 * err + 1e-9), (got - exact) / err


def test_reported_errors_match_the_spread_over_seeds(e2e):
  experiments, post, probs, exact = e2e
  rng = np.random.default_rng(3)
  n_reps = 200
  draws = [rng.multinomial(N_SHOTS, p / p.sum(), size=n_reps) for p in probs]  # (R, O)
  results = [post([d[r] for d in draws]) for r in range(n_reps)]
  got = np.stack([h for h, _ in results])
  err = np.stack([e for _, e in results])
  spread = got.std(axis=0, ddof=1)
  nonzero = spread > 1e-6
  ratio = err.mean(axis=0)[nonzero] / spread[nonzero]
  assert nonzero.sum() >= 6
  assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
  # and the mean of the estimates is unbiased within its standard error
  assert np.all(np.abs(got.mean(axis=0) - exact) <= 4.5 * spread / np.sqrt(n_reps) + 1e-9)


# A small circuit for options and errors: one group of two wires, one of one wire.
@qhess.circuit(wires=2)
def _small(x):
  qhess.RY(x[0], wires=0)
  qhess.CRX(x[1], wires=(0, 1))
  qhess.RY(0.3, wires=1)
  return qhess.expval(qhess.Z(0) - 0.7 * qhess.Z(0) @ qhess.Z(1) + 0.5 * qhess.X(1))


_XS = jnp.array([0.6, -1.2])


@pytest.fixture(scope="module")
def small():
  experiments, post = qhess.hessian_experiments(_small, shots=1000)(_XS)
  return experiments, post, _aer_probabilities(experiments), qhess.hessian(_small)(_XS)


def test_counts_as_bitstrings_or_arrays_in_either_bit_order(small):
  experiments, post, probs, exact = small
  k = [len(e.wires) for e in experiments]
  arrays = [1000 * p for p in probs]
  mappings = [{format(i, f"0{kk}b"): c for i, c in enumerate(a) if c > 0}
              for a, kk in zip(arrays, k)]
  np.testing.assert_allclose(post(arrays), exact, atol=ATOL, rtol=0)
  np.testing.assert_allclose(post(mappings), exact, atol=ATOL, rtol=0)
  # "big": the first character is c[0]; reversed strings and bit-reversed arrays
  _, post_big = qhess.hessian_experiments(_small, shots=1000, bit_order="big")(_XS)
  np.testing.assert_allclose(post_big([{b[::-1]: c for b, c in m.items()} for m in mappings]),
                             exact, atol=ATOL, rtol=0)
  assert not np.allclose(post_big(mappings), exact, atol=1e-3)  # the order matters


def test_shot_vector_and_budget(small):
  experiments, _, probs, exact = small
  n = len(experiments)
  vec, post = qhess.hessian_experiments(_small, shots=(300, 700), return_stderr=True)(_XS)
  assert [e.shots for e in vec] == [300] * n + [700] * n
  assert [e.entry for e in vec] == [0] * n + [1] * n
  hs, errs = post([e.shots * p for e, p in zip(vec, probs + probs)])
  assert len(hs) == len(errs) == 2
  for h in hs:
    np.testing.assert_allclose(h, exact, atol=ATOL, rtol=0)
  assert np.all(errs[0] >= errs[1])  # more shots, smaller errors
  budget, post = qhess.hessian_experiments(_small, shots=qhess.ShotBudget(5000))(_XS)
  shots = np.array([e.shots for e in budget])
  assert shots.sum() == 5000 and shots.min() >= 1 and len(set(shots)) > 1
  np.testing.assert_allclose(post([e.shots * p for e, p in zip(budget, probs)]), exact,
                             atol=ATOL, rtol=0)


_H2 = np.array([[0.6, 0.3 - 0.4j, 0, 0.1], [0.3 + 0.4j, -0.2, 0.2j, 0],
                [0, -0.2j, 0.5, 0.3], [0.1, 0, 0.3, -0.7]])


def test_variances_probs_and_two_wire_hermitian_from_aer_probabilities():
  # var (raw moments from one group), probs in reversed wire order, and a Hermitian on
  # two wires (measured after a two-wire V†, which Qiskit keeps as a unitary).
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    qhess.RY(x[0] * x[1], wires=1)
    return (qhess.var(qhess.X(0) @ qhess.Z(1)), qhess.probs(wires=(1, 0)),
            qhess.expval(qhess.Hermitian(_H2, wires=(1, 0))))

  x = jnp.array([0.5, 0.2])
  experiments, post = qhess.hessian_experiments(f, shots=100)(x)
  assert len({e.group for e in experiments}) == 3
  with pytest.raises(ValueError, match="QubitUnitary on 2 wires"):
    qhess.to_openqasm(experiments[2].tape)
  got = post([100 * p for p in _aer_probabilities(experiments)])
  for g, e in zip(got, qhess.hessian(f)(x)):
    np.testing.assert_allclose(g, e, atol=ATOL, rtol=0)


def test_post_rejects_bad_counts_before_computing(small):
  experiments, post, probs, _ = small
  good = [{"00": 10, "11": 5} if len(e.wires) == 2 else {"0": 7} for e in experiments]
  with pytest.raises(ValueError, match=f"has {len(good) - 1} table.*{len(good)} experiments"):
    post(good[:-1])
  with pytest.raises(ValueError, match=r"key '001'.*2-character"):
    post([{"001": 3}] + good[1:])
  with pytest.raises(ValueError, match="non-negative"):
    post([{"00": 10, "01": -1}] + good[1:])
  with pytest.raises(ValueError, match=r"shape \(4,\)"):
    post([np.ones(2)] + good[1:])
  with pytest.raises(ValueError, match="no shots"):
    post([{"00": 0}] + good[1:])
  with pytest.raises(ValueError, match="finite"):
    post([np.array([1.0, np.nan, 0, 0])] + good[1:])
  with pytest.raises(TypeError, match="bitstrings"):
    post([{0: 3}] + good[1:])
  with pytest.raises(TypeError, match="real number"):
    post([{"00": "3"}] + good[1:])
  with pytest.raises(TypeError, match="one counts table per experiment"):
    post({"00": 3})
  with pytest.raises(TypeError, match="mapping of bitstrings"):
    post([object()] + good[1:])


@pytest.mark.parametrize("table, what", [
    (np.array([1.0, 2.0, 0.0, 1.0]) + 1e-3j, r"dtype complex128 \(complex\)"),
    (np.array([True, False, False, True]), r"dtype bool \(bool\)"),
    (np.array(["10", "3", "0", "1"]), r"dtype <U2 \(str\)"),
    (np.array([10, 3, None, 1], dtype=object), r"dtype object \(object\)"),
    ([1, 2, 0, False + 1j], r"dtype complex128"),
])
def test_post_refuses_arrays_that_are_not_counts(small, table, what):
  # (before: the imaginary part was dropped, bools and numeric strings were read as
  # numbers)
  experiments, post, _, _ = small
  good = [np.ones(2 ** len(e.wires)) for e in experiments]
  with pytest.raises(TypeError, match=rf"`counts\[0\]` as an array must hold real numbers "
                     rf"\(an integer or float dtype\); got {what}"):
    post([table] + good[1:])


def test_post_refuses_non_finite_and_non_real_count_values(small):
  experiments, post, _, _ = small
  good = [np.ones(2 ** len(e.wires)) for e in experiments]
  with pytest.raises(ValueError, match=r"`counts\[0\]` must be finite counts \(in float64\); "
                     r"got inf at outcome 2"):
    post([np.array([1.0, 0.0, np.inf, 1.0])] + good[1:])
  with pytest.raises(ValueError, match=r"`counts\[1\]` must be finite counts.*got nan at "
                     r"outcome 0 and 1 more"):
    post(good[:1] + [np.full(2, np.nan)] + good[2:])
  with pytest.raises(ValueError, match=r"`counts\[0\]\['11'\]` must be a finite count.*got "
                     r"an int of 1329 bits"):
    post([{"00": 1, "11": 10**400}] + good[1:])
  with pytest.raises(TypeError, match=r"`counts\[0\]\['11'\]` must be a real number; got "
                     r"\(1\+1j\) \(complex\)"):
    post([{"00": 1, "11": 1 + 1j}] + good[1:])
  with pytest.raises(TypeError, match=r"`counts\[0\]\['11'\]` must be a real number; got "
                     r"True \(bool\)"):
    post([{"00": 1, "11": True}] + good[1:])
  with pytest.raises(ValueError, match=r"`counts\[0\]` must be non-negative; got -2.0 at "
                     r"outcome 3"):
    post([np.array([1, 0, 5, -2])] + good[1:])


def test_post_normalises_counts_of_any_finite_scale(small):
  # Exact probabilities at scales where the counts' sum overflows float64 (the largest
  # count 1.5e308) or the counts are denormal (1e-310 = 2**-1029.8: 44 bits left): the
  # exact Hessian. (Before: H = 0 from counts / inf, and NaN from flushed denormals.)
  experiments, post, probs, exact = small
  top = [p / p.max() * 1.5e308 for p in probs]
  with np.errstate(over="ignore"):
    assert sum(not np.isfinite(np.sum(t)) for t in top) > len(top) / 2  # (sums overflow)
  np.testing.assert_allclose(post(top), exact, atol=ATOL, rtol=0)
  np.testing.assert_allclose(post([1e-310 * p for p in probs]), exact, atol=1e-10, rtol=0)
  # Integer counts scaled by powers of two, down to denormals: exactly the same numbers.
  counts = [np.round(1000 * p) for p in probs]
  expected = np.asarray(post(counts))
  for scale in (2.0**-1064, 2.0**1000):
    np.testing.assert_array_equal(post([scale * c for c in counts]), expected)


def test_hessian_experiments_rejects_bad_options():
  with pytest.raises(ValueError, match="`shots` is required"):
    qhess.hessian_experiments(_small, shots=None)
  with pytest.raises(ValueError, match="pilot"):
    qhess.hessian_experiments(_small, shots=qhess.ShotBudget(10_000, pilot=10))
  with pytest.raises(ValueError, match="`bit_order`"):
    qhess.hessian_experiments(_small, shots=10, bit_order="little")
  with pytest.raises(TypeError, match="`return_stderr`"):
    qhess.hessian_experiments(_small, shots=10, return_stderr=1)
  with pytest.raises(TypeError, match="`hybrid`"):
    qhess.hessian_experiments(_small, shots=10, hybrid=None)
  with pytest.raises(TypeError, match="circuit made with"):
    qhess.hessian_experiments(lambda x: x, shots=10)
  with pytest.raises(ValueError, match="smaller than the number of circuits"):
    qhess.hessian_experiments(_small, shots=qhess.ShotBudget(5))(_XS)


def test_export_rejects_bad_tapes():
  tape = _small.tape(_XS)
  with pytest.raises(ValueError, match="expval measurement"):
    qhess.to_openqasm(tape)
  with pytest.raises(ValueError, match="expval measurement"):
    qhess.to_qiskit(tape)
  with pytest.raises(TypeError, match="qhess.Tape"):
    qhess.to_openqasm(_small)
  with pytest.raises(ValueError, match="non-finite"):
    qhess.to_openqasm(tape.with_params(jnp.array([np.nan, 0.0, 0.3])), measure=False)

  @qhess.circuit(wires=2)
  def twice(x):
    qhess.RX(x, wires=0)
    return qhess.probs(wires=(0, 1)), qhess.probs(wires=(1,))

  with pytest.raises(ValueError, match="measures wire 1 twice"):
    qhess.to_openqasm(twice.tape(0.1))
  with pytest.raises(TypeError, match="traced values"):
    jax.jit(lambda x: len(qhess.to_openqasm(twice.tape(x), measure=False)))(0.1)


# ------------------------------------------------------------------------------ import


def _qiskit_circuit():
  a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
  qc = qiskit.QuantumCircuit(3, 1)
  qc.h(0)
  qc.rx(2 * a, 0)  # scaled
  qc.ry(a + b, 1)  # shared
  qc.crz(c.sin(), 1, 2)  # non-linear
  qc.rzz(b, 0, 2)
  qc.u(a, b * c, 0.3, 2)
  qc.sdg(1)  # constant gates without a qhess name: matrices
  qc.ch(2, 0)
  qc.rzx(c / 2, 2, 1)
  qc.barrier()
  qc.cp(a - c, 1, 0)
  qc.measure(1, 0)  # final: dropped
  obs = SparsePauliOp(["XYZ", "ZII", "IXY"], coeffs=[0.5, -1.0, 0.3])
  return qc, obs


def _ref_ops(tape):
  """A tape's gates as a `_reference` op list (real arguments from ``tape.params``)."""
  params = np.asarray(tape.params)
  ops = []
  for op in tape.operations:
    extra = ((op.hyper,) if op.name == "PauliRot" else
             (np.asarray(tape.consts[op.hyper]),) if op.name == "QubitUnitary" else ())
    ops.append((op.name, op.wires, tuple(params[list(op.param_index)]) + extra))
  return ops


def _qiskit_matrix(obs, n: int) -> np.ndarray:
  """A SparsePauliOp's matrix in qhess's order (Qiskit's qubit 0 is the last wire)."""
  return ref.observable_matrix(("H", obs.to_matrix(), tuple(range(n))[::-1]), n)


def test_from_qiskit_matches_qiskit_and_jax_hessian():
  qc, obs = _qiskit_circuit()
  f = qhess.from_qiskit(qc, obs)
  x = jnp.array([0.4, -0.9, 1.3])
  # The imported gates, simulated by the reference simulator, give Qiskit's value.
  state = ref.circuit_state(_ref_ops(f.tape(x)), 3)
  bound = qc.remove_final_measurements(inplace=False).assign_parameters(np.asarray(x))
  expected = Statevector(bound).expectation_value(obs).real
  np.testing.assert_allclose(np.vdot(state, _qiskit_matrix(obs, 3) @ state).real, expected,
                             atol=ATOL, rtol=0)
  # jax.hessian of the imported circuit: its classical part x -> θ (the parameter
  # expressions, JAX) composed with the dense oracle of its gates (`_dense`; through
  # qhess's kernel it compiles for about a minute).
  ops = [op[:2] + ((0.0,) * ref.N_REAL[op[0]] + op[2][ref.N_REAL[op[0]]:],)
         for op in _ref_ops(f.tape(x))]
  dense = _dense.Dense(ops, 3, [("expval", ("H", obs.to_matrix(), (2, 1, 0)))])
  expected = _dense.jit_hessian(lambda x: dense(f.tape(x).params))(x)
  np.testing.assert_allclose(qhess.hessian(f)(x), expected, atol=ATOL, rtol=0)


def test_from_openqasm_round_trip_and_inputs():
  tape = _tape(_ALL_GATES)
  f = qhess.from_openqasm(qhess.to_openqasm(tape), SparsePauliOp("XZY"))
  _assert_equal_up_to_phase(ref.circuit_state(_ref_ops(f.tape(jnp.zeros(0))), 3),
                            ref.circuit_state(_ALL_GATES, 3))
  g = qhess.from_openqasm("""OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
input float[64] alpha;
qubit[2] q;
rx(2 * theta + alpha) q[0];
cry(alpha) q[0], q[1];
""", [SparsePauliOp("ZI"), SparsePauliOp("ZZ")])
  x = jnp.array([0.3, 0.8])  # (alpha, theta): sorted by name
  assert [op.name for op in g.tape(x).operations] == ["RX", "CRY"]
  np.testing.assert_allclose(g.tape(x).params, [2 * 0.8 + 0.3, 0.3], atol=1e-15)
  c = np.cos(2 * 0.8 + 0.3)
  p1 = (1 - c) / 2  # P(q0 = 1); "ZI" is Z on qubit 1, "ZZ" the parity
  expected = (1 - 2 * p1 * np.sin(0.15) ** 2, (1 + c) / 2 - p1 * np.cos(0.3))
  np.testing.assert_allclose(g(x), expected, atol=ATOL)


def test_from_qiskit_rejects_bad_input():
  qc, obs = _qiskit_circuit()
  with pytest.raises(ValueError, match="Hermitian"):
    qhess.from_qiskit(qc, SparsePauliOp(["XYZ", "ZZZ"], coeffs=[1.0, 0.5j]))
  with pytest.raises(ValueError, match="acts on 2 qubits"):
    qhess.from_qiskit(qc, SparsePauliOp("ZZ"))
  with pytest.raises(TypeError, match="SparsePauliOp"):
    qhess.from_qiskit(qc, qhess.Z(0))
  with pytest.raises(TypeError, match="QuantumCircuit"):
    qhess.from_qiskit(qhess.to_openqasm(_tape(_ALL_GATES)), obs)
  mid = qiskit.QuantumCircuit(1, 1)
  mid.measure(0, 0)
  mid.x(0)
  with pytest.raises(ValueError, match="'measure' instruction"):
    qhess.from_qiskit(mid, SparsePauliOp("Z"))
  reset = qiskit.QuantumCircuit(1)
  reset.reset(0)
  with pytest.raises(ValueError, match="'reset' instruction"):
    qhess.from_qiskit(reset, SparsePauliOp("Z"))
  r = qiskit.QuantumCircuit(1)
  r.r(Parameter("a"), 0.2, 0)
  with pytest.raises(ValueError, match="'r'.*not supported with symbolic parameters"):
    qhess.from_qiskit(r, SparsePauliOp("Z"))
  f = qhess.from_qiskit(qc, obs)
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    f(jnp.zeros(2))
  with pytest.raises(TypeError, match="`program` must be a string"):
    qhess.from_openqasm(qc, obs)


def test_import_qhess_imports_no_qiskit():
  code = ("import sys, qhess; mods = {m.split('.')[0] for m in sys.modules}; "
          "print(sorted(mods & {'qiskit', 'qiskit_aer', 'qiskit_qasm3_import', "
          "'qiskit_ibm_runtime', 'sympy'}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == "[]"


def test_missing_qiskit_names_the_extra(monkeypatch):
  tape = _small.tape(_XS)
  monkeypatch.setitem(sys.modules, "qiskit", None)
  with pytest.raises(ImportError, match=r"pip install \"qhess\[qiskit\]\""):
    qhess.to_qiskit(tape, measure=False)
  monkeypatch.setitem(sys.modules, "qiskit_qasm3_import", None)
  monkeypatch.delitem(sys.modules, "qiskit")
  with pytest.raises(ImportError, match="qiskit_qasm3_import.*qhess\\[qiskit\\]"):
    qhess.from_openqasm("OPENQASM 3.0;", SparsePauliOp("Z"))
