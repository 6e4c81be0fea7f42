"""Tapes, and recording a circuit function into one.

A circuit function calls gate functions (`RX`, `CNOT`, ...) and returns measurements.
Running it under a recording context produces a `Tape`: a static, hashable *structure*
(gates, wires, measurements) plus the traced data — the flat vector of gate arguments
``params`` of shape ``(n_params,)`` and the matrices of `QubitUnitary` gates and
`Hermitian` observables (``consts``). The kernel is compiled once per structure; the data
is its input. The classical processing ``params pytree -> tape.params`` is ordinary JAX
code and stays differentiable.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import numbers
from typing import Any, Hashable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits import observables as _observables
from qhess.circuits.catalogue import CATALOGUE
from qhess.circuits.measurement import MeasurementSpec as MeasurementSpec
from qhess.circuits.measurement import float_dtype as float_dtype


class Operation(NamedTuple):
  """One gate of a tape (static).

  Attributes:
    name: the gate's name in the catalogue, e.g. ``"RX"``.
    wires: the wires it acts on, in the gate's order (controls first).
    param_index: indices of its arguments in ``Tape.params``, e.g. ``(3, 4, 5)`` for Rot.
    hyper: static extra: the Pauli word of PauliRot, the wire count of MultiRZ, or the
      index of a QubitUnitary's matrix in ``Tape.consts``; otherwise ``None``.
  """

  name: str
  wires: tuple[int, ...]
  param_index: tuple[int, ...]
  hyper: Hashable = None


@dataclasses.dataclass(frozen=True, eq=False)
class Tape:
  """A recorded circuit: static structure plus gate arguments.

  Attributes:
    operations: tuple of `Operation`, in application order.
    measurements: tuple of `MeasurementSpec`, one per circuit output.
    params: float array of shape ``(n_params,)``: the gate arguments in recording order
      (Rot and U3 contribute 3 each).
    consts: tuple of complex arrays: QubitUnitary and Hermitian matrices.
    n_wires: number of qubits.
    returns_tuple: whether the circuit returns a tuple of outputs (else one output).
    wire_labels: ``None`` (wires are ``0 .. n_wires-1``), or the user's wire labels, one
      per wire in wire order: wire ``i`` of the operations and measurements is
      ``wire_labels[i]`` (set by `from_pennylane` for labels such as ``("a", 3)``).
      Labels are not part of `structure`.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CRY(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> tape = f.tape(jnp.array([0.5, 0.2]))
    >>> tape.num_params, [op.name for op in tape.operations]
    (2, ['RX', 'CRY'])
    >>> print(tape.draw(decimals=1))
    0: ──RX(0.5)─╭●───────┤ ╭<Z@Z>
    1: ──────────╰RY(0.2)─┤ ╰<Z@Z>
  """

  operations: tuple[Operation, ...]
  measurements: tuple[MeasurementSpec, ...]
  params: jax.Array
  consts: tuple[jax.Array, ...]
  n_wires: int
  returns_tuple: bool
  wire_labels: tuple[Hashable, ...] | None = None

  @property
  def num_params(self) -> int:
    """Number of gate arguments ``n_params``."""
    return len(self.params)

  @property
  def structure(self) -> tuple:
    """Hashable static structure: equal structures share one compiled kernel."""
    const_avals = tuple((tuple(c.shape), str(c.dtype)) for c in self.consts)
    return (self.operations, self.measurements, self.n_wires, self.returns_tuple,
            self.num_params, const_avals)

  @property
  def raw_measurements(self) -> tuple[MeasurementSpec, ...]:
    """The linear measurements the kernel computes (variances split into two moments)."""
    return tuple(r for m in self.measurements for r in m.raw())

  def finalize(self, raw: jax.Array, consts: Sequence | None = None) -> Any:
    """Outputs of the circuit from the concatenated raw outputs.

    Args:
      raw: float array of shape ``(..., n_raw)``, the kernel's output.
      consts: the tape's constants to use (``None``: ``self.consts``); the chain rule
        passes those of a re-recorded tape, so that coefficients computed from the
        differentiated inputs are differentiated too.

    Returns:
      one array, or a tuple of arrays when ``returns_tuple``; each of shape
      ``(..., *measurement.shape)``.
    """
    outs, start = [], 0
    for m in self.measurements:
      values = []
      for r in m.raw():
        size = r.raw_size
        value = raw[..., start:start + size]
        values.append(value if r.kind == "probs" else value[..., 0])
        start += size
      outs.append(m.finalize(values, self.consts if consts is None else consts))
    return tuple(outs) if self.returns_tuple else outs[0]

  @property
  def output_shapes(self) -> tuple[tuple[int, ...], ...]:
    return tuple(m.shape for m in self.measurements)

  def with_params(self, params: jax.typing.ArrayLike) -> Tape:
    """The same circuit with other gate arguments, shape ``(n_params,)``."""
    params = jnp.asarray(params, dtype=float_dtype())
    if params.shape != (self.num_params,):
      raise ValueError(
          f"`params` must have shape ({self.num_params},); got {params.shape}.")
    return dataclasses.replace(self, params=params)

  def with_measurements(self, measurements, returns_tuple: bool) -> Tape:
    return dataclasses.replace(self, measurements=tuple(measurements),
                               returns_tuple=returns_tuple)

  def draw(self, decimals: int | None = None) -> str:
    """Text drawing of the circuit, one line per wire.

    Args:
      decimals: digits of the gate arguments to show; ``None`` hides them.

    Returns:
      a multi-line string.
    """
    from qhess.circuits.draw import draw_tape  # _draw knows tapes only by their attributes
    return draw_tape(self, decimals)

  def __repr__(self) -> str:
    return (f"<Tape: wires={self.n_wires}, params={self.num_params}, "
            f"operations={len(self.operations)}, measurements={len(self.measurements)}>")


# ------------------------------------------------------------------------------ recording


class _Recorder:
  """Collects the gates called while a circuit function runs."""

  def __init__(self, n_wires: int):
    self.n_wires = n_wires
    self.operations: list[Operation] = []
    self.params: list[jax.Array] = []
    self.consts: list[jax.Array] = []
    self.cancelled: set[int] = set()  # indices of Pauli gate calls used as observables

  def add_const(self, value) -> int:
    self.consts.append(value)
    return len(self.consts) - 1


_ACTIVE: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "qhess_recorder", default=None)


def _check_wires(rec: _Recorder, wires, gate: str, n_expected: int | None) -> tuple[int, ...]:
  wires = _observables._as_wires(wires, gate)
  for w in wires:
    if not 0 <= w < rec.n_wires:
      raise ValueError(
          f"{gate}: wire {w} is outside the circuit's wires 0..{rec.n_wires - 1} "
          f"(got wires={wires}).")
  if n_expected is not None and len(wires) != n_expected:
    raise ValueError(f"{gate} acts on {n_expected} wire(s); got wires={wires}.")
  return wires


def _as_param(value, gate: str, argname: str) -> jax.Array:
  if isinstance(value, (list, tuple)):
    raise ValueError(
        f"{gate}: argument `{argname}` must be a scalar; got a {type(value).__name__} of "
        f"length {len(value)}. To evaluate a batch of parameters, jax.vmap the circuit.")
  # jnp.asarray turns None and some strings (dtype names like "f") into ValueErrors or
  # warnings of its own; reject them here with the same message as other non-numbers.
  if value is None or isinstance(value, (str, bytes)):
    raise TypeError(f"{gate}: argument `{argname}` must be a real number; got {value!r}.")
  try:
    value = jnp.asarray(value)
  except TypeError as err:
    raise TypeError(
        f"{gate}: argument `{argname}` must be a real number; got {value!r}.") from err
  if value.ndim != 0:
    raise ValueError(
        f"{gate}: argument `{argname}` must be a scalar; got an array of shape "
        f"{value.shape}. To evaluate a batch of parameters, jax.vmap the circuit.")
  if jnp.issubdtype(value.dtype, jnp.complexfloating):
    raise TypeError(f"{gate}: argument `{argname}` must be real; got dtype {value.dtype}.")
  dtype = float_dtype()
  if value.dtype == dtype and not jax.typeof(value).weak_type:
    return value  # (astype would still add a conversion to every recording)
  return value.astype(dtype)


def _record(name: str, args: tuple, wires, hyper=None, argnames: tuple[str, ...] = ()):
  rec = _ACTIVE.get()
  if rec is None:
    raise RuntimeError(
        f"qhess.{name} was called outside a circuit. Gates are recorded by a function "
        "decorated with @qhess.circuit(wires=...), and only while it runs.")
  spec = CATALOGUE[name]
  if len(args) != spec.n_params:
    raise TypeError(
        f"{name} takes {spec.n_params} gate argument(s) ({', '.join(argnames)}); "
        f"got {len(args)}.")
  wires = _check_wires(rec, wires, name, spec.n_wires)
  start = len(rec.params)
  rec.params.extend(_as_param(a, name, n) for a, n in zip(args, argnames))
  rec.operations.append(
      Operation(name, wires, tuple(range(start, len(rec.params))), hyper))
  return rec, len(rec.operations) - 1


class PauliGate(_observables.Observable):
  """What `PauliX`, `PauliY` and `PauliZ` return: a gate that can also be an observable.

  Called inside a circuit, ``qhess.PauliZ(0)`` records a Z gate. Used as an observable
  (``qhess.expval(qhess.PauliZ(0))``, or in ``@``, ``+``, ``*``), the call is taken off
  the circuit again, as in PennyLane, where ``qml.expval(qml.PauliZ(0))`` measures Z
  rather than applying it. Outside a circuit the call only builds the observable, so
  Hamiltonians can be written with the gate names too.

  Examples:
    >>> import qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x, wires=0)
    ...   qhess.PauliX(wires=1)  # a gate
    ...   return qhess.expval(qhess.PauliZ(0) @ qhess.PauliZ(1))  # an observable
    >>> [op.name for op in f.tape(0.5).operations], round(float(f(0.5)), 4)
    (['RX', 'PauliX'], -0.8776)
  """

  def __init__(self, char: str, wire: int, recorder: _Recorder | None = None,
               index: int | None = None):
    # Not Observable.__init__: `terms` is a property here.
    self._terms = ((1.0, (_observables.Pauli(char, wire),)),)
    self._gate = (recorder, index)

  @property
  def terms(self) -> tuple:
    # Every use as an observable reads `terms`: that is when the gate is taken back.
    recorder, index = self._gate
    if recorder is not None:
      recorder.cancelled.add(index)
      self._gate = (None, None)
    return self._terms


_PAULI_GATES = {"PauliX": "X", "PauliY": "Y", "PauliZ": "Z"}


def _make_gate(name: str, argnames: tuple[str, ...], doc: str):
  n = len(argnames)

  def gate(*args, wires=None):
    if wires is None and len(args) == n + 1:
      *args, wires = args
    if wires is None:
      raise TypeError(f"{name}: missing the `wires` argument.")
    if name in _PAULI_GATES:
      return _pauli_gate(name, tuple(args), wires)
    _record(name, tuple(args), wires, argnames=argnames)
    return None

  gate.__name__ = gate.__qualname__ = name
  gate.__module__ = "qhess"  # its public home, `qhess.<name>` (pickling, the API docs)
  gate.__signature__ = inspect.Signature(
      [inspect.Parameter(a, inspect.Parameter.POSITIONAL_ONLY) for a in argnames]
      + [inspect.Parameter("wires", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
  sig = ", ".join(argnames + ("wires",))
  arg_docs = "".join(
      f"    {a}: gate argument, a real scalar (float or 0-d array).\n" for a in argnames)
  controls = " (controls first)" if CATALOGUE[name].controls else ""
  pauli_note = f"""
  Also an observable, as in PennyLane: ``qhess.expval(qhess.{name}(0))`` measures it
  (the call is then not a gate of the circuit), and outside a circuit the call just
  builds the observable `{_PAULI_GATES.get(name)}` (see `PauliGate`).
""" if name in _PAULI_GATES else ""
  gate.__doc__ = f"""{doc}

  Call inside a function decorated with `qhess.circuit`: ``qhess.{name}({sig})``.
{pauli_note}
  Args:
{arg_docs}    wires: the wire(s) it acts on{controls}.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for a wire outside the circuit, repeated wires or a non-scalar argument.
    TypeError: for the wrong number of arguments.
  """
  if name in _PAULI_GATES:
    gate.__doc__ = gate.__doc__.replace(
        "    RuntimeError: when called outside a circuit.\n", "")
  return gate


def _pauli_gate(name: str, args: tuple, wires) -> PauliGate:
  char = _PAULI_GATES[name]
  rec = _ACTIVE.get()
  if rec is None:  # an observable only
    if args:
      raise TypeError(f"{name} takes 0 gate argument(s) (); got {len(args)}.")
    ws = _observables._as_wires(wires, name)
    if len(ws) != 1:
      raise ValueError(f"{name} acts on 1 wire(s); got wires={ws}.")
    return PauliGate(char, ws[0])
  rec, index = _record(name, args, wires)
  return PauliGate(char, rec.operations[index].wires[0], rec, index)


_GATE_DOCS = {
    "RX": (("phi",), "X rotation ``exp(-i φ X / 2)``."),
    "RY": (("phi",), "Y rotation ``exp(-i φ Y / 2)``."),
    "RZ": (("phi",), "Z rotation ``exp(-i φ Z / 2)``."),
    "PhaseShift": (("phi",), "Phase shift ``diag(1, exp(i φ))``."),
    "Rot": (("phi", "theta", "omega"), "General rotation ``RZ(ω) RY(θ) RZ(φ)``."),
    "U3": (("theta", "phi", "delta"), "U3 gate ``RZ(φ) RY(θ) RZ(δ)`` up to a global phase."),
    "CRX": (("phi",), "Controlled RX; wires are (control, target)."),
    "CRY": (("phi",), "Controlled RY; wires are (control, target)."),
    "CRZ": (("phi",), "Controlled RZ; wires are (control, target)."),
    "ControlledPhaseShift": (("phi",), "Controlled phase shift ``diag(1, 1, 1, exp(i φ))``."),
    "IsingXX": (("phi",), "Ising XX coupling ``exp(-i φ X⊗X / 2)``."),
    "IsingYY": (("phi",), "Ising YY coupling ``exp(-i φ Y⊗Y / 2)``."),
    "IsingZZ": (("phi",), "Ising ZZ coupling ``exp(-i φ Z⊗Z / 2)``."),
    "Hadamard": ((), "Hadamard gate."),
    "PauliX": ((), "Pauli X gate."),
    "PauliY": ((), "Pauli Y gate."),
    "PauliZ": ((), "Pauli Z gate."),
    "S": ((), "S gate ``diag(1, i)``."),
    "T": ((), "T gate ``diag(1, exp(iπ/4))``."),
    "SX": ((), "Square root of X."),
    "CNOT": ((), "Controlled NOT; wires are (control, target)."),
    "CZ": ((), "Controlled Z."),
    "CY": ((), "Controlled Y; wires are (control, target)."),
    "SWAP": ((), "Swap of two wires."),
    "Toffoli": ((), "Doubly controlled NOT; wires are (control, control, target)."),
}

GATES = {name: _make_gate(name, argnames, doc)
         for name, (argnames, doc) in _GATE_DOCS.items()}


def MultiRZ(theta, wires) -> None:  # noqa: N802
  """Multi-qubit Z rotation ``exp(-i θ Z⊗...⊗Z / 2)``.

  Args:
    theta: gate argument, a real scalar.
    wires: one or more distinct wires.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for a wire outside the circuit, repeated wires or a non-scalar argument.
  """
  rec = _ACTIVE.get()
  n = len(_observables._as_wires(wires, "MultiRZ")) if rec is not None else None
  _record("MultiRZ", (theta,), wires, hyper=n, argnames=("theta",))


def PauliRot(theta, pauli_word: str, wires) -> None:  # noqa: N802
  """Pauli-word rotation ``exp(-i θ P / 2)``.

  Args:
    theta: gate argument, a real scalar.
    pauli_word: a string over ``"IXYZ"``, one letter per wire, e.g. ``"XYZ"``.
    wires: as many distinct wires as letters in ``pauli_word``.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for a bad Pauli word, a length mismatch with the wires, a wire outside
      the circuit or a non-scalar argument.
  """
  check_pauli_word(pauli_word, wires, "PauliRot", "pauli_word")
  _record("PauliRot", (theta,), wires, hyper=pauli_word, argnames=("theta",))


def check_pauli_word(word, wires, name: str, argname: str) -> None:
  """Raises ValueError unless ``word`` is a non-empty string over 'IXYZ' with one letter
  per wire of ``wires`` (``name``'s argument ``argname``: PauliRot, PauliError)."""
  if not isinstance(word, str) or not word or set(word) - set("IXYZ"):
    raise ValueError(
        f"{name}: `{argname}` must be a non-empty string over 'IXYZ'; got {word!r}.")
  n = len(_observables._as_wires(wires, name))
  if n != len(word):
    raise ValueError(
        f"{name}: `{argname}` {word!r} has {len(word)} letter(s) but `wires` has {n}; "
        "they must match.")


def QubitUnitary(U, wires) -> None:  # noqa: N802
  """An arbitrary unitary matrix on ``k`` wires.

  Its matrix is data, not a gate argument: parameter-shift derivatives do not flow
  through it.

  Args:
    U: complex array of shape ``(2**k, 2**k)``; checked to be unitary when concrete.
    wires: ``k`` distinct wires; the first is the most significant bit of the index.

  Raises:
    RuntimeError: when called outside a circuit.
    ValueError: for the wrong shape, or a concrete matrix that is not unitary.
  """
  rec = _ACTIVE.get()
  if rec is None:
    _record("QubitUnitary", (), wires)  # raises the outside-a-circuit error
  wires = _check_wires(rec, wires, "QubitUnitary", None)
  d = 2 ** len(wires)
  if np.shape(U) != (d, d):
    raise ValueError(
        f"QubitUnitary: `U` on {len(wires)} wire(s) must have shape ({d}, {d}); "
        f"got {np.shape(U)}.")
  if not isinstance(U, jax.core.Tracer):
    m = np.asarray(U)
    err = np.max(np.abs(m.conj().T @ m - np.eye(d)))
    if err > 1e-6:
      raise ValueError(f"QubitUnitary: `U` must be unitary; got max |U†U - I| = {err:.3g}.")
  cdtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
  idx = rec.add_const(jnp.asarray(U, dtype=cdtype))
  _record("QubitUnitary", (), wires, hyper=idx)


def _lower_measurement(m, rec: _Recorder) -> MeasurementSpec:
  if not isinstance(m, _observables.Measurement):
    raise TypeError(
        "A circuit function must return a measurement (qhess.expval, qhess.var, "
        f"qhess.probs) or a tuple of them; got {m!r} ({type(m).__name__}).")
  if m.kind == "probs":
    wires = tuple(range(rec.n_wires)) if m.wires is None else _check_wires(
        rec, m.wires, "probs", None)
    return MeasurementSpec("probs", None, wires)
  terms = []
  for coeff, factors in m.obs.terms:
    lowered = []
    for f in factors:
      if isinstance(f, _observables.Pauli):
        _check_wires(rec, f.wire, f"observable {f.char}", 1)
        if f.char != "I":
          lowered.append((f.char, f.wire))
      else:
        wires = _check_wires(rec, f.wires, "Hermitian", None)
        cdtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
        lowered.append(("H", wires, rec.add_const(jnp.asarray(f.matrix, dtype=cdtype))))
    terms.append((coeff, tuple(lowered)))
  if any(isinstance(c, jax.core.Tracer) for c, _ in terms):
    return _coefficients_as_data(m.kind, terms, rec)
  return MeasurementSpec(m.kind, tuple((_NAN if c != c else c, fs) for c, fs in terms), None)


def _coefficients_as_data(kind: str, terms, rec: _Recorder) -> MeasurementSpec:
  """An ``expval`` whose coefficients are traced: each term is its own raw measurement and
  the coefficient vector is a constant of the tape (see `MeasurementSpec.coeffs`)."""
  if kind != "expval":
    raise TypeError(
        f"qhess.{kind} of an observable with traced coefficients (computed from the "
        "circuit's array arguments) is not supported: only qhess.expval takes its "
        "coefficients as data. Return qhess.expval of the observable (or of each term) "
        "and compute the variance from <O> and <O²> outside, or make the coefficients "
        "constants.")
  vector = jnp.stack([jnp.asarray(c, dtype=float_dtype()) for c, _ in terms])
  index = rec.add_const(vector)
  return MeasurementSpec(kind, tuple((1.0, fs) for _, fs in terms), None, coeffs=index)


# One NaN object for every NaN coefficient: NaN != NaN, but containers compare elements
# by identity first and Python hashes a NaN by identity, so tapes with a NaN coefficient
# keep equal structures (one compiled kernel, no "structure changed" error); NaN in,
# NaN out, as in JAX.
_NAN = float("nan")


def record_parts(fn, n_wires: int, args: tuple, kwargs: dict):
  """Runs ``fn`` under a recorder; returns ``(tape, param_list)``.

  ``param_list`` holds the gate arguments as separate scalars (before stacking), so that
  a trace of this function shows how each one depends on the inputs.

  ``fn`` runs under `jax.ensure_compile_time_eval`: values computed from constants alone
  (``jnp.cos(0.3)`` as an observable coefficient, a matrix built with ``jnp``) stay
  concrete even inside a trace; only values that depend on traced inputs are traced.

  Raises:
    TypeError: when ``fn`` returns something other than measurements, or uses a traced
      value in Python control flow (``if x > 0:``, ``int(x)``, ``np.asarray(x)``).
  """
  rec = _Recorder(n_wires)
  token = _ACTIVE.set(rec)
  try:
    with jax.ensure_compile_time_eval():
      result = fn(*args, **kwargs)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError,
          jax.errors.TracerArrayConversionError) as err:
    name = getattr(fn, "__name__", "the circuit function")
    raise TypeError(
        f"The circuit function `{name}` used the value of a traced argument in Python "
        f"({type(err).__name__}), e.g. `if x[0] > 0:`, `int(x)` or `np.asarray(x)`. "
        "qhess traces circuit functions with abstract values (its Hessians are "
        "jit-compiled, and a circuit may run under jax.jit, vmap or grad), so Python "
        "control flow cannot depend on parameter values: write the branch with "
        "jnp.where or jax.lax.cond, or pass the value as a static (non-array) argument "
        "such as a Python int or str.") from err
  finally:
    _ACTIVE.reset(token)
  returns_tuple = isinstance(result, (tuple, list))
  results = tuple(result) if returns_tuple else (result,)
  if not results:
    raise TypeError("A circuit function must return at least one measurement; got ().")
  with jax.ensure_compile_time_eval():  # a constant Hermitian matrix stays concrete
    measurements = tuple(_lower_measurement(m, rec) for m in results)
  params = jnp.stack(rec.params) if rec.params else jnp.zeros((0,), float_dtype())
  operations = tuple(op for i, op in enumerate(rec.operations) if i not in rec.cancelled)
  tape = Tape(operations, measurements, params, tuple(rec.consts), n_wires,
              returns_tuple)
  transform = getattr(fn, "_qhess_tape_transform", None)
  if transform is not None:  # a noise model (qhess.with_noise): Tape -> Tape
    tape = transform(tape)
  return tape, list(rec.params)


def record(fn, n_wires: int, args: tuple, kwargs: dict) -> Tape:
  """Runs ``fn(*args, **kwargs)`` and records its gates and measurements into a `Tape`.

  Raises:
    TypeError: when ``fn`` returns something other than measurements, or uses a traced
      value in Python control flow (see `record_parts`).
  """
  return record_parts(fn, n_wires, args, kwargs)[0]


def check_n_wires(wires) -> int:
  if isinstance(wires, bool) or not isinstance(wires, (numbers.Integral, np.integer)):
    raise TypeError(f"`wires` of qhess.circuit must be a positive int; got {wires!r}.")
  if wires < 1:
    raise ValueError(f"`wires` of qhess.circuit must be a positive int; got {wires}.")
  return int(wires)
