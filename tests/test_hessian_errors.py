"""Bad input to `qhess.hessian`, `value_grad_and_hessian` and `hessian_tapes`.

Every check runs in Python before (or while) tracing, so no test here compiles a kernel
except where a valid call is needed for contrast. Messages name the argument, what was
expected and what was received (STYLE.md, section 4).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import qhess


@qhess.circuit(wires=2)
def EXAMPLE(x):
  """RX (one frequency) and CRY (two frequencies): 2 gate arguments."""
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


@qhess.circuit(wires=2)
def TWO_OUTPUTS(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0)), qhess.probs(wires=(0, 1))


@qhess.circuit(wires=1)
def WITH_VAR(x):
  qhess.RX(x[0], wires=0)
  return qhess.var(qhess.Y(0))


X = jnp.array([0.5, 0.2])


def _hessian(**options):
  return lambda: qhess.hessian(EXAMPLE, **options)(X)


def _value_grad_and_hessian(**options):
  return lambda: qhess.value_grad_and_hessian(EXAMPLE, **options)(X)


def _gate_level(**options):
  return lambda: qhess.hessian(EXAMPLE, hybrid=False, **options)(X)


def _tapes(**options):
  return lambda: qhess.hessian_tapes(EXAMPLE.tape(X), **options)


ENTRY_POINTS = [_hessian, _value_grad_and_hessian, _gate_level, _tapes]
ENTRY_IDS = ["hessian", "value_grad_and_hessian", "hybrid=False", "hessian_tapes"]


# ------------------------------------------------------------------------ custom shifts


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize("name", ["diagonal_shifts", "off_diagonal_shifts"])
@pytest.mark.parametrize("shifts,match", [
    ([(0.1,)], r"has 1 entries; the tape has 2 gate arguments"),
    ([(0.1,), (0.1, 0.2), (0.3,)], r"has 3 entries; the tape has 2 gate arguments"),
    ([], r"has 0 entries; the tape has 2 gate arguments"),
], ids=["too-few", "too-many", "empty"])
def test_shifts_wrong_count(entry, name, shifts, match):
  with pytest.raises(ValueError, match=rf"`{name}` {match}"):
    entry(**{name: shifts})()


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize("name", ["diagonal_shifts", "off_diagonal_shifts"])
@pytest.mark.parametrize("shifts,match", [
    # CRY has two frequencies: two shifts.
    ([(0.1,), (0.2,)], r"\[1\]: expected 2 shift\(s\).*got 1"),
    # RX has one frequency: one shift.
    ([(0.1, 0.2), (0.1, 0.2)], r"\[0\]: expected 1 shift\(s\).*got 2"),
    ([(0.1,), (0.1, 0.2, 0.3)], r"\[1\]: expected 2 shift\(s\).*got 3"),
], ids=["cry-one", "rx-two", "cry-three"])
def test_shifts_wrong_length(entry, name, shifts, match):
  with pytest.raises(ValueError, match=name + match):
    entry(**{name: shifts})()


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize("name", ["diagonal_shifts", "off_diagonal_shifts"])
@pytest.mark.parametrize("shifts,match", [
    ([(2 * np.pi,), (0.1, 0.2)],
     r"\[0\]: the shifts \(6.28.*\) make the coefficient system singular"),
    ([(np.pi,), (0.1, 0.2)], r"\[0\]: the shifts .* singular"),
    ([(0.3,), (0.5, 0.5)], r"\[1\]: the shifts \(0.5, 0.5\) .* singular"),
    ([(0.3,), (0.5, 4 * np.pi - 0.5)], r"\[1\]: the shifts .* singular"),
    ([(0.3,), (4 * np.pi, 0.5)], r"\[1\]: the shifts .* singular"),
    ([(0.0,), (0.1, 0.2)], r"\[0\]: shifts must be positive and finite; got \(0.0,\)"),
    ([(0.3,), (-0.1, 0.2)], r"\[1\]: shifts must be positive and finite"),
    ([(np.nan,), (0.1, 0.2)], r"\[0\]: shifts must be positive and finite"),
], ids=["rx-period", "rx-half-period", "cry-repeated", "cry-mirrored", "cry-period",
        "zero", "negative", "nan"])
def test_shifts_singular(entry, name, shifts, match):
  with pytest.raises(ValueError, match=name + match):
    entry(**{name: shifts})()


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize("shifts", [5, "ab", [("a",), (0.1, 0.2)]], ids=["int", "str", "strs"])
def test_shifts_wrong_type(entry, shifts):
  with pytest.raises(TypeError, match=r"`diagonal_shifts` must be a sequence of tuples of "
                     r"shifts, one per gate argument"):
    entry(diagonal_shifts=shifts)()


def test_valid_custom_shifts_accepted_as_arrays():
  # Contrast for the tests above: arrays and numpy scalars are fine.
  tapes, _ = qhess.hessian_tapes(EXAMPLE.tape(X), diagonal_shifts=[np.array([0.25]),
                                                                   np.array([0.1, 0.2])])
  assert len(tapes) > 1


# --------------------------------------------------------------------------- gate_argnum


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize("gate_argnum,error,match", [
    (np.array([[True, True], [False, True]]), ValueError,
     r"`gate_argnum` as a mask must be symmetric"),
    (np.array([[1, 0], [0, 1]]), TypeError,
     r"`gate_argnum` as a mask must be a boolean array; got dtype int"),
    (np.array([[1.0, 0.0], [0.0, 1.0]]), TypeError,
     r"`gate_argnum` as a mask must be a boolean array; got dtype float"),
    (np.ones((3, 3), bool), ValueError,
     r"`gate_argnum` as a mask must have shape \(2, 2\) for a tape with 2 gate arguments; "
     r"got \(3, 3\)"),
    (np.ones(2, bool), ValueError, r"must have shape \(2, 2\).*got \(2,\)"),
    (2, ValueError, r"`gate_argnum` 2 is out of range for a tape with 2 gate arguments"),
    (-3, ValueError, r"`gate_argnum` -3 is out of range"),
    ([0, 5], ValueError, r"`gate_argnum` 5 is out of range"),
    (0.5, TypeError, r"`gate_argnum` must be None, an int, a sequence of ints or a \(P, P\) "
     r"boolean mask; got 0.5"),
    ([0.0, 1.0], TypeError, r"`gate_argnum` must be None, an int"),
    ([[0], [1]], TypeError, r"`gate_argnum` as a mask must be a boolean array"),
], ids=["asymmetric", "int-mask", "float-mask", "wrong-shape", "1d-bool", "too-large",
        "too-negative", "sequence-too-large", "float", "float-sequence", "nested-ints"])
def test_gate_argnum_invalid(entry, gate_argnum, error, match):
  with pytest.raises(error, match=match):
    entry(gate_argnum=gate_argnum)()


# ------------------------------------------------------------------------------ argnums


@pytest.mark.parametrize("fn", [qhess.hessian, qhess.value_grad_and_hessian])
@pytest.mark.parametrize("argnums,match", [
    (1, r"`argnums` 1 is out of range for a call with 1 positional argument"),
    (-2, r"`argnums` -2 is out of range"),
    ((0, 3), r"`argnums` 3 is out of range"),
])
def test_argnums_out_of_range(fn, argnums, match):
  with pytest.raises(ValueError, match=match):
    fn(EXAMPLE, argnums)(X)


@pytest.mark.parametrize("fn", [qhess.hessian, qhess.value_grad_and_hessian])
@pytest.mark.parametrize("argnums", [True, 0.0, "0", (0, 1.0), None], ids=str)
def test_argnums_wrong_type(fn, argnums):
  with pytest.raises(TypeError, match=r"`argnums` must be an int or a tuple of ints"):
    fn(EXAMPLE, argnums)(X)


# ------------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("fn", [qhess.hessian, qhess.value_grad_and_hessian])
@pytest.mark.parametrize("x", [jnp.array([1, 2]), np.array([1, 0]),
                               jnp.array([0.5 + 0j, 0.2]), jnp.array([True, False])],
                         ids=["jnp-int", "np-int", "complex", "bool"])
def test_non_float_inputs(fn, x):
  with pytest.raises(TypeError, match=r"requires real floating-point inputs for the "
                     r"differentiated arguments \(argnums\); argument 0 has a leaf of dtype"):
    fn(EXAMPLE)(x)


def test_integer_leaf_in_a_pytree():
  @qhess.circuit(wires=1)
  def tree(p):
    qhess.RX(p["a"], wires=0)
    qhess.RY(p["b"], wires=0)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(TypeError, match=r"argument 0 has a leaf of dtype int"):
    qhess.hessian(tree)({"a": jnp.array(0.1), "b": jnp.array(1)})


def test_integer_input_not_differentiated_is_fine():
  @qhess.circuit(wires=1)
  def two(x, n):
    qhess.RX(x[0] * n, wires=0)
    return qhess.expval(qhess.Z(0))

  got = qhess.hessian(two, argnums=0)(jnp.array([0.3]), 2)
  np.testing.assert_allclose(got, [[-4 * np.cos(0.6)]], rtol=0, atol=1e-10)
  with pytest.raises(TypeError, match=r"argument 1 has a leaf of dtype int"):
    qhess.hessian(two, argnums=1)(jnp.array([0.3]), 2)


@pytest.mark.parametrize("fn", [qhess.hessian, qhess.value_grad_and_hessian])
@pytest.mark.parametrize("circuit", [lambda x: x, None, "circuit"], ids=["function", "None", "str"])
def test_not_a_circuit(fn, circuit):
  with pytest.raises(TypeError, match=r"takes a circuit made with @qhess.circuit\(wires=...\); "
                     r"got"):
    fn(circuit)


@pytest.mark.parametrize("fn", [qhess.hessian, qhess.value_grad_and_hessian])
@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "5"], ids=str)
def test_batch_size_invalid(fn, batch_size):
  with pytest.raises(ValueError, match=r"`batch_size` must be a positive int or None; got"):
    fn(EXAMPLE, batch_size=batch_size)


# ------------------------------------------------------------------------ hessian_tapes


@pytest.mark.parametrize("tape", [X, None, "tape"], ids=["array", "None", "str"])
def test_hessian_tapes_not_a_tape(tape):
  with pytest.raises(TypeError, match=r"`tape` must be a qhess.Tape \(e.g. circuit.tape\(x\)\) "
                     r"or a qhess.Circuit; got"):
    qhess.hessian_tapes(tape)


def test_hessian_tapes_of_a_circuit_is_a_function_of_its_arguments():
  tapes, post = qhess.hessian_tapes(EXAMPLE)(X)
  expected_tapes, expected_post = qhess.hessian_tapes(EXAMPLE.tape(X))
  assert len(tapes) == len(expected_tapes) == 13
  np.testing.assert_allclose(post(qhess.execute(tapes)),
                             expected_post(qhess.execute(expected_tapes)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("f0,match", [
    (jnp.zeros(2), r"`f0` output 0 has shape \(2,\); the circuit's output has shape \(\)"),
    (jnp.zeros((1,)), r"`f0` output 0 has shape \(1,\)"),
    ((jnp.zeros(()), jnp.zeros(())),
     r"`f0` output 0 has shape \(2,\); the circuit's output has shape \(\)"),
], ids=["vector", "length-one", "tuple"])
def test_hessian_tapes_f0_wrong_shape(f0, match):
  with pytest.raises(ValueError, match=match):
    qhess.hessian_tapes(EXAMPLE.tape(X), f0=f0)


@pytest.mark.parametrize("f0,match", [
    (jnp.zeros(()), r"`f0` must match the circuit's outputs \(2 measurement\(s\) of shapes "
     r"\(\(\), \(4,\)\)\)"),
    ((jnp.zeros(()),), r"`f0` must match the circuit's outputs"),
    ((jnp.zeros(()), jnp.zeros(4), jnp.zeros(())), r"`f0` must match"),
    ((jnp.zeros(()), jnp.zeros(2)), r"`f0` output 1 has shape \(2,\); the circuit's output "
     r"has shape \(4,\)"),
], ids=["not-a-tuple", "too-few", "too-many", "probs-shape"])
def test_hessian_tapes_f0_wrong_structure(f0, match):
  with pytest.raises(ValueError, match=match):
    qhess.hessian_tapes(TWO_OUTPUTS.tape(X), f0=f0)


def test_hessian_tapes_f0_with_var():
  tape = WITH_VAR.tape(jnp.array([0.3]))
  with pytest.raises(ValueError, match=r"`f0` cannot be used with var measurements"):
    qhess.hessian_tapes(tape, f0=WITH_VAR(jnp.array([0.3])))


def test_hessian_tapes_post_wrong_number_of_results():
  tapes, post = qhess.hessian_tapes(EXAMPLE.tape(X))
  with pytest.raises(ValueError, match=r"`post` expects 13 results, one per tape; got 12"):
    post([jnp.zeros(())] * 12)
  with pytest.raises(ValueError, match=r"`post` expects 13 results, one per tape; got 0"):
    post([])
