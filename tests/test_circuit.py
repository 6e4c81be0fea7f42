"""`qhess.circuit` and `qhess.execute`: transformations, pytrees, autodiff, tapes, drawing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess

TRANSFORMS = [lambda f: f, jax.jit]
TRANSFORM_IDS = ["eager", "jit"]

# One structure over every gate, shared by the tests below so that it compiles once per
# transformation. Its outputs: an expval of a sum, a variance, probs on wires (2, 0).
_RNG = np.random.default_rng(7)
N_WIRES = 3
OPS = ref.random_circuit(_RNG, N_WIRES, n_extra=0)
X0 = ref.flat_params(OPS)
N_PARAMS = len(X0)
OBS = (("sum", ((0.7, ("prod", (("P", "X", 0), ("P", "Z", 2)))), (-0.4, ("P", "Y", 1)))),
       ("prod", (("H", ref.random_hermitian(_RNG, 4), (2, 1)), ("P", "X", 0))))
PROBS_WIRES = (2, 0)


def _measurements():
  return (qhess.expval(ref.qhess_observable(OBS[0])), qhess.var(ref.qhess_observable(OBS[1])),
          qhess.probs(wires=PROBS_WIRES))


CIRCUIT = ref.qhess_circuit(OPS, N_WIRES, _measurements)

# Smaller than CIRCUIT, for tests that compile more than a forward pass (autodiff, vmap),
# with one gate of each way the kernel applies gates: Pauli rotation, dense, diagonal,
# controlled.
AD_OPS = [("RX", (0,), (0.3,)), ("RY", (1,), (-0.8,)), ("CRX", (0, 2), (1.2,)),
          ("IsingZZ", (1, 2), (0.5,)), ("U3", (2,), (0.4, -1.1, 0.7)),
          ("CRY", (2, 0), (-0.6,)), ("PhaseShift", (1,), (0.9,)), ("Hadamard", (0,), ()),
          ("CNOT", (1, 0), ())]
AD_CIRCUIT = ref.qhess_circuit(AD_OPS, N_WIRES, _measurements)


def _expected(params):
  state = ref.circuit_state(ref.with_params(OPS, params), N_WIRES)
  return (ref.ref_expval(state, OBS[0], N_WIRES), ref.ref_var(state, OBS[1], N_WIRES),
          ref.ref_probs(state, PROBS_WIRES, N_WIRES))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=TRANSFORM_IDS)
def test_circuit_matches_reference(transform, rng):
  f = transform(CIRCUIT)
  for _ in range(3):
    x = X0 + rng.uniform(-1, 1, size=N_PARAMS)
    got = f(jnp.asarray(x))
    assert isinstance(got, tuple) and len(got) == 3
    assert [g.shape for g in got] == [(), (), (4,)]
    assert all(g.dtype == jnp.float64 for g in got)
    chex.assert_trees_all_close(got, _expected(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=TRANSFORM_IDS)
def test_circuit_vmap_equals_loop(transform, rng):
  xs = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(5, len(ref.flat_params(AD_OPS)))))
  got = transform(jax.vmap(AD_CIRCUIT))(xs)
  expected = jax.tree.map(lambda *ys: jnp.stack(ys), *[AD_CIRCUIT(x) for x in xs])
  assert [g.shape for g in got] == [(5,), (5,), (5, 4)]
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


def test_circuit_vmap_over_one_of_two_args(rng):
  @qhess.circuit(wires=2)
  def f(x, y):
    qhess.RX(x, wires=0)
    qhess.IsingYY(y, wires=(0, 1))
    return qhess.expval(qhess.Z(0) + qhess.X(1))

  xs = jnp.asarray(rng.uniform(-1, 1, size=4))
  got = jax.vmap(f, in_axes=(0, None))(xs, 0.3)
  expected = jnp.stack([f(x, 0.3) for x in xs])
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------- pytrees


def _flat_reference(x):
  # The circuits below all apply RX(x0) on 0, Rot(x1, x2, x3) on 1, CNOT, CRZ(x4) (1, 0).
  ops = [("RX", (0,), (x[0],)), ("Rot", (1,), tuple(x[1:4])), ("CNOT", (0, 1), ()),
         ("CRZ", (1, 0), (x[4],))]
  state = ref.circuit_state(ops, 2)
  return ref.ref_expval(state, ("prod", (("P", "Y", 0), ("P", "X", 1))), 2)


def _gates(x0, x1, x2, x3, x4):
  qhess.RX(x0, wires=0)
  qhess.Rot(x1, x2, x3, wires=1)
  qhess.CNOT(wires=(0, 1))
  qhess.CRZ(x4, wires=(1, 0))
  return qhess.expval(qhess.Y(0) @ qhess.X(1))


@qhess.circuit(wires=2)
def _dict_circuit(params):
  return _gates(params["a"], *params["rot"], params["c"] ** 2)


@qhess.circuit(wires=2)
def _nested_circuit(params):
  (a, (b, c)), d = params
  return _gates(a, b[0], b[1], c, jnp.sum(d))


@qhess.circuit(wires=2)
def _args_kwargs_circuit(a, rot, *, c, scale=1.0):
  return _gates(scale * a, rot[0], rot[1], rot[2], c)


@qhess.circuit(wires=2)
def _flat_circuit(x):
  return _gates(*(x[i] for i in range(5)))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=TRANSFORM_IDS)
def test_circuit_pytree_params(transform):
  x = np.array([0.3, -0.7, 1.1, 0.4, 0.9])
  expected = _flat_reference(x)
  d = {"a": jnp.asarray(x[0]), "rot": jnp.asarray(x[1:4]), "c": jnp.sqrt(x[4])}
  nested = ((x[0], (jnp.asarray(x[1:3]), x[3])), jnp.asarray([x[4] / 2, x[4] / 2]))
  got = [
      transform(_dict_circuit)(d),
      transform(_nested_circuit)(nested),
      transform(_args_kwargs_circuit)(x[0], jnp.asarray(x[1:4]), c=x[4]),
      transform(_args_kwargs_circuit)(x[0] / 2, jnp.asarray(x[1:4]), c=x[4], scale=2.0),
  ]
  chex.assert_trees_all_close(got, [expected] * 4, rtol=0, atol=1e-10)


def test_circuit_grad_of_dict_params():
  d = {"a": jnp.asarray(0.3), "rot": jnp.asarray([-0.7, 1.1, 0.4]), "c": jnp.asarray(0.8)}
  got = jax.grad(_dict_circuit)(d)
  assert jax.tree.structure(got) == jax.tree.structure(d)
  flat = jnp.concatenate([d["a"][None], d["rot"], d["c"][None] ** 2])
  g = jax.grad(_flat_circuit)(flat)
  expected = {"a": g[0], "rot": g[1:4], "c": g[4] * 2 * d["c"]}
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- measurements


def test_circuit_returns_tuple_list_or_single():
  def body(x):
    qhess.RY(x, wires=0)
    qhess.CNOT(wires=(0, 1))

  @qhess.circuit(wires=2)
  def single(x):
    body(x)
    return qhess.expval(qhess.Z(1))

  @qhess.circuit(wires=2)
  def several(x):
    body(x)
    return qhess.expval(qhess.Z(1)), qhess.var(qhess.X(0)), qhess.probs(wires=1)

  @qhess.circuit(wires=2)
  def as_list(x):
    body(x)
    return [qhess.probs(), qhess.expval(qhess.Z(0))]

  x, c = 0.4, np.cos(0.4)
  one = single(x)
  assert isinstance(one, jax.Array) and one.shape == ()
  chex.assert_trees_all_close(one, c, rtol=0, atol=1e-12)
  got = several(x)
  assert isinstance(got, tuple)
  # After RY(x), CNOT: <X0> = 0 (entangled), so var X0 = 1.
  p1 = (1 - c) / 2
  chex.assert_trees_all_close(got, (c, 1.0, np.array([1 - p1, p1])), rtol=0, atol=1e-12)
  got = as_list(x)
  assert isinstance(got, tuple)
  chex.assert_trees_all_close(got, (np.array([1 - p1, 0, 0, p1]), c), rtol=0, atol=1e-12)


def test_circuit_without_params():
  @qhess.circuit(wires=2)
  def f():
    qhess.Hadamard(wires=1)
    return qhess.probs(), qhess.expval(qhess.I(0) @ qhess.X(1))

  tape = f.tape()
  assert tape.num_params == 0 and tape.params.shape == (0,)
  chex.assert_trees_all_close(f(), (np.array([0.5, 0.5, 0, 0]), 1.0), rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------- autodiff


def _central_fd(f, x, h):
  """Central finite differences of ``f`` (a vmappable function of a flat vector).

  Returns the gradient (``(*out, P)``) and Hessian (``(*out, P, P)``) of each output; all
  shifted points go through one ``jax.vmap``ped call.
  """
  p = len(x)
  eye = np.eye(p)
  plus = (eye[:, None] + eye[None, :]).reshape(p * p, p)
  minus = (eye[:, None] - eye[None, :]).reshape(p * p, p)
  # f(x + h(e_i + e_j)) - f(x + h(e_i - e_j)) - f(x - h(e_i - e_j)) + f(x - h(e_i + e_j))
  # over 4h²; for i = j the middle points are x and this is the usual 2h-step rule.
  points = np.concatenate([x + h * eye, x - h * eye, x + h * plus, x + h * minus,
                           x - h * minus, x - h * plus])  # (2P + 4P², P)
  out = jax.vmap(f)(jnp.asarray(points))

  def fd(y):
    y = np.moveaxis(np.asarray(y), 0, -1)  # (*out, 2P + 4P²)
    grad = (y[..., :p] - y[..., p:2 * p]) / (2 * h)
    y = y[..., 2 * p:].reshape(y.shape[:-1] + (4, p, p))
    hess = (y[..., 0, :, :] - y[..., 1, :, :] - y[..., 2, :, :] + y[..., 3, :, :]) / (4 * h * h)
    return grad, hess

  return jax.tree.map(fd, out)


_AD_WEIGHTS = np.array([0.3, -1.2, 0.8, 2.0])


def _ad_scalar(v):
  """A scalar that every output kind of AD_CIRCUIT enters."""
  e, var, probs = AD_CIRCUIT(v)
  return e + var + jnp.dot(probs, _AD_WEIGHTS)


# The kernel is an ordinary JAX function, so jax.grad/jax.hessian go through it: the oracle
# the parameter-shift Hessian is checked against elsewhere. Finite differences (one vmapped
# call over all points) check that oracle here; with h = 1e-4 their error is about 1e-8.
# Jitted (one compile; eager it is dozens): an eager jax.grad of a circuit is checked in
# test_circuit_grad_of_dict_params, and both evaluate the same jaxpr.
def test_circuit_grad_matches_finite_differences():
  x = ref.flat_params(AD_OPS)
  got = jax.jit(jax.grad(_ad_scalar))(jnp.asarray(x))
  (e_grad, _), (var_grad, _), (probs_grad, _) = _central_fd(AD_CIRCUIT, x, h=1e-4)
  expected = e_grad + var_grad + _AD_WEIGHTS @ probs_grad
  assert got.shape == x.shape
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-7)
  assert float(jnp.min(jnp.abs(got))) > 1e-3  # every argument matters


def test_circuit_hessian_matches_finite_differences():
  # Under jax.jit only: qhess sees tracers just as in an eager jax.hessian, and the jitted
  # Hessian is one compile where the eager one is dozens (each costs seconds here).
  x = ref.flat_params(AD_OPS)
  got = jax.jit(jax.hessian(AD_CIRCUIT))(jnp.asarray(x))
  expected = tuple(hess for _, hess in _central_fd(AD_CIRCUIT, x, h=1e-4))
  p = len(x)
  assert [h.shape for h in got] == [(p, p), (p, p), (4, p, p)]
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-6)
  # Symmetric, and far from zero, so the comparison above has teeth.
  chex.assert_trees_all_close(
      got, jax.tree.map(lambda h: jnp.swapaxes(h, -1, -2), got), rtol=0, atol=1e-12)
  assert min(float(jnp.max(jnp.abs(h))) for h in got) > 1e-2


# -------------------------------------------------------------------------- tapes, execute


def _other_circuits():
  @qhess.circuit(wires=2)
  def a(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))

  @qhess.circuit(wires=1)
  def b(x):
    qhess.U3(x[0], x[1], x[2], wires=0)
    qhess.QubitUnitary(np.array([[0, 1j], [1j, 0]]), wires=0)
    return qhess.probs(), qhess.var(qhess.Hermitian(np.array([[1, 2j], [-2j, 0]]), wires=0))

  return a, b


@pytest.mark.parametrize("batch_size", [None, 2])
def test_execute_mixed_structures_equals_calls(batch_size, rng):
  a, b = _other_circuits()
  args = [(CIRCUIT, X0 + rng.uniform(-1, 1, size=N_PARAMS)),
          (a, rng.uniform(-1, 1, size=2)), (b, rng.uniform(-1, 1, size=3)),
          (a, rng.uniform(-1, 1, size=2)), (CIRCUIT, X0 + rng.uniform(-1, 1, size=N_PARAMS)),
          (a, rng.uniform(-1, 1, size=2)), (a, rng.uniform(-1, 1, size=2))]
  tapes = [c.tape(jnp.asarray(x)) for c, x in args]
  got = qhess.execute(tapes, batch_size=batch_size)
  expected = [c(jnp.asarray(x)) for c, x in args]
  assert isinstance(got, list) and len(got) == len(tapes)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


def test_execute_accepts_any_sequence_and_empty():
  a, _ = _other_circuits()
  tape = a.tape(jnp.asarray([0.1, 0.2]))
  chex.assert_trees_all_close(qhess.execute((tape,)), [a(jnp.asarray([0.1, 0.2]))],
                              rtol=0, atol=1e-12)
  assert qhess.execute([]) == []


def test_tape_with_params_runs_new_arguments(rng):
  tape = CIRCUIT.tape(jnp.asarray(X0))
  x = X0 + rng.uniform(-1, 1, size=N_PARAMS)
  new = tape.with_params(x)
  assert new.structure == tape.structure
  assert new.params.dtype == jnp.float64
  chex.assert_trees_all_close(new.params, x, rtol=0, atol=0)
  chex.assert_trees_all_close(tape.params, X0, rtol=0, atol=0)  # the original is unchanged
  chex.assert_trees_all_close(qhess.execute([new])[0], _expected(x), rtol=0, atol=1e-10)


def test_tape_num_params_and_param_index():
  @qhess.circuit(wires=3)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.Rot(x[1], x[2], x[3], wires=1)
    qhess.CNOT(wires=(0, 1))
    qhess.QubitUnitary(np.eye(2), wires=2)
    qhess.U3(x[4], x[5], x[6], wires=2)
    qhess.PauliRot(x[7], "XY", wires=(2, 0))
    qhess.MultiRZ(x[8], wires=(0, 1, 2))
    return qhess.expval(qhess.Z(0))

  x = jnp.arange(9.0) / 10
  tape = f.tape(x)
  assert tape.num_params == 9
  assert [op.param_index for op in tape.operations] == [
      (0,), (1, 2, 3), (), (), (4, 5, 6), (7,), (8,)]
  assert [op.wires for op in tape.operations] == [
      (0,), (1,), (0, 1), (2,), (2,), (2, 0), (0, 1, 2)]
  chex.assert_trees_all_close(tape.params, x, rtol=0, atol=0)


def test_tape_records_preprocessed_arguments():
  # Gate arguments are whatever the circuit function computes from its inputs.
  @qhess.circuit(wires=1)
  def f(x):
    qhess.RX(2 * x + 1, wires=0)
    qhess.Rot(x, x**2, -x, wires=0)
    return qhess.expval(qhess.Z(0))

  tape = f.tape(0.5)
  assert tape.num_params == 4
  chex.assert_trees_all_close(tape.params, np.array([2.0, 0.5, 0.25, -0.5]), rtol=0, atol=0)


def test_tape_structure_ignores_values_but_not_gates():
  a, b = _other_circuits()
  structure = a.tape(jnp.asarray([0.1, 0.2])).structure
  assert structure == a.tape(jnp.asarray([0.5, -3.0])).structure
  assert structure != b.tape(jnp.asarray([0.1, 0.2, 0.3])).structure


# ---------------------------------------------------------------------------------- drawing


def _two_wire_tape():
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))

  return f.tape(jnp.array([0.5, 0.2]))


def test_draw_two_wires():
  expected = ("0: ──RX(0.5)─╭●───────┤ ╭<Z@Z>\n"
              "1: ──────────╰RY(0.2)─┤ ╰<Z@Z>")
  assert _two_wire_tape().draw(decimals=1) == expected


def test_draw_without_values():
  expected = ("0: ──RX─╭●──┤ ╭<Z@Z>\n"
              "1: ─────╰RY─┤ ╰<Z@Z>")
  assert _two_wire_tape().draw() == expected


def test_draw_three_wires_cnot_and_probs():
  @qhess.circuit(wires=3)
  def f(x):
    qhess.Hadamard(wires=0)
    qhess.CNOT(wires=(0, 2))
    qhess.RY(x, wires=1)
    return qhess.probs(wires=(0, 1)), qhess.expval(qhess.Z(2))

  # The CNOT's connector crosses wire 1, so RY goes into the next layer.
  expected = ("0: ──H─╭●──────────┤ ╭Probs\n"
              "1: ────│──RY(0.30)─┤ ╰Probs\n"
              "2: ────╰X──────────┤ <Z>")
  assert f.tape(0.3).draw(decimals=2) == expected
