"""Cross-check against PennyLane's `qml.gradients.param_shift_hessian` (optional).

Runs only when PennyLane is installed (``pip install -e .[pennylane]``). PennyLane is
called at *tape* level with NumPy parameters: a `qml.tape.QuantumScript` goes through
`param_shift_hessian`, its tapes run on ``default.qubit`` with ``diff_method=None``, and
the transform's post-processing gives the Hessian with respect to the gate arguments.
(PennyLane's own JAX interface does not work with current JAX releases.) On the qhess
side each circuit takes a flat ``x`` whose entries are the gate arguments in order, so
``qhess.hessian(circuit, hybrid=False)`` is the same quantity.

Both the number of shifted circuits and the Hessian values (1e-10, float64) must agree.
Not compared here, by design: Hessians through non-linear classical processing and of
variances, where qhess's chain rule differs from PennyLane's transform (which is wrong or
refuses there), and var measurements in general (qhess's tapes measure raw moments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess

qml = pytest.importorskip("pennylane")

jax.config.update("jax_enable_x64", True)  # as conftest.py: the comparison is at 1e-10

ATOL = 1e-10

# A case is (n_wires, ops, measurements, x, shift options).
#   op:          (name, wires) or (name, wires, pauli_word) for PauliRot; a parametrized
#                gate takes its arguments from x in order (Rot and U3 take 3).
#   measurement: ("expval", obs) or ("probs", wires); obs is a list of
#                (coefficient, pauli_word, wires) terms, or ("hermitian", matrix, wires).
N_ARGS = {
    "RX": 1, "RY": 1, "RZ": 1, "PhaseShift": 1, "Rot": 3, "U3": 3, "CRX": 1, "CRY": 1,
    "CRZ": 1, "ControlledPhaseShift": 1, "IsingXX": 1, "IsingYY": 1, "IsingZZ": 1,
    "MultiRZ": 1, "PauliRot": 1, "Hadamard": 0, "CNOT": 0, "CZ": 0, "S": 0,
}

_X13 = np.array([0.5, 0.2])
_HERM = np.array([[1.5, 0.3 - 0.2j], [0.3 + 0.2j, -0.7]])


def _x(n: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-np.pi, np.pi, n)


def _zz(*wires):
  return [(1.0, "Z" * len(wires), wires)]


CASES = {
    # PennyLane's docstring example (docs/guide/pennylane.md): 13 circuits.
    "example13": (2, [("RX", (0,)), ("CRY", (0, 1))], [("expval", _zz(0, 1))], _X13, {}),
    "rot": (2, [("Rot", (0,)), ("CNOT", (0, 1)), ("Rot", (1,))],
            [("expval", [(1.0, "XZ", (0, 1))])], _x(6, 1), {}),
    "u3": (2, [("U3", (0,)), ("Hadamard", (1,)), ("CZ", (0, 1)), ("U3", (1,))],
           [("expval", [(1.0, "YX", (0, 1))])], _x(6, 2), {}),
    "crx_crz": (2, [("RY", (0,)), ("Hadamard", (1,)), ("CRX", (0, 1)), ("RX", (1,)),
                    ("CRZ", (1, 0)), ("CRY", (0, 1))],
                [("expval", [(1.0, "XY", (0, 1))])], _x(5, 3), {}),
    "ising": (3, [("Hadamard", (0,)), ("RY", (1,)), ("IsingXX", (0, 1)), ("IsingYY", (1, 2)),
                  ("IsingZZ", (0, 2)), ("RX", (2,))],
              [("expval", [(1.0, "ZXY", (0, 1, 2))])], _x(5, 4), {}),
    "multirz_paulirot": (3, [("Hadamard", (0,)), ("RX", (1,)), ("S", (2,)),
                             ("MultiRZ", (0, 1, 2)), ("PauliRot", (0, 1, 2), "XYZ"),
                             ("MultiRZ", (1, 2)), ("PauliRot", (2, 0), "YX")],
                         [("expval", [(1.0, "XZ", (0, 2))])], _x(5, 5), {}),
    "phase": (2, [("Hadamard", (0,)), ("Hadamard", (1,)), ("PhaseShift", (0,)),
                  ("ControlledPhaseShift", (0, 1)), ("RX", (1,)),
                  ("ControlledPhaseShift", (1, 0))],
              [("expval", [(1.0, "XY", (0, 1))])], _x(4, 6), {}),
    "probs": (3, [("RX", (0,)), ("CRY", (0, 1)), ("RY", (2,)), ("CNOT", (2, 0)),
                  ("IsingXX", (1, 2))],
              [("probs", (0, 1, 2))], _x(4, 7), {}),
    "probs_subset": (3, [("RY", (0,)), ("Rot", (1,)), ("CNOT", (0, 2)), ("CRZ", (1, 2)),
                         ("RX", (2,))],
                     [("probs", (2, 0))], _x(6, 8), {}),
    "hamiltonian": (3, [("RX", (0,)), ("RY", (1,)), ("CNOT", (0, 1)), ("IsingYY", (1, 2)),
                        ("RZ", (2,)), ("RX", (2,))],
                    [("expval", [(0.5, "ZZ", (0, 1)), (-1.2, "X", (0,)),
                                 (0.3, "YZ", (1, 2)), (0.8, "XXX", (0, 1, 2))])],
                    _x(5, 9), {}),
    "hermitian": (2, [("RY", (0,)), ("CRX", (0, 1)), ("RZ", (1,))],
                  [("expval", ("hermitian", _HERM, (1,)))], _x(3, 10), {}),
    "several_measurements": (3, [("RX", (0,)), ("Rot", (1,)), ("CNOT", (0, 2)),
                                 ("CRY", (1, 2)), ("IsingZZ", (0, 1))],
                             [("expval", _zz(0)), ("probs", (1, 2)),
                              ("expval", [(1.0, "XY", (0, 1)), (-0.4, "Z", (2,))])],
                             _x(6, 11), {}),
    # PennyLane's docstring example of custom shifts, on the 13-circuit example.
    "custom_shifts": (2, [("RX", (0,)), ("CRY", (0, 1))], [("expval", _zz(0, 1))], _X13,
                      {"diagonal_shifts": [(_X13[0] / 2,), (_X13[1] / 2, _X13[1])],
                       "off_diagonal_shifts": [(_X13[0],), (_X13[1], 2 * _X13[1])]}),
    "custom_shifts_rot": (2, [("Rot", (0,)), ("CRX", (0, 1))],
                          [("expval", [(1.0, "ZY", (0, 1))]), ("probs", (1,))], _x(4, 12),
                          {"diagonal_shifts": [(0.3,), (0.7,), (1.1,), (0.4, 1.3)],
                           "off_diagonal_shifts": [(0.9,), (np.pi / 2,), (0.5,),
                                                   (np.pi / 2, np.pi)]}),
}


# ------------------------------------------------------------------------- qhess side


def _qhess_obs(obs):
  if obs[0] == "hermitian":
    return qhess.Hermitian(obs[1], wires=obs[2])
  total = None
  for coeff, word, wires in obs:
    term = None
    for char, w in zip(word, wires):
      factor = {"X": qhess.X, "Y": qhess.Y, "Z": qhess.Z}[char](w)
      term = factor if term is None else term @ factor
    term = coeff * term
    total = term if total is None else total + term
  return total


def _qhess_circuit(n_wires, ops, measurements):
  @qhess.circuit(wires=n_wires)
  def circuit(x):
    k = 0
    for name, wires, *extra in ops:
      m = N_ARGS[name]
      args = [x[k + i] for i in range(m)]
      k += m
      if name == "PauliRot":
        qhess.PauliRot(args[0], extra[0], wires=wires)
      elif name == "MultiRZ":
        qhess.MultiRZ(args[0], wires=wires)
      else:
        getattr(qhess, name)(*args, wires=wires)
    out = tuple(qhess.expval(_qhess_obs(arg)) if kind == "expval" else qhess.probs(arg)
                for kind, arg in measurements)
    return out if len(out) > 1 else out[0]
  return circuit


# --------------------------------------------------------------------- PennyLane side


def _pl_obs(obs):
  if obs[0] == "hermitian":
    return qml.Hermitian(obs[1], wires=obs[2])
  coeffs, words = [], []
  for coeff, word, wires in obs:
    factors = [{"X": qml.X, "Y": qml.Y, "Z": qml.Z}[c](w) for c, w in zip(word, wires)]
    coeffs.append(coeff)
    words.append(qml.prod(*factors) if len(factors) > 1 else factors[0])
  if len(words) == 1 and coeffs[0] == 1.0:
    return words[0]
  return qml.Hamiltonian(coeffs, words)


def _pl_tape(ops, measurements, x):
  pl_ops, k = [], 0
  for name, wires, *extra in ops:
    m = N_ARGS[name]
    args = [float(a) for a in x[k:k + m]]
    k += m
    pl_ops.append(getattr(qml, name)(*args, *extra, wires=list(wires)))
  pl_meas = [qml.expval(_pl_obs(arg)) if kind == "expval" else qml.probs(wires=list(arg))
             for kind, arg in measurements]
  tape = qml.tape.QuantumScript(pl_ops, pl_meas)
  # Only the gate arguments are trainable, not Hamiltonian coefficients or matrices.
  tape.trainable_params = list(range(k))
  return tape


def _pl_hessian(ops, measurements, x, shifts):
  """PennyLane's tapes and Hessian, one ``(*out_shape, P, P)`` array per measurement."""
  tape = _pl_tape(ops, measurements, x)
  tapes, fn = qml.gradients.param_shift_hessian(tape, **shifts)
  res = fn(qml.execute(tapes, qml.device("default.qubit"), diff_method=None))
  per_meas = res if len(measurements) > 1 else (res,)
  # PennyLane nests (P, P, *out_shape) for P > 1 (every case here has P >= 2).
  return tapes, [np.moveaxis(np.asarray(h, dtype=float), (0, 1), (-2, -1))
                 for h in per_meas]


def _periods(ops) -> np.ndarray:
  """Each gate argument's period: 4π for the controlled rotations (frequency 1/2)."""
  return np.array([4 * np.pi if name in ("CRX", "CRY", "CRZ") else 2 * np.pi
                   for name, *_ in ops for _ in range(N_ARGS[name])])


def _shift_set(points, x, periods) -> list[tuple[float, ...]]:
  """The shifts ``point - x`` modulo the periods, rounded and sorted: a circuit multiset."""
  shifts = np.mod(np.asarray(points, dtype=float) - x + 1e-9, periods) - 1e-9
  return sorted(tuple(row) for row in np.round(shifts, 8))


def _as_list(h, n_meas):
  return [np.asarray(a) for a in (h if n_meas > 1 else (h,))]


# -------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def pennylane_results():
  """PennyLane's tapes and Hessians, computed once per case."""
  return {name: _pl_hessian(ops, meas, x, shifts)
          for name, (_, ops, meas, x, shifts) in CASES.items()}


def test_cases_cover_gates():
  used = {op[0] for case in CASES.values() for op in case[1]}
  parametrized = {name for name, m in N_ARGS.items() if m}
  assert parametrized <= used


@pytest.mark.parametrize("name", list(CASES))
def test_same_number_of_tapes(name, pennylane_results):
  n_wires, ops, meas, x, shifts = CASES[name]
  circuit = _qhess_circuit(n_wires, ops, meas)
  qhess_tapes, _ = qhess.hessian_tapes(circuit.tape(jnp.asarray(x)), **shifts)
  pl_tapes, _ = pennylane_results[name]
  assert len(qhess_tapes) == len(pl_tapes)


@pytest.mark.parametrize("name", list(CASES))
def test_same_shifted_circuits(name, pennylane_results):
  """Not only as many circuits: the same shifted gate arguments (modulo the periods)."""
  n_wires, ops, meas, x, shifts = CASES[name]
  circuit = _qhess_circuit(n_wires, ops, meas)
  qhess_tapes, _ = qhess.hessian_tapes(circuit.tape(jnp.asarray(x)), **shifts)
  pl_tapes, _ = pennylane_results[name]
  periods = _periods(ops)
  got = _shift_set([np.asarray(t.params) for t in qhess_tapes], x, periods)
  # Gate arguments come first among a PennyLane tape's parameters (then observables').
  expected = _shift_set([t.get_parameters(trainable_only=False)[:len(x)] for t in pl_tapes],
                        x, periods)
  assert got == expected


def test_example_has_13_tapes(pennylane_results):
  assert len(pennylane_results["example13"][0]) == 13


@pytest.mark.parametrize("name", list(CASES))
def test_same_hessian(name, pennylane_results):
  """qhess.hessian, and qhess's shifted tapes run on PennyLane's device then qhess's
  post-processing, against PennyLane's Hessian.

  Independent evaluation: the shift rules are what is compared here, and the
  prefix-shared evaluation compiles about 3x slower; every evaluation is compared with
  the autodiff oracle on every gate in test_evaluation.py. The tapes run on PennyLane's
  device (an independent simulation of qhess's shifted gate arguments, and no kernel
  compilation); `qhess.execute` runs them in `test_same_hessian_executed_by_qhess`.
  """
  n_wires, ops, meas, x, shifts = CASES[name]
  circuit = _qhess_circuit(n_wires, ops, meas)
  xj = jnp.asarray(x)
  _, expected = pennylane_results[name]
  got = _as_list(qhess.hessian(circuit, hybrid=False, evaluation="independent",
                               **shifts)(xj), len(meas))
  tapes, post = qhess.hessian_tapes(circuit.tape(xj), **shifts)
  results = qml.execute([_pl_tape(ops, meas, np.asarray(t.params)) for t in tapes],
                        qml.device("default.qubit"), diff_method=None)
  got_tapes = _as_list(jax.jit(post)(results), len(meas))
  assert [g.shape for g in got] == [e.shape for e in expected]
  for g, t, e in zip(got, got_tapes, expected):
    np.testing.assert_allclose(g, e, rtol=0, atol=ATOL)
    np.testing.assert_allclose(t, e, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["example13", "custom_shifts_rot"])
def test_same_hessian_executed_by_qhess(name, pennylane_results):
  """`post(qhess.execute(tapes))` and the shared evaluation against PennyLane."""
  n_wires, ops, meas, x, shifts = CASES[name]
  circuit = _qhess_circuit(n_wires, ops, meas)
  xj = jnp.asarray(x)
  _, expected = pennylane_results[name]
  got = _as_list(qhess.hessian(circuit, hybrid=False, **shifts)(xj), len(meas))
  tapes, post = qhess.hessian_tapes(circuit.tape(xj), **shifts)
  got_tapes = _as_list(jax.jit(post)(qhess.execute(tapes)), len(meas))
  for g, t, e in zip(got, got_tapes, expected):
    np.testing.assert_allclose(g, e, rtol=0, atol=ATOL)
    np.testing.assert_allclose(t, e, rtol=0, atol=ATOL)


# ------------------------------------------------------------------------ noisy circuits

_CHANNEL_ARGS = {"DepolarizingChannel": (0.3,), "AmplitudeDamping": (0.3,),
                 "GeneralizedAmplitudeDamping": (0.3, 0.8), "PhaseDamping": (0.3,),
                 "BitFlip": (0.3,), "PhaseFlip": (0.3,), "PauliError": ("XY", 0.2)}


@pytest.mark.parametrize("name", sorted(_CHANNEL_ARGS))
def test_channel_kraus_operators_equal_pennylanes(name):
  args = _CHANNEL_ARGS[name]
  wires = (0, 1) if name == "PauliError" else (0,)
  got = getattr(qhess, name)(*args, wires=wires).kraus  # outside a circuit: a description
  expected = getattr(qml, name)(*args, wires=wires).kraus_matrices()
  # PennyLane adds machine epsilon under its square roots: 1e-14 differences.
  np.testing.assert_allclose(got, np.stack(expected), rtol=0, atol=1e-12)


def _noisy_pair(x, with_more: bool):
  """The same noisy circuit in qhess and as a PennyLane tape (gate arguments from x)."""
  def ops(lib, x):
    out = [lib.RX(x[0], wires=0), lib.DepolarizingChannel(0.1, wires=0),
           lib.CRY(x[1], wires=(0, 1)), lib.AmplitudeDamping(0.2, wires=1)]
    if with_more:
      out += [lib.Rot(x[2], x[3], x[4], wires=1),
              lib.GeneralizedAmplitudeDamping(0.3, 0.6, wires=1),
              lib.PauliError("YZ", 0.1, wires=(1, 0)), lib.CNOT(wires=(1, 0)),
              lib.PhaseDamping(0.25, wires=0), lib.BitFlip(0.05, wires=1)]
    return out

  @qhess.circuit(wires=2)
  def circuit(x):
    ops(qhess, x)
    return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.5 * qhess.X(1))

  obs = qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(1)
  tape = qml.tape.QuantumScript(ops(qml, [float(v) for v in x]), [qml.expval(obs)])
  # Only the gate arguments are trainable: channel parameters are fixed.
  gate_params = {"RX": 1, "CRY": 1, "Rot": 3}
  trainable, k = [], 0
  for op in tape.operations:
    n = len(op.data)
    if op.name in gate_params:
      trainable += list(range(k, k + n))
    k += n
  tape.trainable_params = trainable
  return circuit, tape


@pytest.mark.parametrize("with_more", [False, True], ids=["seed", "more_channels"])
def test_noisy_hessian_equals_default_mixed(with_more):
  """param_shift_hessian on default.mixed: the same Hessian (1e-8) from as many tapes."""
  x = np.array([0.5, 0.2, -0.7, 1.1, 0.3])[:5 if with_more else 2]
  circuit, tape = _noisy_pair(x, with_more)
  pl_tapes, fn = qml.gradients.param_shift_hessian(tape)
  expected = np.asarray(fn(qml.execute(pl_tapes, qml.device("default.mixed"),
                                       diff_method=None)), dtype=float)
  tapes, post = qhess.hessian_tapes(circuit.tape(jnp.asarray(x)))
  assert len(tapes) == len(pl_tapes)
  assert with_more or len(tapes) == 13  # the count measured for the seed example
  np.testing.assert_allclose(post(qhess.execute(tapes)), expected, rtol=0, atol=1e-8)


def test_noisy_tape_to_pennylane_runs_on_default_mixed():
  x = np.array([0.5, 0.2, -0.7, 1.1, 0.3])
  circuit, tape = _noisy_pair(x, with_more=True)
  script = qhess.to_pennylane(circuit.tape(jnp.asarray(x)))
  assert [o.name for o in script.operations][:2] == ["RX", "QubitChannel"]
  # The gate arguments only: RX, then CRY after the depolarizing channel's 4 Kraus
  # matrices, then Rot after the amplitude damping's 2.
  assert script.trainable_params == [0, 5, 8, 9, 10]
  dev = qml.device("default.mixed")
  got, expected = qml.execute([script, tape], dev, diff_method=None)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
  with pytest.raises(ValueError, match="readout error"):
    qhess.to_pennylane(qhess.with_noise(circuit, readout=0.1).tape(jnp.asarray(x)))

