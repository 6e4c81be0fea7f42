"""PennyLane out: `to_pennylane`, a qhess `Tape` as a ``qml.tape.QuantumScript``.

The script holds the tape's gates (PennyLane's names, wires and arguments), noise
channels (as ``qml.QubitChannel`` of their Kraus operators) and measurements, so that
any PennyLane device runs, e.g., the shifted tapes of `hessian_tapes`. The way in,
`from_pennylane`, is `qhess.interop.pennylane`.

PennyLane is an optional dependency (``pip install "qhess[pennylane]"``): it is imported
inside `to_pennylane` only, so ``import qhess`` never imports it.
"""

from __future__ import annotations

import jax
import numpy as np

from qhess.circuits import catalogue as _ops
from qhess.circuits import observables as _observables
from qhess.circuits.generator_matrices import evolution_generator
from qhess.circuits.tape import Tape
from qhess.interop.optional import import_pennylane as _import_pennylane

# Noise channels export as qml.QubitChannel of their Kraus operators (Tape.consts).
_CHANNELS = frozenset(n for n, s in _ops.CATALOGUE.items() if s.kind == "channel")


def to_pennylane(tape: Tape, *, shots=None):
  """A qhess `Tape` as a PennyLane ``qml.tape.QuantumScript``.

  The script has the same operations (PennyLane's names, wires and arguments) and
  measurements, so that any PennyLane device runs it. With the tapes of `hessian_tapes`,
  ``post([r for r in qml.execute([qhess.to_pennylane(t) for t in tapes], dev)])`` is the
  Hessian on device ``dev`` (``post`` takes PennyLane's result types as they come).
  A raw ``<O²>`` measurement of those tapes (the second moment of a ``var``) becomes
  ``qml.expval`` of ``O²``: for Pauli words a sum of Pauli words (``O`` squared in the
  Pauli algebra), otherwise ``qml.Hermitian`` of the squared matrix.

  Noise channels become ``qml.QubitChannel`` of their Kraus operators (run them on
  ``default.mixed``); a tape with readout error is refused (ValueError). An `Evolution`
  gate becomes ``qml.evolve(qml.Hermitian(G), θ)``.

  Wires are ``tape.wire_labels`` (``0 .. n_wires-1`` when ``None``). Only the gate
  arguments are trainable parameters (``script.trainable_params``), so PennyLane's
  gradient transforms differentiate what ``qhess.hessian(..., hybrid=False)`` does.
  ``from_pennylane(to_pennylane(tape))`` records the same tape (structure and values)
  when its wires all occur in it and it returns a tuple exactly when it has several
  measurements, as PennyLane's tapes do; its noise channels come back as
  ``QubitChannel`` of the same Kraus operators (the same values).

  Args:
    tape: a `Tape`, e.g. ``circuit.tape(x)`` or one of `hessian_tapes`' tapes.
    shots: ``None`` (analytic), an int or a shot vector (a tuple of ints): the
      script's ``shots``, which PennyLane devices use when executing it.

  Returns:
    a ``qml.tape.QuantumScript``.

  Raises:
    ImportError: when PennyLane is not installed.
    TypeError: when ``tape`` is not a `Tape`.
    ValueError: when ``tape`` has readout error.

  Examples:
    >>> import jax.numpy as jnp, pennylane as qml, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CRY(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> tapes, post = qhess.hessian_tapes(f.tape(jnp.array([0.5, 0.2])))
    >>> scripts = [qhess.to_pennylane(t) for t in tapes]
    >>> len(scripts), [op.name for op in scripts[0].operations], scripts[0].measurements
    (13, ['RX', 'CRY'], [expval(Z(0) @ Z(1))])
    >>> print(post(qml.execute(scripts, qml.device("default.qubit"))).round(6))
    [[-0.868836  0.047624]
     [ 0.047624  0.059989]]
  """
  qml = _import_pennylane("to_pennylane")
  if not isinstance(tape, Tape):
    raise TypeError(f"`tape` of to_pennylane must be a qhess.Tape; got {type(tape).__name__}.")
  labels = tape.wire_labels if tape.wire_labels is not None else tuple(range(tape.n_wires))
  concrete = not isinstance(tape.params, jax.core.Tracer)
  params = np.asarray(tape.params, dtype=np.float64) if concrete else tape.params
  consts = [c if isinstance(c, jax.core.Tracer) else np.asarray(c) for c in tape.consts]

  with qml.QueuingManager.stop_recording():  # also when called inside a QNode
    ops, trainable = [], []
    for op in tape.operations:
      args = [float(params[i]) if concrete else params[i] for i in op.param_index]
      wires = [labels[w] for w in op.wires]
      if op.name == "PauliRot":
        ops.append(qml.PauliRot(args[0], op.hyper, wires=wires))
      elif op.name == "QubitUnitary":
        ops.append(qml.QubitUnitary(consts[op.hyper], wires=wires))
      elif op.name == "PCPhase":
        ops.append(qml.PCPhase(args[0], dim=op.hyper[0], wires=wires))
      elif op.name == "Evolution":  # exp(-iθG): qml.evolve(Hermitian(G), θ)
        generator = evolution_generator(consts[op.hyper.index])
        ops.append(qml.evolve(qml.Hermitian(generator, wires=wires), args[0]))
      elif op.name == "ReadoutError":
        raise ValueError(
            "`tape` has readout error (qhess.with_noise(..., readout=...)), which a "
            "PennyLane tape cannot hold; export the circuit without it.")
      elif op.name in _CHANNELS:
        ops.append(qml.QubitChannel(list(consts[op.hyper]), wires=wires))  # Kraus data
      else:
        ops.append(getattr(qml, op.name)(*args, wires=wires))
      start = sum(len(o.data) for o in ops[:-1])
      if op.name != "QubitUnitary" and op.name not in _CHANNELS:
        trainable.extend(range(start, start + len(args)))
    measurements = [_pl_measurement(m, consts, labels, qml) for m in tape.measurements]
    script = qml.tape.QuantumScript(ops, measurements, shots=shots)
  script.trainable_params = trainable
  return script


def _pl_factor(f, consts, labels, qml):
  if f[0] == "H":
    return qml.Hermitian(consts[f[2]], wires=[labels[w] for w in f[1]])
  return {"X": qml.X, "Y": qml.Y, "Z": qml.Z}[f[0]](labels[f[1]])


def _pl_observable(terms, consts, labels, qml):
  ops = []
  for _, factors in terms:
    pl = [_pl_factor(f, consts, labels, qml) for f in factors]
    ops.append(qml.Identity(labels[0]) if not pl else pl[0] if len(pl) == 1
               else qml.prod(*pl))
  coeffs = [c for c, _ in terms]
  if len(ops) == 1:
    return ops[0] if coeffs[0] == 1.0 else qml.s_prod(coeffs[0], ops[0])
  return qml.Hamiltonian(coeffs, ops)


def _pl_square(terms, consts, labels, qml):
  """``O²`` of an observable's terms: a Pauli sum, or a Hermitian matrix."""
  if all(f[0] != "H" for _, fs in terms for f in fs):
    pauli = qml.pauli
    sentence = pauli.PauliSentence()
    for c, fs in terms:
      word = pauli.PauliWord({labels[w]: char for char, w in fs})
      sentence[word] = sentence.get(word, 0.0) + c
    square = sentence @ sentence
    square.simplify()
    coeffs, ops = [], []
    for word, c in square.items():
      coeffs.append(float(np.real(c)))
      ops.append(word.operation() if len(word) else qml.Identity(labels[0]))
    if not ops:  # O = 0
      return qml.s_prod(0.0, qml.Identity(labels[0]))
    return qml.Hamiltonian(coeffs, ops)
  # With Hermitian factors: the squared matrix on the observable's wires.
  obs = _observables.Observable(
      (c, tuple(_observables.HermitianFactor(consts[f[2]], f[1]) if f[0] == "H"
                else _observables.Pauli(f[0], f[1]) for f in fs)) for c, fs in terms)
  wires = obs.wires
  m = obs.matrix(wire_order=wires)
  return qml.Hermitian(np.asarray(m @ m) if not isinstance(m, jax.core.Tracer) else m @ m,
                       wires=[labels[w] for w in wires])


def _pl_measurement(m, consts, labels, qml):
  if m.kind == "probs":
    return qml.probs(wires=[labels[w] for w in m.wires])
  if m.kind == "expval_sq":
    return qml.expval(_pl_square(m.terms, consts, labels, qml))
  obs = _pl_observable(m.terms, consts, labels, qml)
  return qml.expval(obs) if m.kind == "expval" else qml.var(obs)
