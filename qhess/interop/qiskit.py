"""Qiskit in and out: `to_qiskit`, `from_qiskit`.

Qiskit is an optional dependency (``pip install "qhess[qiskit]"``): it is imported
inside these functions only, so ``import qhess`` never loads it. OpenQASM programs
(`from_openqasm`, `to_openqasm`) are in `qhess.interop.openqasm`.

**Qubits.** Wire ``w`` of qhess is Qiskit's qubit ``w``. qhess orders basis states with
wire 0 as the *most* significant bit, Qiskit with qubit 0 as the *least* significant
(little-endian), so a statevector of ``n`` qubits is the same array with its ``n`` bit
axes reversed, and a matrix on Qiskit qubits ``(q_0, ..., q_{k-1})`` is a qhess
QubitUnitary on wires ``(q_{k-1}, ..., q_0)``. A `SparsePauliOp` label is read the
same way: its last character acts on qubit 0.

**Parameters.** `from_qiskit` makes a `qhess.Circuit` of one float array ``x`` of shape
``(len(qc.parameters),)``, ``x[i]`` being ``qc.parameters[i]`` (Qiskit's order: sorted by
name, vector elements by index). Every gate argument, a Qiskit `ParameterExpression`,
becomes a JAX function of ``x`` (`qhess.interop.qiskit_expressions`), so ``2*θ``,
``θ + φ``, ``2**θ`` or ``sin(θ)`` enter the Hessian through the chain rule as any
classical processing does. An expression qhess cannot show real for every real parameter
value (``log(θ - 1)``, ``asin(2*θ)``, ``θ**0.5``: complex, hence NaN in JAX, for some θ)
is refused when converted, naming the gate and the expression; ``log(abs(θ))``,
``log(θ**2 + 1)``, ``asin(sin(θ)/2)`` and ``abs(θ)**0.5`` are accepted, and
``conjugate(θ)`` is ``θ``.

**Untrusted circuits.** `from_qiskit` checks the observable before reading the circuit,
in time linear in the instructions.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from qhess.simulate import circuit as _circuit
from qhess.interop import lowering as _lowering
from qhess.interop.optional import require_qiskit as _require
from qhess.interop.qiskit_expressions import param_fn as _param_fn
from qhess.circuits import observables as _observables
from qhess.circuits import tape as _tape
from qhess.circuits.tape import Tape

# ------------------------------------------------------------------------------ export


def to_qiskit(tape: Tape, *, measure: bool = True):
  """A tape as a `qiskit.QuantumCircuit`.

  The gates are those of `to_openqasm` (stdgates.inc names, the same exact
  decompositions up to a global phase), except that a QubitUnitary on several wires
  stays a matrix (Qiskit's ``unitary``), and so does an `Evolution` whose generator's
  Pauli terms do not split into commuting groups. Qubit ``w`` is wire ``w`` (Qiskit
  orders basis states little-endian; see the module docs). The wires of the tape's ``probs``
  measurements are measured into the classical register: bit ``i`` from the ``i``-th
  measured wire, so Qiskit's counts read as ``bit_order="qiskit"``.

  Args:
    tape: a `Tape` with concrete arguments, e.g. ``experiment.tape`` from
      `hessian_experiments` or ``circuit.tape(x)``.
    measure: measure the ``probs`` wires (False: the gates only).

  Returns:
    a `qiskit.QuantumCircuit` of ``tape.n_wires`` qubits (and one classical bit per
    measured wire).

  Raises:
    ImportError: without Qiskit (``pip install "qhess[qiskit]"``).
    TypeError: for a non-tape, or a tape holding traced values.
    ValueError: for a non-finite gate argument, or (with ``measure``) a measurement
      other than ``probs``.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.IsingXX(x[1], wires=(0, 1))
    ...   return qhess.probs(wires=(0, 1))
    >>> qc = qhess.to_qiskit(f.tape(jnp.array([0.5, 0.25])))
    >>> [ins.operation.name for ins in qc.data]
    ['rx', 'h', 'h', 'cx', 'rz', 'cx', 'h', 'h', 'measure', 'measure']
  """
  tape = _lowering.check_tape(tape, "qhess.to_qiskit")
  return quantum_circuit(tape, measure, "qhess.to_qiskit")


def quantum_circuit(tape: Tape, measure: bool, fname: str, *, symbols=None,
                    register: str | None = None):
  """`to_qiskit`'s circuit, with ``symbols`` (one per gate argument, e.g. a Qiskit
  ``ParameterVector``) in place of the tape's numbers, and the classical register named
  ``register`` (None: Qiskit's default ``"c"``)."""
  qiskit = _require("qiskit", fname)
  wires = _lowering.measured_wires(tape, measure)
  if register is None:
    qc = qiskit.QuantumCircuit(tape.n_wires, len(wires))
  else:
    qc = qiskit.QuantumCircuit(qiskit.QuantumRegister(tape.n_wires, "q"),
                               qiskit.ClassicalRegister(len(wires), register))
  for ins in _lowering.lower(tape, unitaries=True, symbols=symbols):
    if ins.name == "unitary":
      # Qiskit's matrix index has its first qubit as the least significant bit.
      qc.unitary(ins.params[0], list(reversed(ins.wires)))
    elif ins.name == "u3":
      qc.u(*ins.params, ins.wires[0])
    else:
      getattr(qc, ins.name)(*ins.params, *ins.wires)
  for i, w in enumerate(wires):
    qc.measure(w, i)
  return qc


# ------------------------------------------------------------------------------ import

# Qiskit gate name -> the qhess gate with the same matrix and argument order.
_GATES = {
    "rx": "RX", "ry": "RY", "rz": "RZ", "p": "PhaseShift", "u1": "PhaseShift",
    "u": "U3", "u3": "U3", "crx": "CRX", "cry": "CRY", "crz": "CRZ",
    "cp": "ControlledPhaseShift", "cu1": "ControlledPhaseShift",
    "rxx": "IsingXX", "ryy": "IsingYY", "rzz": "IsingZZ",
    "h": "Hadamard", "x": "PauliX", "y": "PauliY", "z": "PauliZ", "s": "S", "t": "T",
    "sx": "SX", "cx": "CNOT", "cy": "CY", "cz": "CZ", "swap": "SWAP", "ccx": "Toffoli",
}
_SKIP = {"barrier", "id", "delay", "global_phase"}  # no effect on expectation values


def _final_measurements(qc) -> set[int]:
  """Positions in ``qc.data`` of the final measurements (no later gate on the qubit).

  Barriers, delays and the like do not count as later gates; a measurement followed by
  another final measurement of its qubit is final too. (Linear in the instructions,
  unlike ``QuantumCircuit.remove_final_measurements``, which is quadratic in the number
  of qubits.)
  """
  live: set = set()  # qubits acted on by a later instruction that is kept
  final = set()
  for k in range(len(qc.data) - 1, -1, -1):
    ins = qc.data[k]
    name = ins.operation.name
    if name == "measure" and not live.intersection(ins.qubits):
      final.add(k)
    elif name not in _SKIP:
      live.update(ins.qubits)
  return final


def _convert_ops(qc, fname: str) -> list[tuple]:
  """The circuit's instructions as ``(qhess name, wires, [arg fns], extra)``."""
  from qiskit.circuit import ControlFlowOp, ParameterExpression  # pylint: disable=C0415
  index = {p: i for i, p in enumerate(qc.parameters)}
  final = _final_measurements(qc)
  ops = []
  for k, ins in enumerate(qc.data):
    op = ins.operation
    name = op.name
    if name in _SKIP or k in final:
      continue
    wires = tuple(qc.find_bit(q).index for q in ins.qubits)
    if ins.clbits or name in ("measure", "reset") or isinstance(op, ControlFlowOp):
      raise ValueError(
          f"{fname}: the circuit has a {name!r} instruction on qubits {wires} before its "
          "end (or one that reads classical bits); qhess circuits are unitary and "
          "measured by the observable (final measurements are dropped). Remove it or "
          "move it to the end.")
    params = list(getattr(op, "params", []))
    symbolic = any(isinstance(v, ParameterExpression) and v.parameters for v in params)
    if name in _GATES or name in ("u2", "rzx"):
      args = [_param_fn(v, index, fname, name) for v in params]
      if name == "u2":  # U2(φ, λ) = U(π/2, φ, λ)
        ops.append(("U3", wires, [lambda x: np.pi / 2] + args, None))
      elif name == "rzx":  # exp(-iθ/2 Z⊗X), Z on the first qubit
        ops.append(("PauliRot", wires, args, "ZX"))
      else:
        ops.append((_GATES[name], wires, args, None))
      continue
    matrix = None
    if not symbolic and hasattr(op, "to_matrix"):
      try:
        matrix = np.asarray(op.to_matrix(), dtype=complex)
      except Exception:  # pylint: disable=broad-except  (no matrix for this one)
        matrix = None
    if matrix is None or matrix.shape != (2 ** len(wires),) * 2:
      raise ValueError(
          f"{fname}: the Qiskit instruction {name!r} (on qubits {wires}) is not supported"
          f"{' with symbolic parameters' if symbolic else ''}. Supported: "
          f"{', '.join(sorted(set(_GATES) | {'u2', 'rzx'}))} with any parameters, and "
          "gates with a constant matrix; rewrite it first, e.g. with "
          "qiskit.transpile(qc, basis_gates=['rx', 'ry', 'rz', 'cx']).")
    # A constant matrix (sdg, tdg, ch, iswap, unitary, ...): exact as a QubitUnitary on
    # the qubits in reverse (Qiskit's matrices are little-endian).
    ops.append(("QubitUnitary", tuple(reversed(wires)), [], matrix))
  return ops


def _pauli_observable(op, n_qubits: int, fname: str) -> _observables.Observable:
  """A `SparsePauliOp` as a qhess `Observable` (label character ``-1-q`` on qubit q)."""
  from qiskit.quantum_info import SparsePauliOp  # pylint: disable=import-outside-toplevel
  if not isinstance(op, SparsePauliOp):
    raise TypeError(
        f"{fname}: `observable` must be a qiskit.quantum_info.SparsePauliOp (or a "
        f"sequence of them); got {type(op).__name__}.")
  if op.num_qubits != n_qubits:
    raise ValueError(
        f"{fname}: `observable` acts on {op.num_qubits} qubits; the circuit has "
        f"{n_qubits}.")
  coeffs = np.asarray(op.coeffs)
  if coeffs.dtype == object:
    raise TypeError(f"{fname}: `observable` has symbolic coefficients; bind them first.")
  op = op.simplify(atol=0.0)
  coeffs = np.asarray(op.coeffs)
  if np.any(np.abs(coeffs.imag) > 1e-12 * max(1.0, float(np.max(np.abs(coeffs))))):
    raise ValueError(
        f"{fname}: `observable` must be Hermitian (real coefficients on Pauli words); "
        f"got coefficients {coeffs[np.abs(coeffs.imag) > 0][:3]}.")
  obs = None
  for label, c in zip(op.paulis.to_labels(), coeffs.real):
    factors = [_observables.Pauli(ch, q) for q, ch in enumerate(reversed(label))
               if ch != "I"]
    term = _observables.Observable([(float(c), tuple(factors))])
    obs = term if obs is None else obs + term
  return obs


def from_qiskit(quantum_circuit, observable) -> _circuit.Circuit:
  """A Qiskit circuit and observable as a `qhess.Circuit` of a parameter array.

  The circuit becomes a function of one float array ``x`` of shape
  ``(len(quantum_circuit.parameters),)``, entry ``i`` binding
  ``quantum_circuit.parameters[i]``, returning ``qhess.expval`` of the observable. Gate
  arguments may be any Qiskit parameter expressions (``2*θ``, ``θ + φ``,
  ``sin(θ)``, ...): each becomes a JAX function of ``x``, differentiated by the chain
  rule. Gates: the standard ones map to qhess gates (``rx ... ccx``, ``u``, ``p``,
  ``rxx``/``ryy``/``rzz``/``rzx``); constant gates without a qhess counterpart (``sdg``,
  ``tdg``, ``ch``, ``unitary``, ...) become QubitUnitary matrices. Barriers, delays,
  identities, the global phase and final measurements are dropped (none changes an
  expectation value).

  Args:
    quantum_circuit: a `qiskit.QuantumCircuit`.
    observable: a `qiskit.quantum_info.SparsePauliOp` on the circuit's qubits (real
      coefficients), or a sequence of them (the circuit then returns a tuple).

  Returns:
    a `qhess.Circuit` on ``quantum_circuit.num_qubits`` wires (wire ``w`` is qubit
    ``w``).

  Raises:
    ImportError: without Qiskit (``pip install "qhess[qiskit]"``).
    TypeError: for a non-circuit, a non-SparsePauliOp observable or one with symbolic
      coefficients; when called: for ``x`` of the wrong kind.
    ValueError: for an unsupported instruction (mid-circuit measurement, reset,
      unknown symbolic gate), a complex gate argument, an observable on another number
      of qubits or with non-real coefficients (not Hermitian); when called: for ``x`` of
      the wrong shape.

  Examples:
    >>> import jax.numpy as jnp, numpy as np, qhess
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.circuit import Parameter
    >>> from qiskit.quantum_info import SparsePauliOp
    >>> a, b = Parameter("a"), Parameter("b")
    >>> qc = QuantumCircuit(2)
    >>> _ = qc.rx(2 * a, 0); _ = qc.cx(0, 1); _ = qc.ry(a + b.sin(), 1)
    >>> obs = SparsePauliOp(["ZZ", "XI"], coeffs=[1.0, 0.5])  # "XI": X on qubit 1
    >>> f = qhess.from_qiskit(qc, obs)
    >>> x = jnp.array([0.5, 0.25])  # (a, b): Qiskit's parameter order
    >>> print(round(float(f(x)), 4))
    0.9171
    >>> print(np.asarray(qhess.hessian(f)(x), dtype=np.float64).round(3))
    [[-2.886 -1.487]
     [-1.487 -0.742]]
  """
  fname = "qhess.from_qiskit"
  qiskit = _require("qiskit", fname)
  if not isinstance(quantum_circuit, qiskit.QuantumCircuit):
    raise TypeError(
        f"{fname}: `quantum_circuit` must be a qiskit.QuantumCircuit; got "
        f"{type(quantum_circuit).__name__}.")
  qc = quantum_circuit
  n = qc.num_qubits
  if n < 1:
    raise ValueError(f"{fname}: `quantum_circuit` has no qubits.")
  # The observables first: checking them is cheap, reading the circuit may not be.
  many = isinstance(observable, (list, tuple))
  observables = [_pauli_observable(o, n, fname) for o in (observable if many else
                                                           [observable])]
  if many and not observables:
    raise ValueError(f"{fname}: `observable` is an empty sequence.")
  ops = _convert_ops(qc, fname)
  n_params = len(qc.parameters)

  def circuit_fn(x):
    if not hasattr(x, "shape") or jnp.shape(x) != (n_params,):
      raise ValueError(
          f"The circuit from Qiskit takes one array of shape ({n_params},) (its "
          f"parameters {[p.name for p in qc.parameters][:8]}); got "
          f"{jnp.shape(x) if hasattr(x, 'shape') else type(x).__name__}.")
    for name, wires, args, extra in ops:
      values = [fn(x) for fn in args]
      if name == "QubitUnitary":
        _tape.QubitUnitary(extra, wires=wires)
      elif name == "PauliRot":
        _tape.PauliRot(values[0], extra, wires=wires)
      else:
        _tape.GATES[name](*values, wires=wires)
    outs = tuple(_observables.expval(o) for o in observables)
    return outs if many else outs[0]

  circuit_fn.__name__ = quantum_circuit.name or "qiskit_circuit"
  return _circuit.circuit(circuit_fn, wires=n)

