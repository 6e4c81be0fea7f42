"""PennyLane in: `from_pennylane`, QNodes and quantum functions as qhess circuits.

`from_pennylane` records a PennyLane quantum function (or QNode, or QuantumScript) into
a `Circuit`: the function runs under PennyLane's queuing with JAX values flowing through
it, inside qhess's recording, and each queued operation is replayed as a qhess gate.
The classical processing in the function thus stays JAX code, and the hybrid chain rule,
`jax.jit`, `jax.vmap` and `jax.grad` work as for native circuits. The way out,
`to_pennylane`, is `qhess.interop.pennylane_export`.

PennyLane is an optional dependency (``pip install "qhess[pennylane]"``): it is imported
inside the functions only, so ``import qhess`` never imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from typing import Callable, Hashable

import jax
import numpy as np

from qhess.circuits import channels as _noise
from qhess.circuits import observables as _observables
from qhess.circuits import catalogue as _ops
from qhess.circuits import tape as _tape
from qhess.circuits import generator_gates as _generator_gates
from qhess.circuits import generator_matrices as _gm
from qhess.simulate.circuit import Circuit
from qhess.circuits.tape import Tape
from qhess.interop.optional import import_pennylane as _import_pennylane

# qhess's catalogue: PennyLane's name -> how to record it. Everything else is decomposed.
_PARAMETRIC_HYPER = ("MultiRZ", "PauliRot", "QubitUnitary", "PCPhase")
# Noise channels, recorded as qhess's channels of the same name.
_CHANNELS = frozenset(n for n, s in _ops.CATALOGUE.items() if s.kind == "channel")
_GATES = {**_tape.GATES, **_generator_gates.GATES}
_CATALOGUE = frozenset(_GATES) | frozenset(_PARAMETRIC_HYPER)
# Operations with a generator that are not one (a global phase): decomposed (to nothing).
_NO_EVOLUTION = frozenset({"GlobalPhase", "Identity"})
_MAX_DEPTH = 32  # nested decompositions before giving up (PennyLane's are a few deep)
# Generators read from an operation's matrix (no generator, but parameter frequencies:
# FermionicSingleExcitation, FermionicDoubleExcitation, as in qml.UCCSD): on at most this
# many wires (the Evolution gate is dense), else the operation is decomposed. 8 covers the
# doubles of an 8-qubit active space (H2O with 4 electrons in 4 orbitals: UCCSD's 26
# parameters stay 26 gate arguments, as AllSinglesDoubles', not 75).
_MAX_DERIVED_WIRES = 8


class _PennyLaneCircuit(Circuit):
  """A `Circuit` recorded from PennyLane; its tapes carry the wire labels."""

  def __init__(self, fn: Callable, wire_labels: tuple[Hashable, ...]):
    super().__init__(fn, len(wire_labels))
    self.wire_labels = wire_labels

  def tape(self, *args, **kwargs) -> Tape:
    tape = super().tape(*args, **kwargs)
    return dataclasses.replace(tape, wire_labels=self.wire_labels)

  def __repr__(self) -> str:
    return (f"<qhess.Circuit {getattr(self.fn, '__name__', '?')} (from PennyLane): "
            f"wires={list(self.wire_labels)}>")


def from_pennylane(qnode_or_function, wires=None) -> Circuit:
  """A PennyLane QNode, quantum function or QuantumScript as a qhess `Circuit`.

  The function runs with JAX values flowing through it, under PennyLane's queuing and
  qhess's recording, so its classical processing (``jnp.sin(x[0])``, ``x @ w``) stays
  JAX code: `hessian` applies the chain rule through it, and the circuit composes with
  `jax.jit`, `jax.vmap` and `jax.grad` as a native one. Write that processing with
  ``jax.numpy``, not NumPy or ``pennylane.numpy`` (autograd), which cannot take traced
  values, and pass array arguments as JAX arrays, not Python lists (a list reaches the
  function as a list of traced scalars, which PennyLane's templates convert to NumPy).

  Operations: every gate of qhess's catalogue (`RX` ... `Toffoli`, `MultiRZ`,
  `PauliRot`, `QubitUnitary`, the generator gates `SingleExcitation` ... `PCPhase`,
  `U1`) maps one to one, with PennyLane's names, wire order and argument conventions;
  another operation of one argument with a generator (``qml.evolve(H, t)``,
  ``qml.ctrl`` of a rotation, ...) becomes one `Evolution` gate of that generator (when
  its eigenvalue differences are equidistant), as does one with parameter frequencies
  but no generator on at most 8 wires (the fermionic excitations of ``qml.UCCSD``: its
  generator is read from its matrix); any other operation is replaced by
  PennyLane's decomposition of it (recursively; ``GlobalPhase`` and ``Identity``
  vanish). Multi-controlled
  ``RX``/``RY``/``RZ`` (``qml.ctrl(qml.RY, control=(0, 1))``, also from ``Rot`` and
  ``PhaseShift``), which PennyLane decomposes for concrete angles only, become
  rotations of the target by ``±θ/2`` between multi-controlled X gates, exact for any
  value. Noise channels become qhess's channels of the same name (``DepolarizingChannel``
  ... ``QubitChannel``), other PennyLane channels (``ResetError``, ...) a
  ``QubitChannel`` of their Kraus operators; the circuit is then simulated as a density
  matrix, as on ``default.mixed``. Measurements: `expval`
  and `var` of Pauli words, sums (``qml.Hamiltonian``, ``+``), tensor products, scalar
  products and ``qml.Hermitian`` (other observables through their matrix), and
  ``qml.probs`` (PennyLane's wire order); a tuple of them gives a tuple of outputs.
  QNode transforms, shots and interfaces are not used: the circuit is exact.

  Wires: wire ``i`` of the circuit is ``wire_labels[i]``, the ``i``-th label of
  ``wires`` or of the device's wires (labels such as ``"a"`` or ``7`` are allowed); the
  first is the most significant bit of ``probs`` indices, as in PennyLane. The mapping
  is ``circuit.wire_labels`` and ``tape.wire_labels`` of each recorded tape.

  Args:
    qnode_or_function: a ``qml.QNode`` (its quantum function, on its device's wires),
      a quantum function (PennyLane gate calls returning measurements), or a
      ``qml.tape.QuantumScript``: then a circuit of one optional argument ``params``, a
      float array of shape ``(n_scalars,)`` replacing the script's scalar operation
      parameters in order (default: the script's own values).
    wires: the wire labels in order (a sequence), or an int ``n`` for ``0 .. n-1``.
      ``None``: the QNode's device wires; for a QuantumScript its wires (``0 .. max``
      when they are non-negative ints, else in order of appearance). Required for a
      bare function and a QNode on a device without wires.

  Returns:
    a `Circuit` with the function's signature and outputs (one array, or a tuple when
    the function returns a tuple or list of measurements), with a ``wire_labels``
    attribute.

  Raises:
    ImportError: when PennyLane is not installed.
    TypeError: for an argument that is not a QNode, callable or QuantumScript, or
      ``wires`` of the wrong kind. When called: an operation that is neither in the
      catalogue nor decomposable (for traced values: the message says when PennyLane
      decomposes it for concrete values only), a measurement other than expval, var and
      probs (``qml.state()``, ``qml.sample()``, ...), mid-circuit measurements, a
      function that converts traced values to NumPy (e.g. ``pennylane.numpy``; or a
      Python list argument given to a template: the message names it), or traced
      observable coefficients.
    ValueError: for missing, empty or repeated ``wires``; when called: a wire outside
      them, or broadcast (batched) gate parameters (use `jax.vmap`).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, pennylane as qml, qhess
    >>> dev = qml.device("default.qubit", wires=["a", "b"])
    >>> @qml.qnode(dev)
    ... def qnode(x):
    ...   qml.RX(x[0], wires="a")
    ...   qml.CRY(jnp.sin(x[1]), wires=["a", "b"])
    ...   return qml.expval(qml.Z("a") @ qml.Z("b"))
    >>> circuit = qhess.from_pennylane(qnode)
    >>> x = jnp.array([0.5, 0.2])
    >>> round(float(circuit(x)), 4), circuit.wire_labels
    (0.8788, ('a', 'b'))
    >>> print(np.float64(qhess.hessian(circuit)(x)).round(4))  # chain rule through jnp.sin
    [[-0.869   0.0464]
     [ 0.0464  0.0552]]
  """
  qml = _import_pennylane("from_pennylane")
  func, script, labels_from_device = _source(qnode_or_function, qml)
  labels = _wire_labels(wires, qnode_or_function, script, labels_from_device, qml)
  fn = _recording_fn(func, {w: i for i, w in enumerate(labels)}, qml)
  if script is not None:
    fn.__name__ = fn.__qualname__ = "quantum_script"
  return _PennyLaneCircuit(fn, labels)


def _source(qnode_or_function, qml) -> tuple[Callable, object, tuple | None]:
  """The quantum function to record, the QuantumScript it replays (else None) and the
  wire labels of the QNode's device (else None)."""
  if isinstance(qnode_or_function, qml.tape.QuantumScript):
    return _script_function(qnode_or_function, qml), qnode_or_function, None
  if isinstance(qnode_or_function, qml.QNode):
    device_wires = qnode_or_function.device.wires
    labels = None if device_wires is None else tuple(device_wires.labels)
    return qnode_or_function.func, None, labels
  if callable(qnode_or_function):
    return qnode_or_function, None, None
  raise TypeError(
      "`qnode_or_function` of from_pennylane must be a qml.QNode, a quantum function or "
      f"a qml.tape.QuantumScript; got {type(qnode_or_function).__name__}.")


def _wire_labels(wires, qnode_or_function, script, labels_from_device,
                 qml) -> tuple[Hashable, ...]:
  """The circuit's wire labels in order: ``wires``, else the device's, else the
  script's (``0 .. max`` for non-negative ints); a ValueError when there are none."""
  if wires is not None:
    return _check_labels(wires)
  if labels_from_device:
    return labels_from_device
  if script is not None and len(script.wires):
    script_labels = tuple(script.wires.labels)
    if all(isinstance(w, numbers.Integral) and w >= 0 for w in script_labels):
      return tuple(range(max(script_labels) + 1))
    return script_labels
  what = ("a QNode on a device without wires" if isinstance(qnode_or_function, qml.QNode)
          else "a QuantumScript without wires" if script is not None
          else "a quantum function")
  raise ValueError(
      f"from_pennylane needs `wires` for {what}: pass wires=n (labels 0..n-1) or the "
      "wire labels in order, e.g. wires=['a', 'b'].")


def _recording_fn(func: Callable, index: dict, qml) -> Callable:
  """The circuit's function: runs ``func`` under PennyLane's queuing, replays its
  operations as qhess gates and returns its measurements as qhess's."""

  @functools.wraps(func)
  def fn(*args, **kwargs):
    with qml.queuing.AnnotatedQueue() as queue:
      try:
        result = func(*args, **kwargs)
      except jax.errors.TracerArrayConversionError as err:
        raise _numpy_conversion_error(func, args, kwargs) from err
    recorded = qml.tape.QuantumScript.from_queue(queue)
    for op in recorded.operations:
      _apply(op, index, qml, depth=0)
    returns_tuple = isinstance(result, (tuple, list))
    measurements = tuple(result) if returns_tuple else (result,)
    outs = tuple(_measurement(m, index, qml) for m in measurements)
    return outs if returns_tuple else outs[0]

  return fn


def _numpy_conversion_error(func: Callable, args, kwargs) -> TypeError:
  """The TypeError for a quantum function that converted a traced value to NumPy,
  naming the list argument that caused it when there is one."""
  listed = _traced_sequence_argument(func, args, kwargs)
  if listed is not None:
    return TypeError(
        f"from_pennylane: the argument {listed} of the quantum function "
        f"`{getattr(func, '__name__', func)}` is a Python list or tuple of traced "
        "JAX scalars (qhess.hessian, jax.jit and grad trace each entry of a list "
        "separately), and PennyLane converts such a list to NumPy (templates such "
        "as qml.AllSinglesDoubles, and any operation given a list), which a traced "
        "value cannot be. Pass a JAX array instead of a list, e.g. "
        "qhess.hessian(circuit)(jnp.array([0.5, 0.3])).")
  return TypeError(
      f"from_pennylane: the quantum function `{getattr(func, '__name__', func)}` "
      "converted a traced JAX value to NumPy: its classical processing must be JAX "
      "code, e.g. jnp.sin(x) rather than pennylane.numpy.sin(x) (autograd) or "
      "np.sin(x). qhess traces the function with abstract values for its Hessians, "
      "jax.jit, vmap and grad.")


def _traced_sequence_argument(func, args, kwargs) -> str | None:
  """The name of the first argument that is a list or tuple holding traced values."""
  try:
    names = list(inspect.signature(func).parameters)
  except (TypeError, ValueError):
    names = []
  named = [(f"`{names[i]}`" if i < len(names) else f"#{i}", v) for i, v in enumerate(args)]
  named += [(f"`{k}`", v) for k, v in kwargs.items()]
  for name, value in named:
    if isinstance(value, (list, tuple)) and any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value)):
      return name
  return None


def _check_labels(wires) -> tuple[Hashable, ...]:
  if isinstance(wires, (numbers.Integral, np.integer)) and not isinstance(wires, bool):
    if wires < 1:
      raise ValueError(f"`wires` of from_pennylane must be positive; got {wires}.")
    return tuple(range(int(wires)))
  if isinstance(wires, (str, bytes)) or not hasattr(wires, "__iter__"):
    raise TypeError(
        "`wires` of from_pennylane must be an int or a sequence of wire labels; got "
        f"{wires!r}.")
  labels = tuple(getattr(wires, "labels", wires))
  if not labels:
    raise ValueError("`wires` of from_pennylane must not be empty.")
  if len(set(labels)) != len(labels):
    raise ValueError(f"`wires` of from_pennylane must be distinct; got {labels}.")
  return labels


def _script_function(script, qml) -> Callable:
  """A quantum function of the script's scalar operation parameters (flat)."""
  slots = [(i, j) for i, op in enumerate(script.operations)
           for j, d in enumerate(op.data) if np.ndim(d) == 0]
  defaults = np.array([float(np.real(script.operations[i].data[j])) for i, j in slots],
                      dtype=np.float64)

  def quantum_script(params=None):
    if params is None:
      params = defaults
    elif np.shape(params) != defaults.shape:
      raise ValueError(
          f"`params` of this QuantumScript's circuit must have shape {defaults.shape} "
          f"(its scalar operation parameters); got {np.shape(params)}.")
    new_data = [list(op.data) for op in script.operations]
    for k, (i, j) in enumerate(slots):
      new_data[i][j] = params[k]
    for op, data in zip(script.operations, new_data):
      if op.data:
        with qml.QueuingManager.stop_recording():  # (construction would queue it too)
          # (PennyLane's bind_new_parameters drops an Evolution's Hermitian base matrix)
          op = (qml.evolve(op.base, data[0]) if isinstance(op, qml.ops.Evolution)
                else qml.ops.functions.bind_new_parameters(op, data))
      qml.apply(op)
    measurements = tuple(script.measurements)
    return measurements if len(measurements) != 1 else measurements[0]

  return quantum_script


def _wires(op, index) -> tuple[int, ...]:
  out = []
  for w in op.wires.labels:
    if w not in index:
      raise ValueError(
          f"from_pennylane: wire {w!r} of {op!r} is not among the circuit's wires "
          f"{tuple(index)}; pass `wires` with every label the function uses.")
    out.append(index[w])
  return tuple(out)


def _apply(op, index, qml, depth: int) -> None:
  """Records ``op`` as a qhess gate, or the gates of its decomposition."""
  name = op.name
  if isinstance(op, (qml.measurements.MidMeasureMP, qml.ops.Conditional)):
    raise TypeError(
        f"from_pennylane: mid-circuit measurements and conditional operations ({name}) "
        "are not supported; qhess circuits are unitary, measured at the end.")
  if name in _CHANNELS or isinstance(op, qml.operation.Channel):
    _apply_channel(op, index, qml)
    return
  if _is_multicontrolled_rotation(op, qml):
    for sub in _multicontrolled_rotation(op, qml):
      _apply(sub, index, qml, depth + 1)
    return
  evolution = None if name in _CATALOGUE else _evolution_generator(op, qml)
  if name in _CATALOGUE or evolution is not None:
    if getattr(op, "batch_size", None) is not None:
      raise ValueError(
          f"from_pennylane: {op!r} has broadcast (batched) parameters; qhess takes one "
          "value per gate argument: jax.vmap the circuit over a batch instead.")
    wires = _wires(op, index)
    if evolution is not None:  # exp(iθ G_pl) = exp(-iθ G) with G = -G_pl
      _generator_gates.Evolution(-evolution, op.data[0], wires=wires)
    elif name == "PauliRot":
      _tape.PauliRot(op.data[0], op.hyperparameters["pauli_word"], wires=wires)
    elif name == "MultiRZ":
      _tape.MultiRZ(op.data[0], wires=wires)
    elif name == "QubitUnitary":
      _tape.QubitUnitary(op.data[0], wires=wires)
    elif name == "PCPhase":
      _generator_gates.PCPhase(op.data[0], op.hyperparameters["dimension"][0], wires=wires)
    else:
      _GATES[name](*op.data, wires=wires)
    return
  if not op.has_decomposition or depth >= _MAX_DEPTH:
    if any(isinstance(d, jax.core.Tracer) for d in op.data):
      raise TypeError(
          f"from_pennylane: the operation {name} ({op!r}) is not in qhess's gate "
          "catalogue, and PennyLane has no decomposition of it for traced (abstract) "
          "parameter values, which qhess.hessian, jax.jit, jax.vmap and jax.grad pass: "
          "PennyLane decomposes some operations only for concrete values, so the "
          "circuit's values at concrete arguments work but its derivatives and jit do "
          "not. Write the operation with gates of the catalogue "
          f"({', '.join(sorted(_CATALOGUE))}) or operations that PennyLane decomposes "
          "for any value (e.g. qml.ctrl of RX, RY, RZ, Rot or PhaseShift).")
    raise TypeError(
        f"from_pennylane: the operation {name} ({op!r}) is not in qhess's gate catalogue "
        "and PennyLane has no decomposition of it into gates qhess knows. Supported: "
        f"{', '.join(sorted(_CATALOGUE))}, noise channels, and operations that "
        "decompose into them.")
  for sub in op.decomposition():
    _apply(sub, index, qml, depth + 1)


def _evolution_generator(op, qml):
  """PennyLane's generator ``G_pl`` of ``op`` (``op = exp(iθ G_pl)``, one argument θ) as a
  concrete matrix on ``op``'s wires, when qhess records ``op`` as one `Evolution` gate:
  ``qml.evolve``, multi-controlled phases and other operations with a generator outside
  the catalogue whose decomposition would split θ over several gates, and operations
  with parameter frequencies but no generator (`_derived_generator`). ``None``
  (decompose it) without either, when PennyLane's decomposition has a single
  parametrized gate (``qml.adjoint(qml.S)``, ``qml.evolve`` of one Pauli word: a native
  gate is cheaper than a dense one), for a traced generator, or when the generator's
  eigenvalue differences lie on no equidistant grid (no shift rule)."""
  if op.name in _NO_EVOLUTION or len(op.data) != 1 or _single_piece(op):
    return None
  try:
    with qml.QueuingManager.stop_recording():
      if isinstance(op, qml.ops.Evolution):  # exp(-iθ base); (its has_generator reads θ)
        matrix = -qml.matrix(op.base, wire_order=op.wires)
      elif op.has_generator:
        matrix = qml.matrix(qml.generator(op, format="observable"), wire_order=op.wires)
      else:
        matrix = _derived_generator(op, qml)
        if matrix is None:
          return None
  except (qml.operation.GeneratorUndefinedError, qml.operation.MatrixUndefinedError,
          qml.operation.ParameterFrequenciesUndefinedError,
          qml.operation.DecompositionUndefinedError,
          jax.errors.TracerArrayConversionError, jax.errors.TracerBoolConversionError,
          TypeError, ValueError):
    return None
  if isinstance(matrix, jax.core.Tracer):
    return None
  matrix = np.asarray(matrix, dtype=complex)
  freqs = _gm.frequencies(np.linalg.eigvalsh((matrix + matrix.conj().T) / 2))
  return matrix if _gm.equidistant(freqs, _generator_gates._MAX_GRID) is not None else None


def _derived_generator(op, qml) -> np.ndarray | None:
  """``G_pl`` of an operation that PennyLane gives parameter frequencies but no generator
  (the fermionic excitations of ``qml.UCCSD``, which PennyLane differentiates with a
  four-term rule), from its matrix at concrete angles: ``G_pl = -i log U(θ₀) / θ₀``, kept
  only when ``U(θ) = exp(iθ G_pl)`` at two other angles (a one-parameter group).
  ``None`` on more than `_MAX_DERIVED_WIRES` wires or for a non-scalar argument."""
  freqs = op.parameter_frequencies  # raises ParameterFrequenciesUndefinedError
  if len(op.wires) > _MAX_DERIVED_WIRES or np.ndim(op.data[0]) != 0 or len(freqs) != 1:
    return None
  import scipy.linalg  # pylint: disable=import-outside-toplevel

  def unitary(theta):
    bound = qml.ops.functions.bind_new_parameters(op, [theta])
    return np.asarray(qml.matrix(bound, wire_order=op.wires), dtype=complex)

  theta0 = 0.1 / max([1.0, *map(abs, freqs[0])])
  generator = -1j * scipy.linalg.logm(unitary(theta0)) / theta0
  generator = (generator + generator.conj().T) / 2
  for theta in (1.2345, -2.5):
    if not np.allclose(unitary(theta), scipy.linalg.expm(1j * theta * generator),
                       rtol=0, atol=1e-12):
      return None
  return generator


def _single_piece(op) -> bool:
  """Whether PennyLane decomposes ``op`` into at most one gate with parameters."""
  try:
    if not op.has_decomposition:
      return False
    return sum(1 for piece in op.decomposition() if piece.data) <= 1
  except Exception:  # pylint: disable=broad-except  (abstract values: no decomposition)
    return False


def _apply_channel(op, index, qml) -> None:
  """Records a PennyLane noise channel: qhess's channel of its name, or its Kraus set."""
  wires = _wires(op, index)
  name = op.name
  if name == "QubitChannel":
    _noise.QubitChannel(list(op.data), wires=wires)
  elif name == "PauliError":
    _noise.PauliError(op.hyperparameters["operators"], op.data[0], wires=wires)
  elif name in _CHANNELS:  # PennyLane's arguments, in PennyLane's order
    getattr(_noise, name)(*op.data, wires=wires)
  else:  # any other channel (ResetError, ThermalRelaxationError, ...): its Kraus set
    _noise.QubitChannel(list(op.kraus_matrices()), wires=wires)


# Multi-controlled rotations: PennyLane decomposes qml.ctrl(RY, control=(0, 1)) only for
# concrete angles (into matrices computed from the angle). qhess records them as
# rotations of the target by halves of the angle, exactly, for any value:
# C^k-R_P(θ) = R_P(θ/2) · C^k-Q · R_P(-θ/2) · C^k-Q for a Pauli Q anticommuting with P
# (Q R_P(φ) Q = R_P(-φ): the two halves add up when the controls are set and cancel
# when not). Q = X for RY and RZ; RX is H RZ H. Controls on 0 are flipped around it.
_MC_ROTATIONS = ("RX", "RY", "RZ")


def _is_multicontrolled_rotation(op, qml) -> bool:
  return (isinstance(op, qml.ops.Controlled) and op.base.name in _MC_ROTATIONS
          and len(op.control_wires) >= 2)


def _multicontrolled_rotation(op, qml) -> list:
  """``op`` (k >= 2 controls, a RX/RY/RZ base) as rotations and C^k-X gates."""
  theta = op.base.data[0]
  (target,) = op.base.wires.labels
  controls = list(op.control_wires.labels)
  wires = controls + [target]
  with qml.QueuingManager.stop_recording():
    if len(controls) == 2:
      flip = qml.Toffoli(wires=wires)
    elif len(controls) == 3:  # one constant 16x16 matrix rather than ~70 gates
      flip = qml.QubitUnitary(qml.matrix(qml.MultiControlledX(wires=wires)), wires=wires)
    else:  # (decomposed by PennyLane: constant gates)
      flip = qml.MultiControlledX(wires=wires)
    rot = qml.RY if op.base.name == "RY" else qml.RZ
    ops = [rot(theta / 2, wires=target), flip, rot(-theta / 2, wires=target), flip]
    if op.base.name == "RX":
      ops = [qml.Hadamard(target)] + ops + [qml.Hadamard(target)]
    zeros = [qml.PauliX(w) for w, v in zip(controls, op.control_values) if not v]
  return zeros + ops + zeros


def _measurement(m, index, qml) -> _observables.Measurement:
  mp = qml.measurements
  if not isinstance(m, mp.MeasurementProcess):
    raise TypeError(
        "from_pennylane: the quantum function must return measurements (qml.expval, "
        f"qml.var, qml.probs) or a tuple of them; got {m!r} ({type(m).__name__}).")
  if getattr(m, "mv", None) is not None:
    raise TypeError(
        f"from_pennylane: {m!r} measures a mid-circuit measurement value; qhess measures "
        "observables and probabilities at the end of the circuit only.")
  if isinstance(m, (mp.ExpectationMP, mp.VarianceMP)) and m.obs is not None:
    obs = _observable(m.obs, index, qml)
    return (_observables.expval if isinstance(m, mp.ExpectationMP) else _observables.var)(obs)
  if isinstance(m, mp.ProbabilityMP) and m.obs is None:
    if not len(m.wires):
      return _observables.probs(None)  # all wires, in the circuit's (device's) order
    return _observables.probs(_wires(m, index))
  raise TypeError(
      f"from_pennylane: the measurement {m!r} ({type(m).__name__}) is not supported; "
      "qhess measures qml.expval and qml.var of observables and qml.probs(wires=...).")


def _constant(coeff: float = 1.0) -> _observables.Observable:
  return _observables.Observable([(coeff, ())])


def _observable(obs, index, qml) -> _observables.Observable:
  """A PennyLane observable as a qhess `Observable`, keeping its term structure."""
  ops = qml.ops
  name = obs.name
  if isinstance(obs, ops.Sum):  # also qml.Hamiltonian (a LinearCombination)
    return sum(_observable(o, index, qml) for o in obs.operands)
  if isinstance(obs, ops.SProd):
    return obs.scalar * _observable(obs.base, index, qml)
  if isinstance(obs, ops.Prod):
    factors = [_observable(o, index, qml) for o in obs.operands]
    wire_sets = [set(f.wires) for f in factors]
    if sum(len(s) for s in wire_sets) == len(set().union(*wire_sets)):
      return functools.reduce(lambda a, b: a @ b, factors)
    # factors sharing wires (Z(0) @ X(0)): through the Pauli algebra, else densely
    if obs.pauli_rep is not None:
      return _from_pauli_sentence(obs.pauli_rep, index, obs)
    return _dense(obs, index, qml)
  if name in ("PauliX", "PauliY", "PauliZ"):
    (w,) = _wires(obs, index)
    return {"PauliX": _observables.X, "PauliY": _observables.Y,
            "PauliZ": _observables.Z}[name](w)
  if name == "Identity":
    wires = _wires(obs, index)
    return _observables.I(wires[0]) if len(wires) == 1 else _constant()
  if name == "Hermitian":
    return _observables.Hermitian(obs.data[0], wires=_wires(obs, index))
  if obs.pauli_rep is not None:
    return _from_pauli_sentence(obs.pauli_rep, index, obs)
  if obs.has_matrix:
    return _dense(obs, index, qml)
  raise TypeError(
      f"from_pennylane: the observable {obs!r} ({name}) has neither a Pauli "
      "representation nor a matrix; qhess measures Pauli words, their sums and products, "
      "and Hermitian matrices.")


def _from_pauli_sentence(sentence, index, obs) -> _observables.Observable:
  total = _constant(0.0) if not sentence else 0
  for word, coeff in sentence.items():
    term = _constant(1.0)
    for w, char in word.items():
      if w not in index:
        raise ValueError(
            f"from_pennylane: wire {w!r} of {obs!r} is not among the circuit's wires "
            f"{tuple(index)}.")
      term = term @ getattr(_observables, char)(index[w])
    total = total + coeff * term
  return total


def _dense(obs, index, qml) -> _observables.Observable:
  matrix = qml.matrix(obs, wire_order=obs.wires)
  return _observables.Hermitian(matrix, wires=_wires(obs, index))

