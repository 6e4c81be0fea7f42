"""No silent wrong answers at the interop boundary (issue 26): `qhess._qiskit`, `qhess._pennylane`.

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
