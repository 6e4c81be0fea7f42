"""Hardware round trip: measurement-ready shifted circuits out, measured counts back.

`hessian_experiments` turns a Hessian into the circuits a device runs: one *experiment*
per shifted point and qubit-wise-commuting measurement group (the groups of
``qhess.simulate.sampling``), each a `Tape` that ends with its group's basis rotations (H for X,
S†·H for Y, V† for a Hermitian's eigenbasis V) and measures the group's wires in the
computational basis, with its shot count. The returned ``post`` maps one counts table
per experiment to the Hessian through the same estimators, standard errors and chain
rule as simulated shots (`_estimators.from_counts`): the only difference between
``qhess.hessian(circuit, shots=...)`` and a device is who draws the counts.

**Bit order.** The measured wires ``w_0 < w_1 < ... < w_{k-1}`` of an experiment
(``experiment.wires``, sorted) are read into classical bits ``c[0] .. c[k-1]``
(``c[i] = measure q[w_i]``). A bitstring names the values of ``c``; ``bit_order`` says
how: ``"qiskit"`` (Qiskit's counts, little-endian) writes ``c[k-1]`` first and ``c[0]``
last, so ``"01"`` means ``c[0] = 1, c[1] = 0``; ``"big"`` writes ``c[0]`` first. An
array of counts is indexed by the integer whose binary digits are that bitstring
(Qiskit's ``Statevector.probabilities()`` order for ``"qiskit"``).

An experiment's tape is exported by `to_openqasm` (`qhess.interop.openqasm`) or
`to_qiskit` (`qhess.interop.qiskit`); `to_sampler_pubs` (`qhess.interop.primitives`)
packs all of them into Qiskit Sampler V2 PUBs, one parametrized circuit per group, and
``post(result, pubs)`` reads the sampler's result.

`gradient_experiments` does the same for a parameter-shift gradient (first-order points
only). ``post`` is an `ExperimentsPost`, built from arrays (the plan's coefficients, the
estimators, the chain rule evaluated at the arguments), which ``qhess.save_experiments``
writes to a file (`qhess.interop.persist`) for counts that arrive later.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qhess.simulate import sampling as _shots
from qhess.simulate.circuit import Circuit
from qhess.circuits.tape import MeasurementSpec, Operation, Tape
from qhess.derivatives import estimators as _estimators
from qhess.simulate import groups as _groups
from qhess.derivatives import budget as _budget
from qhess.derivatives import options as _options
from qhess.derivatives import pipeline as _pipeline
from qhess.derivatives import evaluate as _evaluate
from qhess.interop import mitigation as _mitigation
from qhess.interop import optional as _optional


class Experiment(NamedTuple):
  """One circuit to run on a device: a shifted point measured in one group's basis.

  Attributes:
    tape: a `Tape`: the circuit at the shifted arguments, then the group's basis
      rotations, measuring ``probs(wires)``; export it with `to_openqasm` or
      ``to_qiskit``.
    shots: the shots to run it with (an int).
    wires: the measured wires, sorted: bit ``c[i]`` is wire ``wires[i]``.
    point: the index of its shifted point (its gate arguments are ``tape.params``).
    group: the index of its measurement group.
    entry: the index of its shot-vector entry (0 without a shot vector).
  """

  tape: Tape
  shots: int
  wires: tuple[int, ...]
  point: int
  group: int
  entry: int


def _group_tape(tape: Tape, params: np.ndarray, group: _groups.Group) -> Tape:
  """``tape`` at ``params``, then ``group``'s basis rotations, measuring its wires."""
  ops = list(tape.operations)
  consts = list(tape.consts)
  for rot in group.rotations:
    if rot[0] == "X":
      ops.append(Operation("Hadamard", (rot[1],), ()))
    elif rot[0] == "Y":  # S† (as Z·S: catalogue gates, no arguments), then H
      ops += [Operation("PauliZ", (rot[1],), ()), Operation("S", (rot[1],), ()),
              Operation("Hadamard", (rot[1],), ())]
    else:  # a Hermitian factor: V† of its eigenvectors V (ascending eigenvalues, as
      # the estimator's `jnp.linalg.eigvalsh` orders them)
      _, vecs = np.linalg.eigh(np.asarray(consts[rot[2]]))
      consts.append(jnp.asarray(vecs.conj().T, dtype=tape.consts[rot[2]].dtype))
      ops.append(Operation("QubitUnitary", tuple(rot[1]), (), len(consts) - 1))
  return Tape(tuple(ops), (MeasurementSpec("probs", None, group.wires),),
              jnp.asarray(params, tape.params.dtype), tuple(consts), tape.n_wires, False)


def _check_bit_order(bit_order) -> str:
  if bit_order not in ("qiskit", "big"):
    raise ValueError(f'`bit_order` must be "qiskit" or "big"; got {bit_order!r}.')
  return bit_order


def _outcome_permutation(k: int, bit_order: str) -> np.ndarray:
  """``perm[i]``: qhess's outcome (``c[0]`` most significant) of the array index ``i``."""
  i = np.arange(2**k)
  if bit_order == "big" or k == 0:
    return i
  bits = (i[:, None] >> np.arange(k)[None, :]) & 1  # bits[:, j] = c[j] (little-endian)
  return (bits << (k - 1 - np.arange(k))[None, :]).sum(axis=1)


# Array dtypes that are not counts, named for the message.
_NOT_COUNTS = {"b": "bool", "c": "complex", "U": "str", "S": "bytes", "O": "object",
               "M": "datetime", "m": "timedelta", "V": "void"}


def _counts_row(counts, e: int, k: int, bit_order: str,
                quasi: bool = False) -> tuple[np.ndarray, float]:
  """Experiment ``e``'s outcome frequencies over qhess's outcomes ``(2**k,)`` and its
  total count, validated.

  The frequencies are the counts divided by their total, computed in float64 after
  scaling by the largest count (a row in ``[0, 1]`` whose sum is in ``[1, 2**k]``), so
  counts of any finite scale, near the float64 maximum or denormal, give the same
  frequencies. The total (``inf`` when it overflows float64) is the number of shots,
  used only for the standard errors.

  Raises:
    TypeError: for counts of the wrong kind: neither a mapping nor an array, a value
      that is not a real number, or an array of bool, complex, string or object dtype.
    ValueError: for bitstrings of the wrong length or alphabet, negative or non-finite
      counts, an array of the wrong shape, or no counts at all.
  """
  d = 2**k
  if isinstance(counts, Mapping):
    row = np.zeros(d)
    for key, value in counts.items():
      if not isinstance(key, str):
        raise TypeError(
            f"`counts[{e}]` must map bitstrings to counts; got the key {key!r} "
            f"({type(key).__name__}).")
      if len(key) != k or set(key) - {"0", "1"}:
        raise ValueError(
            f"`counts[{e}]` has the key {key!r}; experiment {e} measures {k} wire(s), so "
            f"keys must be {k}-character strings of 0 and 1 (bit_order={bit_order!r}).")
      if (isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number))
          or isinstance(value, np.complexfloating)):
        raise TypeError(
            f"`counts[{e}][{key!r}]` must be a real number; got {value!r} "
            f"({type(value).__name__}).")
      try:
        row[int(key, 2) if k else 0] += float(value)
      except OverflowError as err:  # a Python int beyond float64
        raise ValueError(
            f"`counts[{e}][{key!r}]` must be a finite count (at most about 1.8e308); got "
            f"an int of {int(value).bit_length()} bits.") from err
  else:
    kind = f"a mapping of bitstrings to counts or an array of counts over the {d} outcomes"
    try:
      arr = np.asarray(counts)
    except (TypeError, ValueError) as err:
      raise TypeError(f"`counts[{e}]` must be {kind}; got {type(counts).__name__}.") from err
    if arr.dtype.kind not in "iuf":
      if arr.ndim == 0:  # not an array at all
        raise TypeError(f"`counts[{e}]` must be {kind}; got {type(counts).__name__}.")
      raise TypeError(
          f"`counts[{e}]` as an array must hold real numbers (an integer or float "
          f"dtype); got dtype {arr.dtype} ({_NOT_COUNTS.get(arr.dtype.kind, 'not real')}) "
          f"of shape {arr.shape}.")
    if arr.shape != (d,):
      raise ValueError(
          f"`counts[{e}]` as an array must have shape ({d},) (experiment {e} measures {k} "
          f"wire(s)); got shape {arr.shape}.")
    with np.errstate(over="ignore"):  # (long doubles beyond float64: refused below)
      row = arr.astype(np.float64)
  if not np.all(np.isfinite(row)):
    bad = np.flatnonzero(~np.isfinite(row))
    raise ValueError(
        f"`counts[{e}]` must be finite counts (in float64); got {row[bad[0]]} at outcome "
        f"{int(bad[0])}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "") + ".")
  if np.any(row < 0) and not quasi:  # (quasi: readout-mitigated, `qhess.interop.mitigation`)
    raise ValueError(
        f"`counts[{e}]` must be non-negative; got {row.min()} at outcome "
        f"{int(np.argmin(row))}.")
  top = row.max()
  if top <= 0:
    raise ValueError(f"`counts[{e}]` holds no shots (its counts sum to {row.sum()}).")
  scaled = row / top  # in [0, 1], the largest exactly 1: no overflow, no underflow
  norm = scaled.sum()  # in [1, d]
  out = np.zeros(d)
  out[_outcome_permutation(k, bit_order)] = scaled / norm
  return out, float(top) * float(norm)  # (a Python float: inf on overflow, no warning)


def hessian_experiments(circuit: Circuit, argnums: int | Sequence[int] = 0, *, shots,
                        hybrid: bool = True, gate_argnum=None, diagonal_shifts=None,
                        off_diagonal_shifts=None, off_diagonal_rule: str | None = None,
                        return_stderr: bool = False,
                        bit_order: str = "qiskit") -> Callable:
  """The circuits of a sampled Hessian for a device, and the Hessian from their counts.

  ``hessian_experiments(circuit, shots=...)(*args)`` returns ``(experiments, post)``:
  one `Experiment` per shot-vector entry × shifted point × measurement group (in that
  nesting order), the shifted points and groups being exactly those that
  ``qhess.hessian(circuit, shots=...)`` samples. Each experiment's tape ends with its
  group's basis rotations (H for X, S†·H for Y, V† for a Hermitian) and measures the
  group's wires in the computational basis; run it ``experiment.shots`` times (export
  it with `to_openqasm` or `to_qiskit`). ``post(counts)`` takes one counts table per
  experiment and returns the Hessian in the layout of ``qhess.hessian(circuit)(*args)``,
  estimated as ``qhess.hessian(circuit, shots=...)`` estimates it from simulated
  counts (same estimators, standard errors and chain rule).

  ``shots``: an int (every experiment), a tuple of ints (a shot vector: one set of
  experiments per entry, ``post`` returns a tuple of Hessians) or a
  ``qhess.ShotBudget`` without a pilot (the total is allocated before anything runs;
  a pilot would need a second round on the device). The estimate uses the counts' own
  totals as the shot numbers, so a device that returns fewer shots is accounted for.

  Counts of experiment ``e`` measuring ``k`` wires: a mapping from ``k``-character
  bitstrings to counts (missing outcomes count 0; e.g. Qiskit's ``get_counts()``), or
  an array of shape ``(2**k,)``. Bits are read as ``bit_order`` says: ``"qiskit"``
  (little-endian: the last character is ``c[0]``, wire ``experiment.wires[0]``) or
  ``"big"`` (the first character is ``c[0]``); an array's index is the bitstring read
  as a binary number. Counts are finite non-negative reals (integers from a device;
  exact probabilities times shots give the exact Hessian): ints or floats, never
  bools, complex numbers or strings. Each table is divided by its total in float64
  after scaling by its largest count, so its scale does not matter to the estimate
  (probabilities near the float64 maximum, or denormal, give the same Hessian); the
  total is the number of shots for the standard errors.

  A Hermitian factor of the observable is measured by rotating into its eigenbasis: on
  one wire that exports anywhere (ZYZ angles), on several wires it is a multi-wire
  unitary that `to_qiskit` keeps and `to_openqasm` refuses.

  Args:
    circuit: a `Circuit`.
    argnums: as in ``qhess.hessian``.
    hybrid: as in ``qhess.hessian``.
    gate_argnum: as in ``qhess.hessian``.
    diagonal_shifts: as in ``qhess.hessian``.
    off_diagonal_shifts: as in ``qhess.hessian``.
    off_diagonal_rule: as in ``qhess.hessian`` (defaults to ``"product"``, as with
      shots).
    shots: an int, a tuple of ints or a `ShotBudget` (no pilot); required.
    return_stderr: ``post`` also returns first-order standard errors in the Hessian's
      layout: ``(hessian, stderr)``.
    bit_order: ``"qiskit"`` or ``"big"``: how ``post`` reads bitstrings.

  Returns:
    a function of the circuit's arguments returning ``(experiments, post)``: a list of
    `Experiment` and a function of a sequence of counts, one per experiment. ``post``
    validates every table before computing anything. ``post(result, pubs)`` reads a
    Qiskit Sampler V2 ``PrimitiveResult`` of ``pubs = qhess.to_sampler_pubs(experiments,
    ...)`` instead (or one array of register counts per PUB, see
    ``SamplerPubs.counts``), checked against the PUBs first; ``post(result, pubs,
    readout=qhess.readout_calibration(...))`` corrects readout errors, and PUBs made
    with ``zne`` are extrapolated to zero noise (`qhess.interop.mitigation`). ``post`` is an
    `ExperimentsPost` (arrays, no circuit): ``qhess.save_experiments(path,
    (experiments, post))`` saves it for counts that arrive later.

  Raises:
    TypeError: as ``qhess.hessian``; for a non-bool ``return_stderr``.
    ValueError: as ``qhess.hessian``; for ``shots=None``, a budget with a pilot or
      smaller than the number of experiments, or a bad ``bit_order``. ``post`` raises
      ValueError for the wrong number of tables, bitstrings of the wrong length,
      negative, non-finite or all-zero counts, or an array of the wrong shape, and
      TypeError for tables or keys of the wrong kind, count values that are not real
      numbers, or arrays of bool, complex, string or object dtype; with ``pubs``, as
      ``SamplerPubs.counts``, and TypeError for a PrimitiveResult without its ``pubs``.

  Examples:
    >>> import jax.numpy as jnp, numpy as np, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RY(x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1) + qhess.X(1))
    >>> x = jnp.array([0.5, 0.25])
    >>> experiments, post = qhess.hessian_experiments(f, shots=1000, bit_order="big")(x)
    >>> len(experiments), experiments[0].wires, experiments[1].wires, experiments[0].shots
    (14, (0, 1), (1,), 1000)
    >>> print(qhess.to_openqasm(experiments[1].tape))
    OPENQASM 3.0;
    include "stdgates.inc";
    qubit[2] q;
    bit[1] c;
    rx(0.5) q[0];
    cx q[0], q[1];
    ry(0.25) q[1];
    h q[1];
    c[0] = measure q[1];
    <BLANKLINE>
    >>> # exact probabilities (qhess's order: big-endian) in place of a device's counts
    >>> counts = [1000 * np.asarray(p) for p in qhess.execute([e.tape for e in experiments])]
    >>> bool(np.allclose(post(counts), qhess.hessian(f)(x), atol=1e-6))
    True
  """
  opts = _options._Options(gate_argnum, diagonal_shifts, off_diagonal_shifts,
                           off_diagonal_rule=off_diagonal_rule)
  return _experiments_fn(circuit, "hessian", opts, argnums, hybrid, shots, return_stderr,
                         bit_order)


def gradient_experiments(circuit: Circuit, argnums: int | Sequence[int] = 0, *, shots,
                         hybrid: bool = True, shifts=None, return_stderr: bool = False,
                         bit_order: str = "qiskit") -> Callable:
  """The circuits of a sampled parameter-shift gradient for a device, and the gradient
  from their counts.

  `hessian_experiments` with first-order points only: ``gradient_experiments(circuit,
  shots=...)(*args)`` returns ``(experiments, post)``, one `Experiment` per shot-vector
  entry × shifted point × measurement group, the points being those of
  ``qhess.gradient(circuit, shots=...)`` (2R per differentiated gate argument of R
  frequencies, plus the unshifted circuit for a variance or coefficients computed from
  the inputs; ``qhess.optimize.count_circuits(qhess.gradient, circuit, shots=...)``
  counts them). ``post(counts)`` (or ``post(result, pubs)`` for Qiskit Sampler V2
  PUBs, see `to_sampler_pubs`) returns the gradient in the layout of
  ``jax.jacobian(circuit, argnums)(*args)`` (that of ``jax.grad`` for one expval), or
  with ``hybrid=False`` one ``(*out_shape, P)`` array per measurement; counts are read
  as in `hessian_experiments`.

  Args:
    circuit: a `Circuit`.
    argnums: as in ``qhess.hessian``.
    shots: an int, a tuple of ints or a `ShotBudget` (no pilot); required.
    hybrid: as in ``qhess.hessian``.
    shifts: ``None`` or one tuple of positive shifts per gate argument: custom
      first-order rules (as ``diagonal_shifts`` of ``qhess.hessian``).
    return_stderr: ``post`` also returns first-order standard errors in the
      gradient's layout: ``(gradient, stderr)``.
    bit_order: ``"qiskit"`` or ``"big"``: how ``post`` reads bitstrings.

  Returns:
    a function of the circuit's arguments returning ``(experiments, post)``, as
    `hessian_experiments`; ``post`` can be saved (``qhess.save_experiments``).

  Raises:
    TypeError, ValueError: as `hessian_experiments`.

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RY(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RX(jnp.sin(x[1]), wires=1)
    ...   return qhess.expval(qhess.Z(1) - 0.5 * qhess.X(0) @ qhess.X(1))
    >>> x = jnp.array([0.5, 0.25])
    >>> experiments, post = qhess.gradient_experiments(f, shots=1000)(x)
    >>> len(experiments)  # 2 points per argument, 2 measurement groups
    8
    >>> probs = qhess.execute([e.tape for e in experiments])  # exact, big-endian
    >>> g = post([1000 * np.asarray(p) for p in probs])  # (a device's counts here)
    >>> bool(np.allclose(g, jax.grad(f)(x), atol=1e-6)), g.shape
    (True, (2,))
  """
  opts = _options._Options(None, shifts, None)
  return _experiments_fn(circuit, "gradient", opts, argnums, hybrid, shots, return_stderr,
                         bit_order)


def _experiments_fn(circuit: Circuit, want: str, opts, argnums, hybrid, shots,
                    return_stderr, bit_order) -> Callable:
  """The checked options' ``experiments_fn(*args) -> (experiments, post)`` of
  `hessian_experiments` (``want="hessian"``) or `gradient_experiments` (``"gradient"``)."""
  fname = f"qhess.{want}_experiments"
  _options._check_circuit(circuit, fname)
  argnums = _options._check_argnums(argnums)
  if not isinstance(hybrid, (bool, np.bool_)):
    raise TypeError(f"`hybrid` must be a bool; got {hybrid!r}.")
  shots = _check_device_shots(shots)
  if not isinstance(return_stderr, bool):
    raise TypeError(f"`return_stderr` must be a bool; got {return_stderr!r}.")
  bit_order = _check_bit_order(bit_order)

  def experiments_fn(*args, **kwargs):
    tape, plan, chain = _pipeline.concrete_plan(
        circuit, opts, argnums, bool(hybrid), want, args, kwargs, sampled=True,
        fname=fname)
    dtype = tape.params.dtype
    _shots.check_counts_fit(shots, dtype)
    mg = _groups.measurement_groups(tape.raw_measurements)
    if isinstance(shots, _shots.ShotBudget):
      _budget.check_budget(shots, plan.n_points, len(mg.groups))
    a = _groups.estimator_matrix(mg, tape.raw_measurements, tape.consts, dtype)
    n = _shots_per_group(shots, chain, a, mg, plan.n_points, dtype)
    points = _evaluate._shifted_points(tape, plan)  # (B, P)
    experiments = _group_experiments(tape, points, mg, n)
    post = ExperimentsPost(chain, a, n, experiments, tuple(g.wires for g in mg.groups),
                           isinstance(shots, tuple), return_stderr, bit_order, points)
    return experiments, post

  return experiments_fn


def _check_device_shots(shots):
  """``shots`` checked as `hessian_experiments` takes them: required, and a
  `ShotBudget` only without a pilot (a pilot would need a second round on the device)."""
  if shots is None:
    raise ValueError(
        "`shots` is required: an int, a tuple of ints or a qhess.ShotBudget (the shots "
        "each experiment runs with); got None.")
  shots = _shots.check_shots(shots)
  if isinstance(shots, _shots.ShotBudget) and shots.pilot:
    raise ValueError(
        f"`shots` {shots} has a pilot; hessian_experiments allocates the budget before "
        "anything runs, and a pilot would need a second round of experiments. Use "
        "ShotBudget(total, pilot=None) (Neyman allocation from the bound on the spread), "
        "or allocate yourself from a first run.")
  return shots


def _shots_per_group(shots, post_y, a, mg, b: int, dtype) -> np.ndarray:
  """The shots of each shot-vector entry, shifted point and group: int64 ``(S, B, G)``.

  An int or a shot vector (``S`` entries) gives every point and group the same shots; a
  `ShotBudget` is allocated over the ``B`` points and ``G`` groups (``S = 1``) from the
  estimator matrix ``a`` and the post-processing ``post_y``.
  """
  g = len(mg.groups)
  if isinstance(shots, tuple):
    n = np.broadcast_to(np.asarray(shots)[:, None, None], (len(shots), b, g))
  elif isinstance(shots, int):
    n = np.full((1, b, g), shots)
  else:
    # jitted: the allocation differentiates `post_y`, which is slow op by op
    n = np.asarray(jax.jit(lambda: _budget.budget_shots(shots, post_y, a, mg, b, dtype))())
    n = n[None]
  return n.astype(np.int64)


def _group_experiments(tape: Tape, points: np.ndarray, mg,
                       n: np.ndarray) -> list[Experiment]:
  """One `Experiment` per shot-vector entry × shifted point × measured group (in that
  nesting order), with the shots ``n[entry, point, group]``.

  Groups measuring no wire (an identity observable) need no circuit: their one outcome
  happens every time.
  """
  measured = [grp for grp in range(len(mg.groups)) if mg.groups[grp].wires]
  return [
      Experiment(_group_tape(tape, points[t], mg.groups[grp]), int(n[s, t, grp]),
                 mg.groups[grp].wires, t, grp, s)
      for s in range(n.shape[0]) for t in range(points.shape[0]) for grp in measured]


class ExperimentsPost:
  """``post`` of `hessian_experiments` and `gradient_experiments`: the derivatives (and
  their standard errors) from one counts table per experiment, through the estimators
  of simulated shots. Built from data only (no circuit, no closures), so that
  ``qhess.save_experiments`` can save it and ``qhess.load_experiments`` rebuild it.

  ``post(counts)`` or ``post(result, pubs)``: see `hessian_experiments`.

  Attributes:
    chain: the chain rule as data (``qhess.derivatives.chain.LocalChain``): raw values
      ``(B, n_raw)`` -> the derivatives.
    estimator: float ``(n_raw, G, O)``: the raw values from each group's outcome
      frequencies (``qhess.simulate.groups.estimator_matrix``).
    shots: int64 ``(S, B, G)``: the planned shots per shot-vector entry, point, group.
    experiments: the experiments (a tuple; loaded ones have ``tape=None``).
    group_wires: per measurement group, its measured wires (``()`` for an identity).
    shot_vector: whether ``post`` returns one result per shot-vector entry (a tuple).
    return_stderr: whether ``post`` also returns standard errors.
    bit_order: how ``post`` reads bitstrings.
    points: float64 ``(B, P)``: the shifted gate arguments of each point.
    pubs: ``None``, or for a loaded post whose PUBs were saved the PUBs' layout (pass it
      as ``post(result, post.pubs)``).
  """

  def __init__(self, chain, estimator, shots, experiments, group_wires, shot_vector: bool,
               return_stderr: bool, bit_order: str, points, pubs=None):
    self.chain, self.estimator = chain, np.asarray(estimator)
    self.shots = np.asarray(shots, np.int64)
    self.experiments, self.group_wires = tuple(experiments), tuple(map(tuple, group_wires))
    self.shot_vector, self.return_stderr = bool(shot_vector), bool(return_stderr)
    self.bit_order, self.points, self.pubs = bit_order, np.asarray(points), pubs
    self.dtype = np.dtype(chain.dtype)
    self._estimate = jax.jit(self._estimate_entry)
    self._extrapolate = jax.jit(self._extrapolate_entry)

  def _estimate_entry(self, freq, n_):  # (B, G, O), (B, G)
    return _estimators.from_frequencies(self.chain, jnp.asarray(self.estimator, self.dtype),
                                        freq, n_, return_stderr=self.return_stderr)

  def _extrapolate_entry(self, freq, raw, n_, w):  # (L, B, G, O) x 2, (L, B, G), (L,)
    return _mitigation.extrapolated_estimate(
        self.chain, jnp.asarray(self.estimator, self.dtype), freq, raw, n_, w,
        return_stderr=self.return_stderr)

  def __repr__(self) -> str:
    return (f"ExperimentsPost({len(self.experiments)} experiments, "
            f"{'gradient' if self.chain.order == 1 else 'Hessian'}, "
            f"return_stderr={self.return_stderr}, bit_order={self.bit_order!r})")

  def __call__(self, counts: Sequence[Any], pubs=None, *, readout=None):
    experiments = self.experiments
    zne = getattr(pubs, "zne", None)
    if pubs is not None and (zne is not None or readout is not None):  # mitigation
      raw = _pub_counts(counts, pubs, experiments, self.bit_order, tables=True)
      fixed = raw if readout is None else pubs.tables(counts, self.bit_order, readout)
      freq = [[_frequencies(t, experiments, self.group_wires, self.shots, self.bit_order,
                            quasi=q) for t in tables]
              for tables, q in ((raw, False), (fixed, True))]
      freq, raw, totals, w = _mitigation.stack(freq[0], freq[1], zne, self.dtype)
      return self._shaped([self._extrapolate(freq[:, s], raw[:, s], totals[:, s], w)
                           for s in range(self.shots.shape[0])])
    if readout is not None:
      raise ValueError("`readout` corrects the physical qubits the PUBs measured: pass "
                       "them, post(result, pubs, readout=readout).")
    if pubs is not None:  # a Sampler V2 result of `to_sampler_pubs(experiments)`
      counts = _pub_counts(counts, pubs, experiments, self.bit_order)
    elif _optional.is_primitive_result(counts):
      raise TypeError(
          "`counts` is a Qiskit PrimitiveResult; pass the PUBs it ran too, "
          "post(result, pubs) with pubs = qhess.to_sampler_pubs(experiments, ...): they "
          "say which experiment each row is and which wire each bit holds.")
    _check_counts_sequence(counts, len(experiments))
    freq, totals = _frequencies(counts, experiments, self.group_wires, self.shots,
                                self.bit_order)
    # (a total beyond the dtype's range is as good as infinitely many shots)
    totals = np.minimum(totals, np.finfo(self.dtype).max)
    freq, totals = jnp.asarray(freq, self.dtype), jnp.asarray(totals, self.dtype)
    return self._shaped([self._estimate(freq[s], totals[s])
                         for s in range(self.shots.shape[0])])

  def _shaped(self, results: list):
    """One result per shot-vector entry as ``post`` returns them."""
    if self.shot_vector:
      if self.return_stderr:
        return tuple(r[0] for r in results), tuple(r[1] for r in results)
      return tuple(results)
    return results[0]


def _pub_counts(result, pubs, experiments: list[Experiment], bit_order: str,
                tables: bool = False) -> list:
  """One counts table per experiment from a result of ``pubs``
  (`qhess.interop.primitives.SamplerPubs`), after checking that ``pubs`` were made from
  these experiments; with ``tables``, one list of them per ZNE scale factor."""
  mine = getattr(pubs, "experiments", None)
  if not callable(getattr(pubs, "counts", None)) or mine is None:
    raise TypeError(
        "`pubs` must be the qhess.to_sampler_pubs(experiments, ...) that ran; got "
        f"{type(pubs).__name__}.")
  if len(mine) != len(experiments) or any(a is not b for a, b in zip(mine, experiments)):
    raise ValueError(
        f"`pubs` were made from {len(mine)} other experiments; this post's are "
        f"{len(experiments)}. Pass qhess.to_sampler_pubs(experiments, ...) of the "
        "experiments returned with this post (for a loaded post, post.pubs).")
  return pubs.tables(result, bit_order) if tables else pubs.counts(result, bit_order)


def _check_counts_sequence(counts, n_experiments: int) -> None:
  """Raises unless ``counts`` is a sequence of one table per experiment."""
  if isinstance(counts, (str, bytes, Mapping)) or not hasattr(counts, "__len__"):
    raise TypeError(
        "`counts` must be a sequence with one counts table per experiment; got "
        f"{type(counts).__name__}.")
  if len(counts) != n_experiments:
    raise ValueError(
        f"`counts` has {len(counts)} table(s); there are {n_experiments} "
        "experiments (one table each, in the order of the experiments).")


def _frequencies(counts: Sequence[Any], experiments: Sequence[Experiment], group_wires,
                 n: np.ndarray, bit_order: str,
                 quasi: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The outcome frequencies ``(S, B, G, O)`` and the shots each circuit really had (its
  counts' total) ``(S, B, G)``, both float64, from every table validated (``quasi``:
  quasi-probabilities times effective shots, which may be negative).

  Groups measuring no wire have their single outcome every shot (``n`` of them).
  """
  freq = np.zeros(n.shape + (2 ** max(len(w) for w in group_wires),))
  totals = np.zeros(n.shape)
  for grp in range(n.shape[2]):  # unmeasured groups: the single outcome, every shot
    if not group_wires[grp]:
      freq[:, :, grp, 0] = 1.0
      totals[:, :, grp] = n[:, :, grp]
  for e, (exp, c) in enumerate(zip(experiments, counts)):
    k = len(exp.wires)
    row, total = _counts_row(c, e, k, bit_order, quasi)
    freq[exp.entry, exp.point, exp.group, :2**k] = row
    totals[exp.entry, exp.point, exp.group] = total
  return freq, totals
