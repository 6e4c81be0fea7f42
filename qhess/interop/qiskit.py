"""Qiskit in and out: `to_qiskit`, `from_qiskit`, `from_openqasm`.

Qiskit is an optional dependency (``pip install "qhess[qiskit]"``): it is imported
inside these functions only, so ``import qhess`` never loads it.

**Qubits.** Wire ``w`` of qhess is Qiskit's qubit ``w``. qhess orders basis states with
wire 0 as the *most* significant bit, Qiskit with qubit 0 as the *least* significant
(little-endian), so a statevector of ``n`` qubits is the same array with its ``n`` bit
axes reversed, and a matrix on Qiskit qubits ``(q_0, ..., q_{k-1})`` is a qhess
QubitUnitary on wires ``(q_{k-1}, ..., q_0)``. A `SparsePauliOp` label is read the
same way: its last character acts on qubit 0.

**Parameters.** `from_qiskit` makes a `qhess.Circuit` of one float array ``x`` of shape
``(len(qc.parameters),)``, ``x[i]`` being ``qc.parameters[i]`` (Qiskit's order: sorted by
name, vector elements by index). Every gate argument, a Qiskit `ParameterExpression`,
becomes a JAX function of ``x``, so ``2*θ``, ``θ + φ``, ``2**θ`` or ``sin(θ)`` enter the
Hessian through the chain rule as any classical processing does. The expression is
rebuilt from Qiskit's record of the operations that made it (no SymPy needed), with a
bound on its values: an expression qhess cannot show real for every real parameter value (``log(θ - 1)``, ``asin(2*θ)``,
``θ**0.5``: complex, hence NaN in JAX, for some θ) is refused when converted, naming the
gate and the expression; ``log(abs(θ))``, ``log(θ**2 + 1)``, ``asin(sin(θ)/2)`` and
``abs(θ)**0.5`` are accepted, and ``conjugate(θ)`` is ``θ``.

**Untrusted programs.** `from_openqasm` checks the observable and counts the program's
declared qubits (against ``max_qubits``) before Qiskit reads it, and `from_qiskit`
checks the observable before reading the circuit, in time linear in the instructions.
"""

from __future__ import annotations

import importlib
import numbers
import re
from typing import Callable

import jax.numpy as jnp
import numpy as np

from qhess.simulate import circuit as _circuit
from qhess.interop import experiments as _hardware
from qhess.circuits import observables as _observables
from qhess.circuits import tape as _tape
from qhess.circuits.tape import Tape

_EXTRA = 'pip install "qhess[qiskit]"'


def _require(module: str, fname: str):
  """``module`` imported, or an ImportError naming the extra that installs it."""
  try:
    return importlib.import_module(module)
  except ImportError as err:
    raise ImportError(
        f"{fname} needs the optional dependency {module.split('.')[0]!r}, which is not "
        f"installed: {_EXTRA} (the qiskit extra: qiskit, qiskit-aer, "
        "qiskit-qasm3-import, sympy).") from err


# ------------------------------------------------------------------------------ export


def to_qiskit(tape: Tape, *, measure: bool = True):
  """A tape as a `qiskit.QuantumCircuit`.

  The gates are those of `to_openqasm` (stdgates.inc names, the same exact
  decompositions up to a global phase), except that a QubitUnitary on several wires
  stays a matrix (Qiskit's ``unitary``). Qubit ``w`` is wire ``w`` (Qiskit orders basis
  states little-endian; see the module docs). The wires of the tape's ``probs``
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
  tape = _hardware._check_tape(tape, "qhess.to_qiskit")
  qiskit = _require("qiskit", "qhess.to_qiskit")
  wires = _hardware.measured_wires(tape, measure)
  qc = qiskit.QuantumCircuit(tape.n_wires, len(wires))
  for ins in _hardware.lower(tape, unitaries=True):
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


# ------------------------------------------------------------- parameter expressions
#
# A Qiskit `ParameterExpression` is rebuilt from its replay (``_qpy_replay``: the
# operations that built it, in order, as Qiskit's own ``sympify`` reads it) into a JAX
# function of the parameter array, with an interval that holds its value for every real
# parameter value. The interval proves each argument of ``log``, ``asin``, ``acos`` and
# of a non-integer power inside the function's real domain; an expression it cannot
# prove real (``log(a - 1)``: complex for a < 1, NaN in JAX) is refused.

_INF = float("inf")
_BINARY = ("ADD", "SUB", "MUL", "DIV", "POW", "RSUB", "RDIV", "RPOW")
_SYMBOL = {"ADD": "+", "SUB": "-", "MUL": "*", "DIV": "/", "POW": "**"}


class _Node:
  """A real subexpression: its JAX function, text, value interval and constant value."""

  __slots__ = ("const", "fn", "hi", "lo", "text")

  def __init__(self, fn: Callable, text: str, lo: float, hi: float,
               const: float | None = None):
    self.fn, self.text, self.lo, self.hi, self.const = fn, text, lo, hi, const

  @classmethod
  def constant(cls, c: float) -> _Node:
    return cls(lambda x: c, format(c, ".12g"), c, c, c)


def _hull(*values: float) -> tuple[float, float]:
  """The smallest interval holding ``values`` (unbounded when one is NaN)."""
  if any(np.isnan(v) for v in values):  # inf - inf, 0 * inf, ...: unknown
    return -_INF, _INF
  return min(values), max(values)


def _times(a: float, b: float) -> float:
  return 0.0 if a == 0 or b == 0 else a * b  # 0 * inf is 0 for interval bounds


def _pow_interval(lo: float, hi: float, p: float) -> tuple[float, float]:
  """The values of ``b**p`` for b in [lo, hi] (``p`` constant; lo >= 0 unless integral)."""
  with np.errstate(all="ignore"):
    ends = (np.float64(lo) ** p, np.float64(hi) ** p)
  if float(p).is_integer() and p % 2 == 0 and lo < 0 < hi:  # even power through 0
    return (0.0, max(ends)) if p > 0 else (0.0, _INF)
  if p < 0 and lo <= 0 <= hi:  # a pole inside
    return (0.0, _INF) if lo == 0 else (-_INF, _INF)
  return _hull(float(ends[0]), float(ends[1]))


# Each function of an opcode, of the array module ``xp`` (NumPy for constants, else
# jax.numpy); those with a restricted domain clip to it, which the interval has proven
# their argument in, so that a rounding error cannot leave it.
_UNARY_FNS = {
    "SIN": lambda xp, v: xp.sin(v), "COS": lambda xp, v: xp.cos(v),
    "TAN": lambda xp, v: xp.tan(v), "ATAN": lambda xp, v: xp.arctan(v),
    "EXP": lambda xp, v: xp.exp(v), "SIGN": lambda xp, v: xp.sign(v),
    "ABS": lambda xp, v: xp.abs(v),
    "ASIN": lambda xp, v: xp.arcsin(xp.clip(v, -1.0, 1.0)),
    "ACOS": lambda xp, v: xp.arccos(xp.clip(v, -1.0, 1.0)),
    "LOG": lambda xp, v: xp.log(xp.maximum(v, 0.0)),
}


def _nonnegative_power(xp, u, v):
  return xp.power(xp.maximum(u, 0.0), v)


def _expression_fn(value, index: dict, fname: str, gate: str) -> Callable:
  """A symbolic gate argument as a JAX function of the parameter array ``x``.

  Args:
    value: a `ParameterExpression` with parameters.
    index: each circuit parameter's position in ``x``.
    fname, gate: for messages.

  Raises:
    ValueError: for an expression that is not real for every real parameter value as
      far as its interval shows (``log``, ``asin``/``acos``, non-integer powers of
      possibly negative values, complex constants), or one built with operations
      qhess does not evaluate (``gradient``, ``subs`` left in the replay).
  """
  from qiskit.circuit import Parameter, ParameterExpression  # pylint: disable=C0415
  from qiskit.circuit.parameterexpression import OpCode  # pylint: disable=C0415
  names = {int(getattr(OpCode, n)): n for n in dir(OpCode) if n.isupper()}
  whole = str(value)

  def refuse(why: str):
    raise ValueError(
        f"{fname}: gate {gate!r} has the argument {whole!r}, {why}. qhess takes real gate "
        "arguments only, and refuses an expression it cannot show real for every real "
        "parameter value (log and non-integer powers need a non-negative argument, "
        "asin and acos one in [-1, 1]). Rewrite it so that it is (e.g. log(abs(a)) or "
        "log(a**2 + 1) for log(a) when a > 0), or bind those parameters first "
        "(QuantumCircuit.assign_parameters).")

  def leaf(v) -> _Node:
    if isinstance(v, Parameter):
      i = index[v]
      return _Node(lambda x: x[i], v.name, -_INF, _INF)
    if isinstance(v, ParameterExpression):
      return build(v)
    if isinstance(v, (numbers.Number, np.number)):
      c = complex(v)
      if c.imag != 0:
        refuse(f"which holds the complex constant {v!r}")
      return _Node.constant(float(c.real))
    refuse(f"which holds {v!r} ({type(v).__name__}), not a number or parameter")
    raise AssertionError  # (unreachable)

  def unary(name: str, a: _Node) -> _Node:
    inner = a.text if a.text.startswith("(") and a.text.endswith(")") else f"({a.text})"
    text = f"{name.lower()}{inner}"
    lo, hi = a.lo, a.hi
    if name == "LOG" and lo < 0:
      refuse(f"the logarithm of {a.text}, which can be negative (its values lie in "
             f"[{lo:g}, {hi:g}] as far as qhess can tell)")
    if name in ("ASIN", "ACOS") and (lo < -1 or hi > 1):
      refuse(f"{text}, whose argument can leave [-1, 1] (its values lie in "
             f"[{lo:g}, {hi:g}] as far as qhess can tell)")
    if name == "CONJ":  # real: its own conjugate
      return a
    with np.errstate(all="ignore"):
      if name in ("SIN", "COS"):
        interval = (-1.0, 1.0)
      elif name == "TAN":
        interval = (-_INF, _INF)
      elif name in ("ASIN", "ATAN", "EXP"):  # increasing
        f = {"ASIN": np.arcsin, "ATAN": np.arctan, "EXP": np.exp}[name]
        interval = (float(f(np.float64(lo))), float(f(np.float64(hi))))
      elif name == "ACOS":
        interval = (float(np.arccos(np.float64(hi))), float(np.arccos(np.float64(lo))))
      elif name == "LOG":
        interval = (float(np.log(np.float64(lo))), float(np.log(np.float64(hi))))
      elif name == "SIGN":
        interval = (-1.0, 1.0)
      elif name == "ABS":
        interval = ((lo, hi) if lo >= 0 else (-hi, -lo) if hi <= 0
                    else (0.0, max(-lo, hi)))
      else:  # GRAD, SUBSTITUTE
        refuse(f"built with the operation {name.lower()}, which qhess does not evaluate; "
               "bind or rebuild the expression first")
    f, g = _UNARY_FNS[name], a.fn
    if a.const is not None:  # (in float64 NumPy)
      with np.errstate(all="ignore"):
        c = float(f(np, np.float64(a.const)))
      return _Node(lambda x: c, text, c, c, c)
    return _Node(lambda x: f(jnp, g(x)), text, *interval)

  def binary(name: str, a: _Node, b: _Node) -> _Node:
    text = f"({a.text} {_SYMBOL[name]} {b.text})"
    if name == "ADD" and b.const is not None and b.const < 0:  # (cos(a) - 2)
      text = f"({a.text} - {_Node.constant(-b.const).text})"
    if name == "ADD":
      interval = _hull(a.lo + b.lo, a.hi + b.hi)
      f = lambda xp, u, v: u + v
    elif name == "SUB":
      interval = _hull(a.lo - b.hi, a.hi - b.lo)
      f = lambda xp, u, v: u - v
    elif name == "MUL":
      interval = _hull(*(_times(u, v) for u in (a.lo, a.hi) for v in (b.lo, b.hi)))
      f = lambda xp, u, v: u * v
    elif name == "DIV":
      interval = ((-_INF, _INF) if b.lo <= 0 <= b.hi else
                  _hull(*(_times(u, 1 / v) for u in (a.lo, a.hi) for v in (b.lo, b.hi))))
      f = lambda xp, u, v: u / v
    else:  # POW
      p = b.const
      if p is not None and p.is_integer() and abs(p) < 2**31:
        interval = _pow_interval(a.lo, a.hi, p)
        n = int(p)
        f = lambda xp, u, v: u ** n  # an integer power: real for every base
      elif a.lo < 0:
        refuse(f"the power {text} of {a.text}, which can be negative, to "
               f"{'the non-integer ' + repr(p) if p is not None else 'a variable exponent'}"
               f" (its base lies in [{a.lo:g}, {a.hi:g}] as far as qhess can tell)")
      elif p is not None:
        interval = _pow_interval(a.lo, a.hi, p)
        f = _nonnegative_power
      else:  # a non-negative base to a variable exponent: exp(v log u)
        logs = [float(np.log(np.float64(t))) if t > 0 else -_INF for t in (a.lo, a.hi)]
        prods = [_times(s, t) for s in logs for t in (b.lo, b.hi)]
        with np.errstate(all="ignore"):
          interval = _hull(*(float(np.exp(np.float64(t))) for t in prods))
        f = _nonnegative_power
    fa, fb = a.fn, b.fn
    if a.const is not None and b.const is not None:
      with np.errstate(all="ignore"):
        c = float(f(np, np.float64(a.const), np.float64(b.const)))
      return _Node(lambda x: c, text, c, c, c)
    return _Node(lambda x: f(jnp, fa(x), fb(x)), text, *interval)

  def build(e) -> _Node:
    if isinstance(e, Parameter):
      return leaf(e)
    if not e.parameters:
      return leaf(complex(e.numeric()))
    replay = getattr(e, "_qpy_replay", None)
    if replay is None:
      raise TypeError(
          f"{fname}: cannot read the expression {whole!r} of gate {gate!r} with this "
          "Qiskit version (ParameterExpression._qpy_replay is missing); install the "
          f"version of the qiskit extra: {_EXTRA}.")
    stack: list[_Node] = []
    for inst in replay:  # as qiskit.circuit.parameterexpression.sympify reads it
      for operand in (inst.lhs, inst.rhs):
        if operand is not None:
          stack.append(leaf(operand))
      name = names.get(int(inst.op), str(inst.op))
      if name in _BINARY:
        rhs, lhs = stack.pop(), stack.pop()
        if name.startswith("R"):  # reversed: rhs op lhs (2**a is RPOW(a, 2))
          name, lhs, rhs = name[1:], rhs, lhs
        stack.append(binary(name, lhs, rhs))
      else:
        stack.append(unary(name, stack.pop()))
    return stack.pop()

  node = build(value)
  return node.fn


def _param_fn(value, index: dict, fname: str, gate: str) -> Callable:
  """A gate argument as a JAX function of the parameter array."""
  from qiskit.circuit import ParameterExpression  # pylint: disable=import-outside-toplevel
  if isinstance(value, ParameterExpression):
    if not value.parameters:
      value = complex(value.numeric())
    else:
      return _expression_fn(value, index, fname, gate)
  if isinstance(value, (int, float, complex, np.number)):
    if complex(value).imag != 0:
      raise ValueError(f"{fname}: gate {gate!r} has a complex argument {value!r}.")
    v = float(complex(value).real)
    return lambda x: v
  raise TypeError(
      f"{fname}: gate {gate!r} has an argument of type {type(value).__name__} "
      f"({value!r}); expected a number or a ParameterExpression.")


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


_COMMENT = re.compile(r"//|/\*")
_KEYWORD = re.compile(r"\b(qubit|qreg)\b")
_OPEN = re.compile(r"\s*\[")
_QREG_OPEN = re.compile(r"\s+[A-Za-z_]\w*\s*\[")
_PHYSICAL = re.compile(r"\$(\d+)")
_WINDOW = 256  # characters read after a keyword for its size


def _strip_comments(program: str) -> str:
  """``program`` without its ``//`` and ``/* */`` comments (linear in its length)."""
  parts, i = [], 0
  while (m := _COMMENT.search(program, i)) is not None:
    parts.append(program[i:m.start()])
    if m.group() == "//":
      end = program.find("\n", m.end())
    else:
      end = program.find("*/", m.end())
      end = -1 if end < 0 else end + 2
    if end < 0:
      i = len(program)
      break
    parts.append(" ")
    i = end
  parts.append(program[i:])
  return "".join(parts)


def _declared_qubits(program: str, fname: str) -> int:
  """An upper bound on the qubits a program declares, read without parsing it.

  Counts the sizes of ``qubit[N]`` and ``qreg name[N]`` declarations (1 without a
  size) and the physical qubits ``$i`` (``max i + 1``), outside comments. Time and
  memory are linear in the program's length, whatever it holds.

  Raises:
    ValueError: for a size that is not an integer literal (``qubit[2 * n]``), which
      could hide any count.
  """
  code = _strip_comments(program)
  total = 0
  for m in _KEYWORD.finditer(code):
    end = min(len(code), m.end() + _WINDOW)
    pattern = _OPEN if m.group() == "qubit" else _QREG_OPEN
    opening = pattern.match(code, m.end(), end)
    if opening is None:
      total += 1  # `qubit q;`, `qreg q;` (or the word elsewhere: counted, harmless)
      continue
    close = code.find("]", opening.end(), end)
    size = code[opening.end():close].strip() if close >= 0 else code[opening.end():end]
    n = _int_literal(size)
    if n is None:
      shown = size[:40] + ("..." if len(size) > 40 else "")
      raise ValueError(
          f"{fname}: the program declares {m.group()}s with the size {shown!r}, which is "
          "not an integer literal; qhess checks a program's qubit count before reading "
          "it and needs sizes written as numbers, e.g. qubit[4] q;.")
    total += n
  physical = _PHYSICAL.findall(code)
  if physical:
    total += 1 + max(_int_literal(d) for d in physical)
  return total


def _int_literal(text: str) -> int | None:
  """An OpenQASM integer literal's value (``10**19`` for longer ones), else None."""
  t = text.replace("_", "")
  if not t.isascii() or not t.isalnum():
    return None
  if len(t) > 18:  # (int() of thousands of digits is slow, and refused anyway)
    return 10**19 if t.isdigit() else None
  try:
    return int(t, 10) if t.isdigit() else int(t, 0)
  except ValueError:
    return None


def _check_observable_kinds(observable, fname: str) -> None:
  """The checks of `from_qiskit`'s ``observable`` that need no circuit (cheap)."""
  from qiskit.quantum_info import SparsePauliOp  # pylint: disable=import-outside-toplevel
  many = isinstance(observable, (list, tuple))
  if many and not observable:
    raise ValueError(f"{fname}: `observable` is an empty sequence.")
  for o in observable if many else [observable]:
    if not isinstance(o, SparsePauliOp):
      raise TypeError(
          f"{fname}: `observable` must be a qiskit.quantum_info.SparsePauliOp (or a "
          f"sequence of them); got {type(o).__name__}.")


def from_openqasm(program: str, observable, *, max_qubits: int = 1024) -> _circuit.Circuit:
  """An OpenQASM 3 program and an observable as a `qhess.Circuit`.

  The program is read by Qiskit's OpenQASM 3 importer (``qiskit.qasm3.loads``, from
  ``qiskit-qasm3-import``) and converted by `from_qiskit`: its ``input float``
  parameters form the array ``x`` in Qiskit's order (sorted by name).

  Untrusted programs: before the importer runs, the observable's type is checked and
  the program's declared qubits are counted without parsing it (``qubit[N]``,
  ``qreg q[N]``, physical ``$i``; sizes must be integer literals); a program of more
  than ``max_qubits`` is refused at once, in time linear in its length (Qiskit would
  take minutes, or all the memory, for ``qubit[200000]``).

  Args:
    program: an OpenQASM 3 program, a string.
    observable: as in `from_qiskit`.
    max_qubits: the most qubits a program may declare (default 1024: far beyond what a
      state vector simulates, enough for hardware-sized programs of `hessian_experiments`).

  Returns:
    a `qhess.Circuit`, as `from_qiskit` returns it.

  Raises:
    ImportError: without Qiskit or qiskit-qasm3-import (``pip install "qhess[qiskit]"``).
    TypeError: for a non-string program or a non-SparsePauliOp observable; as
      `from_qiskit`.
    ValueError: for a program of more than ``max_qubits`` qubits or with a qubit
      register size that is not an integer literal; as `from_qiskit`; Qiskit's
      importer raises its own errors for programs it cannot read.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> from qiskit.quantum_info import SparsePauliOp
    >>> f = qhess.from_openqasm(\'\'\'
    ... OPENQASM 3.0;
    ... include "stdgates.inc";
    ... input float[64] theta;
    ... qubit[1] q;
    ... ry(2 * theta) q[0];
    ... \'\'\', SparsePauliOp("Z"))
    >>> print(round(float(f(jnp.array([0.25]))), 6), round(float(jnp.cos(0.5)), 6))
    0.877583 0.877583
  """
  fname = "qhess.from_openqasm"
  if not isinstance(program, str):
    raise TypeError(f"{fname}: `program` must be a string; got {type(program).__name__}.")
  if (isinstance(max_qubits, bool) or not isinstance(max_qubits, (numbers.Integral))
      or max_qubits < 1):
    raise ValueError(f"{fname}: `max_qubits` must be a positive int; got {max_qubits!r}.")
  qasm3 = _require("qiskit.qasm3", fname)
  _require("qiskit_qasm3_import", fname)
  _check_observable_kinds(observable, fname)
  declared = _declared_qubits(program, fname)
  if declared > max_qubits:
    raise ValueError(
        f"{fname}: the program declares {declared} qubits, more than max_qubits="
        f"{max_qubits}; pass a larger `max_qubits` to read it anyway (qhess simulates a "
        "few dozen qubits at most).")
  qc = qasm3.loads(program)
  if qc.num_qubits > max_qubits:  # (not expected after the count above)
    raise ValueError(
        f"{fname}: the program has {qc.num_qubits} qubits, more than max_qubits="
        f"{max_qubits}; pass a larger `max_qubits` to read it anyway.")
  return from_qiskit(qc, observable)
