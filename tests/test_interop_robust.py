"""No silent wrong answers at the interop boundary (issue 26): `qhess.interop.qiskit`,
`qhess.interop.pennylane`.

Qiskit parameter expressions are refused unless provably real (they were NaN), the
real ones (``2**a``, ``conjugate(a)``) are supported and checked against Qiskit's own
statevector and a hand-written `jax.hessian`; untrusted OpenQASM is refused in
milliseconds; multi-controlled rotations, noise channels and list arguments from
PennyLane are checked against PennyLane's own simulators (``default.qubit``,
``default.mixed``) through `jax.hessian`.
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess

ATOL = 1e-10
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _qiskit():
  qiskit = pytest.importorskip("qiskit")
  pytest.importorskip("qiskit_qasm3_import")
  return qiskit


def _pennylane():
  return pytest.importorskip("pennylane")


# ------------------------------------------------------------------------------ Qiskit


def test_real_qiskit_expressions_without_sympy_match_qiskit_and_jax_hessian(monkeypatch):
  """2**a, conjugate(a), log, asin, abs powers, exp, division: values against Qiskit's
  Statevector, the Hessian against jax.hessian of the hand-written expressions. SymPy
  is blocked: the conversion does not need it (it raised MissingOptionalLibraryError)."""
  qiskit = _qiskit()
  from qiskit.circuit import Parameter
  from qiskit.quantum_info import SparsePauliOp, Statevector
  monkeypatch.setitem(sys.modules, "sympy", None)
  a, b = Parameter("a"), Parameter("b")
  qc = qiskit.QuantumCircuit(2)
  qc.ry(2**a, 0)
  qc.rx(a.conjugate() * b, 0)
  qc.ry((b**2 + 1).log() - 1 / (a.cos() + 2), 1)
  qc.rx((a.sin() / 2).arcsin() + b.abs() ** 0.5 - (a * b).exp() / (2 + a.cos()), 1)
  obs = SparsePauliOp("ZZ")
  f = qhess.from_qiskit(qc, obs)

  def angles(x):
    a, b = x
    return (2**a, a * b, jnp.log(b**2 + 1) - 1 / (jnp.cos(a) + 2),
            jnp.arcsin(jnp.sin(a) / 2) + jnp.sqrt(jnp.abs(b)) - jnp.exp(a * b) / (2 + jnp.cos(a)))

  def expected(x):  # RX(t2) RY(t1)|0> has <Z> = cos t1 cos t2; ZZ of a product state
    t1, t2, t3, t4 = angles(x)
    return jnp.cos(t1) * jnp.cos(t2) * jnp.cos(t3) * jnp.cos(t4)

  x = jnp.array([0.3, -0.8])
  np.testing.assert_allclose(f.tape(x).params, jnp.stack(angles(x)), rtol=0, atol=1e-13)
  qiskit_value = Statevector(qc.assign_parameters(np.asarray(x))).expectation_value(obs).real
  np.testing.assert_allclose(float(expected(x)), qiskit_value, rtol=0, atol=ATOL)
  np.testing.assert_allclose(qhess.hessian(f)(x), jax.hessian(expected)(x), rtol=0, atol=ATOL)


def test_qiskit_expressions_not_provably_real_are_refused():
  """Each was NaN (or a NameError/SympifyError naming nothing): now a ValueError naming
  the gate, the expression and why it can be complex."""
  qiskit = _qiskit()
  from qiskit.circuit import Parameter
  from qiskit.quantum_info import SparsePauliOp
  a, b = Parameter("a"), Parameter("b")
  cases = [
      ((a - 1).log(), r"'log\(-1 \+ a\)', the logarithm of \(-1 \+ a\), which can be negative"),
      (a**0.5, (r"'a\*\*0.5', the power \(a \*\* 0.5\) of a, which can be negative, to "
                r"the non-integer 0.5")),
      ((2 * a).arcsin(), r"'asin\(2\*a\)', asin\(2 \* a\), whose argument can leave \[-1, 1\]"),
      (a**b, r"'a\*\*b'.* to a variable exponent"),
      ((a.cos() - 2).log() + b, (r"'log\(-2 \+ cos\(a\)\) \+ b', the logarithm of "
                                 r"\(cos\(a\) - 2\), which can be negative \(its values "
                                 r"lie in \[-3, -1\]")),
      (a + 1j, r"'1i \+ a', which holds the complex constant 1j"),
  ]
  for expr, match in cases:
    qc = qiskit.QuantumCircuit(1)
    qc.rx(b, 0)
    qc.ry(expr, 0)
    with pytest.raises(ValueError, match=r"from_qiskit: gate 'ry' has the argument " + match):
      qhess.from_qiskit(qc, SparsePauliOp("Z"))
  # Rewritten so that they are real, they are accepted (no evaluation needed here).
  for expr in ((a - 1).abs().log(), a.abs() ** 0.5, (a.sin() / 2).arcsin(), (a**2 + 1) ** b):
    qc = qiskit.QuantumCircuit(1)
    qc.ry(expr, 0)
    qhess.from_qiskit(qc, SparsePauliOp("Z"))


def test_qiskit_extra_lists_sympy(monkeypatch):
  tomllib = pytest.importorskip("tomllib")
  _qiskit()
  from qiskit.quantum_info import SparsePauliOp
  extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
      "optional-dependencies"]["qiskit"]
  assert any(req.replace(" ", "").startswith("sympy>=") for req in extra), extra
  monkeypatch.setitem(sys.modules, "qiskit_qasm3_import", None)
  with pytest.raises(ImportError, match=r"from_openqasm needs the optional dependency "
                     r"'qiskit_qasm3_import'.*qhess\[qiskit\].*sympy"):
    qhess.from_openqasm("OPENQASM 3.0;", SparsePauliOp("Z"))


def test_untrusted_openqasm_is_refused_in_milliseconds():
  """qubit[200000] took minutes (a quadratic Qiskit call before any check), qreg
  q[10**9] exhausts the memory: the observable and the declared qubits are checked
  first."""
  qiskit = _qiskit()
  from qiskit.quantum_info import SparsePauliOp
  z = SparsePauliOp("Z")
  qhess.from_openqasm("OPENQASM 3.0;\nqubit q;\n", z)  # (imports Qiskit's importer)
  cases = [
      ("OPENQASM 3.0;\nqubit[200000] q;\n", z, ValueError,
       r"from_openqasm: the program declares 200000 qubits, more than max_qubits=1024"),
      ("OPENQASM 3.0;\nqreg q[1_000_000_000];\n", z, ValueError,
       r"declares 1000000000 qubits, more than max_qubits=1024"),
      ('OPENQASM 3.0;\ninclude "stdgates.inc";\nh $100000;\n', z, ValueError,
       r"declares 100001 qubits"),
      ("OPENQASM 3.0;\nqubit[2000 * 1000] q;\n", z, ValueError,
       r"declares qubits with the size '2000 \* 1000', which is not an integer literal"),
      ("OPENQASM 3.0;\nqubit[" + "qubit[" * 50000, z, ValueError, r"not an integer literal"),
      ("OPENQASM 3.0;\nqubit[200000] q;\n", qhess.Z(0), TypeError,
       r"`observable` must be a qiskit.quantum_info.SparsePauliOp .*; got Observable"),
      ("OPENQASM 3.0;\nqubit[200000] q;\n", [], ValueError, r"`observable` is an empty"),
  ]
  for program, obs, error, match in cases:
    start = time.perf_counter()
    with pytest.raises(error, match=match):
      qhess.from_openqasm(program, obs)
    assert time.perf_counter() - start < 0.5, program[:40]
  # from_qiskit checks the observable before reading the circuit.
  big = qiskit.QuantumCircuit(200000)
  start = time.perf_counter()
  with pytest.raises(ValueError, match=r"`observable` acts on 1 qubits; the circuit has 200000"):
    qhess.from_qiskit(big, z)
  assert time.perf_counter() - start < 0.5
  # Comments do not count; the limit is a keyword; sizes in any literal base.
  program = "OPENQASM 3.0;\n// qubit[5000] a;\n/* qreg b[7000]; */\nqubit[0x3] q;\n"
  assert qhess.from_openqasm(program, SparsePauliOp("ZZZ")).n_wires == 3
  with pytest.raises(ValueError, match=r"declares 3 qubits, more than max_qubits=2"):
    qhess.from_openqasm(program, SparsePauliOp("ZZZ"), max_qubits=2)
  with pytest.raises(ValueError, match=r"`max_qubits` must be a positive int; got 0"):
    qhess.from_openqasm(program, SparsePauliOp("ZZZ"), max_qubits=0)


def test_final_measurements_dropped_in_linear_time():
  """The final-measurement scan that replaced remove_final_measurements: measurements
  after which only barriers, delays and final measurements act on the qubit."""
  qiskit = _qiskit()
  from qiskit.quantum_info import SparsePauliOp
  qc = qiskit.QuantumCircuit(2, 2)
  qc.h(0)
  qc.measure(0, 0)
  qc.x(1)  # qubit 1's gate after qubit 0's measurement
  qc.barrier()
  qc.measure(0, 1)  # measured twice: both final
  qc.delay(10, 1)
  qc.measure(1, 0)
  f = qhess.from_qiskit(qc, SparsePauliOp("ZZ"))
  assert [op.name for op in f.tape(jnp.zeros(0)).operations] == ["Hadamard", "PauliX"]
  qc.h(0)  # now the measurements of qubit 0 are mid-circuit
  with pytest.raises(ValueError, match=r"'measure' instruction on qubits \(0,\) before its end"):
    qhess.from_qiskit(qc, SparsePauliOp("ZZ"))


# --------------------------------------------------------------------------- PennyLane


# PennyLane's check of a controlled Rot or PhaseShift (is it SU(2)?) calls JAX's
# deprecated jax.core.is_concrete: its warning, not qhess's.
@pytest.mark.filterwarnings("ignore:jax.core.is_concrete is deprecated:DeprecationWarning")
def test_multicontrolled_rotations_hessian_and_jit_match_default_qubit():
  """qml.ctrl(RY, control=(0, 1)): values worked, hessian and jit failed ('no
  decomposition'). Now exact for traced angles: against jax.hessian of default.qubit."""
  qml = _pennylane()

  def body(x):
    qml.Hadamard(0)
    qml.RX(0.7, 1)
    qml.RY(0.3, 2)
    qml.Hadamard(3)
    qml.ctrl(qml.RY, control=(0, 1))(x[0], wires=2)
    qml.ctrl(qml.RX, control=(0, 2), control_values=(1, 0))(x[1] * x[0], wires=3)
    qml.ctrl(qml.RZ, control=(3, 1, 2))(x[1], wires=0)
    qml.ctrl(qml.Rot, control=(1, 3))(x[0], x[1], 0.3, wires=2)
    qml.ctrl(qml.PhaseShift, control=(0, 2))(jnp.sin(x[1]), wires=1)
    qml.Hadamard(1)
    return qml.expval(qml.X(0) @ qml.Z(2) + 0.5 * qml.Y(3) @ qml.X(2) - 0.3 * qml.Z(1))

  circuit = qhess.from_pennylane(body, wires=4)
  reference = qml.QNode(body, qml.device("default.qubit", wires=4), interface="jax")
  x = jnp.array([0.4, -1.1])
  names = [op.name for op in circuit.tape(x).operations]
  assert names[4:8] == ["RY", "Toffoli", "RY", "Toffoli"]  # C^2-RY: θ/2, CCX, -θ/2, CCX
  # (PennyLane's simulation under jax.jit: several times faster than eager.)
  np.testing.assert_allclose(jax.jit(circuit)(x), jax.jit(reference)(x), rtol=0, atol=ATOL)
  np.testing.assert_allclose(qhess.hessian(circuit)(x), jax.jit(jax.hessian(reference))(x),
                             rtol=0, atol=ATOL)


def test_operation_decomposed_for_concrete_values_only_says_so():
  qml = _pennylane()

  class ConcreteOnly(qml.operation.Operation):  # as PennyLane's Controlled(RY, 2 controls)
    num_wires = 1
    num_params = 1

    @property
    def has_decomposition(self):
      return not qml.math.is_abstract(self.data[0])

    def decomposition(self):
      return [qml.RY(self.data[0], wires=self.wires)]

  def body(x):
    ConcreteOnly(x, wires=0)
    return qml.expval(qml.Z(0))

  circuit = qhess.from_pennylane(body, wires=1)
  assert [op.name for op in circuit.tape(0.3).operations] == ["RY"]
  with pytest.raises(TypeError, match=r"operation ConcreteOnly .* PennyLane has no "
                     r"decomposition of it for traced \(abstract\) parameter values.*"
                     r"values at concrete arguments work"):
    jax.jit(circuit)(0.3)


def test_noisy_tape_round_trip_and_pennylane_channels():
  """from_pennylane(to_pennylane(tape)) of a noisy tape (it raised on QubitChannel):
  the same gates, arguments and Kraus operators, the same values; PennyLane's channels
  in a QNode (named ones, and ResetError through its Kraus set) against default.mixed."""
  qml = _pennylane()

  @qhess.circuit(wires=2)
  def noisy(x):
    qhess.RX(x[0], wires=0)
    qhess.DepolarizingChannel(0.1, wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    qhess.PauliError("XY", 0.2, wires=(0, 1))
    qhess.GeneralizedAmplitudeDamping(0.3, 0.6, wires=1)
    return qhess.expval(qhess.Z(0) @ qhess.X(1)), qhess.probs(wires=(1,))

  x = jnp.array([0.5, -0.7])
  tape = noisy.tape(x)
  back = qhess.from_pennylane(qhess.to_pennylane(tape)).tape()
  assert [(op.name, op.wires) for op in back.operations] == [
      (op.name if op.name in ("RX", "CRY") else "QubitChannel", op.wires)
      for op in tape.operations]
  np.testing.assert_allclose(back.params, tape.params, rtol=0, atol=0)
  for got, want in zip(back.consts, tape.consts):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
  for got, want in zip(qhess.execute([back])[0], noisy(x)):
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)

  def body(x):
    qml.RX(x[0], wires=0)
    qml.DepolarizingChannel(0.1, wires=0)
    qml.CRY(x[1], wires=[0, 1])
    qml.PauliError("XY", 0.2, wires=[0, 1])
    qml.ResetError(0.1, 0.2, wires=1)
    qml.AmplitudeDamping(0.25, wires=0)
    return qml.expval(qml.Z(0) @ qml.X(1))

  circuit = qhess.from_pennylane(body, wires=2)
  assert [op.name for op in circuit.tape(x).operations] == [
      "RX", "DepolarizingChannel", "CRY", "PauliError", "QubitChannel", "AmplitudeDamping"]
  mixed = qml.QNode(body, qml.device("default.mixed", wires=2), interface="jax")
  np.testing.assert_allclose(qhess.hessian(circuit)(x), jax.jit(jax.hessian(mixed))(x),
                             rtol=0, atol=ATOL)


def test_list_argument_to_a_template_says_pass_an_array():
  """A Python list reaches the function as a list of traced scalars, which PennyLane's
  templates convert to NumPy: the message named pennylane.numpy; it names the list."""
  qml = _pennylane()
  dev = qml.device("default.qubit", wires=4)

  @qml.qnode(dev)
  def ansatz(x):
    qml.AllSinglesDoubles(x, wires=range(4), hf_state=np.array([1, 1, 0, 0]),
                          singles=[[0, 2], [1, 3]], doubles=[[0, 1, 2, 3]])
    return qml.expval(qml.Z(0))

  circuit = qhess.from_pennylane(ansatz)
  with pytest.raises(TypeError, match=r"the argument `x` of the quantum function `ansatz` "
                     r"is a Python list or tuple of traced JAX scalars.*Pass a JAX array "
                     r"instead of a list"):
    qhess.hessian(circuit)([0.5, 0.3, -0.4])
