"""`qhess.hessian`, `value_grad_and_hessian`, `hessian_tapes`: against autodiff.

The oracle is `jax.hessian` of a dense, differentiable simulation of the same circuit
(`_dense.Dense`, built from `_reference`'s matrices, independent of qhess's kernel), and
Hessians worked out by hand for small circuits; one test also checks `jax.hessian` of the
qhess circuit itself. Circuit counts are read off the kernel's batch size by wrapping
`qhess.simulate.evolve.run_points`, which `_hessian` calls once per trace.

Every new circuit structure and option set compiles, so the circuits below are built
once and shared by several tests.
"""

import functools

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess
from _dense import Case, Dense
from _dense import jit_hessian as _jax_hessian
from _dense import make_case as _case
from _dense import placeholder_op as _op
from qhess.derivatives import evaluate as _evaluate
from qhess.simulate import evolve as _evolve
from qhess.simulate import kernel as _kernel
from qhess.simulate import measure as _measure

TRANSFORMS = [lambda f: f, jax.jit]
TRANSFORM_IDS = ["eager", "jit"]

TOL = dict(rtol=1e-10, atol=1e-10)


def _x64(fn):
  """Runs ``fn`` with x64 on (oracles are float64 even when a test runs in float32)."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
      return fn(*args, **kwargs)
    finally:
      jax.config.update("jax_enable_x64", previous)
  return wrapped


@pytest.fixture(autouse=True)
def always_share():
  """Overrides conftest.py's fixture of that name: here the cost model picks the
  evaluation, which for these tiny circuits is the independent one (it compiles about
  three times faster). Tests that also check the prefix-shared evaluation request
  `share`: both evaluations side by side (classical tail, layers), and the shared one
  under vmap, in float32, with masks and with the value and gradient; every gate,
  family, off-diagonal rule and batch size under both is in test_evaluation.py."""


@pytest.fixture
def share(monkeypatch):
  """Shared evaluation whenever it is asked for (conftest.py's `always_share`)."""
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_SAVING", -np.inf)
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_WORK", -np.inf)


def _numpy(tree):
  return jax.tree.map(np.asarray, tree)


def _recorders(counts: list) -> dict:
  """Wrappers of both kernel entry points (independent and prefix-shared evaluation)
  that append the number of shifted circuits of every batch traced to ``counts``."""
  independent, shared = _kernel.run_points, _kernel.run_points_shared

  def run_points(key, theta, index, *args, **kwargs):
    counts.append(int(np.shape(index)[0]))
    return independent(key, theta, index, *args, **kwargs)

  def run_points_shared(key, theta, schedule, *args, **kwargs):
    counts.append(len(schedule.order))
    return shared(key, theta, schedule, *args, **kwargs)

  return {"run_points": run_points, "run_points_shared": run_points_shared}


@pytest.fixture
def circuit_counts(monkeypatch):
  """A list that receives the number of shifted circuits of every kernel batch traced."""
  counts = []
  for name, fn in _recorders(counts).items():
    monkeypatch.setattr(_kernel, name, fn)
  return counts


def _count(fn, *args, **kwargs) -> int:
  """Number of circuits that ``fn`` (a qhess derivative function of a circuit object
  not used before) runs. Traced only, never compiled."""
  counts = []
  with pytest.MonkeyPatch.context() as patch:
    for name, wrapper in _recorders(counts).items():
      patch.setattr(_kernel, name, wrapper)
    jax.eval_shape(fn, *args, **kwargs)
  assert len(counts) <= 1
  return counts[0] if counts else 0


# ------------------------------------------------------------------ the 13-tape example


def _example_circuit():
  """A fresh circuit object (fresh jit caches): RX(x0) on 0, CRY(x1) on (0, 1), <Z0 Z1>."""
  @qhess.circuit(wires=2)
  def example(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))
  return example


EXAMPLE = _example_circuit()
X_EXAMPLE = jnp.array([0.5, 0.2])


def _example_closed_form(x):
  """<Z0 Z1> = cos²(a/2) - sin²(a/2) cos b = (1 + cos a)/2 - (1 - cos a)/2 · cos b.

  After RX(a) the state is cos(a/2)|0> - i sin(a/2)|1>; CRY(b) rotates the target only
  in the |1> branch: cos(a/2)|00> - i sin(a/2)(cos(b/2)|10> + sin(b/2)|11>). Z0 Z1 is
  +1 on |00>, |11> and -1 on |10>.
  """
  a, b = x
  value = (1 + np.cos(a)) / 2 - (1 - np.cos(a)) / 2 * np.cos(b)
  grad = np.array([-np.sin(a) * (1 + np.cos(b)) / 2, (1 - np.cos(a)) * np.sin(b) / 2])
  hess = np.array([
      [-np.cos(a) * (1 + np.cos(b)) / 2, np.sin(a) * np.sin(b) / 2],
      [np.sin(a) * np.sin(b) / 2, (1 - np.cos(a)) * np.cos(b) / 2],
  ])
  return value, grad, hess


def test_example_against_jax_hessian_of_the_circuit():
  # The literal oracle: jax.hessian of the qhess circuit (autodiff through the kernel).
  expected = _jax_hessian(EXAMPLE)(X_EXAMPLE)
  chex.assert_trees_all_close(qhess.hessian(EXAMPLE)(X_EXAMPLE), expected, **TOL)
  # The dense oracle used elsewhere agrees with it.
  dense = Dense([_op("RX", [0]), _op("CRY", [0, 1])], 2,
                [("expval", ("prod", (("P", "Z", 0), ("P", "Z", 1))))])
  chex.assert_trees_all_close(_jax_hessian(dense)(X_EXAMPLE), expected, **TOL)


def test_example_closed_form_numbers():
  got = qhess.hessian(EXAMPLE)(X_EXAMPLE)
  expected = np.array([[-0.86883595, 0.04762358], [0.04762358, 0.05998862]])
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-8)
  chex.assert_trees_all_close(_example_closed_form((0.5, 0.2))[2], expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("x", [(0.5, 0.2), (-1.3, 2.4), (3.0, -0.7)])
def test_example_closed_form(x):
  value, grad, hess = _example_closed_form(x)
  x = jnp.asarray(x)
  chex.assert_trees_all_close(EXAMPLE(x), value, rtol=0, atol=1e-12)
  chex.assert_trees_all_close(qhess.hessian(EXAMPLE)(x), hess, **TOL)
  got = qhess.value_grad_and_hessian(EXAMPLE)(x)
  chex.assert_trees_all_close(got, (value, grad, hess), **TOL)


def _ry_crx_closed_form(x):
  """RY(a) on 0, CRX(b) on (0, 1), <Z1> = cos²(a/2) + sin²(a/2) cos b.

  RY(a)|0> = cos(a/2)|0> + sin(a/2)|1>; in the |1> branch RX(b)|0> has <Z> = cos b.
  """
  a, b = x
  return np.array([
      [-np.cos(a) * (1 - np.cos(b)) / 2, -np.sin(a) * np.sin(b) / 2],
      [-np.sin(a) * np.sin(b) / 2, -(1 - np.cos(a)) * np.cos(b) / 2],
  ])


def test_ry_crx_closed_form():
  @qhess.circuit(wires=2)
  def ry_crx(x):
    qhess.RY(x[0], wires=0)
    qhess.CRX(x[1], wires=(0, 1))
    return qhess.expval(qhess.Z(1))

  for x in [(0.5, 0.2), (2.2, -1.9)]:
    got = qhess.hessian(ry_crx)(jnp.asarray(x))
    chex.assert_trees_all_close(got, _ry_crx_closed_form(x), **TOL)


def test_rx_ry_closed_form_expval_var_probs():
  # One wire, RX(a) then RY(b): the Bloch vector (0, -sin a, cos a) rotated about y gives
  # f = <Z> = cos a cos b; var Z = 1 - f²; probs = ((1 + f)/2, (1 - f)/2).
  @qhess.circuit(wires=1)
  def rx_ry(x):
    qhess.RX(x[0], wires=0)
    qhess.RY(x[1], wires=0)
    return qhess.expval(qhess.Z(0)), qhess.var(qhess.Z(0)), qhess.probs(wires=0)

  for a, b in [(0.5, 0.2), (-2.0, 1.1)]:
    f = np.cos(a) * np.cos(b)
    df = np.array([-np.sin(a) * np.cos(b), -np.cos(a) * np.sin(b)])
    hf = np.array([[-np.cos(a) * np.cos(b), np.sin(a) * np.sin(b)],
                   [np.sin(a) * np.sin(b), -np.cos(a) * np.cos(b)]])
    hvar = -2 * (np.outer(df, df) + f * hf)
    expected = (hf, hvar, np.stack([hf / 2, -hf / 2]))
    got = qhess.hessian(rx_ry)(jnp.array([a, b]))
    chex.assert_trees_all_close(got, expected, **TOL)


def test_custom_shifts_pennylane_example():
  # PennyLane's param_shift_hessian docstring: custom shifts give the default Hessian.
  x0, x1 = 0.5, 0.2
  got = qhess.hessian(EXAMPLE, diagonal_shifts=[(x0 / 2,), (x1 / 2, x1)],
                      off_diagonal_shifts=[(x0,), (x1, 2 * x1)])(X_EXAMPLE)
  chex.assert_trees_all_close(got, qhess.hessian(EXAMPLE)(X_EXAMPLE), rtol=0, atol=1e-8)
  chex.assert_trees_all_close(got, _example_closed_form((x0, x1))[2], rtol=0, atol=1e-8)


def test_example_batch_size():
  expected = qhess.hessian(EXAMPLE)(X_EXAMPLE)
  for batch_size in (5, 13, 100):  # 13 circuits: 3 padded chunks, one chunk, no chunking
    got = qhess.hessian(EXAMPLE, batch_size=batch_size)(X_EXAMPLE)
    chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


def test_example_vmap_equals_loop(rng, share):
  xs = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(4, 2)))
  got = jax.vmap(qhess.hessian(EXAMPLE))(xs)
  expected = jnp.stack([qhess.hessian(EXAMPLE)(x) for x in xs])
  assert got.shape == (4, 2, 2)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)
  chex.assert_trees_all_close(got[0], _example_closed_form(np.asarray(xs[0]))[2], **TOL)


# ----------------------------------------------------------------------- hessian_tapes


def test_hessian_tapes_example():
  tape = EXAMPLE.tape(X_EXAMPLE)
  tapes, post = qhess.hessian_tapes(tape)
  assert len(tapes) == 13
  assert all(isinstance(t, qhess.Tape) for t in tapes)
  chex.assert_trees_all_close(tapes[0].params, X_EXAMPLE, rtol=0, atol=0)  # unshifted
  # Every tape shifts at most two arguments.
  assert all(int(jnp.sum(t.params != X_EXAMPLE)) <= 2 for t in tapes)
  got = post(qhess.execute(tapes))
  chex.assert_trees_all_close(got, qhess.hessian(EXAMPLE, hybrid=False)(X_EXAMPLE), **TOL)
  chex.assert_trees_all_close(got, _example_closed_form((0.5, 0.2))[2], **TOL)


def test_hessian_tapes_f0():
  tape = EXAMPLE.tape(X_EXAMPLE)
  tapes, post = qhess.hessian_tapes(tape, f0=EXAMPLE(X_EXAMPLE))
  assert len(tapes) == 12
  assert not any(bool(jnp.all(t.params == X_EXAMPLE)) for t in tapes)
  got = post(qhess.execute(tapes))
  chex.assert_trees_all_close(got, _example_closed_form((0.5, 0.2))[2], **TOL)


def test_hessian_tapes_custom_shifts_and_mask():
  tape = EXAMPLE.tape(X_EXAMPLE)
  shifts = dict(diagonal_shifts=[(0.25,), (0.1, 0.2)], off_diagonal_shifts=[(0.5,), (0.2, 0.4)])
  tapes, post = qhess.hessian_tapes(tape, **shifts)
  chex.assert_trees_all_close(post(qhess.execute(tapes)), _example_closed_form((0.5, 0.2))[2],
                              rtol=0, atol=1e-8)
  tapes, post = qhess.hessian_tapes(tape, gate_argnum=1)
  expected = np.diag([0.0, _example_closed_form((0.5, 0.2))[2][1, 1]])
  chex.assert_trees_all_close(post(qhess.execute(tapes)), expected, **TOL)


# ------------------------------------------------------- random circuits over every gate

# Each group is one random circuit on 3 wires (≤ 5 gate arguments); together they hold
# every gate. Groups 1 and 3 measure a variance (the plan then shares the diagonal with
# the gradient), groups 0 and 2 do not (the minimal plan).
GATE_GROUPS = (
    ("RX", "Rot", "CRX", "Hadamard", "CNOT", "S"),
    ("RY", "U3", "CRY", "SX", "CZ", "T"),
    ("RZ", "PhaseShift", "CRZ", "ControlledPhaseShift", "IsingXX", "Hadamard", "PauliY",
     "SWAP"),
    ("IsingYY", "IsingZZ", "MultiRZ", "PauliRot", "RX", "CY", "Toffoli", "QubitUnitary",
     "PauliX", "PauliZ"),
)
N_WIRES = 3


def _random_specs(group: int, rng):
  """Measurements of a group; together every observable kind and measurement kind."""
  obs = functools.partial(ref.random_observable, rng, N_WIRES)
  return [
      [("expval", obs("sum")), ("probs", (1,))],
      [("expval", obs("hermitian")), ("var", obs("word")), ("probs", (2, 0))],
      [("expval", obs("product")), ("expval", obs("word"))],
      [("var", obs("sum")), ("expval", obs("hermitian")), ("probs", None)],
  ][group]


@functools.cache
@_x64
def _random_case(group: int):
  """(case, x, the oracle's Hessian at x) for one gate group; θ = x."""
  rng = np.random.default_rng(1000 + group)
  ops = ref.random_circuit(rng, N_WIRES, n_extra=0, gates=GATE_GROUPS[group])
  case = _case(ops, N_WIRES, _random_specs(group, rng))
  x = ref.flat_params(ops)
  # One compile for the value and the Hessian.
  value, hess = _numpy(jax.jit(lambda v: (case.oracle(v), jax.hessian(case.oracle)(v)))(
      jnp.asarray(x)))
  chex.assert_trees_all_close(value, case.dense.reference(x), rtol=0, atol=1e-12)
  return case, x, hess


def test_gate_groups_cover_every_gate():
  assert set().union(*GATE_GROUPS) == set(ref.GATE_NAMES)
  for group in range(len(GATE_GROUPS)):
    case, x, _ = _random_case(group)
    assert 3 <= len(x) <= 6
    assert {op.name for op in case.circuit.tape(jnp.asarray(x)).operations} == set(
        GATE_GROUPS[group])


# Eager on every group; under jax.jit on one (the trace inside jit is the eager call's, as
# `qhess.hessian` is itself jitted; jit is also checked in the pytree, non-linear and
# value_grad_and_hessian tests): each extra case is a compilation of its own.
@pytest.mark.parametrize("group, transform", [
    *[(group, TRANSFORMS[0]) for group in range(len(GATE_GROUPS))], (1, TRANSFORMS[1]),
], ids=[*[f"{group}-eager" for group in range(len(GATE_GROUPS))], "1-jit"])
def test_hessian_random_circuit(group, transform):
  case, x, expected = _random_case(group)
  got = transform(qhess.hessian(case.circuit))(jnp.asarray(x))
  assert isinstance(got, tuple)
  assert all(g.dtype == jnp.float64 for g in got)
  chex.assert_trees_all_close(got, expected, **TOL)


def test_hessian_random_circuit_gate_level():
  # These circuits pass the flat parameters straight to the gates (θ = x), so the
  # gate-argument Hessian is the input Hessian: shape (*out, P, P) per measurement.
  case, x, expected = _random_case(3)
  got = qhess.hessian(case.circuit, hybrid=False)(jnp.asarray(x))
  chex.assert_trees_all_close(got, expected, **TOL)


def test_hessian_random_circuit_tapes():
  case, x, expected = _random_case(1)  # with var: the tapes measure <O> and <O²>
  tapes, post = qhess.hessian_tapes(case.circuit.tape(jnp.asarray(x)))
  chex.assert_trees_all_close(jax.jit(post)(qhess.execute(tapes)), expected, **TOL)


def test_hessian_random_circuit_float32(float32, share):
  case, x, expected = _random_case(1)
  got = qhess.hessian(case.circuit)(jnp.asarray(x))
  assert all(g.dtype == jnp.float32 for g in got)
  chex.assert_trees_all_close(got, expected, rtol=1e-4, atol=1e-4)


@functools.cache
@_x64
def _classical_tail_case():
  """(case, x, the oracle's Hessian at x): a circuit ending in a run of permutation and
  diagonal gates; shared by both evaluations."""
  rng = np.random.default_rng(5)
  ops = (ref.random_circuit(rng, N_WIRES, n_extra=0, gates=("RX", "Rot", "CRY", "IsingXX"))
         + [("CNOT", (0, 1), ()), ("Toffoli", (2, 1, 0), ()), ("CZ", (1, 2), ()),
            ("SWAP", (0, 2), ()), ("CY", (1, 0), ())])
  z_sum = ("sum", ((0.6, ("prod", (("P", "Z", 0), ("P", "Z", 1)))), (-0.8, ("P", "Z", 2))))
  case = _case(ops, N_WIRES, [("expval", z_sum), ("probs", (2, 0))])
  x = jnp.asarray(ref.flat_params(ops))
  return case, x, _numpy(_jax_hessian(case.oracle)(x))


@pytest.mark.parametrize("evaluation", ["shared", "independent"])
def test_hessian_with_classical_tail(evaluation, share):
  # A final run of permutation and diagonal gates is folded into the probabilities
  # (`_measure.split_tail`) when every output is a function of them.
  case, x, expected = _classical_tail_case()
  tape = case.circuit.tape(x)
  assert _measure.split_tail(tape.operations, tape.raw_measurements) == len(
      case.dense.ops) - 5
  chex.assert_trees_all_close(qhess.hessian(case.circuit, evaluation=evaluation)(x),
                              expected, **TOL)


@functools.cache
@_x64
def _layered_case():
  """(case, x, the oracle's Hessian at x): eight identical layers; shared by both
  evaluations."""
  rng = np.random.default_rng(8)
  ops = []
  for _ in range(8):
    a = rng.uniform(-np.pi, np.pi, size=3)
    ops += [("RY", (0,), (a[0],)), ("CRX", (0, 1), (a[1],)), ("RZ", (1,), (a[2],)),
            ("CNOT", (1, 0), ())]
  case = _case(ops, 2, [("expval", ("sum", ((0.5, ("P", "X", 0)), (1.0, ("P", "Z", 1))))),
                        ("probs", None)])
  x = jnp.asarray(ref.flat_params(ops))
  return case, x, _numpy(_jax_hessian(case.oracle)(x))


@pytest.mark.parametrize("evaluation", ["shared", "independent"])
def test_hessian_of_a_layered_circuit(evaluation, share):
  # Eight identical layers run as a lax.scan (`_evolve.repeated_blocks`); the shared
  # evaluation scans the layers after each point's starting boundary.
  case, x, expected = _layered_case()
  tape = case.circuit.tape(x)
  assert _evolve.repeated_blocks(tape.operations) == [(0, 4, 8)]
  chex.assert_trees_all_close(qhess.hessian(case.circuit, evaluation=evaluation)(x),
                              expected, **TOL)


# ------------------------------------------------------------------------ pytree inputs


def _pytree_processing(p, q, *, scale):
  # RX(a); Rot(*b); CRY(q0 · scale); IsingXX(q1[0]); RY(q1[1] + a): one gate argument
  # from two inputs; `scale` is a keyword argument, never differentiated.
  return [p["a"], p["b"][0], p["b"][1], p["b"][2], q[0] * scale, q[1][0], q[1][1] + p["a"]]


PYTREE = _case(
    [_op("RX", [0]), _op("Rot", [1]), _op("CRY", [0, 2]), _op("IsingXX", [1, 2]),
     _op("RY", [2]), _op("CNOT", [2, 0])], 3,
    [("expval", ("sum", ((1.0, ("prod", (("P", "X", 0), ("P", "Z", 2)))),
                         (0.5, ("P", "Y", 1))))),
     ("probs", (2,))],
    _pytree_processing)
P_TREE = {"a": jnp.array(0.3), "b": jnp.array([0.4, -1.2, 2.0])}
Q_TREE = (jnp.array(0.7), (jnp.array(0.2), jnp.array(-1.1)))
SCALE = 1.5


@functools.cache
@_x64
def _pytree_full_hessian():
  """The oracle's Hessian in both arguments, flattened: per output ``(*out, N, N)``."""
  flat, unravel = jax.flatten_util.ravel_pytree((P_TREE, Q_TREE))
  return _numpy(_jax_hessian(lambda z: PYTREE.oracle(*unravel(z), scale=SCALE))(flat))


def _pytree_expected(argnums, layout):
  """The blocks of the flat Hessian, in the layout of `jax.hessian(..., argnums)`.

  Its leaves run over (output, argument i, leaf of i, argument j, leaf of j), whether
  `argnums` is an int or a tuple; leaf ``l`` of argument ``a`` is a slice of the flat
  vector.
  """
  args = (P_TREE, Q_TREE)
  spans, start = {}, 0
  for a, arg in enumerate(args):
    for l, leaf in enumerate(jax.tree.leaves(arg)):
      spans[a, l] = (slice(start, start + leaf.size), leaf.shape)
      start += leaf.size
  nums = (argnums,) if isinstance(argnums, int) else argnums
  keys = [(a, l) for a in nums for l in range(len(jax.tree.leaves(args[a])))]
  leaves = []
  for full in _pytree_full_hessian():
    out = full.shape[:-2]
    for ki in keys:
      for kj in keys:
        (si, shape_i), (sj, shape_j) = spans[ki], spans[kj]
        leaves.append(full[..., si, sj].reshape(out + shape_i + shape_j))
  return jax.tree.unflatten(jax.tree.structure(layout), leaves)


@pytest.mark.parametrize("argnums,transform", [
    (0, TRANSFORMS[0]), ((0, 1), TRANSFORMS[0]), ((1,), TRANSFORMS[1]), (1, TRANSFORMS[1]),
], ids=["0-eager", "(0,1)-eager", "(1,)-jit", "1-jit"])
def test_hessian_pytree_inputs(argnums, transform):
  got = transform(qhess.hessian(PYTREE.circuit, argnums))(P_TREE, Q_TREE, scale=SCALE)
  # The layout of jax.hessian of the circuit itself (traced, not run).
  layout = jax.eval_shape(jax.hessian(PYTREE.circuit, argnums), P_TREE, Q_TREE, scale=SCALE)
  assert jax.tree.structure(got) == jax.tree.structure(layout)
  chex.assert_trees_all_equal_shapes_and_dtypes(got, layout)
  chex.assert_trees_all_close(got, _pytree_expected(argnums, layout), **TOL)


def test_hessian_pytree_expected_layout():
  # The helper above against jax.hessian of the oracle in that layout (checks the test).
  layout = jax.eval_shape(jax.hessian(PYTREE.oracle, 0), P_TREE, Q_TREE, scale=SCALE)
  expected = _jax_hessian(PYTREE.oracle, 0)(P_TREE, Q_TREE, scale=SCALE)
  chex.assert_trees_all_close(_pytree_expected(0, layout), expected, **TOL)


# ------------------------------------------- non-linear classical processing and var


def _nl_processing(x):
  """x ``(3,)`` -> θ ``(5,)``: sin, a product, and x[1] feeding two gates (packed into
  one array, so every gate argument counts as non-linear: the shared plan)."""
  return jnp.stack([jnp.sin(x[0]), x[0] * x[1], x[1], x[1], 2 * x[2] - 0.3])


NL = _case(
    [_op("RY", [0]), _op("CRX", [0, 1]), _op("Hadamard", [1]), _op("RZ", [1]),
     _op("IsingYY", [0, 1]), _op("RX", [1])], 2,
    [("expval", ("sum", ((1.0, ("prod", (("P", "X", 0), ("P", "Y", 1)))),
                         (0.7, ("P", "Z", 0))))),
     ("var", ("sum", ((1.0, ("P", "Y", 0)), (0.5, ("P", "X", 1))))),
     ("probs", (1,))],
    _nl_processing)
X_NL = jnp.array([0.4, -0.9, 1.3])
P_NL = 5


@functools.cache
@_x64
def _nl_expected():
  x = jnp.asarray(np.asarray(X_NL))
  theta = _nl_processing(x)
  expected = _numpy(_nl_derivatives(x, theta))
  chex.assert_trees_all_close(expected["value"], NL.dense.reference(np.asarray(theta)),
                              rtol=0, atol=1e-12)
  return expected


@jax.jit  # one compile for all seven (eager, each is dozens)
def _nl_derivatives(x, theta):
  return dict(value=NL.oracle(x), g_jac=jax.jacobian(_nl_processing)(x),
              g_hess=jax.hessian(_nl_processing)(x),
              jac=jax.jacobian(NL.oracle)(x), hess=jax.hessian(NL.oracle)(x),
              theta_jac=jax.jacobian(NL.dense)(theta), theta_hess=jax.hessian(NL.dense)(theta))


def test_hessian_nonlinear_processing_and_var():
  # Under jax.jit in test_value_grad_and_hessian (the same circuit and Hessian).
  got = qhess.hessian(NL.circuit)(X_NL)
  chex.assert_trees_all_close(got, _nl_expected()["hess"], **TOL)


def test_hessian_nonlinear_gate_level():
  got = qhess.hessian(NL.circuit, hybrid=False)(X_NL)
  assert [g.shape for g in got] == [(P_NL, P_NL), (P_NL, P_NL), (2, P_NL, P_NL)]
  chex.assert_trees_all_close(got, _nl_expected()["theta_hess"], **TOL)


def test_hessian_tapes_nonlinear():
  tapes, post = qhess.hessian_tapes(NL.circuit.tape(X_NL))
  # post is a JAX function of the results: jit it (eager, it dispatches op by op).
  got = jax.jit(post)(qhess.execute(tapes))
  chex.assert_trees_all_close(got, _nl_expected()["theta_hess"], **TOL)
  # The variance is split into <O> and <O²>: the tapes return raw moments.
  assert len(tapes[0].measurements) == 4


@pytest.mark.parametrize("transform", TRANSFORMS, ids=TRANSFORM_IDS)
def test_value_grad_and_hessian(transform):
  expected = _nl_expected()
  value, grad, hess = transform(qhess.value_grad_and_hessian(NL.circuit))(X_NL)
  chex.assert_trees_all_close(value, expected["value"], rtol=0, atol=1e-12)
  chex.assert_trees_all_close(grad, expected["jac"], **TOL)
  chex.assert_trees_all_close(hess, expected["hess"], **TOL)


def test_value_grad_and_hessian_gate_level(share):
  expected = _nl_expected()
  value, grad, hess = qhess.value_grad_and_hessian(NL.circuit, hybrid=False)(X_NL)
  chex.assert_trees_all_close(value, expected["value"], rtol=0, atol=1e-12)
  chex.assert_trees_all_close(grad, expected["theta_jac"], **TOL)
  chex.assert_trees_all_close(hess, expected["theta_hess"], **TOL)


def _cube_by_scan(x):
  return jax.lax.scan(lambda c, _: (c * x, None), jnp.ones_like(x), None, length=3)[0]


def _cube_by_fori(x):
  return jax.lax.fori_loop(0, 3, lambda i, c: c * x, jnp.ones_like(x))


@pytest.mark.parametrize("cube", [_cube_by_scan, _cube_by_fori], ids=["scan", "fori_loop"])
def test_hessian_processing_with_loops(cube):
  # A loop that is affine after one pass of its body but not after three (c <- c·x):
  # the processing is non-linear and its gradient term must be there.
  # <Z> = cos(u), u = x³: f'' = -cos(u) (3x²)² - sin(u) 6x.
  @qhess.circuit(wires=1)
  def looped(x):
    qhess.RX(cube(x[0]), wires=0)
    return qhess.expval(qhess.Z(0))

  x = 0.7
  expected = -np.cos(x**3) * (3 * x**2) ** 2 - np.sin(x**3) * 6 * x
  got = qhess.hessian(looped)(jnp.array([x]))
  chex.assert_trees_all_close(got, np.array([[expected]]), **TOL)


# ----------------------------------------------------------------------------- masks


def _mask_of(gate_argnum) -> np.ndarray:
  mask = np.zeros((P_NL, P_NL), bool)
  if isinstance(gate_argnum, int):
    mask[gate_argnum, gate_argnum] = True
    return mask
  arr = np.asarray(gate_argnum)
  if arr.dtype == bool:
    return arr
  mask[np.ix_(arr, arr)] = True
  return mask


_BOOL_MASK = np.array([
    [True, False, True, False, False],
    [False, False, False, False, True],
    [True, False, False, False, False],
    [False, False, False, True, False],
    [False, True, False, False, False],
])
GATE_ARGNUMS = [2, [0, 3, 4], _BOOL_MASK]
GATE_ARGNUM_IDS = ["int", "sequence", "mask"]


def _masked_chain_rule(e, mask, out):
  """Jᵀ (H_θ ∘ M) J + Σ_k ∂f/∂θ_k ∇²θ_k over the selected arguments k."""
  active = mask.any(axis=1)
  quantum = np.einsum("...ij,ia,jb->...ab", e["theta_hess"][out] * mask, e["g_jac"],
                      e["g_jac"])
  classical = np.einsum("...k,kab->...ab", e["theta_jac"][out] * active, e["g_hess"])
  return quantum + classical


def test_masked_chain_rule_without_mask_is_the_hessian():
  # The formula with M = 1 is the full Hessian: a check of the test's own formula.
  e = _nl_expected()
  for out in (0, 2):
    chex.assert_trees_all_close(_masked_chain_rule(e, np.ones((P_NL, P_NL), bool), out),
                                e["hess"][out], **TOL)


# Hybrid selections must take all or none of the gate arguments each input feeds
# (θ = [sin x0, x0·x1, x1, x1, 2·x2 - 0.3]: x0 feeds {0, 1}, x1 {1, 2, 3}, x2 {4}).
_BLOCK_MASK = np.zeros((P_NL, P_NL), bool)
_BLOCK_MASK[:4, :4] = _BLOCK_MASK[4, 4] = True
HYBRID_GATE_ARGNUMS = [4, [0, 1, 2, 3], _BLOCK_MASK]


@pytest.mark.parametrize("gate_argnum", HYBRID_GATE_ARGNUMS, ids=GATE_ARGNUM_IDS)
def test_gate_argnum_hybrid(gate_argnum):
  # expval and probs outputs; the variance goes through its own chain rule.
  e = _nl_expected()
  mask = _mask_of(gate_argnum)
  got = qhess.hessian(NL.circuit, gate_argnum=gate_argnum)(X_NL)
  for out in (0, 2):
    expected = _masked_chain_rule(e, mask, out)
    chex.assert_trees_all_close(got[out], expected, **TOL)
    # entries (i, j) whose gate-argument blocks are selected whole: the Hessian's own
    feeds = ([0, 1], [1, 2, 3], [4])
    whole = np.array([[mask[np.ix_(a, b)].all() for b in feeds] for a in feeds])
    assert whole.any()
    chex.assert_trees_all_close(np.asarray(got[out]) * whole, e["hess"][out] * whole, **TOL)


@pytest.mark.parametrize("gate_argnum", [2, [0, 3, 4], _BOOL_MASK], ids=GATE_ARGNUM_IDS)
def test_gate_argnum_hybrid_refuses_split_inputs(gate_argnum):
  # Each selection takes some but not all gate arguments of x0 or x1: no Hessian of x.
  with pytest.raises(ValueError, match=r"`gate_argnum` indexes the tape's gate arguments.*"
                     r"input element [01] .*feeds gate arguments .*hybrid=False"):
    qhess.hessian(NL.circuit, gate_argnum=gate_argnum)(X_NL)


@pytest.mark.parametrize("gate_argnum", GATE_ARGNUMS, ids=GATE_ARGNUM_IDS)
def test_gate_argnum_gate_level(gate_argnum, share):
  mask = _mask_of(gate_argnum)
  got = qhess.hessian(NL.circuit, hybrid=False, gate_argnum=gate_argnum)(X_NL)
  expected = _nl_expected()["theta_hess"]
  # expval and probs: H ∘ M. The variance too when M selects all pairs of a set of
  # arguments (int, sequence): its gradient outer product then lies inside M.
  outs = (0, 2) if isinstance(gate_argnum, np.ndarray) else (0, 1, 2)
  for out in outs:
    chex.assert_trees_all_close(got[out], expected[out] * mask, **TOL)


# ----------------------------------------------------------------- higher derivatives

ONE_WIRE = _case([_op("RX", [0]), _op("RY", [0])], 1,
                 [("expval", ("sum", ((1.0, ("P", "Z", 0)), (0.3, ("P", "X", 0)))))],
                 lambda x: [jnp.sin(x[0]), x[0] * x[1]])


def test_grad_of_trace_of_hessian():
  x = jnp.array([0.7, -0.4])
  # Jitted: one compilation instead of an eager grad's several.
  got = jax.jit(jax.grad(lambda v: jnp.trace(qhess.hessian(ONE_WIRE.circuit)(v))))(x)
  expected = jax.jit(jax.grad(lambda v: jnp.trace(jax.hessian(ONE_WIRE.oracle)(v))))(x)
  chex.assert_trees_all_close(got, expected, **TOL)


# -------------------------------------------------------------------- circuit counts


# Counts of the product rule (PennyLane's); the exact default is the diagonal rule.
PRODUCT = dict(off_diagonal_rule="product")


def test_count_example_is_13():
  tapes, _ = qhess.hessian_tapes(EXAMPLE.tape(X_EXAMPLE))
  assert len(tapes) == 13
  assert _count(qhess.hessian(_example_circuit(), **PRODUCT), X_EXAMPLE) == 13


def test_count_example_diagonal_rule_is_11():
  # RX (period 2π) and CRY (frequencies 1/2, 1): along e_0 + e_1 the frequencies are
  # multiples of 1/2 up to 2, so 7 shifts μπ/2; the one at 2π leaves RX unshifted and
  # merges with CRY's diagonal point: 1 + 1 + 3 + 6 = 11.
  assert _count(qhess.hessian(_example_circuit()), X_EXAMPLE) == 11
  tapes, _ = qhess.hessian_tapes(EXAMPLE.tape(X_EXAMPLE), off_diagonal_rule="diagonal")
  assert len(tapes) == 11


def test_count_single_frequency_diagonal_rule():
  # Wierichs et al.'s diagonal shift rule: 3 circuits per pair, (3P² - P + 2)/2 in all;
  # with the gradient the diagonal shares the first-order points.
  p = 4
  x = jnp.linspace(0.1, 0.9, p)
  assert _count(qhess.hessian(_single_frequency_circuit()), x) == (3 * p * p - p + 2) // 2
  assert _count(qhess.value_grad_and_hessian(_single_frequency_circuit()), x) == (
      1 + 2 * p + 3 * p * (p - 1) // 2)


def _single_frequency_circuit():
  @qhess.circuit(wires=3)
  def single(x):
    qhess.RX(x[0], wires=0)
    qhess.IsingXX(x[1], wires=(0, 1))
    qhess.PauliRot(x[2], "XYZ", wires=(0, 1, 2))
    qhess.RY(x[3], wires=2)
    return qhess.expval(qhess.Z(0) @ qhess.X(2))
  return single


def test_count_single_frequency():
  p = 4
  x = jnp.linspace(0.1, 0.9, p)
  minimal, with_grad = 1 + p + 2 * p * (p - 1), 1 + 2 * p + 2 * p * (p - 1)
  assert _count(qhess.hessian(_single_frequency_circuit(), **PRODUCT), x) == minimal
  assert len(qhess.hessian_tapes(_single_frequency_circuit().tape(x))[0]) == minimal
  # Behaviour (4): value, gradient and Hessian from one batch.
  assert _count(qhess.value_grad_and_hessian(_single_frequency_circuit(), **PRODUCT),
                x) == with_grad
  # gate_argnum: an int selects one diagonal entry, a sequence all pairs among it.
  assert _count(qhess.hessian(_single_frequency_circuit(), gate_argnum=2), x) == 2
  assert _count(qhess.hessian(_single_frequency_circuit(), gate_argnum=[0, 3], **PRODUCT),
                x) == 7
  assert _count(qhess.hessian(_single_frequency_circuit(), gate_argnum=np.eye(p, dtype=bool)),
                x) == 1 + p


def _dependence_processing(x, y):
  return [
      x[0],  # RX: depends on x
      y[0],  # RY: on y
      jnp.asarray(0.3),  # RZ: on nothing
      2 * x[1] - x[0] + 1.0,  # IsingXX: affine in x
      jnp.sum(x) / 3,  # RY: affine in x
      y[0] * y[1],  # PhaseShift: non-linear in y
  ]


def _dependence_case() -> Case:
  return _case([_op("RX", [0]), _op("RY", [1]), _op("RZ", [0]), _op("IsingXX", [0, 1]),
                _op("RY", [0]), _op("PhaseShift", [1]), _op("Hadamard", [1])], 2,
               [("expval", ("prod", (("P", "Z", 0), ("P", "X", 1))))], _dependence_processing)


def test_count_only_dependent_arguments():
  # Behaviour (3): gate arguments that do not depend on the differentiated inputs cost
  # nothing; affine processing and no var: only second-derivative circuits.
  x, y = jnp.array([0.3, -0.8]), jnp.array([1.1, 0.6])
  assert _count(qhess.hessian(_dependence_case().circuit, 0, **PRODUCT), x, y) == (
      1 + 3 + 2 * 3 * 2)
  # Non-linear processing needs the gradient: the diagonal shares its points.
  assert _count(qhess.hessian(_dependence_case().circuit, 1, **PRODUCT), x, y) == (
      1 + 2 * 2 + 2 * 2 * 1)
  assert _count(qhess.hessian(_dependence_case().circuit, (0, 1), **PRODUCT), x, y) == (
      1 + 2 * 5 + 2 * 5 * 4)
  # hybrid=False differentiates every gate argument, constant or not.
  assert _count(qhess.hessian(_dependence_case().circuit, 0, hybrid=False, **PRODUCT), x, y) == (
      1 + 6 + 2 * 6 * 5)


@pytest.mark.parametrize("argnums", [0, 1], ids=str)
def test_pruned_hessian_is_right(argnums):
  case = _dependence_case()
  got = qhess.hessian(case.circuit, argnums)(jnp.array([0.3, -0.8]), jnp.array([1.1, 0.6]))
  expected = _jax_hessian(case.oracle, argnums)(jnp.array([0.3, -0.8]),
                                                jnp.array([1.1, 0.6]))
  chex.assert_trees_all_close(got, expected, **TOL)


def test_count_var_affine():
  @qhess.circuit(wires=2)
  def v(x):
    qhess.RX(x[0], wires=0)
    qhess.IsingZZ(x[1], wires=(0, 1))
    qhess.RY(x[2], wires=1)
    return qhess.var(qhess.X(0) @ qhess.Y(1))

  p = 3
  assert _count(qhess.hessian(v, **PRODUCT), jnp.array([0.1, 0.2, 0.3])) == (
      1 + 2 * p + 2 * p * (p - 1))


# ----------------------------------------------------------------- no recompilation


def test_jit_of_hessian_traces_once(circuit_counts, monkeypatch):
  simulations = []
  original = _kernel.simulate_raw

  def counting(*args, **kwargs):
    simulations.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(_kernel, "simulate_raw", counting)
  circuit = _example_circuit()
  fn = jax.jit(qhess.hessian(circuit))
  for x in ([0.5, 0.2], [1.0, -2.0], [3.0, 0.1]):
    got = fn(jnp.asarray(x))
    chex.assert_trees_all_close(got, _example_closed_form(x)[2], **TOL)
  # One trace of the Hessian (11 circuits with the default diagonal rule).
  assert circuit_counts == [11]
  assert len(simulations) <= 1  # the kernel's trace may be shared with another test


def test_hessian_twice_does_not_retrace(circuit_counts):
  circuit = _example_circuit()
  qhess.hessian(circuit)(X_EXAMPLE)
  qhess.hessian(circuit)(X_EXAMPLE + 1.0)
  qhess.hessian(circuit, argnums=0, hybrid=True)(X_EXAMPLE - 1.0)
  assert circuit_counts == [11]  # one trace
  # Options given as equal arrays built separately are the same options.
  mask = [[True, False], [False, True]]
  qhess.hessian(circuit, gate_argnum=np.array(mask))(X_EXAMPLE)
  qhess.hessian(circuit, gate_argnum=np.array(mask))(X_EXAMPLE + 0.5)
  assert circuit_counts == [11, 5]


# -------------------------------------------------------- circuits qhess cannot shift


def test_structure_changing_between_recordings_raises():
  calls = [0]

  @qhess.circuit(wires=1)
  def unstable(x):
    calls[0] += 1
    qhess.RX(x[0], wires=0)
    if calls[0] % 2 == 0:
      qhess.RY(x[1], wires=0)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(ValueError, match=r"structure .* changed between two recordings"):
    qhess.hessian(unstable)(jnp.array([0.1, 0.2]))


def test_qubit_unitary_depending_on_input_raises():
  @qhess.circuit(wires=1)
  def unitary(x):
    c, s = jnp.cos(x[0]), jnp.sin(x[0])
    qhess.QubitUnitary(jnp.array([[c, -s], [s, c]]), wires=0)
    qhess.RX(x[1], wires=0)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(ValueError, match=r"QubitUnitary or Hermitian matrix depends"):
    qhess.hessian(unitary)(jnp.array([0.1, 0.2]))


def test_hermitian_depending_on_input_raises():
  @qhess.circuit(wires=1)
  def hermitian(x):
    qhess.RX(x[0], wires=0)
    return qhess.expval(qhess.Hermitian(jnp.array([[x[1], 0.0], [0.0, -x[1]]]), wires=0))

  with pytest.raises(ValueError, match=r"QubitUnitary or Hermitian matrix depends"):
    qhess.hessian(hermitian)(jnp.array([0.1, 0.2]))


def test_qubit_unitary_from_other_argument_is_fine():
  u = ref.random_unitary(np.random.default_rng(3), 2)

  @qhess.circuit(wires=1)
  def unitary(x, m):
    qhess.RX(x[0], wires=0)
    qhess.QubitUnitary(m, wires=0)
    qhess.RY(x[1], wires=0)
    return qhess.expval(qhess.Z(0))

  x = jnp.array([0.3, -0.5])
  got = qhess.hessian(unitary)(x, jnp.asarray(u))
  dense = Dense([_op("RX", [0]), ("QubitUnitary", (0,), (u,)), _op("RY", [0])], 1,
                [("expval", ("P", "Z", 0))])
  chex.assert_trees_all_close(got, _jax_hessian(dense)(x), **TOL)
