"""A noise model on a circuit: `with_noise` adds channels after its gates and readout error.

The channels themselves are operations of the catalogue (`qhess.circuits.channels`); a
circuit with channels runs as a density matrix (`qhess.simulate.noisy`).
"""

from __future__ import annotations

import functools
import numbers
from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np

from qhess.circuits import tape as _tape
from qhess.simulate.circuit import Circuit
from qhess.simulate.density import combine_flips
from qhess.circuits.catalogue import CATALOGUE
from qhess.circuits.channels import Channel, _cdtype


def _as_channels(out, op, where: str) -> list[Channel]:
  if out is None:
    return []
  items = [out] if isinstance(out, Channel) else out
  if not isinstance(items, (list, tuple)) or not all(isinstance(c, Channel) for c in items):
    raise TypeError(
        f"`{where}` must return a channel (e.g. qhess.DepolarizingChannel(0.01, "
        f"wires=op.wires[0]) called outside a circuit), a list of them or None; got "
        f"{out!r} for gate {op.name} on wires {op.wires}.")
  return list(items)



def _readout_probs(readout, n_wires: int) -> tuple[float, ...] | None:
  if readout is None:
    return None
  if isinstance(readout, Mapping):
    probs = [0.0] * n_wires
    for w, p in readout.items():
      if isinstance(w, bool) or not isinstance(w, (numbers.Integral, np.integer)) or not (
          0 <= w < n_wires):
        raise ValueError(
            f"`readout` wire {w!r} is outside the circuit's wires 0..{n_wires - 1}.")
      probs[int(w)] = p
  elif isinstance(readout, (numbers.Real, np.floating, np.integer)) and not isinstance(
      readout, bool):
    probs = [readout] * n_wires
  elif isinstance(readout, (list, tuple, np.ndarray)):
    probs = list(np.asarray(readout, dtype=float).reshape(-1))
    if len(probs) != n_wires:
      raise ValueError(
          f"`readout` as a sequence needs one probability per wire ({n_wires}); got "
          f"{len(probs)}.")
  else:
    raise TypeError(
        "`readout` must be a probability, a sequence of them (one per wire) or a dict "
        f"{{wire: probability}}; got {readout!r}.")
  out = []
  for w, p in enumerate(probs):
    p = float(p)
    if not 0.0 <= p <= 1.0:
      raise ValueError(f"`readout` of wire {w} must be a probability in [0, 1]; got {p}.")
    out.append(p)
  return tuple(out)



def with_noise(circuit: Circuit, after: Callable | Mapping[str, Callable] | None = None, *,
               readout=None) -> Circuit:
  """The circuit with a noise model: channels after its gates, readout error.

  A pure transform of the recorded tape, in the spirit of PennyLane's ``add_noise``: the
  circuit function is unchanged, and each recording of the new circuit inserts the
  channels. Hessians (`qhess.hessian`, ...), shots and `qhess.hessian_tapes` work on the
  result as on any circuit; it is simulated as a density matrix when a channel is added.

  Args:
    circuit: a `qhess.Circuit`.
    after: ``None``; or a function ``op -> channels`` called for every gate ``op`` of the
      tape (an `Operation`: ``op.name``, ``op.wires``), returning a channel built
      outside a circuit (``qhess.DepolarizingChannel(0.01, wires=op.wires[1])``), a list
      of them, or ``None``; or a dict ``{gate name: such a function}`` (rules per gate
      name). The channels are inserted right after the gate, in the order returned.
    readout: ``None``; or readout error, the probability that a measured bit is flipped
      (after the basis rotation of its measurement group): one probability for every
      wire, a sequence with one per wire, or a dict ``{wire: probability}``.

  Returns:
    a `qhess.Circuit` with the same signature.

  Raises:
    TypeError: for a ``circuit`` that is not a `qhess.Circuit`, an ``after`` that is
      neither callable nor a dict, a rule that returns something other than channels
      (when recorded), or a ``readout`` of the wrong kind.
    ValueError: for a dict key that is not a gate name, a readout probability outside
      [0, 1] or of the wrong length, or a channel on a wire outside the circuit (when
      recorded).

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RY(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> noisy = qhess.with_noise(
    ...     f, {"CNOT": lambda op: qhess.DepolarizingChannel(0.1, wires=op.wires[1])},
    ...     readout=0.02)
    >>> print(noisy.tape(jnp.array([0.5])).draw())
    0: ──RY─╭●───────╭RO─┤ ╭<Z@Z>
    1: ─────╰X─Depol─╰RO─┤ ╰<Z@Z>
    >>> round(float(noisy(jnp.array([0.5]))), 4)  # <ZZ> = 1, times (1 - 4/3 0.1) (1 - 2 0.02)**2
    0.7987
  """
  if not isinstance(circuit, Circuit):
    raise TypeError(f"`circuit` must be a qhess.Circuit; got {type(circuit).__name__}.")
  if isinstance(after, Mapping):
    for name, rule in after.items():
      if name not in CATALOGUE or CATALOGUE[name].kind in ("channel", "readout") or (
          name.endswith("*")):
        raise ValueError(f"`after` keys must be gate names such as 'CNOT'; got {name!r}.")
      if not callable(rule):
        raise TypeError(f"`after[{name!r}]` must be callable; got {rule!r}.")
    rules = dict(after)
    after_fn = lambda op: rules[op.name](op) if op.name in rules else None  # noqa: E731
  elif after is None or callable(after):
    after_fn = after
  else:
    raise TypeError(
        f"`after` must be None, a function op -> channels, or a dict of them; got {after!r}.")
  flips = _readout_probs(readout, circuit.n_wires)

  def transform(tape):
    ops, consts = [], list(tape.consts)
    for op in tape.operations:
      ops.append(op)
      if after_fn is None or CATALOGUE[op.name].kind in ("channel", "readout"):
        continue
      for ch in _as_channels(after_fn(op), op, "after"):
        bad = [w for w in ch.wires if not 0 <= w < tape.n_wires]
        if bad:
          raise ValueError(
              f"`after`: {ch.name} on wires {ch.wires} is outside the circuit's wires "
              f"0..{tape.n_wires - 1} (after gate {op.name} on wires {op.wires}).")
        consts.append(jnp.asarray(ch.kraus, _cdtype()))
        ops.append(_tape.Operation(ch.name, ch.wires, (), len(consts) - 1))
    if flips is not None:
      old = [o for o in ops if o.name == "ReadoutError"]
      ops = [o for o in ops if o.name != "ReadoutError"]
      merged = flips
      for o in old:
        merged = combine_flips(o.hyper, merged)
      ops.append(_tape.Operation("ReadoutError", tuple(range(tape.n_wires)), (), merged))
    return _tape.dataclasses.replace(tape, operations=tuple(ops), consts=tuple(consts))

  inner = getattr(circuit.fn, "_qhess_tape_transform", None)
  base = getattr(circuit.fn, "__wrapped__", circuit.fn) if inner is not None else circuit.fn

  @functools.wraps(base)
  def noisy_fn(*args, **kwargs):
    return base(*args, **kwargs)

  noisy_fn._qhess_tape_transform = (  # pylint: disable=protected-access
      transform if inner is None else (lambda t: transform(inner(t))))
  return Circuit(noisy_fn, circuit.n_wires)
