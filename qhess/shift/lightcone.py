"""The backward light cone of a tape's measurements: which gates can change its outputs.

Walking the operations from the last to the first, starting from the measured wires
(every wire of every measurement's observable or ``probs``), a gate whose wires meet the
set is inside the cone and adds all its wires to the set; a gate outside it acts only on
wires that nothing measured ever reads afterwards, so the outputs do not depend on it
and its arguments' derivatives are exactly zero. This is PennyLane's rule (a gate
argument gets no circuits unless its gate has a path to a measurement in the circuit's
graph). It is conservative where it must be: a gate touching the cone is inside even if
it commutes with everything after it. Channels act on their wires like gates; a readout
error flips each measured bit on its own wire, so it spreads nothing and is kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qhess.circuits.catalogue import CATALOGUE


def light_cone(operations, measurements) -> np.ndarray:
  """Bool ``(len(operations),)``: which operations are inside the backward light cone of
  the measured wires (readout errors always are: they act on the measured bits)."""
  reached = {w for m in measurements for w in m.all_wires}
  inside = np.zeros(len(operations), dtype=bool)
  for i in range(len(operations) - 1, -1, -1):
    op = operations[i]
    if CATALOGUE[op.name].kind == "readout":  # per-wire bit flips: nothing spreads
      inside[i] = True
    elif reached.intersection(op.wires):
      inside[i] = True
      reached.update(op.wires)
  return inside


def reachable_params(tape) -> np.ndarray:
  """Bool ``(P,)``: the gate arguments of gates inside the light cone (`light_cone`);
  the others have exactly zero derivatives of every order, and get no circuits."""
  out = np.zeros(tape.num_params, dtype=bool)
  for op, inside in zip(tape.operations, light_cone(tape.operations, tape.measurements)):
    if inside:
      out[list(op.param_index)] = True
  return out


def pruned_tape(tape):
  """The tape with only the operations inside the light cone (`light_cone`), or the tape
  itself when all are: every output is the same, and dropped channels may leave a pure
  state to simulate. Its arguments are all of the tape's (the dropped gates' unused)."""
  inside = light_cone(tape.operations, tape.measurements)
  if inside.all():
    return tape
  return dataclasses.replace(
      tape, operations=tuple(op for op, keep in zip(tape.operations, inside) if keep))
