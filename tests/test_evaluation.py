"""Every evaluation strategy gives the same Hessian; the prefix-sharing schedule's counts.

Strategies: independent points or the prefix-shared tree (`_schedule.py`), the product
or the diagonal off-diagonal rule, chunked (`batch_size`) or not. Sharding over devices
is checked in `test_sharding.py`.

Both evaluations are compared with `jax.hessian` of the dense oracle (`_dense.py`) on
circuit families in several gate orders (`FAMILIES`): a schedule or fusion that only
works for one order or one ansatz fails there.
"""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _reference as ref
import qhess
from _dense import jit_hessian, make_case
from _dense import placeholder_op as _op
from qhess.shift import schedule as _schedule
from qhess.derivatives import cache as _cache
from qhess.derivatives import evaluate as _evaluate
from qhess.derivatives import options as _options

MODES = list(itertools.product(("independent", "shared", "shared-fallback"),
                               ("product", "diagonal"), (None, 3)))


def _hessian(circuit, evaluation, monkeypatch, **kwargs):
  """``shared-fallback``: shared evaluation whose table exceeds its memory cap."""
  monkeypatch.setattr(_evaluate, "_TABLE_BYTES",
                      0 if evaluation == "shared-fallback" else 2**29)
  _cache._JIT_CACHE.clear()
  return qhess.hessian(circuit, evaluation=evaluation.split("-")[0], **kwargs)


def _specs(n):
  """Measurements for `make_case`: an expval with X, Y and Z factors, a variance, and
  probabilities on all wires in reverse order."""
  return [("expval", ("sum", ((0.7, ("prod", (("P", "Z", 0), ("P", "X", n - 1)))),
                              (-1.0, ("P", "Y", n // 2))))),
          ("var", ("sum", ((1.0, ("P", "X", 0)), (0.3, ("P", "Z", n - 1))))),
          ("probs", tuple(range(n))[::-1])]


# One gate of each way the kernel applies gates (Pauli rotation, dense, diagonal,
# controlled, permutation, Pauli word, matrix): every mode on these smaller circuits;
# every gate under both evaluations in `test_every_gate_both_evaluations`. The reference
# is jax.hessian of the dense oracle (autodiff through qhess's own kernel of a 30-gate
# circuit costs over a minute of compilation).
MODE_GATES = ("RX", "Rot", "IsingZZ", "CRY", "CNOT", "SWAP", "PauliRot", "QubitUnitary",
              "Hadamard", "ControlledPhaseShift")


@pytest.mark.parametrize("seed", [0, 1])
def test_every_mode_gives_the_same_hessian(seed, monkeypatch):
  rng = np.random.default_rng(seed)
  n = 3
  ops = ref.random_circuit(rng, n, n_extra=2, gates=MODE_GATES)
  x = jnp.asarray(ref.flat_params(ops))
  # Non-linear processing and a parameter feeding several gates exercise the gradient
  # points too.
  y = jnp.asarray(rng.normal(size=2))
  theta = lambda y: x.at[0].set(jnp.sin(y[0])).at[1].set(y[0] * y[1]).at[2].set(y[1])  # noqa: E731
  case = make_case(ops, n, _specs(n), theta)
  expected = jit_hessian(case.oracle)(y)
  for evaluation, rule, batch_size in MODES[::3] if seed else MODES[1::3]:
    got = _hessian(case.circuit, evaluation, monkeypatch, off_diagonal_rule=rule,
                   batch_size=batch_size)(y)
    chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)


def test_every_mode_gate_level_hessian_matches(monkeypatch):
  rng = np.random.default_rng(7)
  n = 3
  ops = ref.random_circuit(rng, n, n_extra=1, gates=MODE_GATES)
  case = make_case(ops, n, _specs(n))
  x = jnp.asarray(ref.flat_params(ops))
  expected = jit_hessian(case.oracle)(x)
  # The rest of MODES (each test runs every evaluation; together the three run each
  # mode once).
  for evaluation, rule, batch_size in MODES[2::3]:
    got = _hessian(case.circuit, evaluation, monkeypatch, hybrid=False,
                   off_diagonal_rule=rule, batch_size=batch_size)(x)
    chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)


@functools.cache
def _every_gate_case():
  """(case, x, the oracle's gate-level Hessian): a random circuit holding every gate."""
  ops = ref.random_circuit(np.random.default_rng(7), 3, n_extra=1)
  assert {op[0] for op in ops} == set(ref.GATE_NAMES)
  case = make_case(ops, 3, _specs(3))
  x = jnp.asarray(ref.flat_params(ops))
  return case, x, jax.tree.map(np.asarray, jit_hessian(case.oracle)(x))


@pytest.mark.parametrize("evaluation", ["shared", "independent"])
def test_every_gate_both_evaluations(evaluation):
  case, x, expected = _every_gate_case()
  got = qhess.hessian(case.circuit, hybrid=False, evaluation=evaluation)(x)
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

  x = jnp.linspace(0.1, 1.0, 2 * n * layers)
  tape = hea.tape(x)
  plan = _evaluate._plan_for(tape, _options._Options(), np.ones(tape.num_params, bool),
                            need_value=False, need_grad=False, share=False, rule="product")
  s = _evaluate._schedule_for(tape, plan)
  assert s.independent_applications == plan.n_points * len(tape.operations)
  # Pairs spread uniformly: about L/3 + L/(2K) per point instead of L.
  assert s.independent_applications / s.gate_applications > 1.6


# ------------------------------------------------------------ families and gate orders
# Small (3-4 wires, 2 layers) members of the circuit families of bench/run.py, in
# several gate orders; each is built once and its oracle Hessian computed once.

LAYERS = 2


def _hea(n: int, blocked: bool):
  """Hardware-efficient ansatz: per layer RY and RZ on every wire, then a CNOT ladder;
  wire by wire (RY, RZ on wire 0, then on wire 1, ...) or blocked (RY on every wire,
  then RZ on every wire). The same gates and Hessian, in another order."""
  ops = []
  for _ in range(LAYERS):
    if blocked:
      ops += [_op("RY", [w]) for w in range(n)] + [_op("RZ", [w]) for w in range(n)]
    else:
      ops += [_op(name, [w]) for w in range(n) for name in ("RY", "RZ")]
    ops += [("CNOT", (w, w + 1), ()) for w in range(n - 1)]
  return ops


def _rot_ring(n: int):
  """Strongly entangling layers: Rot on every wire, then a CNOT ring whose range
  changes with the layer."""
  ops = []
  for layer in range(LAYERS):
    r = layer % (n - 1) + 1
    ops += [_op("Rot", [w]) for w in range(n)]
    ops += [("CNOT", (w, (w + r) % n), ()) for w in range(n)]
  return ops


def _qaoa(n: int):
  """QAOA MaxCut on a ring: a Hadamard layer, then per layer IsingZZ on every edge and
  RX on every wire."""
  ops = [("Hadamard", (w,), ()) for w in range(n)]
  for _ in range(LAYERS):
    ops += [_op("IsingZZ", [w, (w + 1) % n]) for w in range(n)]
    ops += [_op("RX", [w]) for w in range(n)]
  return ops


def _qaoa_processing(n: int):
  """Tied parameters: x = (γ_1, β_1, γ_2, β_2); one γ feeds every IsingZZ of its layer,
  one β every RX."""
  def processing(x):
    return [x[2 * layer + k] for layer in range(LAYERS) for k in (0, 1) for _ in range(n)]
  return processing


def _chemistry(n: int):
  """A chemistry-style circuit from a two-electron reference state: two-wire Ising
  couplings, MultiRZ, Pauli-word rotations and RY."""
  ops = [("PauliX", (0,), ()), ("PauliX", (1,), ())]
  for _ in range(LAYERS):
    ops += [_op("RY", [1]), _op("RY", [2]), _op("IsingXX", [0, 1]), _op("IsingYY", [1, 2]),
            _op("MultiRZ", range(n)), ("PauliRot", tuple(range(n)), (0.0, "XXYY")),
            ("PauliRot", (3, 1), (0.0, "YX"))]
  return ops


def _zz(a, b):
  return ("prod", (("P", "Z", a), ("P", "Z", b)))


_HEA_SPECS = [("expval", _zz(0, 1)), ("probs", (3, 1))]
# name -> (ops, wires, measurements, processing or None, number of inputs)
FAMILIES = {
    "hea-per-wire": (_hea(4, blocked=False), 4, _HEA_SPECS, None, None),
    "hea-blocked": (_hea(4, blocked=True), 4, _HEA_SPECS, None, None),
    "rot-ring": (_rot_ring(3), 3,
                 [("var", ("sum", ((1.0, ("P", "X", 0)), (0.5, ("P", "Z", 2))))),
                  ("expval", ("P", "Y", 1))], None, None),
    "qaoa-tied": (_qaoa(4), 4,
                  [("expval", ("sum", tuple((1.0, _zz(w, (w + 1) % 4)) for w in range(4))))],
                  _qaoa_processing(4), 2 * LAYERS),
    "chemistry": (_chemistry(4), 4,
                  [("expval", ("sum", ((0.5, ("prod", (("P", "X", 0), ("P", "X", 1)))),
                                       (0.3, ("prod", (("P", "Y", 1), ("P", "Y", 2)))),
                                       (-0.2, ("P", "Z", 0)),
                                       (0.4, ("prod", (("P", "X", 2), ("P", "Y", 3)))))))],
                  None, None),
}


def _blocked_order() -> np.ndarray:
  """Indices taking hea-per-wire's inputs to hea-blocked's (the same gate arguments):
  per layer of 2n inputs, RY_w is input 2w in the first and w in the second."""
  k = 2 * 4
  one = np.concatenate([np.arange(0, k, 2), np.arange(1, k, 2)])
  return np.concatenate([layer * k + one for layer in range(LAYERS)])


@functools.cache
def _family(name: str):
  """(case, x, the oracle's Hessian at x) of one family, at seeded random inputs;
  hea-blocked at hea-per-wire's point (its inputs permuted)."""
  ops, n, specs, processing, n_inputs = FAMILIES[name]
  case = make_case(ops, n, specs, processing)
  if name == "hea-blocked":
    x = _family("hea-per-wire")[1][_blocked_order()]
  else:
    n_inputs = n_inputs or len(ref.flat_params(ops))
    x = jnp.asarray(np.random.default_rng(len(name)).uniform(-np.pi, np.pi, n_inputs))
  return case, x, jax.tree.map(np.asarray, jit_hessian(case.oracle)(x))


def test_hea_orders_are_the_same_circuit():
  # The two orders differ as gate lists, not as circuits: at the same gate arguments the
  # same outputs and (with the inputs permuted) the same Hessian.
  assert ([op[0] for op in FAMILIES["hea-per-wire"][0]]
          != [op[0] for op in FAMILIES["hea-blocked"][0]])
  per_wire, blocked = _family("hea-per-wire"), _family("hea-blocked")
  chex.assert_trees_all_close(jax.jit(blocked[0].oracle)(blocked[1]),  # jitted: one compile
                              jax.jit(per_wire[0].oracle)(per_wire[1]), rtol=0, atol=1e-12)
  perm = _blocked_order()
  permuted = jax.tree.map(lambda h: h[..., perm, :][..., perm], per_wire[2])
  chex.assert_trees_all_close(blocked[2], permuted, rtol=0, atol=1e-12)


@pytest.mark.parametrize("evaluation", ["shared", "independent"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_families_match_jax_hessian(family, evaluation):
  case, x, expected = _family(family)
  got = qhess.hessian(case.circuit, evaluation=evaluation)(x)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)
  # Not a vacuous comparison: every family has a Hessian far from zero.
  assert max(float(np.max(np.abs(e))) for e in jax.tree.leaves(expected)) > 0.05


# ------------------------------------------------------------------ evaluation="auto"

def _auto_choice(circuit, x, **options):
  """Whether evaluation="auto" runs the adjoint method on ``circuit`` at ``x``."""
  return qhess.evaluation_method(qhess.hessian, circuit, **options)(x) == "adjoint"


def _layered(n, layers, measure=None, noise=False):
  @qhess.circuit(wires=n)
  def f(x):
    x = x.reshape(layers, n, 2)
    for layer in range(layers):
      for w in range(n):
        qhess.RY(x[layer, w, 0], wires=w)
        qhess.RZ(x[layer, w, 1], wires=w)
        if noise:
          qhess.DepolarizingChannel(0.01, wires=w)
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
    if measure == "probs":
      return qhess.probs(wires=range(n))
    return qhess.expval(sum((qhess.Z(w) @ qhess.Z(w + 1) for w in range(n - 1)),
                            qhess.Z(0)))
  return f


def test_auto_cost_model_choices(monkeypatch):
  # The thresholds of the shared schedule as in production (conftest forces sharing).
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_SAVING", 0.1)
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_WORK", 2**24)
  deep = _layered(4, 12)
  x_deep = jnp.linspace(0.1, 1.0, 96)
  # many arguments on a few wires: Σ 2R_i adjoint circuits against O(P²) shifted ones
  assert _auto_choice(deep, x_deep)
  # one gate argument: 3 shifted circuits, nothing to gain
  assert not _auto_choice(_layered(1, 1), jnp.array([0.3, 0.2]))
  # the same deep circuit noisy: the noisy adjoint sweep (tests/test_adjoint_noisy.py)
  assert _auto_choice(_layered(4, 12, noise=True), x_deep)
  assert not _auto_choice(deep, x_deep, off_diagonal_rule="product")
  # probabilities of 4 wires (16 raw outputs, up to 18 states per adjoint circuit):
  # still the adjoint method here (measured 4.3x faster on a 2-core CPU)
  assert _auto_choice(_layered(4, 12, measure="probs"), x_deep)


def test_evaluation_method_names_what_runs(monkeypatch):
  small = _layered(1, 1)
  x = jnp.array([0.3, 0.2])
  # conftest forces sharing: a schedule whenever one exists
  assert qhess.evaluation_method(qhess.hessian, small)(x) == "shared"
  assert qhess.evaluation_method(qhess.hessian, small, evaluation="independent")(x) == (
      "independent")
  assert qhess.evaluation_method(qhess.hessian, small, shots=100)(x) == "shared"
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_WORK", 2**24)  # production: too little work
  assert qhess.evaluation_method(qhess.value_grad_and_hessian, small)(x) == "independent"
  with pytest.raises(TypeError, match="`fn` must be qhess.hessian"):
    qhess.evaluation_method(jax.hessian, small)
  with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['rule'\]"):
    qhess.evaluation_method(qhess.hessian, small, rule="product")
  with pytest.raises(ValueError, match="exact only"):
    qhess.evaluation_method(qhess.hessian, small, evaluation="adjoint", shots=10)
  with pytest.raises(ValueError, match="`evaluation` must be"):
    qhess.evaluation_method(qhess.hessian, small, evaluation="fast")


@pytest.mark.parametrize("noise", [False, True], ids=["pure", "noisy"])
def test_gradient_auto_is_one_adjoint_pass(noise):
  f = _layered(3, 2, noise=noise)
  x = jnp.asarray(np.random.default_rng(5).uniform(-2, 2, 12))
  # noisy and this small, auto keeps the shift rules (the density-matrix sweep compiles
  # longer, `adjoint_noisy.pays`): the adjoint gradient is asked for by name
  method = "adjoint" if noise else "auto"
  assert qhess.evaluation_method(qhess.gradient, f, evaluation=method)(x) == "adjoint"

  @qhess.circuit(wires=3)
  def hybrid(p):  # non-linear processing of a pytree before the gates
    return f.fn(jnp.concatenate([jnp.sin(p["a"]), p["b"] ** 2]))

  p = {"a": x[:6], "b": x[6:]}
  g = jax.jit(qhess.gradient(hybrid, evaluation=method))(p)
  chex.assert_trees_all_close(g, jax.grad(hybrid)(p), rtol=0, atol=1e-10)
  chex.assert_trees_all_close(g, qhess.gradient(hybrid, evaluation="shared")(p),
                              rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", [False, True], ids=["pure", "noisy"])
def test_auto_matches_every_method(noise):
  f = _layered(3, 3, noise=noise)
  x = jnp.asarray(np.random.default_rng(11).uniform(-2, 2, 18))
  auto = qhess.hessian(f)(x)
  chex.assert_trees_all_close(auto, qhess.hessian(f, evaluation="independent")(x),
                              rtol=0, atol=1e-10)
  if not noise:
    chex.assert_trees_all_close(auto, qhess.hessian(f, evaluation="adjoint")(x),
                                rtol=0, atol=1e-10)
  chex.assert_trees_all_close(auto, jax.hessian(f)(x), rtol=0, atol=1e-10)


# ------------------------------------------------------------------------- progress

@pytest.mark.parametrize("evaluation", ["independent", "shared", "adjoint"])
def test_progress_reports_every_chunk(evaluation, monkeypatch, capsys):
  from qhess.simulate import kernel
  monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # the plain-text reports
  calls = []
  report = kernel._report_progress
  monkeypatch.setattr(kernel, "_report_progress",
                      lambda rows, dep, *, progress: calls.append((int(rows), progress))
                      or report(rows, dep, progress=progress))
  f = qhess.circuit(wires=2)(_layered(2, 1).fn)  # a new circuit: traced afresh
  x = jnp.array([0.3, -0.4, 0.5, 0.2])
  h = jax.jit(qhess.hessian(f, evaluation=evaluation, batch_size=3, progress=True))
  chex.assert_trees_all_close(h(x), jax.hessian(f)(x), rtol=0, atol=1e-10)
  total = calls[0][1].total
  assert sum(rows for rows, _ in calls) == total  # every circuit reported, once
  assert len(calls) == -(-total // 3) if evaluation != "shared" else len(calls) >= 1
  assert f"{total}/{total} circuits" in capsys.readouterr().out
  with pytest.raises(TypeError, match=r"`progress` must be a bool; got 'yes'"):
    qhess.hessian(f, progress="yes")
