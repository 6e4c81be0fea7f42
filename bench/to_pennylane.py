"""qhess circuits in PennyLane, and PennyLane's ``param_shift_hessian`` as a timed method.

Not a script. The cases and families benchmarks (`bench/cases.py`, `bench/families.py`)
time PennyLane beside qhess on the same circuits: `pennylane_tape` translates a recorded
qhess tape into a ``QuantumScript`` of its gate arguments, `pennylane_qnode` a circuit
into a QNode of its parameter array (tied parameters stay tied, `parameter_map`), and
`hessian_call` builds the timed Hessian call on a PennyLane device. PennyLane is imported
inside the functions: without it the rest of ``bench/`` still runs.
"""

from __future__ import annotations

import numpy as np

QNODE = "_qnode"  # suffix of a PennyLane method timed through its QNode (--pl-qnode)


def parameter_map(circuit, params: np.ndarray) -> np.ndarray:
  """Which entry of ``params`` (flat index) feeds each gate argument of the tape.

  Records the tape at marker values ``0.25, 1.25, 2.25, ...`` and reads them back, so it
  holds for circuits whose gate arguments are plain entries of ``params`` (every family
  here).

  Returns:
    int array of shape ``(P,)``.

  Raises:
    ValueError: when a gate argument is not one of the entries.
  """
  markers = np.arange(np.size(params), dtype=np.float64).reshape(np.shape(params)) + 0.25
  got = np.asarray(circuit.tape(markers).params, dtype=np.float64)
  index = np.rint(got - 0.25).astype(int)
  if not np.allclose(index + 0.25, got, atol=1e-6, rtol=0) or np.any(index < 0):
    raise ValueError("`circuit`: every gate argument must be an entry of `params` for the "
                     "PennyLane translation; got a computed argument.")
  return index


def _pennylane_observable(spec):
  import pennylane as qml
  paulis = {"X": qml.X, "Y": qml.Y, "Z": qml.Z}
  terms = []
  for coef, factors in spec.terms:
    if any(f[0] not in paulis for f in factors):
      raise ValueError(f"only Pauli observables translate to PennyLane; got {factors}.")
    word = [paulis[c](w) for c, w in factors]
    op = qml.prod(*word) if len(word) > 1 else (word[0] if word else qml.Identity(0))
    terms.append(op if coef == 1 else qml.s_prod(coef, op))
  return qml.sum(*terms) if len(terms) > 1 else terms[0]


def pennylane_ops(tape, arg) -> list:
  """The tape's gates as PennyLane operations; ``arg(i)`` gives gate argument ``i``."""
  import pennylane as qml
  ops = []
  for op in tape.operations:
    args = [arg(i) for i in op.param_index]
    if op.name == "PauliRot":
      ops.append(qml.PauliRot(*args, op.hyper, wires=op.wires))
    elif op.name == "QubitUnitary":
      ops.append(qml.QubitUnitary(np.asarray(tape.consts[op.hyper]), wires=op.wires))
    else:
      ops.append(getattr(qml, op.name)(*args, wires=op.wires))
  return ops


def pennylane_tape(tape):
  """A qhess tape as a PennyLane ``QuantumScript`` of its gate arguments (NumPy values)."""
  import pennylane as qml
  if len(tape.measurements) != 1 or tape.measurements[0].kind != "expval":
    raise ValueError("`tape`: only a single expval translates; got "
                     f"{[m.kind for m in tape.measurements]}.")
  theta = np.asarray(tape.params, dtype=np.float64)
  ops = pennylane_ops(tape, lambda i: theta[i])
  script = qml.tape.QuantumScript(ops, [qml.expval(_pennylane_observable(tape.measurements[0]))])
  # Every NumPy parameter of a script is trainable, QubitUnitary's matrix too (which
  # param_shift_hessian refuses): keep the gate arguments only, in the tape's order.
  trainable, k = [], 0
  for op in ops:
    if not isinstance(op, qml.QubitUnitary):
      trainable += range(k, k + len(op.data))
    k += len(op.data)
  script.trainable_params = trainable
  return script


def pennylane_qnode(circuit, params: np.ndarray, device: str = "lightning.qubit"):
  """The circuit as a PennyLane QNode of an array shaped like ``params``.

  Parameter-shift differentiation (``max_diff=2``), for
  ``qml.gradients.param_shift_hessian(qnode)(pnp.array(params, requires_grad=True))``;
  tied parameters (one entry feeding several gates) stay tied, as in the qhess circuit.
  """
  import pennylane as qml
  tape = circuit.tape(params)
  if len(tape.measurements) != 1 or tape.measurements[0].kind != "expval":
    raise ValueError("`circuit`: only a single expval translates; got "
                     f"{[m.kind for m in tape.measurements]}.")
  index = parameter_map(circuit, params)
  obs = _pennylane_observable(tape.measurements[0])
  dev = qml.device(device, wires=tape.n_wires)

  def fn(x):
    flat = qml.math.reshape(x, (-1,))
    pennylane_ops(tape, lambda i: flat[index[i]])  # made in the QNode's context: queued
    return qml.expval(obs)

  return qml.QNode(fn, dev, diff_method="parameter-shift", max_diff=2)


def version() -> str:
  import pennylane as qml
  return qml.__version__


def hessian_call(device: str, f, x: np.ndarray, *, qnode: bool = False):
  """PennyLane's param_shift_hessian of the circuit ``f`` at ``x``, on ``device``.

  ``qnode=False``: at tape level with NumPy gate arguments (PennyLane's cheapest path:
  no interface, no classical Jacobian), ``tapes, fn = param_shift_hessian(tape)``,
  ``fn(qml.execute(tapes, dev, diff_method=None))``, then ``Jᵀ H J`` with ``J`` the 0/1
  map from ``x``'s entries to the gate arguments (the identity unless parameters are
  tied). ``qnode=True``: ``param_shift_hessian(qnode)(pnp.array(x, requires_grad=True))``
  on the QNode of `pennylane_qnode` (the user-level call, autograd interface).

  Returns:
    ``(call, warm, n_tapes)``: the Hessian call (an array shaped like
    ``jax.hessian(f)(x)``), a cheap warm-up (one circuit execution) and the number of
    tapes a call runs.
  """
  import pennylane as qml
  dev = qml.device(device, wires=f.n_wires)
  tape = pennylane_tape(f.tape(x))
  n_tapes = len(qml.gradients.param_shift_hessian(tape)[0])

  def warm():
    return qml.execute([tape], dev, diff_method=None)

  if qnode:
    from pennylane import numpy as pnp
    node = pennylane_qnode(f, x, device)
    xp = pnp.array(x, requires_grad=True)
    return (lambda: np.asarray(qml.gradients.param_shift_hessian(node)(xp))), warm, n_tapes
  index = parameter_map(f, x)
  jac = None  # (P, x.size) when the map is not the identity
  if not np.array_equal(index, np.arange(x.size)):
    jac = np.zeros((index.size, x.size))
    jac[np.arange(index.size), index] = 1.0

  def call():
    tapes, fn = qml.gradients.param_shift_hessian(tape)
    h = np.asarray(fn(qml.execute(tapes, dev, diff_method=None)))  # (P, P)
    if jac is not None:
      h = jac.T @ h @ jac
    return h.reshape(x.shape * 2)

  return call, warm, n_tapes
