"""Text drawings of tapes, one line per wire, in PennyLane's style.

    0: ──RX(0.5)─╭●───────┤ ╭<Z@Z>
    1: ──────────╰RY(0.2)─┤ ╰<Z@Z>

Gates are packed into layers: a gate goes into the first layer after every layer that
touches a wire between its lowest and highest wire, so that its connector is never
crossed.
"""

from __future__ import annotations

import jax
import numpy as np

from qhess.circuits.catalogue import CATALOGUE


def _values(tape, op, decimals):
  if decimals is None or not op.param_index:
    return ""
  if isinstance(tape.params, jax.core.Tracer):
    return ""
  vals = np.asarray(tape.params)[list(op.param_index)]
  return "(" + ",".join(f"{v:.{decimals}f}" for v in vals) + ")"


def _gate_labels(tape, op, decimals) -> dict[int, str]:
  spec = CATALOGUE[op.name]
  values = _values(tape, op, decimals)
  if spec.kind == "controlled":
    c = spec.controls
    labels = {w: "●" for w in op.wires[:c]}
    labels.update({w: spec.label + values for w in op.wires[c:]})
    return labels
  if op.name == "PauliRot":
    return {w: f"R{op.hyper}" + values for w in op.wires}
  if op.name == "QubitUnitary":
    return {w: f"U(M{op.hyper})" for w in op.wires}
  if op.name in ("CRZ", "ControlledPhaseShift"):
    return {op.wires[0]: "●", op.wires[1]: spec.label + values}
  if op.name == "CZ":
    return {op.wires[0]: "●", op.wires[1]: "Z"}
  return {w: spec.label + values for w in op.wires}


def _connect(labels: dict[int, str]) -> dict[int, str]:
  """Adds ╭ ├ ╰ │ connectors to a multi-wire label set."""
  if len(labels) < 2:
    return dict(labels)
  lo, hi = min(labels), max(labels)
  out = {}
  for w in range(lo, hi + 1):
    mark = "╭" if w == lo else "╰" if w == hi else "├" if w in labels else "│"
    out[w] = mark + labels.get(w, "")
  return out


def _observable_label(m) -> str:
  if m.kind == "probs":
    return "Probs"
  if len(m.terms) == 1 and m.terms[0][0] == 1.0 and all(f[0] != "H" for f in m.terms[0][1]):
    factors = sorted(m.terms[0][1], key=lambda f: f[1])
    word = "@".join(f[0] for f in factors) or "I"
  else:
    word = "𝓗"
  if m.kind == "var":
    return f"Var[{word}]"
  if m.kind == "expval_sq":
    return f"<{word}²>"
  return f"<{word}>"


def draw_tape(tape, decimals: int | None = None) -> str:
  """Text drawing of a `Tape`; see `Tape.draw`."""
  n = tape.n_wires
  layers: list[dict[int, str]] = []
  busy_until = [0] * n  # first free layer per wire
  for op in tape.operations:
    labels = _connect(_gate_labels(tape, op, decimals))
    span = range(min(labels), max(labels) + 1)
    layer = max(busy_until[w] for w in span)
    if layer == len(layers):
      layers.append({})
    layers[layer].update(labels)
    for w in span:
      busy_until[w] = layer + 1
  lines = [f"{w}: ──" for w in range(n)]
  for layer in layers:
    width = max(len(s) for s in layer.values())
    for w in range(n):
      lines[w] += layer.get(w, "").ljust(width, "─") + "─"
  meas = [[] for _ in range(n)]
  for m in tape.measurements:
    wires = m.all_wires
    label = _observable_label(m)
    for w, text in _connect({w: label for w in wires}).items():
      meas[w].append(text)
  width = len(str(n - 1))
  lines = [line.replace(f"{w}: ", f"{w:>{width}}: ", 1) for w, line in enumerate(lines)]
  return "\n".join((line + "┤ " + "  ".join(m)).rstrip() for line, m in zip(lines, meas))
