"""Sampler V2 PUBs (qhess.interop.primitives): structure, results back, layouts, errors.

Runs when the qiskit extra is installed (qiskit and qiskit-ibm-runtime's fake backends).
Results come from ``qiskit.primitives.StatevectorSampler`` (sampled) or from exact
probabilities of the register's values, computed here by simulating each PUB's
(transpiled) circuit on its physical qubits: the same path through ``post(result,
pubs)`` as a device's bits, exact.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import qhess

qiskit = pytest.importorskip("qiskit")
pytest.importorskip("qiskit.transpiler")
fake_provider = pytest.importorskip("qiskit_ibm_runtime.fake_provider")
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.primitives import StatevectorSampler  # noqa: E402
from qiskit.quantum_info import Statevector  # noqa: E402

ATOL = 1e-10
N_SHOTS = 4000


# Three wires, five gate arguments, X, Y and Z terms in three measurement groups.
@qhess.circuit(wires=3)
def _f(x):
  qhess.RY(x[0], wires=0)
  qhess.RX(x[1], wires=1)
  qhess.CNOT(wires=(0, 1))
  qhess.IsingYY(x[2], wires=(1, 2))
  qhess.CRZ(x[3], wires=(2, 0))
  qhess.RY(0.4, wires=2)
  qhess.RX(x[4], wires=2)
  return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.7 * qhess.X(1) @ qhess.X(2)
                      - 0.5 * qhess.Y(0) + 0.3 * qhess.Z(2) + 0.6 * qhess.Y(1) @ qhess.Y(2))


_X = jnp.asarray(np.random.default_rng(5).uniform(-np.pi, np.pi, 5))


@pytest.fixture(scope="module")
def setup():
  experiments, post = qhess.hessian_experiments(_f, shots=N_SHOTS, return_stderr=True)(_X)
  return experiments, post, qhess.hessian(_f)(_X)


def _exact_register_probs(pubs) -> list[np.ndarray]:
  """Per PUB ``(B, 2**k)``: the probability of each register value (bit c = 2**c), from
  the circuit's own measure instructions and a statevector of its physical qubits. Each
  circuit is restricted to the qubits it touches (the others stay |0>), so a 27- or
  127-qubit layout is simulated on a few qubits."""
  out = []
  for pub in pubs:
    qc = pub.circuit
    active = sorted({qc.find_bit(q).index for inst in qc.data for q in inst.qubits})
    where = {q: i for i, q in enumerate(active)}
    small = QuantumCircuit(len(active), qc.num_clbits)
    small.add_register(*[r for r in qc.cregs])  # the same classical register
    for inst in qc.data:
      if inst.operation.name == "barrier":
        continue
      small.append(inst.operation, [where[qc.find_bit(q).index] for q in inst.qubits],
                   [qc.find_bit(c).index for c in inst.clbits])
    reg = next(r for r in qc.cregs if r.name == "qhess")
    qubit = {qc.find_bit(i.clbits[0]).index: where[qc.find_bit(i.qubits[0]).index]
             for i in qc.data if i.operation.name == "measure"}
    qargs = [qubit[qc.find_bit(b).index] for b in reg]
    bare = small.remove_final_measurements(inplace=False)
    values = pub.parameter_values.as_array(bare.parameters)
    out.append(np.stack([Statevector(bare.assign_parameters(v)).probabilities(qargs)
                         for v in values]))
  return out


def _counting(monkeypatch):
  """Wraps the preset pass manager: returns the list of circuits it transpiled."""
  calls = []
  make = qiskit.transpiler.generate_preset_pass_manager

  def counting_make(*args, **kwargs):
    pm = make(*args, **kwargs)
    run = pm.run
    pm.run = lambda circuits, *a, **k: calls.append(circuits) or run(circuits, *a, **k)
    return pm

  monkeypatch.setattr(qiskit.transpiler, "generate_preset_pass_manager", counting_make)
  return calls


def test_one_parametrized_circuit_per_group_rows_are_points(setup, monkeypatch):
  experiments, _, _ = setup
  calls = _counting(monkeypatch)
  pubs = qhess.to_sampler_pubs(experiments, fake_provider.FakeManilaV2(), seed_transpiler=1)
  groups = sorted({e.group for e in experiments})
  n_points = len({e.point for e in experiments})
  assert len(pubs) == len(groups) == len(calls) == 3  # one transpile per PUB circuit
  assert sorted(np.concatenate(pubs.rows)) == list(range(len(experiments)))
  for pub, rows, wires in zip(pubs, pubs.rows, pubs.bit_wires):
    assert pub.shape == (n_points,) and pub.shots == N_SHOTS
    assert {experiments[e].group for e in rows} == {experiments[rows[0]].group}
    assert [experiments[e].point for e in rows] == list(range(n_points))
    assert wires == experiments[rows[0]].wires
    params = pub.circuit.parameters
    # one parameter per gate argument (RY(0.4) too: its column is constant)
    assert {p.vector.name for p in params} == {"theta"} and len(params) == 6
    points = np.stack([np.asarray(experiments[e].tape.params) for e in rows])
    np.testing.assert_array_equal(pub.parameter_values.as_array(params),
                                  points[:, [p.index for p in params]])
    assert pub.circuit.num_qubits == 5 and [r.name for r in pub.circuit.cregs] == ["qhess"]
  # Shot vectors and budgets: one PUB per entry / distinct shot count, the same circuits.
  calls.clear()
  vec, _ = qhess.hessian_experiments(_f, shots=(100, 300))(_X)
  pubs = qhess.to_sampler_pubs(vec, fake_provider.FakeManilaV2())
  assert len(calls) == 3 and [p.shots for p in pubs] == [100] * 3 + [300] * 3
  budget, _ = qhess.hessian_experiments(_f, shots=qhess.ShotBudget(50_000, pilot=None))(_X)
  pubs = qhess.to_sampler_pubs(budget)
  assert len(pubs) == len({(e.group, e.shots) for e in budget})
  assert all(budget[e].shots == p.shots for p, rows in zip(pubs, pubs.rows) for e in rows)


def test_sampler_result_gives_the_hessian_within_errors(setup):
  experiments, post, exact = setup
  pubs = qhess.to_sampler_pubs(experiments)
  result = StatevectorSampler(seed=11).run(pubs).result()
  got, err = post(result, pubs)
  assert got.shape == exact.shape == err.shape
  assert np.all(np.abs(got - exact) <= 4.5 * err + 1e-9), (got - exact) / err
  # the same counts as tables give the same Hessian
  np.testing.assert_allclose(post(pubs.counts(result))[0], got, atol=ATOL, rtol=0)


def test_exact_probabilities_give_the_exact_hessian(setup):
  experiments, post, exact = setup
  pubs = qhess.to_sampler_pubs(experiments)
  got, _ = post(_exact_register_probs(pubs), pubs)
  np.testing.assert_allclose(got, exact, atol=ATOL, rtol=0)


def test_a_layout_that_moves_the_wires(setup):
  experiments, post, exact = setup
  # FakeManilaV2 is a line 0-1-2-3-4: wires (0, 1, 2) on qubits (4, 2, 0) need routing.
  pubs = qhess.to_sampler_pubs(experiments, fake_provider.FakeManilaV2(), seed_transpiler=3,
                               initial_layout=[4, 2, 0])
  layouts = [pub.circuit.layout for pub in pubs]
  assert all(lay.initial_index_layout()[:3] == [4, 2, 0] for lay in layouts)
  assert any(lay.final_index_layout() != [4, 2, 0] for lay in layouts)  # routed
  measured = [[pub.circuit.find_bit(i.qubits[0]).index for i in pub.circuit.data
               if i.operation.name == "measure"] for pub in pubs]
  assert any(m != list(w) for m, w in zip(measured, pubs.bit_wires))  # bits != qubits
  got, _ = post(_exact_register_probs(pubs), pubs)
  np.testing.assert_allclose(got, exact, atol=ATOL, rtol=0)
  got, err = post(StatevectorSampler(seed=5).run(pubs).result(), pubs)
  assert np.all(np.abs(got - exact) <= 4.5 * err + 1e-9), (got - exact) / err


_H2 = np.kron(np.diag([1.0, -0.5]), np.array([[0.2, 0.6 - 0.3j], [0.6 + 0.3j, -0.4]]))


@qhess.circuit(wires=3)
def _g(x):
  qhess.RY(x[0], wires=0)
  qhess.CNOT(wires=(0, 2))
  qhess.Rot(x[1], x[2], 0.3, wires=2)
  qhess.SWAP(wires=(1, 2))
  qhess.IsingZZ(x[0] * x[1], wires=(0, 1))
  return qhess.expval(qhess.Hermitian(_H2, wires=(2, 0)) + 0.5 * qhess.Y(1))


def test_elided_swaps_hermitian_bases_and_budgets_are_exact():
  # Level 3 elides the SWAP into the final layout (ElidePermutations); the Hermitian on
  # two wires is a `unitary` synthesized by the transpiler; a budget makes one PUB per
  # distinct shot count.
  x = jnp.array([0.3, -0.7, 1.2])
  exact = qhess.hessian(_g)(x)
  experiments, post = qhess.hessian_experiments(
      _g, shots=qhess.ShotBudget(20_000, pilot=None))(x)
  for level in (0, 3):
    pubs = qhess.to_sampler_pubs(experiments, fake_provider.FakeManilaV2(),
                                 optimization_level=level, seed_transpiler=5)
    assert len(pubs) == len({e.shots for e in experiments}) > 1
    if level == 3:
      assert "swap" not in pubs[0].circuit.count_ops()
      assert pubs[0].circuit.count_ops()["cx"] < 10  # the SWAP's three went
    got = post(_exact_register_probs(pubs), pubs)
    np.testing.assert_allclose(got, exact, atol=ATOL, rtol=0)


def test_results_that_do_not_belong_are_refused(setup):
  experiments, post, _ = setup
  pubs = qhess.to_sampler_pubs(experiments)
  sampler = StatevectorSampler(seed=1)
  with pytest.raises(ValueError, match=r"`result` has 1 PUB result\(s\); these PUBs are 3"):
    post(sampler.run(pubs[:1]).result(), pubs)
  with pytest.raises(ValueError, match=r"ran PUB 0 of the PUBs .*; expected PUB 0 of"):
    post(sampler.run(qhess.to_sampler_pubs(experiments)).result(), pubs)  # other PUBs
  reordered = sampler.run([pubs[1], pubs[0], pubs[2]]).result()
  with pytest.raises(ValueError, match="ran PUB 1 .* expected PUB 0"):
    post(reordered, pubs)
  # a foreign circuit (no metadata of ours): its register and shapes are checked
  other = qiskit.QuantumCircuit(3)
  other.measure_all()
  foreign = sampler.run([other] * 3, shots=10).result()
  with pytest.raises(ValueError, match=r"`result\[0\].data` has no BitArray 'qhess'.*\['meas'\]"):
    post(foreign, pubs)
  named = qiskit.QuantumCircuit(qiskit.QuantumRegister(3), qiskit.ClassicalRegister(3, "qhess"))
  named.measure(range(3), range(3))
  b = pubs[0].shape[0]
  with pytest.raises(ValueError, match=rf"shape \(\) and 3 bits; PUB 0 has shape \({b},\)"):
    post(sampler.run([named] * 3, shots=10).result(), pubs)
  arrays = _exact_register_probs(pubs)
  with pytest.raises(ValueError, match=rf"shape \({b}, 8\).*got dtype float64, shape \({b}, 4\)"):
    post([arrays[0][:, :4]] + arrays[1:], pubs)
  with pytest.raises(TypeError, match=r"PrimitiveResult; pass the PUBs it ran too"):
    post(sampler.run(pubs).result())
  other_experiments, _ = qhess.hessian_experiments(_f, shots=N_SHOTS)(_X)
  with pytest.raises(ValueError, match="`pubs` were made from .* other experiments"):
    post(arrays, qhess.to_sampler_pubs(other_experiments))
  with pytest.raises(TypeError, match="`pubs` must be the qhess.to_sampler_pubs"):
    post(arrays, list(pubs))


def test_bad_arguments(setup):
  experiments, _, _ = setup
  with pytest.raises(TypeError, match="not a qhess Experiment"):
    qhess.to_sampler_pubs([experiments[0], "circuit"])
  with pytest.raises(ValueError, match="`experiments` is empty"):
    qhess.to_sampler_pubs([])
  with pytest.raises(TypeError, match="BackendV2"):
    qhess.to_sampler_pubs(experiments, "ibm_brisbane")
  with pytest.raises(ValueError, match="leave `backend`"):
    qhess.to_sampler_pubs(experiments, fake_provider.FakeManilaV2(),
                          pass_manager=qiskit.transpiler.PassManager())
  changed = list(experiments)
  changed[3] = changed[3]._replace(tape=experiments[1].tape)  # group 1's circuit
  with pytest.raises(ValueError, match="both of group 0 but their circuits differ"):
    qhess.to_sampler_pubs(changed)


def test_missing_qiskit_names_the_extra(setup, monkeypatch):
  experiments, _, _ = setup
  monkeypatch.setitem(__import__("sys").modules, "qiskit", None)
  with pytest.raises(ImportError, match=r"'qiskit'.*pip install \"qhess\[qiskit\]\""):
    qhess.to_sampler_pubs(experiments)


def test_a_27_qubit_device_layout_gives_the_exact_hessian(setup):
  # A 27-qubit heavy-hex device, the wires placed far apart: routing moves them.
  experiments, post, exact = setup
  pubs = qhess.to_sampler_pubs(experiments, fake_provider.FakeKolkataV2(), seed_transpiler=7,
                               initial_layout=[25, 13, 0])
  assert pubs[0].circuit.num_qubits == 27
  assert any(lay.final_index_layout()[:3] != [25, 13, 0]
             for lay in (pub.circuit.layout for pub in pubs))
  got, _ = post(_exact_register_probs(pubs), pubs)
  np.testing.assert_allclose(got, exact, atol=ATOL, rtol=0)
