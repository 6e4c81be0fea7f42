"""Every bad-input error of the foundation: the exception type and what its message says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.simulate import memory as _memory


def _run(body):
  """Records (and runs) a 3-wire circuit whose gates are ``body()``."""

  @qhess.circuit(wires=3)
  def f():
    body()
    return qhess.expval(qhess.Z(0))

  return f()


# ----------------------------------------------------------------------------------- gates


@pytest.mark.parametrize("call", [
    lambda: qhess.RX(0.1, wires=0),
    lambda: qhess.CNOT(wires=(0, 1)),
    lambda: qhess.Rot(0.1, 0.2, 0.3, wires=0),
    lambda: qhess.MultiRZ(0.1, wires=(0, 1)),
    lambda: qhess.PauliRot(0.1, "XY", wires=(0, 1)),
    lambda: qhess.QubitUnitary(np.eye(2), wires=0),
], ids=["RX", "CNOT", "Rot", "MultiRZ", "PauliRot", "QubitUnitary"])
def test_gate_outside_circuit(call):
  with pytest.raises(RuntimeError, match=r"called outside a circuit.*@qhess\.circuit"):
    call()


@pytest.mark.parametrize("body, match", [
    (lambda: qhess.RX(0.1, wires=3), r"RX: wire 3 is outside the circuit's wires 0\.\.2"),
    (lambda: qhess.RX(0.1, wires=-1), r"RX: wire -1 is outside"),
    (lambda: qhess.CNOT(wires=(0, 5)), r"CNOT: wire 5 is outside .*wires=\(0, 5\)"),
    (lambda: qhess.MultiRZ(0.1, wires=(0, 1, 2, 3)), r"MultiRZ: wire 3 is outside"),
    (lambda: qhess.QubitUnitary(np.eye(2), wires=7), r"QubitUnitary: wire 7 is outside"),
    (lambda: qhess.PauliRot(0.1, "X", wires=4), r"PauliRot: wire 4 is outside"),
])
def test_gate_wire_outside_circuit(body, match):
  with pytest.raises(ValueError, match=match):
    _run(body)


@pytest.mark.parametrize("body, match", [
    (lambda: qhess.CNOT(wires=(1, 1)), r"`wires` of CNOT must be distinct; got \(1, 1\)"),
    (lambda: qhess.Toffoli(wires=(0, 2, 0)), r"`wires` of Toffoli must be distinct"),
    (lambda: qhess.MultiRZ(0.1, wires=(2, 2)), r"`wires` of MultiRZ must be distinct"),
    (lambda: qhess.QubitUnitary(np.eye(4), wires=(0, 0)), r"`wires` of QubitUnitary must"),
])
def test_gate_repeated_wire(body, match):
  with pytest.raises(ValueError, match=match):
    _run(body)


@pytest.mark.parametrize("body, match", [
    (lambda: qhess.RX(0.1, wires=(0, 1)), r"RX acts on 1 wire\(s\); got wires=\(0, 1\)"),
    (lambda: qhess.CNOT(wires=0), r"CNOT acts on 2 wire\(s\); got wires=\(0,\)"),
    (lambda: qhess.CRY(0.1, wires=(0, 1, 2)), r"CRY acts on 2 wire\(s\)"),
    (lambda: qhess.Toffoli(wires=(0, 1)), r"Toffoli acts on 3 wire\(s\)"),
])
def test_gate_wrong_number_of_wires(body, match):
  with pytest.raises(ValueError, match=match):
    _run(body)


@pytest.mark.parametrize("body, error, match", [
    (lambda: qhess.MultiRZ(0.1, wires=()), ValueError, r"`wires` of MultiRZ must not be empty"),
    (lambda: qhess.RX(0.1, wires=1.0), TypeError, r"`wires` of RX must be an int or a sequence"),
    (lambda: qhess.CNOT(wires=(0, "1")), TypeError, r"`wires` of CNOT must be integers; got '1'"),
    (lambda: qhess.RX(0.1, wires=True), TypeError, r"`wires` of RX must be an int"),
    (lambda: qhess.RX(0.1), TypeError, r"RX: missing the `wires` argument"),
])
def test_gate_bad_wires_argument(body, error, match):
  with pytest.raises(error, match=match):
    _run(body)


@pytest.mark.parametrize("body, match", [
    (lambda: qhess.RX(0.1, 0.2, wires=0), r"RX takes 1 gate argument\(s\) \(phi\); got 2"),
    (lambda: qhess.RX(wires=0), r"RX takes 1 gate argument\(s\) \(phi\); got 0"),
    (lambda: qhess.Rot(0.1, 0.2, wires=0),
     r"Rot takes 3 gate argument\(s\) \(phi, theta, omega\); got 2"),
    (lambda: qhess.CNOT(0.1, wires=(0, 1)), r"CNOT takes 0 gate argument\(s\) \(\); got 1"),
])
def test_gate_wrong_number_of_arguments(body, match):
  with pytest.raises(TypeError, match=match):
    _run(body)


@pytest.mark.parametrize("value, match", [
    (jnp.array([0.1, 0.2]), r"RY: argument `phi` must be a scalar; got an array of shape \(2,\)"),
    (np.ones((1,)), r"argument `phi` must be a scalar; got an array of shape \(1,\)"),
    ([0.1, 0.2], r"argument `phi` must be a scalar; got a list of length 2"),
    ((0.1,), r"argument `phi` must be a scalar; got a tuple of length 1"),
])
def test_gate_non_scalar_argument_mentions_vmap(value, match):
  with pytest.raises(ValueError, match=match + r".*jax\.vmap"):
    _run(lambda: qhess.RY(value, wires=0))


@pytest.mark.parametrize("value", [0.1 + 0.2j, np.complex64(1.0), jnp.array(1j)])
def test_gate_complex_argument(value):
  with pytest.raises(TypeError, match=r"RZ: argument `phi` must be real; got dtype complex"):
    _run(lambda: qhess.RZ(value, wires=0))


@pytest.mark.parametrize("value, shown", [
    ("a", "'a'"), ("f", "'f'"), ("0.5", "'0.5'"), (None, "None"), (object(), "<object"),
])
def test_gate_non_numeric_argument(value, shown):
  with pytest.raises(TypeError, match=rf"RX: argument `phi` must be a real number; got {shown}"):
    _run(lambda: qhess.RX(value, wires=0))


def test_gate_complex_traced_argument():
  @qhess.circuit(wires=1)
  def f(x):
    qhess.RX(x, wires=0)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(TypeError, match=r"RX: argument `phi` must be real; got dtype complex"):
    jax.jit(f)(jnp.array(0.5 + 0j))


@pytest.mark.parametrize("word, wires, match", [
    ("XY", (0,), r"`pauli_word` 'XY' has 2 letter\(s\) but `wires` has 1; they must match"),
    ("X", (0, 1), r"`pauli_word` 'X' has 1 letter\(s\) but `wires` has 2"),
    ("XA", (0, 1), r"`pauli_word` must be a non-empty string over 'IXYZ'; got 'XA'"),
    ("xy", (0, 1), r"`pauli_word` must be a non-empty string over 'IXYZ'; got 'xy'"),
    ("", (0,), r"`pauli_word` must be a non-empty string over 'IXYZ'; got ''"),
    (["X"], (0,), r"`pauli_word` must be a non-empty string over 'IXYZ'; got \['X'\]"),
])
def test_pauli_rot_bad_word(word, wires, match):
  with pytest.raises(ValueError, match=match):
    _run(lambda: qhess.PauliRot(0.1, word, wires=wires))


@pytest.mark.parametrize("matrix, wires, match", [
    (np.array([[1, 1], [0, 1]]), 0, r"QubitUnitary: `U` must be unitary; got max \|U†U - I\| ="),
    (2 * np.eye(4), (0, 1), r"`U` must be unitary"),
    (np.eye(2), (0, 1), r"QubitUnitary: `U` on 2 wire\(s\) must have shape \(4, 4\); got \(2, 2\)"),
    (np.eye(4), 0, r"`U` on 1 wire\(s\) must have shape \(2, 2\); got \(4, 4\)"),
    (np.ones(2), 0, r"`U` on 1 wire\(s\) must have shape \(2, 2\); got \(2,\)"),
])
def test_qubit_unitary_bad_matrix(matrix, wires, match):
  with pytest.raises(ValueError, match=match):
    _run(lambda: qhess.QubitUnitary(matrix, wires=wires))


# ----------------------------------------------------------------------------- observables


@pytest.mark.parametrize("matrix, wires, match", [
    (np.array([[1, 1j], [1j, 0]]), 0,
     r"`matrix` of Hermitian must equal its conjugate transpose; got a matrix with max"),
    (np.array([[0, 1], [0, 0]]), 1, r"must equal its conjugate transpose"),
    (np.eye(2), (0, 1),
     r"`matrix` of Hermitian on 2 wire\(s\) must have shape \(4, 4\); got \(2, 2\)"),
    (np.eye(4), 0, r"`matrix` of Hermitian on 1 wire\(s\) must have shape \(2, 2\); got \(4, 4\)"),
])
def test_hermitian_bad_matrix(matrix, wires, match):
  with pytest.raises(ValueError, match=match):
    qhess.Hermitian(matrix, wires=wires)


@pytest.mark.parametrize("make", [
    lambda: qhess.X(0) @ qhess.Z(0),
    lambda: (qhess.X(0) @ qhess.Y(1)) @ qhess.Z(1),
    lambda: (qhess.X(0) + qhess.Y(2)) @ qhess.Z(2),
    lambda: qhess.Hermitian(np.eye(4), wires=(0, 1)) @ qhess.Z(1),
])
def test_observable_product_on_overlapping_wires(make):
  with pytest.raises(ValueError, match=r"`@` builds tensor products of observables on "
                                       r"distinct wires; got factors sharing wires"):
    make()


@pytest.mark.parametrize("make", [
    lambda: qhess.Z(0) * np.complex128(1 + 1j),
    lambda: np.complex64(2j) * qhess.Z(0),
    lambda: jnp.array(0.5j) * qhess.X(1),
    lambda: 1j * qhess.Z(0),  # Python complex: the same error as NumPy's
    lambda: qhess.Z(0) * (1 + 2j),
])
def test_observable_complex_coefficient(make):
  with pytest.raises(ValueError, match=r"Observable coefficients must be real; got"):
    make()


def test_observable_complex_coefficient_with_zero_imaginary_part():
  assert repr((2 + 0j) * qhess.Z(0)) == repr(np.complex128(2) * qhess.Z(0)) == repr(
      2.0 * qhess.Z(0))


@pytest.mark.parametrize("make", [
    lambda: qhess.Z(0) * "2",
    lambda: qhess.Z(0) * np.ones(2),
    lambda: qhess.Z(0) * qhess.X(1),
])
def test_observable_non_real_scalar(make):
  with pytest.raises(TypeError, match=r"Observables can only be scaled by real numbers; got"):
    make()


@pytest.mark.parametrize("make", [
    lambda c: c * qhess.Z(0),
    lambda c: qhess.Z(0) * c,
    lambda c: qhess.X(0) @ qhess.Y(1) * c,
])
def test_observable_traced_coefficient(make):
  # Traced coefficients are data (were refused before): the value under jit is the
  # eager one, and the derivative is the expectation of the observable without it.
  @qhess.circuit(wires=2)
  def f(c):
    qhess.RY(0.3, wires=0)
    qhess.RX(0.4, wires=1)
    return qhess.expval(make(c))

  assert abs(float(jax.jit(f)(0.5)) - float(f(0.5))) < 1e-12
  assert abs(float(jax.grad(f)(0.5)) - float(f(1.0))) < 1e-12

  @qhess.circuit(wires=1)
  def vector(c):
    return qhess.expval(c * qhess.Z(0))

  with pytest.raises(TypeError, match=r"traced observable coefficient must be a real scalar"):
    jax.jit(vector)(jnp.ones(2))


@pytest.mark.parametrize("make, error, match", [
    (lambda: qhess.X((0, 1)), ValueError, r"`wires` of X must be a single wire; got \(0, 1\)"),
    (lambda: qhess.Z(0.5), TypeError, r"`wires` of Z must be an int or a sequence of ints"),
    (lambda: qhess.Hermitian(np.eye(4), wires=(1, 1)), ValueError,
     r"`wires` of Hermitian must be distinct"),
])
def test_observable_bad_wires(make, error, match):
  with pytest.raises(error, match=match):
    make()


@pytest.mark.parametrize("fn", [qhess.expval, qhess.var])
@pytest.mark.parametrize("obs", [0.5, "Z0", np.eye(2)], ids=["float", "str", "array"])
def test_measurement_of_non_observable(fn, obs):
  with pytest.raises(TypeError, match=rf"`{fn.__name__}` takes an Observable \(e\.g\. "
                                      r"qhess\.Z\(0\)\); got"):
    fn(obs)


@pytest.mark.parametrize("measurement, match", [
    (lambda: qhess.expval(qhess.Z(2)),
     r"observable Z: wire 2 is outside the circuit's wires 0\.\.1"),
    (lambda: qhess.var(qhess.X(0) @ qhess.Y(5)), r"observable Y: wire 5 is outside"),
    (lambda: qhess.expval(qhess.Hermitian(np.eye(4), wires=(1, 2))),
     r"Hermitian: wire 2 is outside"),
    (lambda: qhess.probs(wires=2), r"probs: wire 2 is outside the circuit's wires 0\.\.1"),
    (lambda: qhess.probs(wires=(1, -1)), r"probs: wire -1 is outside"),
])
def test_measurement_wire_outside_circuit(measurement, match):
  @qhess.circuit(wires=2)
  def f():
    qhess.Hadamard(wires=0)
    return measurement()

  with pytest.raises(ValueError, match=match):
    f()


@pytest.mark.parametrize("wires, error, match", [
    ((0, 0), ValueError, r"`wires` of probs must be distinct; got \(0, 0\)"),
    ((), ValueError, r"`wires` of probs must not be empty"),
    ("0", TypeError, r"`wires` of probs must be an int or a sequence of ints; got '0'"),
])
def test_probs_bad_wires(wires, error, match):
  with pytest.raises(error, match=match):
    qhess.probs(wires=wires)


# -------------------------------------------------------------------------------- circuits


@pytest.mark.parametrize("result, match", [
    (lambda: 0.5, r"must return a measurement .* or a tuple of them; got 0\.5 \(float\)"),
    (lambda: qhess.Z(0), r"got Z\(0\) \(Observable\)"),
    (lambda: [qhess.expval(qhess.Z(0)), 1.0], r"got 1\.0 \(float\)"),
    (lambda: (qhess.probs(), qhess.X(1)), r"got X\(1\) \(Observable\)"),
    (lambda: None, r"got None \(NoneType\)"),
    (lambda: (), r"A circuit function must return at least one measurement; got \(\)"),
    (lambda: [], r"must return at least one measurement"),
])
def test_circuit_returns_non_measurement(result, match):
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x, wires=0)
    return result()

  with pytest.raises(TypeError, match=match):
    f(0.1)
  with pytest.raises(TypeError, match=match):
    f.tape(0.1)


@pytest.mark.parametrize("wires, error, match", [
    (0, ValueError, r"`wires` of qhess\.circuit must be a positive int; got 0"),
    (-1, ValueError, r"`wires` of qhess\.circuit must be a positive int; got -1"),
    (2.5, TypeError, r"`wires` of qhess\.circuit must be a positive int; got 2\.5"),
    ("a", TypeError, r"`wires` of qhess\.circuit must be a positive int; got 'a'"),
    (True, TypeError, r"must be a positive int; got True"),
    (None, TypeError, r"must be a positive int; got None"),
])
def test_circuit_bad_wires(wires, error, match):
  with pytest.raises(error, match=match):
    qhess.circuit(wires=wires)
  with pytest.raises(error, match=match):
    qhess.circuit(lambda: qhess.probs(), wires=wires)


def test_circuit_wires_is_keyword_only():
  with pytest.raises(TypeError, match=r"positional argument"):
    qhess.circuit(lambda: qhess.probs(), 2)


# ---------------------------------------------------------------------------------- tapes


def _tape():
  @qhess.circuit(wires=1)
  def f(x):
    qhess.Rot(x[0], x[1], x[2], wires=0)
    return qhess.expval(qhess.Z(0))

  return f.tape(jnp.zeros(3))


@pytest.mark.parametrize("params, match", [
    (jnp.zeros(2), r"`params` must have shape \(3,\); got \(2,\)"),
    (jnp.zeros((1, 3)), r"`params` must have shape \(3,\); got \(1, 3\)"),
    (0.5, r"`params` must have shape \(3,\); got \(\)"),
])
def test_tape_with_params_bad_shape(params, match):
  with pytest.raises(ValueError, match=match):
    _tape().with_params(params)


@pytest.mark.parametrize("entry, name", [(0.5, "float"), ("tape", "str"), (None, "NoneType")])
def test_execute_non_tape(entry, name):
  with pytest.raises(TypeError, match=rf"`tapes\[1\]` must be a qhess\.Tape; got {name}"):
    qhess.execute([_tape(), entry])


# --------------------------------------------------------------------------------- memory


@pytest.mark.parametrize("n_wires, state, total", [
    (1000, "1.7e302 bytes", "5.1e302 bytes"),  # 2**1004 bytes: was 300 digits of GiB
    (1025, "5.8e309 bytes", "1.7e310 bytes"),  # beyond float64: was an OverflowError
    (5000, "2.3e1506 bytes", "6.8e1506 bytes"),
])
def test_too_many_wires_for_memory_readable_sizes(n_wires, state, total):
  # 2**n complex128 amplitudes are 2**(n + 4) bytes, with 3 working copies:
  # 2**1004 = 1.71e302, 2**1029 = 5.79e309, 2**5004 = 2.27e1506 (log10: n·0.30103).
  @qhess.circuit(wires=n_wires)
  def f(x):
    qhess.RX(x[0], wires=0)
    return qhess.expval(qhess.Z(0))

  x = jnp.array([0.1])
  match = (rf"{n_wires} wires needs {state} per state \(complex128\), about {total} for one "
           r"state with its working copies; only .* of memory is available")
  for call in (lambda: f(x), lambda: qhess.hessian(f)(x)):
    with pytest.raises(ValueError, match=match):
      call()


def test_memory_sizes_in_binary_units_below_a_pebibyte():
  assert [_memory._size(n) for n in (512, 3 * 2**10, 16 * 2**20, 2**44, 2**50 - 1)] == [
      "512 bytes", "3 KiB", "16 MiB", "16384 GiB", "1048576 GiB"]
  assert _memory._size(2**50) == "1.1e15 bytes"
