"""Tapes lowered to ``stdgates.inc`` instructions, the gates OpenQASM and Qiskit export.

`lower` writes a tape's gates as OpenQASM 3 standard gates (`Instruction`), exact up to
a global phase: gates outside ``stdgates.inc`` are decomposed (Rot as ``rz ry rz``;
IsingXX/YY/ZZ, MultiRZ and PauliRot as a CNOT ladder around ``rz`` with basis changes;
a one-wire QubitUnitary by its ZYZ angles, `zyz_angles`; a generator gate ``exp(-iθG)``
as one such Pauli rotation per Pauli term of ``G``, `_generator_rotations`).
`measured_wires` are the wires an exported circuit reads into classical bits,
`check_tape` the checks of an exported tape. `qhess.interop.openqasm` and
`qhess.interop.qiskit` write the instructions out.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from qhess.circuits import generator_matrices as _gm
from qhess.circuits.catalogue import CATALOGUE
from qhess.circuits.tape import Tape

# qhess gates that are stdgates.inc gates with the same matrix and argument order.
_DIRECT = {
    "RX": "rx", "RY": "ry", "RZ": "rz", "PhaseShift": "p", "U3": "u3",
    "CRX": "crx", "CRY": "cry", "CRZ": "crz", "ControlledPhaseShift": "cp",
    "Hadamard": "h", "PauliX": "x", "PauliY": "y", "PauliZ": "z", "S": "s", "T": "t",
    "SX": "sx", "CNOT": "cx", "CZ": "cz", "CY": "cy", "SWAP": "swap", "Toffoli": "ccx",
    "U1": "p",
}
# CPhaseShift00/01/10: ``cp`` between X gates on the wires whose bit is 0 (exact).
_CPHASE_FLIPS = {"CPhaseShift00": (0, 1), "CPhaseShift01": (0,), "CPhaseShift10": (1,)}
# Rotations of a Pauli letter into Z (before) and back (after): V† P V = Z.
_TO_Z = {"X": (("h",), ("h",)), "Y": (("sdg", "h"), ("h", "s"))}


class Instruction(NamedTuple):
  """One gate of ``stdgates.inc`` (or ``"unitary"``), in application order.

  Attributes:
    name: the stdgates.inc name (``"rx"``, ``"cx"``, ...) or ``"unitary"``.
    params: its real arguments (floats), or ``(matrix,)`` for ``"unitary"``.
    wires: the wires it acts on, controls first (qhess's order).
  """

  name: str
  params: tuple
  wires: tuple[int, ...]


def _pauli_rotation(theta: float, word: str, wires) -> list[Instruction]:
  """``exp(-i θ/2 P)`` exactly: basis changes, a CNOT ladder and one ``rz``.

  An all-identity word is a global phase and gives no instruction.
  """
  active = [(w, ch) for w, ch in zip(wires, word) if ch != "I"]
  if len(active) == 1:  # a single-qubit rotation
    w, ch = active[0]
    return [Instruction("r" + ch.lower(), (theta,), (w,))]
  if not active:
    return []
  before, after = [], []
  for w, ch in active:
    if ch in _TO_Z:
      before += [Instruction(g, (), (w,)) for g in _TO_Z[ch][0]]
      after += [Instruction(g, (), (w,)) for g in _TO_Z[ch][1]]
  ws = [w for w, _ in active]
  # The parity of the active wires is accumulated on the last one.
  ladder = [Instruction("cx", (), (a, b)) for a, b in zip(ws[:-1], ws[1:])]
  return (before + ladder + [Instruction("rz", (theta,), (ws[-1],))]
          + ladder[::-1] + after)


def zyz_angles(u) -> tuple[float, float, float, float]:
  """``(α, β, γ, δ)`` with ``U = e^{iα} RZ(β) RY(γ) RZ(δ)`` for a 2x2 unitary ``U``.

  From ``V = U / sqrt(det U) = [[a, -b*], [b, a*]]`` in SU(2): ``γ = 2 atan2(|b|, |a|)``,
  ``arg a = -(β + δ)/2`` and ``arg b = (β - δ)/2``.
  """
  u = np.asarray(u, dtype=complex)
  det = np.linalg.det(u)
  alpha = float(np.angle(det)) / 2
  v = u * np.exp(-1j * alpha)
  a, b = v[0, 0], v[1, 0]
  gamma = 2 * math.atan2(abs(b), abs(a))
  arg_a = float(np.angle(a)) if abs(a) > 1e-300 else 0.0
  arg_b = float(np.angle(b)) if abs(b) > 1e-300 else 0.0
  return alpha, arg_b - arg_a, gamma, -arg_a - arg_b


def lower(tape: Tape, *, unitaries: bool, symbols=None) -> list[Instruction]:
  """The tape's gates as stdgates.inc instructions, exact up to a global phase.

  Rot becomes ``rz, ry, rz``; Ising gates, MultiRZ and PauliRot a CNOT ladder around
  one ``rz`` (with H or S†·H basis changes); a one-wire QubitUnitary its ZYZ angles
  (`zyz_angles`); ``Z`` directly followed by ``S`` on a wire (the S† of a Y basis
  rotation, ``Z·S = S†``) becomes ``sdg``.

  Args:
    tape: a `Tape` with concrete arguments.
    unitaries: keep a QubitUnitary on several wires as a ``"unitary"`` instruction (for
      targets that accept matrices); otherwise it raises.
    symbols: one value per gate argument written in place of ``tape.params`` (e.g.
      Qiskit ``Parameter``s, for a parametrized circuit); None: the tape's floats.

  Raises:
    ValueError: for a QubitUnitary on several wires when ``unitaries`` is False, or a
      non-finite gate argument.
  """
  params = np.asarray(tape.params, dtype=np.float64)
  if not np.all(np.isfinite(params)):
    raise ValueError(
        f"`tape` has non-finite gate arguments ({params[~np.isfinite(params)][:3]}); "
        "a program needs finite numbers.")
  values = [float(v) for v in params] if symbols is None else list(symbols)
  out: list[Instruction] = []
  for op in tape.operations:
    args = tuple(values[i] for i in op.param_index)
    name, wires = op.name, op.wires
    if (name == "S" and out and out[-1] == Instruction("z", (), wires)):
      out[-1] = Instruction("sdg", (), wires)
    elif name in _DIRECT:
      out.append(Instruction(_DIRECT[name], args, wires))
    elif name == "Rot":
      phi, theta, omega = args
      out += [Instruction("rz", (phi,), wires), Instruction("ry", (theta,), wires),
              Instruction("rz", (omega,), wires)]
    elif name in ("IsingXX", "IsingYY", "IsingZZ"):
      out += _pauli_rotation(args[0], name[-2:], wires)
    elif name == "MultiRZ":
      out += _pauli_rotation(args[0], "Z" * len(wires), wires)
    elif name == "PauliRot":
      out += _pauli_rotation(args[0], op.hyper, wires)
    elif name in _CPHASE_FLIPS:
      flips = [Instruction("x", (), (wires[i],)) for i in _CPHASE_FLIPS[name]]
      out += flips + [Instruction("cp", args, wires)] + flips
    elif name == "Evolution" or (CATALOGUE[name].n_params == 1
                                 and CATALOGUE[name].kind in ("sparse", "diagonal")):
      out += _generator_rotations(tape, op, args[0], unitaries)
    elif name == "QubitUnitary":
      # An owned copy: Aer 0.18.2 simulates a UnitaryGate whose matrix is a NumPy view
      # of a JAX array wrongly (seen for a two-wire V† of an experiment's tape).
      u = np.array(tape.consts[op.hyper], dtype=complex, copy=True)
      out += _unitary(u, wires, unitaries, "A QubitUnitary")
    else:  # pragma: no cover  (every catalogue gate is handled above)
      raise ValueError(f"No export for gate {name!r}.")
  return out


def _generator_rotations(tape: Tape, op, theta, unitaries: bool) -> list[Instruction]:
  """``exp(-iθG)`` of a generator gate (excitations, IsingXY, FermionicSWAP,
  OrbitalRotation, PCPhase, Evolution) as one Pauli rotation ``exp(-iθ c P)`` per term
  ``c P`` of ``G`` (`_pauli_rotation`), exact up to a global phase (``G``'s identity
  term): the terms are grouped into commuting words whose group sums commute
  (`_gm.commuting_groups`: FermionicSWAP's ``XX + YY`` and ``ZI + IZ``), so the product
  of the rotations is the gate. An Evolution whose generator does not split so (or acts
  on more than 5 wires) is its matrix, as a QubitUnitary is."""
  if op.name == "Evolution":
    data = np.asarray(tape.consts[op.hyper.index], dtype=complex)
    g = _gm.evolution_generator(data)
    groups = _gm.commuting_groups(_gm.pauli_terms(g, atol=1e-10)) if len(g) <= 32 else None
    if groups is None:
      if not isinstance(theta, float):
        raise ValueError(
            f"An Evolution on wires {op.wires} whose generator's Pauli terms do not "
            "split into commuting groups has no parametrized export; export the tape "
            "with its values (no symbols).")
      u = np.array(_gm.evolution_matrix(data, theta), dtype=complex, copy=True)
      return _unitary(u, op.wires, unitaries, "An Evolution")
  else:
    groups = _gm.commuting_groups(_gm.pauli_terms(_gm.generator(op.name, op.hyper)))
  return [ins for group in groups for word, c in group.items()
          for ins in _pauli_rotation(2 * c * theta, word, op.wires)]


def _unitary(u, wires, unitaries: bool, what: str) -> list[Instruction]:
  """A constant matrix: ZYZ angles on one wire, else a ``"unitary"`` (or an error)."""
  if len(wires) == 1:
    _, beta, gamma, delta = zyz_angles(u)
    return [Instruction("rz", (delta,), wires), Instruction("ry", (gamma,), wires),
            Instruction("rz", (beta,), wires)]
  if unitaries:
    return [Instruction("unitary", (u,), wires)]
  raise ValueError(
      f"{what} on {len(wires)} wires {wires} has no exact OpenQASM 3 form "
      "in stdgates.inc gates here (only one-wire unitaries are decomposed, ZYZ); "
      "export it with qhess.to_qiskit, which keeps unitaries, or write the circuit "
      "with parametrized gates.")


def measured_wires(tape: Tape, measure: bool) -> tuple[int, ...]:
  """The wires read into classical bits: those of the tape's ``probs``, in order.

  Raises:
    ValueError: when ``measure`` and the tape has a measurement other than ``probs``,
      or measures a wire twice.
  """
  if not measure:
    return ()
  wires: list[int] = []
  for m in tape.measurements:
    if m.kind != "probs":
      raise ValueError(
          "An exported circuit measures in the computational basis, but `tape` has a "
          f"{m.kind} measurement. Get measurement-ready tapes (basis rotations and probs) "
          "from qhess.hessian_experiments, or pass measure=False to export the gates "
          "only.")
    for w in m.wires:
      if w in wires:
        raise ValueError(f"`tape` measures wire {w} twice; a wire is read into one bit.")
      wires.append(w)
  return tuple(wires)


def check_tape(tape, fname: str) -> Tape:
  """``tape``, checked to be a `Tape` of concrete values (an export writes numbers)."""
  if not isinstance(tape, Tape):
    raise TypeError(
        f"{fname} takes a qhess.Tape (e.g. circuit.tape(x) or an experiment's tape); "
        f"got {type(tape).__name__}.")
  if any(isinstance(v, jax.core.Tracer) for v in (tape.params, *tape.consts)):
    raise TypeError(
        f"{fname} writes concrete numbers; got a tape holding traced values (it was "
        "recorded under jax.jit, vmap or grad). Record it outside the transformation.")
  return tape
