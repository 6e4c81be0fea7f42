"""The generator gates (SingleExcitation ... PCPhase, U1) and `Evolution`: native gates with
their own shift rules.

Matrices against PennyLane's ``qml.matrix``; frequencies against the eigenvalues of
``qml.generator``; the kernel's sparse path (and its adjoint) against the dense matrix on
a random state; Hessians (both off-diagonal rules, the adjoint method, under noise,
float32) against ``jax.hessian``; the Qiskit export against the matrix (Qiskit's
``Operator``, up to a global phase: the lowering drops the identity term of a generator,
e.g. ``exp(iφ/4)`` for SingleExcitationPlus); the PennyLane round trip; and the circuit
count of a DoubleExcitation against PennyLane's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import _dense
import _reference as ref
import qhess
from qhess.circuits import catalogue, generator_matrices
from qhess.derivatives import adjoint
from qhess.simulate import gates as _gates

qml = pytest.importorskip("pennylane")

# name -> wires of the gate (PennyLane's order)
FIXED = {
    "SingleExcitation": 2, "SingleExcitationPlus": 2, "SingleExcitationMinus": 2,
    "DoubleExcitation": 4, "DoubleExcitationPlus": 4, "DoubleExcitationMinus": 4,
    "OrbitalRotation": 4, "FermionicSWAP": 2, "IsingXY": 2, "CPhaseShift00": 2,
    "CPhaseShift01": 2, "CPhaseShift10": 2, "U1": 1,
}
# (name, wires, hyper) of every gate instance checked gate by gate; PCPhase by dimension.
CASES = [(n, k, None) for n, k in FIXED.items()] + [
    ("PCPhase", 2, (1, 4)), ("PCPhase", 3, (5, 8)), ("PCPhase", 1, (1, 2))]
ATOL = 1e-10


def _pl_op(name, x, wires, hyper):
  if name == "PCPhase":
    return qml.PCPhase(x, dim=hyper[0], wires=wires)
  return getattr(qml, name)(x, wires=wires)


def _frequencies(matrix):
  return generator_matrices.frequencies(np.linalg.eigvalsh(matrix), atol=1e-9)


@pytest.mark.parametrize("name,k,hyper", CASES)
def test_matrix_conjugate_and_generator_match_pennylane(name, k, hyper):
  x = 0.6137
  pl = qml.matrix(_pl_op(name, x, range(k), hyper))
  got = np.asarray(catalogue.gate_matrix(name, (jnp.float64(x),), hyper))
  np.testing.assert_allclose(got, pl, rtol=0, atol=1e-14)
  conj = catalogue.CATALOGUE.get(name + "*")  # real matrices have no conjugate entry
  if conj is not None:
    np.testing.assert_allclose(catalogue.gate_matrix(name + "*", (jnp.float64(x),), hyper),
                               pl.conj(), rtol=0, atol=1e-14)
  else:
    assert not np.iscomplexobj(pl) or not np.any(pl.imag)
  # the generator table: exactly exp(-ixG), global phase included
  g = generator_matrices.generator(name, hyper)
  np.testing.assert_allclose(scipy.linalg.expm(-1j * x * g), pl, rtol=0, atol=1e-14)
  np.testing.assert_allclose(ref.gate_matrix(name, (x,) + ((hyper[0],) if hyper else ()),
                                             tuple(range(k))), pl, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name,k,hyper", CASES)
def test_spectrum_is_the_eigenvalue_differences_of_pennylanes_generator(name, k, hyper):
  op = _pl_op(name, 0.3, range(k), hyper)
  freqs = _frequencies(qml.matrix(qml.generator(op, format="observable"), wire_order=op.wires))
  (spectrum,) = catalogue.op_spectra(name, hyper)
  np.testing.assert_allclose(freqs, spectrum.base * np.arange(1, spectrum.count + 1),
                             rtol=0, atol=1e-12)
  # the documented rules: {1/2, 1} four terms, OrbitalRotation {1/2, ..., 2}, PCPhase {2}
  expected = {"SingleExcitation": (0.5, 2), "DoubleExcitation": (0.5, 2),
              "IsingXY": (0.5, 2), "OrbitalRotation": (0.5, 4), "PCPhase": (2.0, 1)}
  assert tuple(spectrum) == expected.get(name, (1.0, 1))


@pytest.mark.parametrize("name,k,hyper", CASES + [("Evolution", 3, None)])
def test_kernel_path_matches_the_dense_matrix_and_its_adjoint(name, k, hyper, rng):
  n, x = 5, 0.83
  wires = tuple(int(w) for w in rng.permutation(n)[:k])
  psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
  psi /= np.linalg.norm(psi)
  consts = ()
  if name == "Evolution":
    v = ref.random_unitary(rng, 2**k)  # integer eigenvalues in a random basis
    g = v @ np.diag(rng.integers(-2, 3, size=2**k).astype(float)) @ v.conj().T
    hyper = catalogue.DataKey(0, catalogue.Spectrum(1.0, 4))
    consts = (jnp.asarray(generator_matrices.evolution_data(g)),)
    full = ref.embed(scipy.linalg.expm(-1j * x * g), wires, n)
  else:
    full = qml.matrix(_pl_op(name, x, list(wires), hyper), wire_order=range(n))
  args = [jnp.float64(x)]
  got = _gates.apply_gate(jnp.asarray(psi), name, wires, args, hyper, consts, n)
  np.testing.assert_allclose(got, full @ psi, rtol=0, atol=1e-13)
  op = qhess.circuits.tape.Operation(name, wires, (0,), hyper)
  back = adjoint.apply_inverse(jnp.asarray(psi), op, args, consts, n)
  np.testing.assert_allclose(back, full.conj().T @ psi, rtol=0, atol=1e-13)
  if catalogue.CATALOGUE[name].kind == "sparse":  # only the pattern's entries combined
    entries = catalogue.CATALOGUE[name].entries(*args, hyper)
    assert len(entries) < (2**k) ** 2 / 2 or k == 1


def _oracle(tape, obs):
  """A dense density-matrix twin of ``tape``: θ (its ``params``) -> ``Tr(O ρ)``, from
  `_reference`'s matrices (as `_dense`'s Fourier tables, differentiable) and the Kraus
  operators of its channels. ``jax.hessian`` of it compiles in a second or two, where
  that of the kernel takes tens of seconds."""
  n, rng, steps = tape.n_wires, np.random.default_rng(0), []
  for op in tape.operations:
    if catalogue.CATALOGUE[op.name].kind == "channel":
      steps.append(([ref.embed(k, op.wires, n) for k in np.asarray(tape.consts[op.hyper])],))
      continue
    extra = ((op.hyper[0],) if op.name == "PCPhase" else
             (np.asarray(generator_matrices.evolution_generator(
                 tape.consts[op.hyper.index])),) if op.name == "Evolution" else ())
    args = (0.0,) * len(op.param_index) + extra
    steps.append(_dense._dense_gate((op.name, op.wires, args), n, rng)
                 + (np.asarray(op.param_index, dtype=int),))
  m = np.asarray(obs.matrix(wire_order=range(n)))

  def f(theta):
    rho = jnp.zeros((2**n, 2**n), complex).at[0, 0].set(1.0)
    for step in steps:
      if len(step) == 1:  # a channel
        rho = sum(k @ rho @ k.conj().T for k in step[0])
        continue
      freqs, coef, index = step
      u = jnp.einsum("t,tij->ij", jnp.exp(1j * (freqs @ theta[index])), coef)
      rho = u @ rho @ u.conj().T
    return jnp.real(jnp.trace(m @ rho))

  return f


def _reference_hessian(circuit, obs, x):
  tape = circuit.tape(x)
  oracle = _oracle(tape, obs)
  np.testing.assert_allclose(oracle(tape.params), circuit(x), rtol=0, atol=1e-5)
  return jax.jit(jax.hessian(lambda v: oracle(circuit.tape(v).params)))(x)


def _all_gates(x):
  """Every generator gate once on 4 wires, after a layer that makes the state generic."""
  for w in range(4):
    qhess.RY(0.3 + 0.4 * w, wires=w)
    qhess.RZ(0.7 - 0.2 * w, wires=w)
  qhess.DoubleExcitation(x[0], wires=(0, 1, 2, 3))
  qhess.SingleExcitationPlus(x[1], wires=(1, 2))
  qhess.OrbitalRotation(x[2], wires=(3, 0, 1, 2))
  qhess.IsingXY(x[3], wires=(0, 3))
  qhess.FermionicSWAP(x[4], wires=(2, 1))
  qhess.CPhaseShift01(x[5], wires=(3, 0))
  qhess.PCPhase(x[6], 5, wires=(1, 2, 3))
  qhess.Evolution(0.5 * qhess.X(0) @ qhess.Y(2) + 0.5 * qhess.Z(1), x[7])  # {1, 2}
  qhess.U1(x[8], wires=1)
  qhess.SingleExcitationMinus(x[9], wires=(3, 2))
  qhess.DoubleExcitationPlus(x[10], wires=(2, 0, 3, 1))
  qhess.DoubleExcitationMinus(x[11], wires=(1, 3, 0, 2))
  qhess.SingleExcitation(x[12], wires=(0, 2))
  qhess.CPhaseShift00(x[13], wires=(1, 3))
  qhess.CPhaseShift10(x[14], wires=(2, 0))
  qhess.RX(x[0] * x[1], wires=1)


OBS = qhess.X(0) @ qhess.Z(1) + 0.3 * qhess.Y(2) + qhess.Z(3) @ qhess.X(1)


@qhess.circuit(wires=4)
def ALL(x):
  _all_gates(x)
  return qhess.expval(OBS)


X15 = jnp.linspace(-1.3, 1.7, 15)


def test_hessian_both_rules_and_adjoint_match_jax_hessian():
  tape = ALL.tape(X15)
  assert tape.num_params == 8 + 16  # the layer's and one per gate: nothing decomposed
  assert tape.operations[15].hyper.spectrum == catalogue.Spectrum(1.0, 2)
  expected = _reference_hessian(ALL, OBS, X15)
  for options in ({"off_diagonal_rule": "diagonal"}, {"off_diagonal_rule": "product"},
                  {"evaluation": "adjoint"}):
    np.testing.assert_allclose(qhess.hessian(ALL, **options)(X15), expected, rtol=0,
                               atol=ATOL, err_msg=str(options))


NOISY_OBS = qhess.X(0) @ qhess.Z(1) + qhess.Y(2)


@qhess.circuit(wires=3)
def NOISY(x):
  qhess.PauliX(wires=0)
  qhess.Hadamard(wires=2)
  qhess.SingleExcitationMinus(x[0], wires=(0, 1))
  qhess.DepolarizingChannel(0.1, wires=1)
  qhess.IsingXY(x[1], wires=(1, 2))
  qhess.FermionicSWAP(x[2], wires=(2, 0))
  qhess.Evolution(np.array([[0.5, 0.5j], [-0.5j, 0.5]]), x[3], wires=0)  # eigenvalues 0, 1
  qhess.AmplitudeDamping(0.2, wires=2)
  qhess.CPhaseShift10(x[4], wires=(2, 1))
  qhess.PCPhase(x[5], 3, wires=(0, 2))
  qhess.SingleExcitation(x[6], wires=(2, 0))
  return qhess.expval(NOISY_OBS)


def test_hessian_under_noise_matches_jax_hessian():
  # Channels make the circuit a density matrix: each gate and its conjugate (sparse
  # entries conjugated, Evolution's matrix conjugated) on the column wires.
  x = jnp.linspace(0.2, 1.3, 7)
  expected = _reference_hessian(NOISY, NOISY_OBS, x)
  for rule in ("diagonal", "product"):
    np.testing.assert_allclose(qhess.hessian(NOISY, off_diagonal_rule=rule)(x), expected,
                               rtol=0, atol=ATOL)


def test_hessian_float32(float32):
  @qhess.circuit(wires=4)
  def f(x):
    qhess.PauliX(wires=0)
    qhess.PauliX(wires=1)
    qhess.DoubleExcitation(x[0], wires=(0, 1, 2, 3))
    qhess.OrbitalRotation(x[1], wires=(0, 1, 2, 3))
    qhess.IsingXY(x[2], wires=(1, 2))
    return qhess.expval(qhess.Z(0) + qhess.X(1) @ qhess.X(2))

  x = jnp.array([0.3, -0.7, 1.1], dtype=jnp.float32)
  got = qhess.hessian(f)(x)
  assert got.dtype == jnp.float32
  expected = _reference_hessian(f, qhess.Z(0) + qhess.X(1) @ qhess.X(2), x)
  np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)


def test_evolution_spectra_and_errors():
  @qhess.circuit(wires=2)
  def f(t):
    qhess.Evolution(np.diag([0.0, 1.0, 4.0, 4.0]), t, wires=(0, 1))  # {1, 3, 4} -> 1..4
    qhess.Evolution(0.25 * qhess.X(0) @ qhess.X(1), t)  # ±1/4: {1/2}
    qhess.Evolution(qhess.Z(1), t, wires=(1, 0))
    return qhess.expval(qhess.Z(0))

  tape = f.tape(0.3)
  assert [op.hyper.spectrum for op in tape.operations] == [
      catalogue.Spectrum(1.0, 4), catalogue.Spectrum(0.5, 1), catalogue.Spectrum(2.0, 1)]
  assert [op.wires for op in tape.operations] == [(0, 1), (0, 1), (1, 0)]

  def record(generator, wires=(0, 1)):
    @qhess.circuit(wires=2)
    def g(t):
      qhess.Evolution(generator, t, wires=wires)
      return qhess.expval(qhess.Z(0))
    return g.tape(0.3)

  with pytest.raises(ValueError, match=r"needs equidistant frequencies.*are \[1.0, "
                     r"1.4142135624, 2.4142135624\]"):
    record(np.diag([0.0, 1.0, 1 + np.sqrt(2), 0.0]))
  with pytest.raises(ValueError, match="must be Hermitian"):
    record(np.array([[0, 1], [0, 0]]), wires=0)
  with pytest.raises(ValueError, match=r"must have shape \(4, 4\)"):
    record(np.eye(2))
  with pytest.raises(TypeError, match="must be a constant"):
    jax.jit(lambda s: qhess.execute([_traced(s)]))(1.0)
  with pytest.raises(ValueError, match=r"`dim` must be in 0..4"):
    @qhess.circuit(wires=2)
    def h(t):
      qhess.PCPhase(t, 5, wires=(0, 1))
      return qhess.expval(qhess.Z(0))
    h.tape(0.3)


def _traced(s):
  @qhess.circuit(wires=1)
  def g(t):
    qhess.Evolution(s * np.diag([1.0, -1.0]), t, wires=0)
    return qhess.expval(qhess.Z(0))
  return g.tape(0.3)


def test_qiskit_export_equals_the_matrix_up_to_a_global_phase():
  from qiskit.quantum_info import Operator
  rng = np.random.default_rng(1)
  for name, k, hyper in CASES + [("Evolution", 2, None)]:
    x = float(rng.uniform(-3, 3))

    @qhess.circuit(wires=k)
    def f(t, name=name, k=k, hyper=hyper):
      if name == "PCPhase":
        qhess.PCPhase(t, hyper[0], wires=tuple(range(k)))
      elif name == "Evolution":
        qhess.Evolution(0.5 * qhess.X(0) @ qhess.X(1) - qhess.Y(0) @ qhess.Y(1), t)
      else:
        getattr(qhess, name)(t, wires=tuple(range(k)))
      return qhess.probs()

    tape = f.tape(x)
    qc = qhess.to_qiskit(tape, measure=False)
    assert "unitary" not in qc.count_ops()
    u = Operator(qc.reverse_bits()).data  # Qiskit's qubit 0 is the least significant bit
    if name == "Evolution":
      m = scipy.linalg.expm(-1j * x * np.asarray(
          (0.5 * qhess.X(0) @ qhess.X(1) - qhess.Y(0) @ qhess.Y(1)).matrix()))
    else:
      m = qml.matrix(_pl_op(name, x, range(k), hyper))
    i = np.argmax(np.abs(m))
    phase = u.flat[i] / m.flat[i]
    assert abs(abs(phase) - 1) < 1e-12
    np.testing.assert_allclose(u, phase * m, rtol=0, atol=1e-12, err_msg=name)
    if name in ("SingleExcitation", "DoubleExcitation", "IsingXY", "CPhaseShift00"):
      assert abs(phase - 1) < 1e-12  # no identity term: exact
    assert qhess.to_openqasm(tape, measure=False).count("\n") > 1


def test_pennylane_round_trip_and_values():
  x = X15
  tape = ALL.tape(x)
  script = qhess.to_pennylane(tape)
  assert [o.name for o in script.operations] == [o.name for o in tape.operations]
  value = qml.execute([script], qml.device("default.qubit"))[0]
  np.testing.assert_allclose(value, ALL(x), rtol=0, atol=ATOL)
  back = qhess.from_pennylane(script).tape()
  assert [(o.name, o.wires, o.hyper) for o in back.operations] == [
      (o.name, o.wires, o.hyper) for o in tape.operations]
  np.testing.assert_allclose(back.params, tape.params, rtol=0, atol=0)
  # Evolution's data: the same matrix (the eigenbasis of a degenerate G may differ)
  for a, b in zip(back.consts, tape.consts):
    np.testing.assert_allclose(generator_matrices.evolution_matrix(a, 0.7),
                               generator_matrices.evolution_matrix(b, 0.7), rtol=0, atol=1e-12)


def test_from_pennylane_records_native_gates_and_evolutions():
  def body(x):
    qml.PauliX(0)
    qml.Hadamard(2)
    qml.DoubleExcitationPlus(x[0], wires=[0, 1, 2, 3])
    qml.PCPhase(x[1], dim=3, wires=[1, 3])
    qml.evolve(0.5 * qml.X(1) @ qml.X(2) - 0.5 * qml.Z(1) @ qml.Z(2), x[1])  # Evolution
    qml.ctrl(qml.PhaseShift(x[0], wires=1), control=(0, 2))  # not split in pieces
    qml.evolve(0.5 * qml.X(1) @ qml.X(2), x[0])  # PennyLane's one IsingXX: kept
    qml.GlobalPhase(0.3)  # no gate
    return qml.expval(qml.Z(0) @ qml.X(1) + qml.Y(2) + qml.X(3))

  circuit = qhess.from_pennylane(body, wires=4)
  x = jnp.array([0.4, -1.1])
  tape = circuit.tape(x)
  assert [op.name for op in tape.operations] == [
      "PauliX", "Hadamard", "DoubleExcitationPlus", "PCPhase", "Evolution", "Evolution",
      "IsingXX"]
  assert [op.hyper.spectrum for op in tape.operations[4:6]] == [  # {0, ±1}; {0, -1}
      catalogue.Spectrum(1.0, 2), catalogue.Spectrum(1.0, 1)]
  reference = qml.QNode(body, qml.device("default.qubit", wires=4))
  for v in (x, x[::-1]):
    np.testing.assert_allclose(circuit(v), reference(np.asarray(v)), rtol=0, atol=ATOL)
  obs = qhess.Z(0) @ qhess.X(1) + qhess.Y(2) + qhess.X(3)
  np.testing.assert_allclose(qhess.hessian(circuit)(x), _reference_hessian(circuit, obs, x),
                             rtol=0, atol=ATOL)


def test_double_excitation_circuit_count_against_pennylane():
  dev = qml.device("default.qubit", wires=4)

  @qml.qnode(dev)
  def qnode(x):
    qml.BasisState(np.array([1, 1, 0, 0]), wires=range(4))
    qml.DoubleExcitation(x[0], wires=[0, 1, 2, 3])
    qml.SingleExcitation(x[1], wires=[0, 2])
    return qml.expval(qml.Z(0) + qml.X(1) @ qml.X(2))

  x = jnp.array([0.3, 0.5])
  circuit = qhess.from_pennylane(qnode)
  assert circuit.tape(x).num_params == 2
  tapes, post = qhess.hessian_tapes(circuit)(x)  # PennyLane's product rule
  script = qml.workflow.construct_tape(qnode)(np.asarray(x))
  script.trainable_params = [1, 2]  # the two angles (not BasisState's data)
  pl_tapes, pl_post = qml.gradients.param_shift_hessian(script)
  assert len(tapes) <= len(pl_tapes)  # 23 and 23 (decomposed: 10 arguments, 191 tapes)
  diagonal_rule, _ = qhess.hessian_tapes(circuit, off_diagonal_rule="diagonal")(x)
  assert len(diagonal_rule) < len(tapes)  # 14
  np.testing.assert_allclose(post(qhess.execute(tapes)), pl_post(qml.execute(pl_tapes, dev)),
                             rtol=0, atol=ATOL)
