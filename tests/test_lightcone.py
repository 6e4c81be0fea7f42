"""Light-cone pruning: a gate argument whose gate cannot reach a measured wire gets no
circuits and a zero row and column, as in PennyLane's ``param_shift_hessian``.

Counts are compared with PennyLane's tapes (the transform only, nothing executed) and
Hessians with ``jax.hessian`` of the simulated circuit.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.circuits.tape import MeasurementSpec, Operation, Tape
from qhess.derivatives import adjoint as _adjoint
from qhess.derivatives import pipeline as _pipeline
from qhess.shift.lightcone import light_cone, pruned_tape, reachable_params

qml = pytest.importorskip("pennylane")

ATOL = 1e-10


# ------------------------------------------------------------------ circuits, both sides

def _apply(lib, ops, x):
  """Applies ``(name, wires)`` ops with arguments from ``x`` in order; returns nothing."""
  k = 0
  for name, wires, *extra in ops:
    n = N_ARGS.get(name, 0)
    getattr(lib, name)(*[x[k + i] for i in range(n)], *extra, wires=wires)
    k += n


N_ARGS = {"RX": 1, "RY": 1, "RZ": 1, "CRX": 1, "CRY": 1, "IsingXX": 1, "Rot": 3}


def _observable(lib, terms):
  """Σ coefficient · (product of Paulis), in qhess or in PennyLane."""
  return functools.reduce(operator.add, (
      coeff * functools.reduce(operator.matmul,
                               [getattr(lib, c)(w) for c, w in zip(word, wires)])
      for coeff, word, wires in terms))


def _pair(n_wires, ops, terms):
  """The qhess circuit of a flat argument vector and a PennyLane tape maker."""
  @qhess.circuit(wires=n_wires)
  def circuit(x):
    _apply(qhess, ops, x)
    return qhess.expval(_observable(qhess, terms))

  def pl_tape(x):
    with qml.queuing.AnnotatedQueue() as q:
      _apply(qml, ops, [float(v) for v in x])
    tape = qml.tape.QuantumScript(q.queue, [qml.expval(_observable(qml, terms))])
    tape.trainable_params = [i for i, (_, p) in enumerate(_gate_data(tape)) if p]
    return tape

  return circuit, pl_tape


def _gate_data(tape):
  """(index, is a gate argument) per datum of a PennyLane tape (channels' are not)."""
  out = []
  for op in tape.operations:
    out += [(len(out), op.name in N_ARGS)] * len(op.data)
  return out


def _pl_count(pl_tape, x) -> int:
  tapes, _ = qml.gradients.param_shift_hessian(pl_tape(x))
  return len(tapes)


def _check_pruned(h, pruned):
  """The pruned rows and columns are exactly zero."""
  h = np.asarray(h)
  assert pruned.any()
  assert np.all(h[..., pruned, :] == 0) and np.all(h[..., :, pruned] == 0)


# The issue's examples: on 4 wires, an RX on wire 3 after wire 3's last interaction
# (none, or a CRX and a CRY that reach the measured wires) cannot reach wires 0-2.
_BASE = [("RX", 0), ("RY", 1), ("CNOT", (0, 1)), ("RY", 2), ("CNOT", (1, 2)), ("RX", 3),
         ("RZ", 1), ("IsingXX", (0, 2))]
EXAMPLES = {
    "rx": (_BASE, 46),
    "rx_crx_cry": ([("CRX", (3, 2)), ("CRY", (3, 0))] + _BASE, 148),
}
_TERMS = [(1.0, "ZZ", (0, 1)), (0.5, "X", (2,))]


@pytest.mark.parametrize("name", EXAMPLES)
def test_issue_examples_count_as_pennylane(name):
  ops, expected = EXAMPLES[name]
  circuit, pl_tape = _pair(4, ops, _TERMS)
  p = sum(N_ARGS.get(n, 0) for n, _ in ops)
  x = np.random.default_rng(0).uniform(-np.pi, np.pi, p)
  tapes, post = qhess.hessian_tapes(circuit.tape(jnp.asarray(x)))
  # Before pruning 67 and 185 tapes; PennyLane's are 46 and 148.
  assert len(tapes) == _pl_count(pl_tape, x) == expected
  assert qhess.optimize.count_circuits(qhess.hessian, circuit, hybrid=False,
                                       off_diagonal_rule="product")(x).points == expected
  pruned = ~reachable_params(circuit.tape(jnp.asarray(x)))
  assert np.nonzero(pruned)[0].tolist() == [p - 3]  # the RX on wire 3
  want = jax.hessian(circuit)(jnp.asarray(x))
  for got in (post(qhess.execute(tapes)), qhess.hessian(circuit)(jnp.asarray(x))):
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    _check_pruned(got, pruned)


def _random_case(seed):
  """4 wires, 1-2 measured wires, gates everywhere: some cannot reach the measurement."""
  rng = np.random.default_rng(seed)
  names = ["RX", "RY", "RZ", "CRX", "CRY", "IsingXX", "CNOT", "Rot"]
  ops = []
  for _ in range(9):
    name = names[rng.integers(len(names))]
    two = name in ("CRX", "CRY", "IsingXX", "CNOT")
    wires = tuple(int(w) for w in rng.choice(4, 2 if two else 1, replace=False))
    ops.append((name, wires if two else wires[0]))
  ops.append(("RY", 3))  # wire 3 is never measured: this one is always pruned
  measured = [int(w) for w in rng.choice(3, rng.integers(1, 3), replace=False)]
  terms = [(1.0, "".join(rng.choice(list("XYZ"), len(measured))), tuple(measured))]
  return ops, terms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_circuits_count_as_pennylane(seed):
  ops, terms = _random_case(seed)
  circuit, pl_tape = _pair(4, ops, terms)
  p = sum(N_ARGS.get(n, 0) for n, _ in ops)
  x = np.random.default_rng(100 + seed).uniform(-np.pi, np.pi, p)
  tapes, post = qhess.hessian_tapes(circuit.tape(jnp.asarray(x)))
  assert len(tapes) == _pl_count(pl_tape, x)
  got = post(qhess.execute(tapes))
  np.testing.assert_allclose(got, jax.hessian(circuit)(jnp.asarray(x)), rtol=0, atol=ATOL)
  _check_pruned(got, ~reachable_params(circuit.tape(jnp.asarray(x))))


# ------------------------------------------------------------ the walk, without running

def test_light_cone_walk():
  ops = (Operation("RX", (3,), (0,)), Operation("CNOT", (3, 2), ()),
         Operation("RY", (3,), (1,)),  # after wire 3's last interaction: outside
         Operation("DepolarizingChannel", (3,), (), 0),  # on an unmeasured wire: outside
         Operation("RZ", (1,), (2,)),  # on an unmeasured wire: outside
         Operation("CRX", (2, 0), (3,)), Operation("RY", (0,), (4,)),
         Operation("ReadoutError", (0, 1, 2, 3), (), (0.1,) * 4))  # spreads nothing
  tape = Tape(ops, (MeasurementSpec("probs", wires=(0,)),), jnp.zeros(5), (), 4, False)
  assert light_cone(ops, tape.measurements).tolist() == [
      True, True, False, False, False, True, True, True]
  assert reachable_params(tape).tolist() == [True, False, False, True, True]
  assert [op.name for op in pruned_tape(tape).operations] == [
      "RX", "CNOT", "CRX", "RY", "ReadoutError"]


# ----------------------------------------------------------- counts, gradient, hybrid

@qhess.circuit(wires=3)
def _hybrid(x):
  qhess.RY(x[0], wires=0)
  qhess.RX(jnp.sin(x[1]), wires=2)  # non-linear, but outside the cone of wires 0 and 1
  qhess.CNOT(wires=(0, 1))
  qhess.RX(x[2], wires=1)
  qhess.RY(x[0] * 0.5, wires=2)  # x[0] also feeds an unreachable gate
  return qhess.expval(qhess.Z(0) @ qhess.Y(1))


def test_counts_equal_what_runs(monkeypatch):
  ran = []
  evaluate = _pipeline._evaluate
  monkeypatch.setattr(_pipeline, "_evaluate", lambda tape, plan, *a: (
      ran.append(plan.n_points) or evaluate(tape, plan, *a)))
  x = jnp.array([0.3, -0.7, 1.1])
  for fn in (qhess.hessian, qhess.value_grad_and_hessian):
    count = qhess.optimize.count_circuits(fn, _hybrid)(x)
    out = fn(_hybrid)(x)
    assert ran[-1] == count.points
    want = jax.hessian(_hybrid)(x)
    h = out if fn is qhess.hessian else out[2]
    np.testing.assert_allclose(h, want, rtol=0, atol=ATOL)
    assert np.all(np.asarray(h)[1] == 0) and np.all(np.asarray(h)[:, 1] == 0)
  # Two reachable single-frequency arguments (x[0] and x[2]), affine: (3P² - P + 2)/2
  # points for the Hessian (the sin of the pruned one needs no first-order points);
  # 1 + 2P + 3P(P - 1)/2 with the gradient.
  assert ran == [6, 8]
  value, grad, hess = out
  assert grad[1] == 0
  np.testing.assert_allclose(grad, jax.grad(_hybrid)(x), rtol=0, atol=ATOL)
  np.testing.assert_allclose(value, _hybrid(x), rtol=0, atol=ATOL)


def test_value_grad_and_hessian_zero_for_pruned_gate_arguments():
  ops, _ = EXAMPLES["rx"]
  circuit, _ = _pair(4, ops, _TERMS)
  x = jnp.asarray(np.random.default_rng(3).uniform(-np.pi, np.pi, 6))
  value, grad, hess = qhess.value_grad_and_hessian(circuit, hybrid=False)(x)
  assert grad[3] == 0  # the RX on wire 3
  _check_pruned(hess, np.arange(6) == 3)
  np.testing.assert_allclose(grad, jax.grad(circuit)(x), rtol=0, atol=ATOL)
  np.testing.assert_allclose(hess, jax.hessian(circuit)(x), rtol=0, atol=ATOL)


# --------------------------------------------------------------------------- channels

_NOISY_OPS = [("RX", 0), ("RY", 2), ("DepolarizingChannel", 2, 0.1),  # RY(2) reaches 0:
              ("PauliError", (2, 0), "XZ", 0.2),  # through the two-wire channel
              ("RX", 1), ("AmplitudeDamping", 1, 0.3),  # wire 1: never measured
              ("CRY", (1, 2)), ("RZ", 2)]  # both outside: after wire 2's last contact


def _noisy_apply(lib, x):
  k = 0
  for name, wires, *extra in _NOISY_OPS:
    n = N_ARGS.get(name, 0)
    if name == "PauliError":
      lib.PauliError(extra[0], extra[1], wires=wires)
    else:
      getattr(lib, name)(*[x[k + i] for i in range(n)], *extra, wires=wires)
    k += n


@qhess.circuit(wires=3)
def _noisy(x):
  _noisy_apply(qhess, x)
  return qhess.expval(qhess.Z(0) + 0.5 * qhess.X(0))


def test_channels():
  x = np.array([0.4, -0.9, 0.7, 1.3, 0.2])
  with qml.queuing.AnnotatedQueue() as q:
    _noisy_apply(qml, [float(v) for v in x])
  pl = qml.tape.QuantumScript(q.queue, [qml.expval(qml.Z(0) + 0.5 * qml.X(0))])
  pl.trainable_params = [i for i, (_, g) in enumerate(_gate_data(pl)) if g]
  tapes, post = qhess.hessian_tapes(_noisy.tape(jnp.asarray(x)))
  assert len(tapes) == len(qml.gradients.param_shift_hessian(pl)[0]) == 1 + 2 + 2 * 2
  pruned = np.array([False, False, True, True, True])
  want = jax.hessian(_noisy)(jnp.asarray(x))
  for got in (post(qhess.execute(tapes)), qhess.hessian(_noisy)(jnp.asarray(x))):
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    _check_pruned(got, pruned)
  # Readout error flips each measured bit on its own wire: it brings in nothing.
  noisy = qhess.with_noise(_noisy, readout=0.05)
  assert reachable_params(noisy.tape(jnp.asarray(x))).tolist() == [True, True] + [False] * 3
  assert len(qhess.hessian_tapes(noisy.tape(jnp.asarray(x)))[0]) == len(tapes)
  # The evaluated tape keeps the gates and channels inside the cone only.
  assert [op.name for op in pruned_tape(_noisy.tape(jnp.asarray(x))).operations] == [
      "RX", "RY", "DepolarizingChannel", "PauliError"]


# ---------------------------------------------------------------------------- adjoint

def test_adjoint_skips_pruned_arguments(monkeypatch):
  rows_seen = []
  row_points = _adjoint.row_points
  monkeypatch.setattr(_adjoint, "row_points", lambda spectra, rows: (
      rows_seen.append(list(rows)) or row_points(spectra, rows)))
  ops, _ = EXAMPLES["rx_crx_cry"]
  circuit, _ = _pair(4, ops, _TERMS)
  x = jnp.asarray(np.random.default_rng(4).uniform(-np.pi, np.pi, 8))
  h = qhess.hessian(circuit, evaluation="adjoint")(x)
  assert rows_seen == [[0, 1, 2, 3, 4, 6, 7]]  # not 5, the RX on wire 3
  np.testing.assert_allclose(h, jax.hessian(circuit)(x), rtol=0, atol=ATOL)
  _check_pruned(h, np.arange(8) == 5)

  @qhess.circuit(wires=2)
  def noise_elsewhere(x):  # the channel cannot reach wire 0: a pure state to un-compute
    qhess.RX(x[0], wires=0)
    qhess.RY(x[1], wires=1)
    qhess.DepolarizingChannel(0.1, wires=1)
    return qhess.expval(qhess.Z(0))

  x = jnp.array([0.4, 0.2])
  h = qhess.hessian(noise_elsewhere, evaluation="adjoint")(x)
  np.testing.assert_allclose(h, [[-np.cos(0.4), 0], [0, 0]], rtol=0, atol=ATOL)
