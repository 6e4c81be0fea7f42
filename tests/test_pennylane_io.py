"""`qhess.from_pennylane` and `qhess.to_pennylane`, and the PennyLane-user papercuts.

Runs only when PennyLane is installed. The oracles: `jax.hessian` of the dense twin
(`_dense.Dense`) of the same circuit written natively, PennyLane's own ``default.qubit`` (and
``lightning.qubit``) on NumPy values, and the dense reference of ``_reference.py``. One
random circuit holds every gate of the catalogue (3 wires) and every measurement kind,
so that few distinct circuits are compiled.
"""

from __future__ import annotations

import functools
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _dense
import _reference as ref
import qhess

qml = pytest.importorskip("pennylane")

ATOL = 1e-10
N = 3  # wires of the all-gates circuit


# ------------------------------------------------------------------------------ helpers


def pl_observable(obs):
  """A `_reference` observable tree built with PennyLane's classes."""
  kind = obs[0]
  if kind == "P":
    return {"I": qml.I, "X": qml.X, "Y": qml.Y, "Z": qml.Z}[obs[1]](obs[2])
  if kind == "H":
    return qml.Hermitian(obs[1], wires=list(obs[2]))
  if kind == "sum":
    return qml.Hamiltonian([c for c, _ in obs[1]], [pl_observable(o) for _, o in obs[1]])
  if kind == "prod":
    return qml.prod(*(pl_observable(o) for o in obs[1]))
  raise ValueError(kind)


def pl_apply(ops, theta) -> None:
  """PennyLane's gates of ``ops`` with real arguments from ``theta``, in order."""
  k = 0
  for name, wires, args in ops:
    r = ref.N_REAL[name]
    getattr(qml, name)(*(theta[k + i] for i in range(r)), *args[r:], wires=list(wires))
    k += r


def classical(x):
  """Non-linear processing of the inputs into gate arguments (JAX code)."""
  return jnp.sin(x) + 0.5 * x * jnp.roll(x, 1)


@functools.cache
def all_gates_case():
  """Every gate on 3 wires, measured five ways (a tuple of outputs): the PennyLane
  function, and the native circuit with its dense autodiff oracle (`_dense.make_case`)."""
  rng = np.random.default_rng(1010)
  ops = ref.random_circuit(rng, N, n_extra=0)
  obs = {kind: ref.random_observable(rng, N, kind) for kind in ref.OBSERVABLE_KINDS}
  specs = [("expval", obs["word"]), ("var", obs["sum"]), ("expval", obs["hermitian"]),
           ("expval", obs["product"]), ("probs", (2, 0))]
  x = jnp.asarray(rng.uniform(-1, 1, len(ref.flat_params(ops))))

  def pl_ops(theta):  # PennyLane's circuit at given gate arguments
    pl_apply(ops, theta)
    return tuple(qml.probs(wires=list(arg)) if kind == "probs" else
                 getattr(qml, kind)(pl_observable(arg)) for kind, arg in specs)

  def pl_fn(x):
    return pl_ops(classical(x))

  case = _dense.make_case(ops, N, specs, processing=classical)
  return ops, x, pl_fn, case, pl_ops


def tape_oracle(circuit, x, specs):
  """A dense autodiff twin of a recorded circuit: the recorded gates, simulated by
  `_dense.Dense` at the gate arguments the recording computes from the inputs."""
  tape = circuit.tape(x)
  ops = []
  for op in tape.operations:
    extra = ((op.hyper,) if op.name == "PauliRot" else
             (np.asarray(tape.consts[op.hyper]),) if op.name == "QubitUnitary" else ())
    ops.append((op.name, op.wires, (0.0,) * len(op.param_index) + extra))
  dense = _dense.Dense(ops, tape.n_wires, specs)
  return lambda v: dense(circuit.tape(v).params)


def assert_close(got, expected, atol=ATOL):
  got, expected = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(e, dtype=float),
                               rtol=0, atol=atol)


def assert_same_tape(got: qhess.Tape, expected: qhess.Tape):
  assert got.structure == expected.structure
  assert_close(got.params, expected.params, atol=1e-12)
  assert_close([jnp.abs(c) for c in got.consts], [jnp.abs(c) for c in expected.consts],
               atol=1e-12)
  for g, e in zip(got.consts, expected.consts):
    np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------- in


def test_from_pennylane_all_gates_hybrid_hessian():
  """Every gate and measurement kind: the same tape as native, the same values as
  PennyLane's simulator, and the Hessian through non-linear processing equal to
  jax.hessian of the dense twin."""
  ops, x, pl_fn, case, pl_ops = all_gates_case()
  assert {op[0] for op in ops} == set(ref.GATE_NAMES)
  circuit = qhess.from_pennylane(pl_fn, wires=N)
  assert_same_tape(circuit.tape(x), case.circuit.tape(x))
  # The recorded classical processing is the native one (its Jacobian, exactly).
  assert_close(jax.jacobian(lambda v: circuit.tape(v).params)(x),
               jax.jacobian(lambda v: case.circuit.tape(v).params)(x), atol=0)
  # One batch of circuits: value and Hessian ("independent": compiles faster).
  value, _, hess = qhess.value_grad_and_hessian(circuit, evaluation="independent")(x)
  script = qml.tape.make_qscript(pl_ops)(np.asarray(classical(x)))
  assert_close(value, qml.execute([script], qml.device("default.qubit"))[0], atol=1e-12)
  assert_close(hess, _dense.jit_hessian(case.oracle)(x))


def test_from_pennylane_qnode_wire_labels_decompositions_jit_vmap():
  """Device wire order for arbitrary labels, probs in PennyLane's order, operations
  outside the catalogue through PennyLane's decompositions; the hybrid Hessian under
  jit and vmap."""
  dev = qml.device("default.qubit", wires=["c", 7, "a"])

  def body(theta):
    qml.Hadamard("a")
    qml.RX(theta[0], wires=7)
    qml.QFT(wires=[7, "c", "a"])
    qml.adjoint(qml.S("c"))
    qml.CSWAP(wires=["a", "c", 7])
    qml.IsingXX(theta[1], wires=["a", "c"])
    qml.U2(theta[2], theta[0], wires="a")
    qml.GlobalPhase(0.3)
    qml.IsingXY(theta[1], wires=[7, "c"])
    qml.CRY(theta[2], wires=[7, "a"])
    return (qml.expval(qml.Z("c") @ qml.Y(7) + 0.5 * qml.X("a")), qml.probs(wires=["a", 7]),
            qml.var(qml.Hadamard("c")))

  @qml.qnode(dev)
  def qnode(x):
    return body(jnp.stack([x[0] * x[1], jnp.cos(x[1]), x[0]]))

  circuit = qhess.from_pennylane(qnode)
  x = jnp.array([0.4, -1.1])
  tape = circuit.tape(x)
  assert circuit.wire_labels == tape.wire_labels == ("c", 7, "a")
  assert [(op.name, op.wires) for op in tape.operations[:3]] == [
      ("Hadamard", (2,)), ("RX", (1,)), ("Hadamard", (1,))]  # QFT's first gate
  assert {op.name for op in tape.operations} <= set(ref.GATE_NAMES) | {"IsingXY"}
  assert tape.measurements[1].wires == (2, 1)
  oracle = tape_oracle(circuit, x, [
      ("expval", ("sum", ((1.0, ("prod", (("P", "Z", 0), ("P", "Y", 1)))),
                          (0.5, ("P", "X", 2))))), ("probs", (2, 1)),
      ("var", ("H", np.array([[1, 1], [1, -1]]) / np.sqrt(2), (0,)))])
  # jit and vmap in one compilation: values and Hessians at three points.
  xs = jnp.array([[0.4, -1.1], [0.2, 0.3], [-0.5, 0.9]])
  vgh = qhess.value_grad_and_hessian(circuit, evaluation="independent")
  values, _, hessians = jax.jit(jax.vmap(vgh))(xs)
  for i, (a, b) in enumerate(np.asarray(xs)):
    script = qml.tape.make_qscript(body)(np.array([a * b, np.cos(b), a]))
    expected = qml.execute([script], dev)[0]  # PennyLane's simulator, NumPy values
    assert_close([v[i] for v in values], expected, atol=1e-12)
  assert_close(hessians, jax.vmap(_dense.jit_hessian(oracle))(xs))


def test_from_pennylane_quantum_script_round_trip():
  """to_pennylane then from_pennylane gives back the same tape; the QuantumScript's
  circuit is a function of its scalar parameters."""
  _, x, _, case, _ = all_gates_case()
  tape = case.circuit.tape(x)
  circuit = qhess.from_pennylane(qhess.to_pennylane(tape))
  assert_same_tape(circuit.tape(), tape)  # same structure, gate arguments and matrices
  # Its argument: the script's scalar parameters (here the gate arguments) in order.
  assert_same_tape(circuit.tape(0.5 * tape.params), tape.with_params(0.5 * tape.params))
  # Only the gate arguments are trainable (not QubitUnitary or Hermitian matrices).
  script = qhess.to_pennylane(tape)
  assert_close(np.asarray(script.get_parameters(trainable_only=True)), tape.params, atol=0)
  # Labels that are not non-negative ints: in order of appearance.
  named = qml.tape.QuantumScript([qml.RX(0.1, "b"), qml.CNOT(["b", "a"])],
                                 [qml.expval(qml.Z("a"))])
  assert qhess.from_pennylane(named).wire_labels == ("b", "a")

  labelled = qhess.from_pennylane(lambda t: (qml.RY(t, "b"), qml.CNOT(["b", 0]),
                                             qml.expval(qml.Z(0)))[2], wires=[0, "b"])
  tape = labelled.tape(0.3)
  again = qhess.from_pennylane(qhess.to_pennylane(tape), wires=tape.wire_labels).tape()
  assert_same_tape(again, tape)
  assert again.wire_labels == (0, "b")


# ------------------------------------------------------------------------------- out


def test_to_pennylane_all_gates_values():
  """Every gate and measurement kind executed by PennyLane: the same values as the
  PennyLane circuit the test writes directly."""
  _, x, _, case, pl_ops = all_gates_case()
  script = qhess.to_pennylane(case.circuit.tape(x))
  direct = qml.tape.make_qscript(pl_ops)(np.asarray(classical(x)))
  dev = qml.device("default.qubit")
  assert_close(qml.execute([script], dev)[0], qml.execute([direct], dev)[0], atol=1e-12)


@functools.cache
def small_case():
  """Two wires, several measurements: var of a Pauli sum and of a Hermitian product,
  probs, and an expval; gate arguments = inputs."""
  herm = ref.random_hermitian(np.random.default_rng(3), 2)
  ops = [("RX", (0,), (0.0,)), ("CRY", (0, 1), (0.0,)), ("Rot", (1,), (0.0,) * 3)]
  specs = [("var", ("sum", ((0.5, ("prod", (("P", "Z", 0), ("P", "X", 1)))),
                            (-1.0, ("P", "Y", 1))))),
           ("var", ("prod", (("H", herm, (1,)), ("P", "Z", 0)))), ("probs", (1, 0)),
           ("expval", ("P", "Z", 1))]
  return _dense.make_case(ops, 2, specs), jnp.array([0.5, 0.2, -0.3, 1.1, 0.8])


@functools.cache
def single_case():
  """The 13-circuit example: one Pauli-word expectation, gate arguments = inputs."""
  ops = [("RX", (0,), (0.0,)), ("CRY", (0, 1), (0.0,))]
  specs = [("expval", ("prod", (("P", "Z", 0), ("P", "X", 1))))]
  case, x = _dense.make_case(ops, 2, specs), jnp.array([0.5, 0.2])
  return case, x, _dense.jit_hessian(case.oracle)(x)


def test_to_pennylane_hessian_tapes_on_devices():
  """post(qml.execute(to_pennylane(tapes))) is the Hessian on default.qubit (several
  measurements, raw <O²> of Pauli sums and Hermitian products) and on lightning.qubit
  (bare float results)."""
  case, x = small_case()
  tapes, post = qhess.hessian_tapes(case.circuit.tape(x))
  scripts = [qhess.to_pennylane(t) for t in tapes]
  assert_close(post(qml.execute(scripts, qml.device("default.qubit"))),
               _dense.jit_hessian(case.oracle)(x))

  case, x, expected = single_case()
  tapes, post = qhess.hessian_tapes(case.circuit.tape(x))
  assert len(tapes) == 13
  results = qml.execute([qhess.to_pennylane(t) for t in tapes],
                        qml.device("lightning.qubit", wires=2))
  assert isinstance(results[0], float)
  assert_close(post(list(results)), expected)


def _shot_stderr(post, exact_results, shots: int):
  """First-order standard errors of post's Hessian: Σ_t (∂H/∂y_t)² Var(y_t), with
  Var(y_t) = (1 - y_t²)/shots for the ±1 outcomes of a Pauli word."""
  y = np.asarray(exact_results, dtype=float)
  # post is linear in the results of expectation values: its Jacobian column by column.
  zero = np.asarray(post(list(np.zeros_like(y))))
  jac = np.stack([np.asarray(post(list(e))) - zero for e in np.eye(len(y))], -1)  # (P, P, T)
  return np.sqrt(np.einsum("ijt,t->ij", jac**2, (1 - y**2) / shots))


def test_to_pennylane_shots_within_standard_errors():
  case, x, reference = single_case()
  tapes, post = qhess.hessian_tapes(case.circuit.tape(x))
  exact = qml.execute([qhess.to_pennylane(t) for t in tapes], qml.device("default.qubit"))
  expected = post(list(exact))
  assert_close(expected, reference)
  stderr = _shot_stderr(post, exact, 20000)
  dev = qml.device("default.qubit", seed=np.random.default_rng(5))
  sampled = post(qml.execute([qhess.to_pennylane(t, shots=20000) for t in tapes], dev))
  assert np.all(np.abs(sampled - expected) <= 5 * stderr + 1e-12)
  assert np.max(np.abs(sampled - expected)) > 0  # really sampled
  # A shot vector: one Hessian per entry, each with 20000 shots.
  vector = post(qml.execute([qhess.to_pennylane(t, shots=(20000, 20000)) for t in tapes],
                            dev))
  assert isinstance(vector, tuple) and len(vector) == 2
  for h in vector:
    assert np.all(np.abs(h - expected) <= 5 * stderr + 1e-12)
  assert not np.allclose(vector[0], vector[1])


# ---------------------------------------------------------------------------- errors


class _NoDecomposition(qml.operation.Operation):
  num_wires = 1
  num_params = 0


@pytest.mark.parametrize("body, error, match", [
    (lambda x: (_NoDecomposition(wires=0), qml.expval(qml.Z(0)))[1], TypeError,
     r"operation _NoDecomposition .* not in qhess's gate catalogue"),
    (lambda x: (qml.RX(x, 0), qml.state())[1], TypeError,
     r"measurement state\(.*\) \(StateMP\) is not supported"),
    (lambda x: (qml.RX(x, 0), qml.sample(wires=0))[1], TypeError, r"SampleMP\) is not supported"),
    (lambda x: (qml.RX(x, 0), qml.probs(op=qml.X(0)))[1], TypeError, r"ProbabilityMP"),
    (lambda x: (qml.RX(x, 0), qml.measure(0), qml.expval(qml.Z(1)))[2], TypeError,
     r"mid-circuit measurements"),
    (lambda x: (qml.RX(x, 0), qml.expval(qml.measure(1)))[1], TypeError,
     r"mid-circuit measurement"),
    (lambda x: (qml.RX(x, "q"), qml.expval(qml.Z(0)))[1], ValueError,
     r"wire 'q' of RX.* not among the circuit's wires \(0, 1\)"),
    (lambda x: (qml.RX(np.array([0.1, 0.2]), 0), qml.expval(qml.Z(0)))[1], ValueError,
     r"broadcast .*jax.vmap"),
    (lambda x: qml.RX(x, 0), TypeError, r"must return measurements"),
], ids=["undecomposable", "state", "sample", "probs_of_op", "mid_circuit", "measure_value",
        "unknown_wire", "broadcast", "no_measurement"])
def test_from_pennylane_bad_function(body, error, match):
  circuit = qhess.from_pennylane(body, wires=2)
  with pytest.raises(error, match=match):
    jax.jit(circuit)(0.3)


def test_from_pennylane_autograd_numpy_is_not_traceable():
  from pennylane import numpy as pnp

  def body(x):
    qml.RX(pnp.sin(x[0]), wires=0)
    return qml.expval(qml.Z(0))

  with pytest.raises(TypeError, match=r"`body` converted a traced JAX value to NumPy.*jnp"):
    qhess.hessian(qhess.from_pennylane(body, wires=1))(jnp.array([0.3]))


@pytest.mark.parametrize("arg, wires, error, match", [
    (lambda: None, None, ValueError, r"needs `wires` for a quantum function"),
    (3.0, 1, TypeError, r"must be a qml.QNode, a quantum function or a qml.tape"),
    (lambda: None, "ab", TypeError, r"`wires` of from_pennylane must be an int or a seq"),
    (lambda: None, [0, 0], ValueError, r"must be distinct; got \(0, 0\)"),
    (lambda: None, [], ValueError, r"must not be empty"),
    (lambda: None, 0, ValueError, r"must be positive; got 0"),
    (qml.tape.QuantumScript([], [qml.probs()]), None, ValueError,
     r"needs `wires` for a QuantumScript without wires"),
], ids=["no_wires", "not_callable", "str_wires", "repeated", "empty", "zero", "script"])
def test_from_pennylane_bad_arguments(arg, wires, error, match):
  with pytest.raises(error, match=match):
    qhess.from_pennylane(arg, wires=wires)


def test_from_pennylane_qnode_without_device_wires():
  qnode = qml.QNode(lambda: qml.expval(qml.Z(0)), qml.device("default.qubit"))
  with pytest.raises(ValueError, match=r"a QNode on a device without wires"):
    qhess.from_pennylane(qnode)
  assert float(qhess.from_pennylane(qnode, wires=1)()) == 1.0


def test_script_params_shape_checked():
  script = qml.tape.QuantumScript([qml.RX(0.1, 0)], [qml.expval(qml.Z(0))])
  with pytest.raises(ValueError, match=r"`params` of this QuantumScript's circuit must have "
                                       r"shape \(1,\).*got \(2,\)"):
    qhess.from_pennylane(script)(jnp.zeros(2))


def test_to_pennylane_rejects_non_tapes():
  with pytest.raises(TypeError, match=r"`tape` of to_pennylane must be a qhess.Tape; got str"):
    qhess.to_pennylane("tape")


def test_pennylane_is_optional():
  """`import qhess` does not import PennyLane, and without it the functions say which
  extra to install."""
  code = """
import sys
import qhess
assert "pennylane" not in sys.modules, "import qhess imported pennylane"
sys.modules["pennylane"] = None  # as if not installed
for fn, arg in ((qhess.from_pennylane, print), (qhess.to_pennylane, None)):
  try:
    fn(arg)
  except ImportError as err:
    assert 'pip install "qhess[pennylane]"' in str(err) and fn.__name__ in str(err), err
  else:
    raise AssertionError("no ImportError")
"""
  root = pathlib.Path(__file__).resolve().parent.parent
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


# ------------------------------------------------------------------------ papercuts


def test_observable_sum_and_matrix():
  rng = np.random.default_rng(7)
  obs = [ref.random_observable(rng, N, kind) for kind in ref.OBSERVABLE_KINDS]
  terms = [ref.qhess_observable(o) for o in obs]
  total = sum(terms)
  assert (0 + terms[0]) is terms[0] and (terms[0] + 0) is terms[0]
  expected = sum(ref.observable_matrix(o, N) for o in obs)
  np.testing.assert_allclose(total.matrix(wire_order=range(N)), expected, rtol=0, atol=1e-12)
  # Another wire order: the same operator with its tensor factors permuted.
  perm = [2, 0, 1]
  p = np.transpose(expected.reshape((2,) * 2 * N), perm + [N + i for i in perm])
  np.testing.assert_allclose(total.matrix(wire_order=perm), p.reshape(2**N, 2**N), rtol=0,
                             atol=1e-12)
  np.testing.assert_allclose(qhess.Z(1).matrix(), np.diag([1, -1]), rtol=0, atol=0)
  with pytest.raises(ValueError, match=r"`wire_order` must contain every wire of the "
                                       r"observable \(0, 1, 2\); got \(0, 1\), missing \(2,\)"):
    total.matrix(wire_order=[0, 1])
  with pytest.raises(TypeError, match=r"unsupported operand"):
    1 + qhess.Z(0)


def test_pauli_gates_as_observables():
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x, wires=0)
    qhess.PauliX(1)  # a gate
    return qhess.expval(qhess.PauliZ(0) @ qhess.PauliZ(1)), qhess.var(qhess.PauliY(wires=0))

  tape = f.tape(0.5)
  assert [op.name for op in tape.operations] == ["RX", "PauliX"]
  assert_close(f(0.5), (-np.cos(0.5), np.cos(0.5)**2), atol=1e-12)
  obs = qhess.PauliZ(0) @ qhess.PauliX(1)  # outside a circuit: just an observable
  np.testing.assert_allclose(obs.matrix(), np.kron(np.diag([1, -1]), [[0, 1], [1, 0]]))
  with pytest.raises(ValueError, match=r"PauliZ acts on 1 wire\(s\); got wires=\(0, 1\)"):
    qhess.PauliZ(wires=(0, 1))
  with pytest.raises(TypeError, match=r"PauliZ takes 0 gate argument"):
    qhess.PauliZ(0.3, wires=0)


def test_post_accepts_bare_results_and_rejects_mixed_shot_vectors():
  case, x, _ = single_case()
  tapes, post = qhess.hessian_tapes(case.circuit.tape(x))
  exact = [out[0] for out in qhess.execute(tapes)]
  expected = post(qhess.execute(tapes))
  assert_close(post(exact), expected, atol=1e-14)  # 0-d arrays
  assert_close(post([float(v) for v in exact]), expected, atol=1e-14)  # Python floats
  assert_close(post([np.float64(v) for v in exact]), expected, atol=1e-14)
  mixed = [(v, v) for v in exact[:-1]] + [exact[-1]]
  with pytest.raises(ValueError, match=r"shot-vector results .* for some tapes and not"):
    post(mixed)
