"""Every evaluation strategy gives the same Hessian; the prefix-sharing schedule's counts.

Strategies: independent points or the prefix-shared tree (`_schedule.py`), the product
or the diagonal off-diagonal rule, chunked (`batch_size`) or not. Sharding over devices
is checked in `test_sharding.py`.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess
from qhess import _hessian as _hessian_module
from qhess import _schedule

MODES = list(itertools.product(("independent", "shared", "shared-fallback"),
                               ("product", "diagonal"), (None, 3)))


def _hessian(circuit, evaluation, monkeypatch, **kwargs):
  """``shared-fallback``: shared evaluation whose table exceeds its memory cap."""
  monkeypatch.setattr(_hessian_module, "_TABLE_BYTES",
                      0 if evaluation == "shared-fallback" else 2**29)
  _hessian_module._JIT_CACHE.clear()
  return qhess.hessian(circuit, evaluation=evaluation.split("-")[0], **kwargs)


def _measurements(n):
  return lambda: (
      qhess.expval(0.7 * qhess.Z(0) @ qhess.X(n - 1) - qhess.Y(n // 2)),
      qhess.var(qhess.X(0) + 0.3 * qhess.Z(n - 1)),
      qhess.probs(wires=tuple(range(n))[::-1]))


@pytest.mark.parametrize("seed", [0, 1])
def test_every_mode_gives_the_same_hessian(seed, monkeypatch):
  rng = np.random.default_rng(seed)
  n = 3
  ops = ref.random_circuit(rng, n, n_extra=2)
  circuit = ref.qhess_circuit(ops, n, _measurements(n))
  x = jnp.asarray(ref.flat_params(ops))
  # Non-linear processing and a parameter feeding several gates exercise the gradient
  # points too; the reference is autodiff through the simulator.
  y = jnp.asarray(rng.normal(size=2))
  theta = lambda y: x.at[0].set(jnp.sin(y[0])).at[1].set(y[0] * y[1]).at[2].set(y[1])  # noqa: E731
  f = lambda y: circuit(theta(y))  # noqa: E731
  wrapped = qhess.circuit(wires=n)(lambda y: circuit.fn(theta(y)))
  expected = jax.jit(jax.hessian(f))(y)
  for evaluation, rule, batch_size in MODES[::3] if seed else MODES[1::3]:
    got = _hessian(wrapped, evaluation, monkeypatch, off_diagonal_rule=rule,
                   batch_size=batch_size)(y)
    chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)


def test_every_mode_gate_level_hessian_matches(monkeypatch):
  rng = np.random.default_rng(7)
  n = 3
  ops = ref.random_circuit(rng, n, n_extra=1)
  circuit = ref.qhess_circuit(ops, n, _measurements(n))
  x = jnp.asarray(ref.flat_params(ops))
  expected = jax.jit(jax.hessian(circuit))(x)
  for evaluation, rule, batch_size in MODES[::2]:
    got = _hessian(circuit, evaluation, monkeypatch, hybrid=False,
                   off_diagonal_rule=rule, batch_size=batch_size)(x)
    chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)


def test_schedule_counts_hand_example():
  # Four one-argument gates at positions 0..3, one segment per gate.
  index = np.array([[0, 0], [2, 0], [0, 3], [1, 2]])
  shift = np.array([[0.0, 0.0], [0.4, 0.0], [0.5, 0.7], [0.5, 0.5]])
  s = _schedule.build_schedule([0, 1, 2, 3], 4, index, shift, n_segments=4)
  assert s.bounds == (0, 1, 2, 3, 4)
  # Parents: the unshifted circuit over segments 0..2 plus branches (arg 0, 0.5) from
  # segment 0 and (arg 1, 0.5) from segment 1: 2 + 3 + 3 = 8 gate applications.
  # Points: unshifted from boundary 3 (1), single on arg 2 from 2 (2), pair (0, 3)
  # from 3 on its parent (1), pair (1, 2) from 2 on its parent (2): 6.
  assert s.gate_applications == 14
  assert s.independent_applications == 16
  assert sorted(s.order.tolist()) == [0, 1, 2, 3]
  assert [len(g.rows) for g in s.segments] == [2, 3, 3]


def test_schedule_shares_most_of_a_uniform_plan():
  n, layers = 6, 2

  @qhess.circuit(wires=n)
  def hea(x):
    k = 0
    for _ in range(layers):
      for w in range(n):
        qhess.RY(x[k], wires=w)
        qhess.RZ(x[k + 1], wires=w)
        k += 2
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))

  from qhess import _hessian
  x = jnp.linspace(0.1, 1.0, 2 * n * layers)
  tape = hea.tape(x)
  plan = _hessian._plan_for(tape, _hessian._Options(), np.ones(tape.num_params, bool),
                            need_value=False, need_grad=False, share=False, rule="product")
  s = _hessian._schedule_for(tape, plan)
  assert s.independent_applications == plan.n_points * len(tape.operations)
  # Pairs spread uniformly: about L/3 + L/(2K) per point instead of L.
  assert s.independent_applications / s.gate_applications > 1.6
