"""The statevector kernel against the independent NumPy reference (``_reference.py``)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess
from qhess.simulate import evolve as _evolve
from qhess.simulate import kernel as _kernel
from qhess.simulate import measure as _measure

ATOL = {True: 1e-10, False: 1e-5}  # by x64


def _circuit_case(seed: int):
  """A random circuit over every gate that fits on 1..5 wires (cycling with the seed)."""
  rng = np.random.default_rng(seed)
  n = 1 + seed % 5
  return rng, n, ref.random_circuit(rng, n, n_extra=1)


def _tape(ops, n, measurements=None):
  measurements = qhess.probs() if measurements is None else measurements
  return ref.qhess_circuit(ops, n, measurements).tape(jnp.asarray(ref.flat_params(ops)))


def _jit_final_state(tape):
  # One compile per structure costs about half of running `final_state` op by op (each
  # new op shape is a compile of its own); the eager path is checked gate by gate below.
  return jax.jit(lambda p, c: _kernel.final_state(
      dataclasses.replace(tape, params=p, consts=c)))(tape.params, tape.consts)


def test_random_circuits_cover_every_gate():
  covered = {name for seed in range(5) for name, _, _ in _circuit_case(seed)[2]}
  assert covered == set(ref.GATE_NAMES)
  # The catalogue's other entries: conjugated gates and channels (mixed states), and the
  # generator gates (checked against PennyLane in test_generator_gates.py).
  assert covered | set(ref.GENERATOR_GATES) == set(qhess.circuits.catalogue.GATE_NAMES)


@pytest.mark.parametrize("seed", range(15))
def test_final_state_matches_reference(seed):
  _, n, ops = _circuit_case(seed)
  got = _jit_final_state(_tape(ops, n))
  expected = ref.circuit_state(ops, n)
  assert got.dtype == jnp.complex128
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_final_state_float32_matches_reference(seed, float32):
  _, n, ops = _circuit_case(seed)
  tape = _tape(ops, n)
  got = _jit_final_state(tape)
  expected = ref.circuit_state(ops, n)
  assert tape.params.dtype == jnp.float32
  assert got.dtype == jnp.complex64
  chex.assert_trees_all_close(got, expected.astype(np.complex64), rtol=0, atol=1e-5)


def _prep_ops(n):
  """A layer after which every amplitude is nonzero and has its own phase."""
  return ([("RY", (w,), (0.3 + 0.4 * w,)) for w in range(n)]
          + [("RZ", (w,), (0.7 - 0.2 * w,)) for w in range(n)])


@pytest.mark.parametrize("name", ref.GATE_NAMES)
def test_gate_alone_matches_reference_on_decreasing_wires(name, rng):
  # Each gate on its own, its wires in decreasing order, on a generic state: catches a
  # wrong wire order or a control/target mix-up directly.
  n = 4
  op = ref.random_op(rng, name, n)
  op = (op[0], tuple(sorted(op[1], reverse=True)), op[2])
  ops = _prep_ops(n) + [op]
  got = _kernel.final_state(_tape(ops, n))
  chex.assert_trees_all_close(got, ref.circuit_state(ops, n), rtol=0, atol=1e-12)


def test_wide_gates_match_reference(rng):
  # QubitUnitary on more than 3 wires takes the tensordot path of the kernel.
  n = 5
  ops = _prep_ops(n) + [
      ("QubitUnitary", (3, 0, 4, 1), (ref.random_unitary(rng, 16),)),
      ("MultiRZ", (4, 2, 0, 1, 3), (0.9,)),
      ("PauliRot", (1, 3, 0, 2, 4), (-1.3, "XYZIY")),
      ("QubitUnitary", (2, 4, 1), (ref.random_unitary(rng, 8),)),
  ]
  got = _kernel.final_state(_tape(ops, n))
  chex.assert_trees_all_close(got, ref.circuit_state(ops, n), rtol=0, atol=1e-12)


def _check_measurements(ops, n, expvals, variances, probs_wires, rng, x64):
  """Runs ``ops`` with these measurements at 4 parameter sets in one batched kernel call
  (one compile per structure) and compares every output with the reference."""
  measurements = (tuple(qhess.expval(ref.qhess_observable(o)) for o in expvals)
                  + tuple(qhess.var(ref.qhess_observable(o)) for o in variances)
                  + tuple(qhess.probs(wires=w) for w in probs_wires))
  tape = _tape(ops, n, measurements)
  params = ref.flat_params(ops) + rng.uniform(-np.pi, np.pi, size=(4, tape.num_params))
  raw = _kernel.run(_kernel.kernel_key(tape),
                         jnp.asarray(params, dtype=tape.params.dtype), tape.consts)
  got = tape.finalize(raw)  # a tuple; each output has a leading batch axis of 4
  float_dtype = jnp.float64 if x64 else jnp.float32
  assert raw.dtype == float_dtype
  assert all(g.dtype == float_dtype for g in got)
  expected = []
  for p in params:
    state = ref.circuit_state(ref.with_params(ops, p), n)
    expected.append([ref.ref_expval(state, o, n) for o in expvals]
                    + [ref.ref_var(state, o, n) for o in variances]
                    + [ref.ref_probs(state, w, n) for w in probs_wires])
  expected = tuple(np.stack(e) for e in zip(*expected))
  chex.assert_trees_all_close(got, expected, rtol=0, atol=ATOL[x64])


def _unsorted_subset(rng, n):
  """At least two wires in decreasing (so non-sorted) order, e.g. ``(2, 0)``."""
  subset = rng.choice(n, size=int(rng.integers(2, n + 1)), replace=False)
  return tuple(int(w) for w in sorted(subset, reverse=True))


# Each structure costs one compile, so measurements are checked on fewer random circuits
# than states, each at several parameter sets; the observable kinds rotate with the seed
# (seeds 0 and 2 alone cover every kind, so float32 runs on those).
@pytest.mark.parametrize("seed, x64", [
    pytest.param(seed, x64, id=f"{'float64' if x64 else 'float32'}-{seed}")
    for seed, x64 in [(0, True), (1, True), (2, True), (3, True), (4, True), (0, False),
                      (2, False)]
], indirect=["x64"])
def test_measurements_match_reference(seed, x64):
  rng = np.random.default_rng(100 + seed)
  n = 2 + seed % 4
  ops = ref.random_circuit(rng, n, n_extra=0)
  kinds = ref.OBSERVABLE_KINDS
  expvals = [ref.random_observable(rng, n, kinds[seed % 4])]
  variances = [ref.random_observable(rng, n, kinds[(seed + 1) % 4])]
  probs_wires = [_unsorted_subset(rng, n), (int(rng.integers(n)),)]
  _check_measurements(ops, n, expvals, variances, probs_wires, rng, x64)


def _entangling_ops(rng, n):
  """A short circuit whose final state is generic: Rot layer, CNOT ring, Rot layer."""
  angles = rng.uniform(-2 * np.pi, 2 * np.pi, size=(2, n, 3))
  return ([("Rot", (w,), tuple(angles[0, w])) for w in range(n)]
          + [("CNOT", (w, (w + 1) % n), ()) for w in range(n)]
          + [("Rot", (w,), tuple(angles[1, w])) for w in range(n)])


def test_observables_match_reference(rng):
  # Every observable kind, two expvals and two variances of each, on one circuit: the
  # gates compile once.
  n = 4
  ops = _entangling_ops(rng, n)
  expvals, variances = [], []
  for kind in ref.OBSERVABLE_KINDS:
    expvals += [ref.random_observable(rng, n, kind) for _ in range(2)]
    variances += [ref.random_observable(rng, n, kind) for _ in range(2)]
  # Words flipping the same wires are summed into one phase pattern by the kernel: XX,
  # YY, XY and YX on a bond (real and imaginary patterns mixed), with Z letters riding
  # along.
  bond = [("prod", (("P", a, 2), ("P", b, 0))) for a in "XY" for b in "XY"]
  expvals.append(("sum", tuple((0.3 + 0.2 * i, o) for i, o in enumerate(bond))
                  + ((-0.7, ("prod", (("P", "Y", 0), ("P", "Z", 3), ("P", "X", 2)))),)))
  probs_wires = [tuple(range(n)), _unsorted_subset(rng, n)]
  _check_measurements(ops, n, expvals, variances, probs_wires, rng, x64=True)


def test_probs_wire_order_on_a_basis_state():
  # |q0 q1 q2> = |1 0 1>: probs(wires=(2, 0)) indexes bits (q2, q0) = (1, 1) -> 3.
  @qhess.circuit(wires=3)
  def f():
    qhess.PauliX(wires=0)
    qhess.PauliX(wires=2)
    return qhess.probs(wires=(2, 0)), qhess.probs(wires=(1, 2)), qhess.probs()

  got = f()
  expected = (np.eye(4)[3], np.eye(4)[1], np.eye(8)[5])
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


def _small_tape():
  @qhess.circuit(wires=3)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 2))
    qhess.Rot(x[2], x[3], x[4], wires=1)
    qhess.IsingXX(x[5], wires=(1, 2))
    return qhess.var(qhess.X(2) + 0.5 * qhess.Y(0) @ qhess.Z(1)), qhess.probs(wires=(1, 0))

  return f.tape(jnp.zeros(6))


@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_run_chunked_equals_unchunked(batch_size, rng):
  tape = _small_tape()
  key = _kernel.kernel_key(tape)
  params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(7, tape.num_params)))
  got = _kernel.run(key, params, tape.consts, batch_size=batch_size)
  expected = _kernel.run(key, params, tape.consts)
  assert got.shape == expected.shape == (7, 2 + 4)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-12)


@pytest.fixture
def count_traces(monkeypatch):
  """Replaces `simulate_raw` by a wrapper counting how often the kernel is traced."""
  calls = []
  original = _kernel.simulate_raw

  def counting(key, params, consts):
    calls.append(key)
    return original(key, params, consts)

  monkeypatch.setattr(_kernel, "simulate_raw", counting)
  return calls


def _trace_circuit(coeff):
  # The observable's coefficient is part of the structure: a value used by no other test
  # gives a structure that has not been compiled before.
  @qhess.circuit(wires=2)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    qhess.U3(x[2], x[3], x[4], wires=1)
    return qhess.expval(coeff * qhess.Z(0) @ qhess.X(1)), qhess.probs(wires=1)

  return f


def test_kernel_traced_once_per_structure(count_traces, rng):
  f = _trace_circuit(0.318309)
  for _ in range(3):
    f(jnp.asarray(rng.uniform(size=5)))
  assert len(count_traces) == 1
  jitted = jax.jit(f)
  for _ in range(3):
    jitted(jnp.asarray(rng.uniform(size=5)))
  jax.grad(lambda x: f(x)[0])(jnp.asarray(rng.uniform(size=5)))
  assert len(count_traces) == 1
  _trace_circuit(0.271828)(jnp.asarray(rng.uniform(size=5)))  # new structure
  assert len(count_traces) == 2


def test_run_traced_once_for_new_parameter_batches(count_traces, rng):
  tape = _trace_circuit(0.577216).tape(jnp.zeros(5))
  key = _kernel.kernel_key(tape)
  for _ in range(3):
    _kernel.run(key, jnp.asarray(rng.uniform(size=(4, 5))), tape.consts)
  assert len(count_traces) == 1


_CLASSICAL = ("PauliX", "PauliY", "PauliZ", "S", "T", "CNOT", "CY", "CZ", "SWAP", "Toffoli")


def _classical_tail(rng, n, length=8):
  """Gates that do not commute (so their order matters), then random classical ones."""
  fixed = [("CNOT", (0, 1), ()), ("SWAP", (1, 2), ()), ("CNOT", (1, 0), ()),
           ("CY", (2, 0), ()), ("PauliX", (1,), ())]
  return fixed + [ref.random_op(rng, str(name), n) for name in rng.choice(_CLASSICAL, size=length)]


@pytest.mark.parametrize("x64", [True, False], indirect=True)
def test_classical_tail_folded_into_probabilities(rng, x64):
  # Final permutation and diagonal gates are not applied to the state when every output
  # is a function of the probabilities: the observable's diagonal (or the probabilities)
  # is permuted instead. The results must not change.
  n = 4
  ops = _entangling_ops(rng, n) + _classical_tail(rng, n)
  z_sum = ("sum", ((0.7, ("prod", (("P", "Z", 0), ("P", "Z", 2)))), (-0.4, ("P", "Z", 3)),
                   (0.25, ("P", "I", 1))))
  tape = _tape(ops, n, (qhess.expval(ref.qhess_observable(z_sum)),))
  assert _measure.split_tail(tape.operations, tape.raw_measurements) == 3 * n
  _check_measurements(ops, n, [z_sum, ("P", "Z", 1)], [], [_unsorted_subset(rng, n), (2,)],
                      rng, x64)


def test_classical_tail_kept_for_other_measurements(rng):
  n = 3
  ops = _entangling_ops(rng, n) + _classical_tail(rng, n, length=4)
  for m in [qhess.expval(qhess.X(0)), qhess.var(qhess.Z(0))]:
    tape = _tape(ops, n, (qhess.expval(qhess.Z(1)), m))
    assert _measure.split_tail(tape.operations, tape.raw_measurements) == len(ops)
  _check_measurements(ops, n, [("P", "X", 0), ("P", "Z", 1)], [("P", "Z", 2)], [(1, 0)],
                      rng, x64=True)


def test_fused_controlled_gates_match_reference(rng):
  # Pending single-qubit gates on a controlled gate's target are fused into it, the
  # control's are applied first; gates on other wires in between must not matter.
  ops = [("Hadamard", (0,), ()), ("RY", (1,), (0.3,)), ("RZ", (2,), (1.1,)),
         ("RZ", (1,), (-0.7,)), ("PauliX", (1,), ()), ("CRX", (0, 1), (0.9,)),
         ("RX", (1,), (0.4,)), ("S", (0,), ()), ("CY", (0, 1), ()), ("Rot", (2,), (0.1, 0.2, 0.3)),
         ("CRY", (2, 0), (-1.3,)), ("CNOT", (1, 2), ()), ("CNOT", (2, 1), ()),
         ("U3", (1,), (0.5, -0.6, 0.7)), ("Toffoli", (0, 1, 2), ())]
  got = _jit_final_state(_tape(ops, 3))
  chex.assert_trees_all_close(got, ref.circuit_state(ops, 3), rtol=0, atol=1e-12)


def test_fused_flip_groups_match_reference(rng):
  # Multi-qubit Pauli rotations flipping the same wires and diagonal gates, on at most
  # four wires together, are one pass (`_apply_flip_group`); single-qubit gates before,
  # between and after them, and gates on other wires, keep their order.
  ops = [("Hadamard", (0,), ()), ("RY", (3,), (0.4,)), ("RX", (1,), (0.2,)),
         ("IsingXX", (0, 1), (0.3,)), ("IsingYY", (1, 0), (-1.2,)),
         ("PauliRot", (0, 1, 2), (0.8, "XYZ")), ("RY", (4,), (0.6,)),
         ("IsingZZ", (2, 3), (1.7,)), ("CRZ", (3, 0), (-0.4,)), ("RX", (0,), (0.9,)),
         ("MultiRZ", (1, 2, 4), (0.5,)), ("IsingXX", (1, 2), (0.7,)),
         ("PauliRot", (2, 1), (-0.3, "YX")), ("ControlledPhaseShift", (0, 2), (1.1,)),
         ("IsingYY", (2, 1), (0.25,)), ("PauliRot", (3, 4), (0.6, "XY")),
         ("IsingZZ", (0, 4), (0.35,)), ("CNOT", (3, 4), ())]
  tape = _tape(ops, 5)
  got = _jit_final_state(tape)
  chex.assert_trees_all_close(got, ref.circuit_state(ops, 5), rtol=0, atol=1e-12)
  # XX·YY on a bond, then ZZ phases on it: one pass for all three.
  bond = _tape([("IsingXX", (0, 1), (0.3,)), ("IsingYY", (0, 1), (0.5,)),
                ("IsingZZ", (1, 0), (0.7,))], 2)
  assert _evolve.count_passes(bond.operations, 2) == 1


def test_hardware_efficient_layer_is_one_pass_per_wire():
  # Per wire RY then RZ, then CNOT(w, w+1): wire 0's gates are one pass, and each CNOT
  # is fused with its target's pending RZ·RY (one pass for both).
  n = 5

  @qhess.circuit(wires=n)
  def layer(x):
    for w in range(n):
      qhess.RY(x[2 * w], wires=w)
      qhess.RZ(x[2 * w + 1], wires=w)
    for w in range(n - 1):
      qhess.CNOT(wires=(w, w + 1))
    return qhess.probs()

  tape = layer.tape(jnp.zeros(2 * n))
  assert _evolve.count_passes(tape.operations, n) == n
  assert _evolve.count_passes(tape.operations[:2 * n], n) == n  # no CNOTs: n passes


def _layered_ops(rng, n_layers):
  ops = []
  for _ in range(n_layers):
    a = rng.uniform(-np.pi, np.pi, size=5)
    ops += [("RX", (0,), (a[0],)), ("Rot", (2,), tuple(a[1:4])), ("CRY", (1, 2), (a[4],)),
            ("CNOT", (0, 1), ()), ("S", (2,), ())]
  return ops


def test_repeated_blocks_found():
  ops = _tape(_layered_ops(np.random.default_rng(0), 6), 3).operations
  assert _evolve.repeated_blocks(ops) == [(0, 5, 6)]
  assert _evolve.repeated_blocks(ops[3:]) == [(0, 5, 5)]  # from mid-layer on
  assert _evolve.repeated_blocks(ops[:15]) == []  # too few gates to be worth a scan
  hea = [("RY", (w,), (0.1,)) for w in range(4)] * 10  # one layer of 4 gates, 10 times
  assert _evolve.repeated_blocks(_tape(hea, 4).operations) == [(0, 4, 10)]


@pytest.mark.parametrize("x64", [True, False], indirect=True)
def test_repeated_blocks_scan_matches_reference(rng, x64):
  # Two gates before the layers and one after: the scan sits between unrolled gates.
  ops = ([("Hadamard", (1,), ()), ("RZ", (2,), (0.3,))] + _layered_ops(rng, 7)
         + [("IsingXX", (0, 2), (0.8,))])
  tape = _tape(ops, 3)
  assert [r[1:] for r in _evolve.repeated_blocks(tape.operations)] == [(5, 7)]
  jaxpr = jax.make_jaxpr(lambda p: _evolve.evolve(tape.operations, 3, p, ()))(tape.params)
  assert any(e.primitive.name == "scan" for e in jaxpr.eqns)
  _check_measurements(ops, 3, [("P", "Z", 1), ("P", "X", 2)], [], [(2, 0)], rng, x64)
