"""No silent wrong answers (issue 15): stale caches, near-singular shifts, unchecked
results, bounded caches and memory, and clear errors for unusual input.

Every test compares with an independent reference (`jax.hessian` through the simulator,
or a closed form) or checks a clear error. The circuits are tiny (1-2 wires) and reused,
so the file compiles few kernels.
"""

import functools
import gc
import warnings
import weakref

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.simulate import memory as _memory
from qhess.derivatives import hessian as _hessian
from qhess.derivatives import pipeline as _pipeline
from qhess.derivatives import cache as _cache

TOL = dict(rtol=0, atol=1e-10)


@pytest.fixture(autouse=True)
def always_share():
  """Overrides conftest.py's fixture of that name: here the cost model picks the
  evaluation (for these tiny circuits the independent one, which compiles about three
  times faster); caches, shifts and errors do not depend on it, and both evaluations are
  compared in test_evaluation.py."""


X1 = jnp.array([0.5])
X2 = jnp.array([0.5, 0.2])


@qhess.circuit(wires=1)
def RX_Z(x):
  qhess.RX(x[0], wires=0)
  return qhess.expval(qhess.Z(0))


@qhess.circuit(wires=2)
def EXAMPLE(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


def _example_hessian(x):
  """EXAMPLE is (1 + cos x0)/2 - (1 - cos x0)/2 · cos x1."""
  c0, s0, c1, s1 = jnp.cos(x[0]), jnp.sin(x[0]), jnp.cos(x[1]), jnp.sin(x[1])
  return jnp.array([[-c0 * (1 + c1) / 2, s0 * s1 / 2], [s0 * s1 / 2, (1 - c0) / 2 * c1]])


@qhess.circuit(wires=2)
def TWO_OUTPUTS(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0)), qhess.probs(wires=(0, 1))


@pytest.fixture
def count_traces(monkeypatch):
  """Counts traces of the jitted Hessian (each trace runs `_derivatives` once)."""
  calls = []
  original = _pipeline._derivatives

  def counting(*args, **kwargs):
    calls.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(_hessian, "_derivatives", counting)
  return calls


# ------------------------------------------------------------ 1. stale closure values

COEFF = 1.0
MATRIX = np.eye(2, dtype=complex)
OBS_MATRIX = np.diag([1.0, -1.0]).astype(complex)
N_LAYERS = 1


@qhess.circuit(wires=1)
def FROM_GLOBALS(x):
  for _ in range(N_LAYERS):
    qhess.RX(x[0], wires=0)
  qhess.QubitUnitary(MATRIX, wires=0)
  return qhess.expval(COEFF * qhess.Hermitian(OBS_MATRIX, wires=0))


def test_hessian_sees_changed_globals():
  global COEFF, N_LAYERS
  x = jnp.array([0.3])

  def check():  # a fresh qhess.hessian each time, as a user would write it
    return qhess.hessian(FROM_GLOBALS)(x)

  h = qhess.hessian(FROM_GLOBALS)  # and one function called after every change
  try:
    chex.assert_trees_all_close(check(), -jnp.cos(x)[None], **TOL)
    COEFF = 2.0  # a closed-over coefficient
    chex.assert_trees_all_close(check(), -2 * jnp.cos(x)[None], **TOL)
    MATRIX[:] = [[0, 1], [1, 0]]  # a QubitUnitary changed in place: X flips the sign
    chex.assert_trees_all_close(check(), 2 * jnp.cos(x)[None], **TOL)
    OBS_MATRIX[:] = [[0, 1], [1, 0]]  # a Hermitian changed in place: <X> = 0 after X·RX
    chex.assert_trees_all_close(check(), jnp.zeros((1, 1)), **TOL)
    MATRIX[:] = np.eye(2)
    OBS_MATRIX[:] = np.diag([1.0, -1.0])
    N_LAYERS = 3  # a layer count: RX(3x)
    chex.assert_trees_all_close(check(), -18 * jnp.cos(3 * x)[None], **TOL)
    chex.assert_trees_all_close(h(x), -18 * jnp.cos(3 * x)[None], **TOL)
  finally:
    COEFF, N_LAYERS = 1.0, 1
    MATRIX[:] = np.eye(2)
    OBS_MATRIX[:] = np.diag([1.0, -1.0])


def test_hessian_unchanged_circuit_traces_once(count_traces):
  h = qhess.hessian(RX_Z, batch_size=7)  # options of its own: a fresh cache entry
  for x in (X1, X1 + 0.1, X1 - 0.3):
    chex.assert_trees_all_close(h(x), -jnp.cos(x)[None], **TOL)
    chex.assert_trees_all_close(qhess.hessian(RX_Z, batch_size=7)(x), -jnp.cos(x)[None], **TOL)
  assert len(count_traces) == 1


# --------------------------------------------------------- 3. near-singular custom shifts


@pytest.mark.parametrize("circuit,x,option,shifts", [
    (RX_Z, X1, "diagonal_shifts", [(1e-9,)]),
    (RX_Z, X1, "diagonal_shifts", [(1e-8,)]),
    (RX_Z, X1, "diagonal_shifts", [(5e-10,)]),
    (EXAMPLE, X2, "diagonal_shifts", [(0.5,), (0.5, 0.5 + 1e-8)]),
    (EXAMPLE, X2, "off_diagonal_shifts", [(1e-9,), (0.5, 0.5 + 1e-8)]),
], ids=["1e-9", "1e-8", "5e-10", "cry", "off-diagonal"])
def test_near_singular_shifts_rejected(circuit, x, option, shifts):
  with pytest.raises(ValueError, match=rf"{option}\[\d\]: the shifts .* amplif.* above the "
                     r"limit of 1e-02: the result would be meaningless"):
    qhess.hessian(circuit, **{option: shifts})(x)
  with pytest.raises(ValueError, match=rf"{option}\[\d\]: the shifts .* amplif"):
    qhess.hessian_tapes(circuit.tape(x), **{option: shifts})


def test_poorly_conditioned_shifts_warn_and_ordinary_ones_are_silent():
  expected = -jnp.cos(X1)[None]
  with pytest.warns(qhess.IllConditionedShiftsWarning, match=r"diagonal_shifts\[0\]"):
    got = qhess.hessian(RX_Z, diagonal_shifts=[(1e-3,)])(X1)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-7)
  # Mixed entries: one poor rule times a good one loses fewer digits (κ·1, not κ²).
  with pytest.warns(qhess.IllConditionedShiftsWarning, match=r"off_diagonal_shifts\[0\]"):
    got = qhess.hessian(EXAMPLE, off_diagonal_shifts=[(1e-9,), (0.5, 1.0)])(X2)
  chex.assert_trees_all_close(got, _example_hessian(X2), rtol=0, atol=1e-5)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for shifts in ([(np.pi / 3,)], [(0.1,)], [(np.pi / 2,)]):  # (tapes: no compilation)
      tapes, post = qhess.hessian_tapes(RX_Z.tape(X1), diagonal_shifts=shifts)
      chex.assert_trees_all_close(post(qhess.execute(tapes)), expected, rtol=0, atol=1e-12)
    got = qhess.hessian(EXAMPLE, diagonal_shifts=[(0.25,), (0.1, 0.2)],
                        off_diagonal_shifts=[(0.5,), (0.2, 0.4)])(X2)
    chex.assert_trees_all_close(got, _example_hessian(X2), rtol=0, atol=1e-9)


# ------------------------------------------------------------- 4. post checks its results


def test_hessian_tapes_post_checks_each_result():
  tapes, post = qhess.hessian_tapes(TWO_OUTPUTS.tape(X2))
  results = qhess.execute(tapes)
  expected = qhess.hessian(TWO_OUTPUTS, hybrid=False)(X2)  # (post's own result: other tests)
  chex.assert_trees_all_close(post(results), expected, **TOL)
  swapped = list(results)
  swapped[3] = results[3][::-1]  # the outputs of one tape in the wrong order
  with pytest.raises(ValueError, match=r"`results\[3\]` output 0 has shape \(4,\); tape 3 "
                     r"outputs shape \(\)"):
    post(swapped)
  other = [(jnp.zeros(()),)] * len(tapes)  # one output per tape: another circuit's results
  with pytest.raises(ValueError, match=r"`results\[0\]` must hold 2 outputs"):
    post(other)
  with pytest.raises(TypeError, match=r"`post` takes a sequence of results.*got None"):
    post(None)


# ------------------------------------------------------------------- 7. bounded caches


def test_jit_cache_is_bounded(monkeypatch):
  # The cache, not the Hessian, is under test: a stand-in for the traced computation
  # keeps 300 traces cheap (eval_shape traces, fills the cache and compiles nothing).
  monkeypatch.setattr(_hessian, "_derivatives", lambda *a, **k: jnp.zeros((1, 1)))
  alive = []
  for _ in range(300):
    @qhess.circuit(wires=1)
    def fresh(x):
      qhess.RY(x[0], wires=0)
      return qhess.expval(qhess.Z(0))
    alive.append(weakref.ref(fresh))
    jax.eval_shape(qhess.hessian(fresh), X1)
    assert len(_cache._JIT_CACHE) <= _cache._JIT_CACHE_SIZE < 300
  gc.collect()
  # Evicted circuits (and their compiled functions) are released.
  assert sum(ref() is not None for ref in alive) <= _cache._JIT_CACHE_SIZE + 1


# ------------------------------------------------------------ 8. too large for memory


@qhess.circuit(wires=40)
def HUGE(x):
  qhess.RX(x[0], wires=0)
  return qhess.expval(qhess.Z(0))


@qhess.circuit(wires=20)
def WIDE(x):
  qhess.RX(x[0], wires=0)
  qhess.RX(x[1], wires=1)
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


def test_too_large_circuit_refused_before_running(monkeypatch):
  match = r"40 wires.* 16384 GiB per state.*no `batch_size` fits"
  for call in (lambda: qhess.hessian(HUGE)(X1), lambda: HUGE(X1),
               lambda: qhess.execute([HUGE.tape(X1)])):
    with pytest.raises(ValueError, match=match):
      call()
  # A batch that does not fit, where a smaller one would (20 wires: 16 MiB per state).
  # Independent evaluation: 6 circuits, 3 working copies of each state, nothing else.
  monkeypatch.setattr(_memory, "available_memory", lambda devices=None: 100 * 2**20)
  with pytest.raises(ValueError, match=r"`batch_size`=6 holds 6 states of 20 wires \(16 MiB "
                     r"each, complex128\) at once, about 288 MiB.*100 MiB.* `batch_size` <= 2 "
                     r"would fit"):
    qhess.hessian(WIDE, batch_size=6, evaluation="independent")(X2)


# ------------------------------------------------------------------- unclear errors


@qhess.circuit(wires=1)
def LAYERED(x, n_layers, axis="X"):
  for _ in range(n_layers):
    (qhess.RX if axis == "X" else qhess.RY)(x[0], wires=0)
  return qhess.expval(qhess.Z(0))


def test_static_non_array_arguments(count_traces):
  # Jitted: one compile where an eager jax.hessian through the kernel is dozens.
  expected = jax.jit(jax.hessian(functools.partial(LAYERED, n_layers=2, axis="Y")))(X1)
  chex.assert_trees_all_close(qhess.hessian(LAYERED)(X1, n_layers=2, axis="Y"), expected, **TOL)
  expected = -9 * jnp.cos(3 * X1)[None]  # RX(x) three times: <Z> = cos(3x)
  chex.assert_trees_all_close(qhess.hessian(LAYERED)(X1, n_layers=3), expected, **TOL)
  got = qhess.hessian(LAYERED)(X1, 3, "X")  # positional, not differentiated
  chex.assert_trees_all_close(got, expected, **TOL)
  got = qhess.hessian(LAYERED)(X1, n_layers=2, axis="Y")  # a repeated static value
  chex.assert_trees_all_close(got, -4 * jnp.cos(2 * X1)[None], **TOL)
  assert len(count_traces) == 3


@qhess.circuit(wires=1)
def BRANCHY(x):
  if x[0] > 0:
    qhess.RX(x[0], wires=0)
  return qhess.expval(qhess.Z(0))


def test_python_branch_on_parameter_clear_error():
  with pytest.raises(TypeError, match=r"traced.*jnp.where.*lax.cond") as info:
    qhess.hessian(BRANCHY)(X1)
  assert isinstance(info.value.__cause__, jax.errors.ConcretizationTypeError)


@qhess.circuit(wires=1)
def NO_GATES(x):
  del x
  return qhess.expval(qhess.Z(0))


def test_value_grad_and_hessian_without_gates():
  value, grad, hess = qhess.value_grad_and_hessian(NO_GATES)(X1)
  chex.assert_trees_all_close((value, grad, hess),
                              (1.0, jnp.zeros(1), jnp.zeros((1, 1))), **TOL)
  chex.assert_trees_all_close(hess, qhess.hessian(NO_GATES)(X1), **TOL)


@qhess.circuit(wires=1)
def NAN_COEFF(x):
  qhess.RX(x[0], wires=0)
  return qhess.expval(np.nan * qhess.Z(0))


@qhess.circuit(wires=1)
def JNP_COEFF(x):
  qhess.RX(x[0], wires=0)
  return qhess.expval(jnp.cos(0.3) * qhess.Z(0))


def test_observable_coefficients_nan_and_jnp(count_traces):
  for _ in range(2):
    assert bool(jnp.isnan(qhess.hessian(NAN_COEFF)(X1)).all())  # NaN in, NaN out
  assert len(count_traces) == 1  # NaN compares unequal: no recompilation on each call
  got = qhess.hessian(JNP_COEFF)(X1)
  chex.assert_trees_all_close(got, -np.cos(0.3) * jnp.cos(X1)[None], **TOL)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_execute_batch_size_validated(batch_size):
  with pytest.raises(ValueError, match=r"`batch_size` must be a positive int or None; got"):
    qhess.execute([RX_Z.tape(X1)], batch_size=batch_size)


def test_devices_validated():
  device = jax.devices()[0]
  with pytest.raises(ValueError, match=r"`devices` must be distinct; got .* 2 times"):
    qhess.hessian(RX_Z, devices=[device, device])
  with pytest.raises(TypeError, match=r"`devices` must be None, a jax device or a non-empty "
                     r"sequence of jax devices .*got \['cpu'\]"):
    qhess.hessian(RX_Z, devices=["cpu"])
  got = qhess.hessian(RX_Z, devices=device)(X1)  # a single device: a 1-tuple
  chex.assert_trees_all_close(got, -jnp.cos(X1)[None], **TOL)


def test_empty_gate_argnum_hybrid_and_post_none():
  for entry in (qhess.hessian, qhess.value_grad_and_hessian):
    got = entry(EXAMPLE, gate_argnum=[])(X2)
    hess = got if entry is qhess.hessian else got[2]
    chex.assert_trees_all_close(hess, jnp.zeros((2, 2)), **TOL)
  tapes, post = qhess.hessian_tapes(EXAMPLE.tape(X2), gate_argnum=[])
  assert tapes == []
  chex.assert_trees_all_close(post([]), jnp.zeros((2, 2)), **TOL)
  with pytest.raises(TypeError, match=r"`hybrid` must be a bool; got 'no'"):
    qhess.hessian(EXAMPLE, hybrid="no")
  with pytest.raises(TypeError, match=r"`post` takes a sequence of results.*got None"):
    post(None)


def test_hessian_tapes_traced_clear_error():
  match = r"hessian_tapes is an eager, host-side function.*traced"
  for transform in (jax.jit, jax.vmap, jax.grad):
    fn = lambda x: qhess.hessian_tapes(RX_Z)(x)[1](None)  # noqa: E731
    x = jnp.stack([X1, X1]) if transform is jax.vmap else X1
    with pytest.raises(TypeError, match=match):
      transform(lambda x: jnp.sum(fn(x)))(x)
