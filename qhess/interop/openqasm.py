"""OpenQASM 3 programs in and out: `to_openqasm`, `from_openqasm`.

`to_openqasm` writes a tape as a program of ``stdgates.inc`` gates (`lowering.lower`:
exact up to a global phase) that reads the wires of the tape's ``probs`` into a ``bit``
register ``c``, ``c[i]`` from the ``i``-th measured wire (how bitstrings of ``c`` are
read back: `qhess.interop.experiments`, on bit order).

`from_openqasm` reads a program with Qiskit's OpenQASM 3 importer and converts it with
`from_qiskit`. **Untrusted programs:** it checks the observable and counts the
program's declared qubits (against ``max_qubits``) before Qiskit reads it, in time
linear in the program's length.

Qiskit (``pip install "qhess[qiskit]"``) is imported inside `from_openqasm` only.
"""

from __future__ import annotations

import numbers
import re

from qhess.simulate import circuit as _circuit
from qhess.interop import lowering as _lowering
from qhess.interop.optional import require_qiskit as _require
from qhess.interop.qiskit import from_qiskit
from qhess.circuits.tape import Tape


def to_openqasm(tape: Tape, *, measure: bool = True) -> str:
  """An OpenQASM 3 program of a tape: ``stdgates.inc`` gates and its measurement.

  Qubit ``q[w]`` is wire ``w``. Gate arguments are written at full precision (Python's
  ``repr`` of the float64 value, which reads back to the same number). Gates outside
  ``stdgates.inc`` are decomposed exactly up to a global phase (Rot as ``rz ry rz``;
  IsingXX/YY/ZZ, MultiRZ and PauliRot as a CNOT ladder around ``rz`` with basis
  changes; a one-wire QubitUnitary by its ZYZ angles; CPhaseShift00/01/10 as ``cp``
  between ``x`` gates; the other generator gates, ``exp(-iθG)``, as one such Pauli
  rotation per Pauli term of ``G``). The wires of the tape's
  ``probs`` measurements are read into a ``bit`` register ``c``, ``c[i]`` from the
  ``i``-th measured wire (see the module docs).

  Args:
    tape: a `Tape` with concrete arguments, e.g. ``experiment.tape`` from
      `hessian_experiments` or ``circuit.tape(x)``.
    measure: read the ``probs`` wires into ``c`` (False: the gates only).

  Returns:
    the program, a string.

  Raises:
    TypeError: for a non-tape, or a tape holding traced values.
    ValueError: for a QubitUnitary on several wires (or an Evolution whose generator's
      Pauli terms do not split into commuting groups), a non-finite gate argument, or
      (with ``measure``) a measurement other than ``probs``.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.IsingZZ(x[1], wires=(0, 1))
    ...   return qhess.probs(wires=(1,))
    >>> print(qhess.to_openqasm(f.tape(jnp.array([0.5, 0.25]))))
    OPENQASM 3.0;
    include "stdgates.inc";
    qubit[2] q;
    bit[1] c;
    rx(0.5) q[0];
    cx q[0], q[1];
    rz(0.25) q[1];
    cx q[0], q[1];
    c[0] = measure q[1];
    <BLANKLINE>
  """
  tape = _lowering.check_tape(tape, "qhess.to_openqasm")
  wires = _lowering.measured_wires(tape, measure)
  lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{tape.n_wires}] q;"]
  if wires:
    lines.append(f"bit[{len(wires)}] c;")
  for ins in _lowering.lower(tape, unitaries=False):
    args = f"({', '.join(repr(float(a)) for a in ins.params)})" if ins.params else ""
    lines.append(f"{ins.name}{args} {', '.join(f'q[{w}]' for w in ins.wires)};")
  lines += [f"c[{i}] = measure q[{w}];" for i, w in enumerate(wires)]
  return "\n".join(lines) + "\n"


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
