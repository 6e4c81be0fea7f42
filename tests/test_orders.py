"""Speed structure that must not depend on the textual gate order, and the cost model.

Timings live in bench/; here the static quantities behind them are asserted: passes over
the state after fusion, the prefix-sharing schedule's gate applications, and which
evaluation the cost model picks.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.simulate import evolve as _evolve
from qhess.derivatives import options as _options
from qhess.derivatives import evaluate as _evaluate


def _hea(n: int, layers: int, order: str) -> qhess.Circuit:
  """The hardware-efficient ansatz; ``order`` "A": RY, RZ wire by wire, "B": RY on every
  wire, then RZ on every wire. Same gates, same Hessian."""

  @qhess.circuit(wires=n)
  def hea(x):
    for l in range(layers):
      if order == "A":
        for w in range(n):
          qhess.RY(x[l, w, 0], wires=w)
          qhess.RZ(x[l, w, 1], wires=w)
      else:
        for w in range(n):
          qhess.RY(x[l, w, 0], wires=w)
        for w in range(n):
          qhess.RZ(x[l, w, 1], wires=w)
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(n - 1))

  return hea


def _schedule(circuit, x, rule="diagonal"):
  tape = circuit.tape(x)
  opts = _options._Options()
  plan = _evaluate._plan_for(tape, opts, np.ones(tape.num_params, dtype=bool),
                            need_value=False, need_grad=False, share=False, rule=rule)
  return tape, plan, opts, _evaluate._schedule_for(tape, plan)


@pytest.mark.parametrize("order", ["A", "B"])
def test_both_hea_orders_make_one_pass_per_wire_and_layer(order):
  n, layers = 5, 2
  tape = _hea(n, layers, order).tape(jnp.zeros((layers, n, 2)))
  assert _evolve.count_passes(tape.operations, n) == n * layers


def test_both_hea_orders_share_the_same_gate_applications():
  n, layers = 5, 2
  x = jnp.zeros((layers, n, 2))
  counts = []
  for order in "AB":
    _, plan, _, schedule = _schedule(_hea(n, layers, order), x)
    counts.append((plan.n_points, schedule.gate_applications,
                   schedule.independent_applications))
  assert counts[0] == counts[1]
  n_points, shared, independent = counts[0]
  assert n_points == (3 * 20**2 - 20 + 2) // 2  # P = 20, the diagonal rule's count
  assert shared < 0.6 * independent


def test_cost_model_shares_only_when_it_pays(monkeypatch):
  monkeypatch.undo()  # the conftest forces sharing; this test checks the real thresholds
  # Wide enough: sharing saves ~half the gate applications of 2**10 amplitudes each.
  tape, plan, opts, schedule = _schedule(_hea(10, 2, "B"), jnp.zeros((2, 10, 2)))
  assert _evaluate._shared_schedule(tape, plan, opts) == schedule
  # Tiny: milliseconds either way, so the faster-compiling independent evaluation.
  tape, plan, opts, _ = _schedule(_hea(2, 1, "A"), jnp.zeros((1, 2, 2)))
  assert _evaluate._shared_schedule(tape, plan, opts) is None
  # Wide, but the shifted gates come first: no prefix to share.
  @qhess.circuit(wires=10)
  def early(x):
    qhess.RX(x[0], wires=0)
    qhess.RY(x[1], wires=1)
    for w in range(10):
      qhess.Hadamard(wires=w)
    for w in range(9):
      qhess.CNOT(wires=(w, w + 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))

  tape, plan, opts, schedule = _schedule(early, jnp.zeros(2))
  assert schedule.gate_applications > 0.9 * schedule.independent_applications
  assert _evaluate._shared_schedule(tape, plan, opts) is None
