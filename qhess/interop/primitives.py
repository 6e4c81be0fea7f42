"""Qiskit Sampler V2 PUBs of hardware experiments, and the Hessian from their results.

`to_sampler_pubs` packs the experiments of `qhess.hessian_experiments` into *PUBs*
(primitive unified blocs, ``qiskit.primitives.containers.SamplerPub``): per shot-vector
entry, measurement group and distinct shot count, **one** parametrized circuit (its gate
arguments are the elements of a ``ParameterVector`` named ``"theta"``, one per gate
argument of the tape) with a parameter-value array whose rows are the shifted points of
that group, and the shots. With a ``backend`` each group's circuit is transpiled once
(Qiskit's preset pass manager) and reused by every PUB of the group; the points are
bound by the primitive, not by the transpiler.

**Bits.** Each circuit measures its group's wires into one classical register named
``"qhess"`` (`REGISTER`), so ``result[i].data.qhess`` is a ``BitArray`` of shape
``(rows,)``. Which wire each bit holds is read from the transpiled circuit, never
assumed: the measure instruction writing bit ``c`` measures a physical qubit, and the
circuit's layout (``circuit.layout.final_index_layout()``: where each wire is at the
end, after the initial layout and routing) names the wire on it. ``post(result, pubs)``
of `hessian_experiments` checks the result against the PUBs (number of PUBs, register,
shapes, bits, and the PUB's identity where the sampler echoes circuit metadata) before
computing anything.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping, Sequence

import numpy as np

from qhess.interop import mitigation as _mitigation
from qhess.interop import qiskit as _qiskit
from qhess.interop.experiments import Experiment, _check_bit_order, _outcome_permutation
from qhess.interop.optional import is_primitive_result
from qhess.interop.optional import require_qiskit as _require

REGISTER = "qhess"  # the classical register every PUB circuit measures into
_FNAME = "qhess.to_sampler_pubs"


class SamplerPubs(Sequence):
  """Sampler V2 PUBs of a list of experiments, and what maps their results back.

  A sequence of ``qiskit.primitives.containers.SamplerPub`` (``sampler.run(pubs)``
  takes it as it is). PUB ``i`` holds ``len(rows[i])`` shifted points of one
  measurement group: its ``parameter_values`` has shape ``(len(rows[i]),)`` over the
  circuit's parameters, row ``r`` binding the gate arguments of experiment
  ``rows[i][r]``.

  Attributes:
    experiments: the experiments, as given to `to_sampler_pubs` (a tuple).
    rows: per PUB, an int array ``(B_i,)``: the experiment of each parameter row.
    bit_wires: per PUB, the wire each bit of the register holds (bit ``c`` of the
      register is wire ``bit_wires[i][c]``), read from the transpiled circuit.
    qubits: per PUB, the physical qubit measured into each bit of the register (the
      wires themselves without a backend): what a readout calibration corrects; None
      where not recorded (PUBs rebuilt without them).
    zne: the `qhess.ZNE` the circuits were folded with, or None.
    scales: per PUB, the index of its ZNE scale factor in ``zne.scale_factors`` (0
      without ZNE).
    register: the classical register's name (`REGISTER`).
    token: a random name of this set of PUBs, in each circuit's metadata
      (``{"qhess_pubs": token, "qhess_pub": i}``), checked where a sampler echoes it.
  """

  def __init__(self, pubs, rows, bit_wires, experiments, token, qubits=None, scales=None,
               zne=None):
    self._pubs, self.rows, self.bit_wires = tuple(pubs), tuple(rows), tuple(bit_wires)
    self.experiments, self.token, self.register = tuple(experiments), token, REGISTER
    self.qubits = None if qubits is None else tuple(qubits)
    self.scales = (0,) * len(self.rows) if scales is None else tuple(scales)
    self.zne = zne

  def __getitem__(self, i):
    return self._pubs[i]

  def __len__(self) -> int:
    return len(self._pubs)

  def __repr__(self) -> str:
    zne = "" if self.zne is None else f", scale factors {self.zne.scale_factors}"
    return (f"SamplerPubs({len(self)} PUBs, {sum(len(r) for r in self.rows)} rows for "
            f"{len(self.experiments)} experiments, register {self.register!r}{zne})")

  def counts(self, result, bit_order: str = "qiskit") -> list[np.ndarray]:
    """The counts of each experiment from a result of these PUBs, validated.

    Args:
      result: the ``PrimitiveResult`` of ``sampler.run(pubs)``, or one array per PUB of
        shape ``(B_i, 2**k_i)``: counts (or probabilities) of the register's values, the
        value ``v`` having bit ``c`` of the register as ``(v >> c) & 1`` (Qiskit's
        integer, e.g. ``Statevector.probabilities`` of the measured qubits in bit order).
      bit_order: the order of the returned arrays, as ``post`` reads them: ``"qiskit"``
        or ``"big"`` (see `hessian_experiments`).

    Returns:
      one array ``(2**k,)`` per experiment (in the order of ``experiments``), over the
      outcomes of its wires ``experiment.wires``.

    Raises:
      TypeError: for a result that is neither; ValueError: for one that does not
        belong to these PUBs (number of PUBs, register, shapes, number of bits, or the
        PUB named in the echoed circuit metadata), or for PUBs with ZNE scale factors
        (each experiment has one table per factor: `tables`).
    """
    if self.zne is not None:
      raise ValueError(
          f"these PUBs run each experiment at the ZNE scale factors {self.zne.scale_factors}"
          "; pubs.tables(result) gives one list of tables per factor, post(result, pubs) "
          "the extrapolated derivatives.")
    return self.tables(result, bit_order)[0]

  def tables(self, result, bit_order: str = "qiskit", readout=None) -> list[list]:
    """Per ZNE scale factor (one list without ZNE), the table of each experiment.

    Args:
      result: as in `counts`.
      bit_order: as in `counts`.
      readout: None (counts), or a `qhess.readout_calibration`: each row's counts are
        corrected by M3 with the calibrations of ``qubits[i]``, giving quasi-probabilities
        times the row's effective shots (see `qhess.interop.mitigation`).

    Returns:
      a list over ``zne.scale_factors`` of lists of one array ``(2**k,)`` per experiment.

    Raises:
      as `counts`; TypeError for a readout that is not a calibration, ValueError for a
      measured qubit it does not calibrate.
    """
    order = _check_bit_order(bit_order)
    if readout is not None and not isinstance(readout, _mitigation.ReadoutCalibration):
      raise TypeError("`readout` must be a qhess.readout_calibration(...); got "
                      f"{type(readout).__name__}.")
    checked = [_check_pub_data(self, i, x) for i, x in enumerate(_pub_data(self, result))]
    registers = [_register_counts(x, len(self.bit_wires[i])) for i, x in enumerate(checked)]
    if readout is not None:
      if self.qubits is None:
        raise ValueError("these PUBs do not record the physical qubits they measured, "
                         "which readout mitigation needs; use qhess.to_sampler_pubs' own.")
      registers = [readout.mitigated_counts(reg, self.qubits[i], f"PUB {i}")
                   for i, reg in enumerate(registers)]
    n_scales = 1 if self.zne is None else len(self.zne.scale_factors)
    out: list = [[None] * len(self.experiments) for _ in range(n_scales)]
    for i, (reg, rows) in enumerate(zip(registers, self.rows)):
      k = len(self.bit_wires[i])
      wires = self.experiments[rows[0]].wires
      # register value v -> qhess's outcome (c[0], the first measured wire, most
      # significant) -> the index `order` gives that outcome
      big = np.zeros(2**k, dtype=np.int64)
      for c, w in enumerate(self.bit_wires[i]):
        big |= ((np.arange(2**k) >> c) & 1) << (k - 1 - wires.index(w))
      index = np.argsort(_outcome_permutation(k, order))[big]
      table = np.zeros_like(reg)
      table[:, index] = reg
      for r, e in enumerate(rows):
        if out[self.scales[i]][e] is not None:
          raise ValueError(f"experiment {e} has two rows at one scale factor (PUBs rebuilt "
                           "without their ZNE scale factors?).")
        out[self.scales[i]][e] = table[r]
    return out


def to_sampler_pubs(experiments: Sequence[Experiment], backend=None, *,
                    optimization_level: int = 1, seed_transpiler: int | None = None,
                    initial_layout=None, pass_manager=None, zne=None) -> SamplerPubs:
  """Qiskit Sampler V2 PUBs of `hessian_experiments`' experiments, one circuit per group.

  Per shot-vector entry, measurement group and distinct shot count (in that order: one
  PUB per entry and group unless a ``ShotBudget`` gives the points different shots), a
  ``SamplerPub`` of one parametrized circuit: the tape's gates with a
  ``ParameterVector("theta", P)`` as arguments (the export of `to_qiskit`), the group's
  basis rotations, and its wires measured into the register ``"qhess"``; its
  parameter values ``(B_i, P')`` hold the group's shifted points (rows) over the
  circuit's parameters (``P' = P`` unless the transpiler dropped an argument); its
  shots are the experiments'. Run them with any Sampler V2 (``sampler.run(pubs)``) and
  give the ``PrimitiveResult`` to ``post(result, pubs)``.

  With ``backend`` (a ``BackendV2``, e.g. ``qiskit_ibm_runtime.fake_provider``'s fake
  backends or an IBM device) each group's circuit is transpiled once by
  ``generate_preset_pass_manager(optimization_level, backend, initial_layout=...,
  seed_transpiler=...)`` and shared by the group's PUBs; ``pass_manager`` runs a pass
  manager of your own instead. The bits are mapped back to wires through the
  transpiled circuit's layout and measurements.

  With ``zne`` (zero-noise extrapolation, `qhess.ZNE`: the mitigation extra) each
  group's circuit is folded by mitiq at every scale factor before it is transpiled (one
  transpile per group and scale factor, parameters unbound), and the PUBs repeat for
  each factor (all PUBs of the first factor, then the next): L times the PUBs and
  shots. ``post(result, pubs)`` extrapolates to zero noise; ``post(result, pubs,
  readout=qhess.readout_calibration(...))`` also corrects readout errors on the
  physical qubits the PUBs measure (``pubs.qubits``).

  Args:
    experiments: the list of `Experiment` from ``hessian_experiments(...)(*args)``.
    backend: a ``qiskit.providers.BackendV2`` to transpile for, or None (the circuits as
      exported: stdgates and, for Hermitian factors on several wires, ``unitary``).
    optimization_level: the preset pass manager's.
    seed_transpiler: the preset pass manager's.
    initial_layout: the preset pass manager's.
    pass_manager: a pass manager (anything with ``run(circuit)``) used instead of the
      preset one; then leave ``backend`` and the three above unset.
    zne: None, a `qhess.ZNE`, or a sequence of scale factors (``qhess.ZNE(factors)``:
      Richardson extrapolation of global folds).

  Returns:
    a `SamplerPubs`: the PUBs, a sequence of ``SamplerPub``, with ``rows`` (the
    experiment of each parameter row), ``bit_wires`` (the wire of each bit),
    ``qubits`` (the physical qubit of each bit) and ``scales`` (the ZNE factor of each).

  Raises:
    ImportError: without Qiskit (``pip install "qhess[qiskit]"``), or with ``zne``
      without mitiq (``pip install "qhess[mitigation]"``).
    TypeError: for experiments that are not a sequence of `Experiment`, a backend that
      is not a ``BackendV2``, a pass manager without ``run``, or a bad ``zne``.
    ValueError: for no experiments, experiments of one group with different circuits,
      a pass manager together with preset options, a transpiled circuit that does not
      measure each of its group's wires into one bit of the register at its end, or
      bad scale factors (as `qhess.ZNE`).

  Examples:
    >>> import jax.numpy as jnp, numpy as np, qhess
    >>> from qiskit.primitives import StatevectorSampler
    >>> @qhess.circuit(wires=2)
    ... def g(x):
    ...   qhess.RY(x[0], wires=0)
    ...   qhess.IsingXX(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) - 0.5 * qhess.Y(0) @ qhess.X(1))
    >>> x = jnp.array([0.3, -0.6])
    >>> experiments, post = qhess.hessian_experiments(g, shots=4000)(x)
    >>> pubs = qhess.to_sampler_pubs(experiments)
    >>> pubs
    SamplerPubs(2 PUBs, 14 rows for 14 experiments, register 'qhess')
    >>> [(pub.shape, pub.parameter_values.num_parameters, pub.shots) for pub in pubs]
    [((7,), 2, 4000), ((7,), 2, 4000)]
    >>> result = StatevectorSampler(seed=1).run(pubs).result()
    >>> result[0].data.qhess
    BitArray(<shape=(7,), num_shots=4000, num_bits=1>)
    >>> H = post(result, pubs)
    >>> bool(np.allclose(H, qhess.hessian(g)(x), atol=0.1))
    True
  """
  qiskit = _require("qiskit", _FNAME)
  experiments = _check_experiments(experiments)
  zne = _mitigation.check_zne(zne, _FNAME)
  pm = _pass_manager(qiskit, backend, optimization_level, seed_transpiler, initial_layout,
                     pass_manager)
  keys: dict = {}  # (entry, group, shots) -> experiment indices, in experiment order
  for e, exp in enumerate(experiments):
    keys.setdefault((exp.entry, exp.group, exp.shots), []).append(e)
  for (_, grp, _), members in keys.items():
    _check_group(experiments, members, grp)
  # (group, scale) -> (transpiled circuit, bit_wires, qubits): one transpile each
  circuits: dict = {}
  token = uuid.uuid4().hex
  pubs, rows, bit_wires, qubits, scales = [], [], [], [], []
  for scale in range(1 if zne is None else len(zne.scale_factors)):
    for (_, grp, shots), members in sorted(keys.items()):
      if (grp, scale) not in circuits:
        circuits[grp, scale] = _group_circuit(experiments[members[0]], grp, pm, zne, scale)
      qc, wires, measured = circuits[grp, scale]
      pubs.append(_pub(qc, [experiments[e] for e in members], shots,
                       {"qhess_pubs": token, "qhess_pub": len(pubs)}))
      rows.append(np.asarray(members, dtype=np.int64))
      bit_wires.append(wires)
      qubits.append(measured)
      scales.append(scale)
  return SamplerPubs(pubs, rows, bit_wires, experiments, token, qubits, scales, zne)


def _group_circuit(first: Experiment, grp: int, pm, zne, scale: int) -> tuple:
  """A group's parametrized circuit, folded at ZNE scale factor ``scale`` (with
  ``zne``) and transpiled by ``pm``: ``(circuit, bit_wires, qubits)``."""
  from qiskit.circuit import ParameterVector  # pylint: disable=import-outside-toplevel
  theta = ParameterVector("theta", first.tape.num_params)
  qc = _qiskit.quantum_circuit(first.tape, True, _FNAME, symbols=theta, register=REGISTER)
  if zne is not None:
    qc = zne.fold(qc, zne.scale_factors[scale])
  qc = qc if pm is None else pm.run(qc)
  return (qc,) + _bit_wires(qc, first.wires, grp)


def _pub(qc, members: list, shots: int, metadata: dict):
  """The ``SamplerPub`` of ``qc`` with one parameter row per experiment of ``members``."""
  from qiskit.primitives.containers.bindings_array import BindingsArray  # pylint: disable=C0415
  from qiskit.primitives.containers.sampler_pub import SamplerPub  # pylint: disable=C0415
  points = np.stack([np.asarray(e.tape.params, np.float64) for e in members])
  params = tuple(qc.parameters)
  values = points[:, [p.index for p in params]]
  qc = qc.copy()
  qc.metadata = {**(qc.metadata or {}), **metadata}
  bindings = (BindingsArray({params: values}) if params
              else BindingsArray(shape=(len(members),)))
  return SamplerPub(qc, bindings, int(shots))


def _check_experiments(experiments) -> tuple:
  """``experiments`` as a non-empty tuple of `Experiment`."""
  if isinstance(experiments, (str, bytes, Mapping)) or not isinstance(experiments,
                                                                     Sequence):
    raise TypeError(
        f"{_FNAME}: `experiments` must be the list of experiments from "
        f"qhess.hessian_experiments(...)(*args); got {type(experiments).__name__}.")
  bad = [i for i, e in enumerate(experiments) if not isinstance(e, Experiment)]
  if bad:
    raise TypeError(
        f"{_FNAME}: `experiments[{bad[0]}]` is a {type(experiments[bad[0]]).__name__}, "
        "not a qhess Experiment (from qhess.hessian_experiments).")
  if not experiments:
    raise ValueError(f"{_FNAME}: `experiments` is empty; there is nothing to run.")
  return tuple(experiments)


def _check_group(experiments, members, grp: int) -> None:
  """Raises unless the experiments of a PUB are one circuit at different points."""
  first = experiments[members[0]]
  for e in members[1:]:
    exp = experiments[e]
    if (exp.wires != first.wires or exp.tape.structure != first.tape.structure
        or not all(np.array_equal(a, b) for a, b in zip(exp.tape.consts,
                                                         first.tape.consts))):
      raise ValueError(
          f"{_FNAME}: experiments {members[0]} and {e} are both of group {grp} but their "
          "circuits differ (other than in gate arguments); a PUB is one circuit. Pass "
          "the experiments of one hessian_experiments call, unchanged.")


def _pass_manager(qiskit, backend, optimization_level, seed_transpiler, initial_layout,
                  pass_manager):
  """The pass manager to transpile each group's circuit with, or None (no backend)."""
  if pass_manager is not None:
    if (backend is not None or optimization_level != 1 or seed_transpiler is not None
        or initial_layout is not None):
      raise ValueError(
          f"{_FNAME}: `pass_manager` replaces the preset pass manager; leave `backend`, "
          "`optimization_level`, `seed_transpiler` and `initial_layout` unset with it.")
    if not callable(getattr(pass_manager, "run", None)):
      raise TypeError(f"{_FNAME}: `pass_manager` must have a run(circuit) method; got "
                      f"{type(pass_manager).__name__}.")
    return pass_manager
  if backend is None:
    if initial_layout is not None or seed_transpiler is not None:
      raise ValueError(f"{_FNAME}: `initial_layout` and `seed_transpiler` need a `backend`.")
    return None
  providers = _require("qiskit.providers", _FNAME)
  if not isinstance(backend, providers.BackendV2):
    raise TypeError(
        f"{_FNAME}: `backend` must be a qiskit.providers.BackendV2 (e.g. a fake backend "
        "of qiskit_ibm_runtime.fake_provider or an IBM device); got "
        f"{type(backend).__name__}.")
  transpiler = _require("qiskit.transpiler", _FNAME)
  return transpiler.generate_preset_pass_manager(
      optimization_level, backend=backend, initial_layout=initial_layout,
      seed_transpiler=seed_transpiler)


def _bit_wires(qc, wires: tuple[int, ...], grp: int) -> tuple[tuple, tuple]:
  """The wire each bit of the register holds, and the physical qubit measured into it,
  read from the (transpiled) circuit.

  Bit ``c`` is written by a measure instruction of a physical qubit ``p``; the wire on
  ``p`` at the end of the circuit is the one whose final layout position is ``p``
  (identity without a layout). Every bit must be measured once, at the end of its qubit,
  and the bits must hold exactly the group's wires.
  """
  where = f"{_FNAME}: the circuit of group {grp} (wires {wires})"
  reg = next((r for r in qc.cregs if r.name == REGISTER), None)
  if reg is None or reg.size != len(wires):
    raise ValueError(f"{where} has no register {REGISTER!r} of {len(wires)} bits after "
                     f"transpiling; its registers: {[(r.name, r.size) for r in qc.cregs]}.")
  bit = {b: c for c, b in enumerate(reg)}
  final = _qiskit._final_measurements(qc)  # pylint: disable=protected-access
  physical: dict = {}
  for k, ins in enumerate(qc.data):
    c = bit.get(ins.clbits[0]) if ins.operation.name == "measure" else None
    if c is None:
      continue
    if k not in final or c in physical:
      raise ValueError(f"{where} measures bit {c} of {REGISTER!r} "
                       f"{'twice' if c in physical else 'before a later gate on its qubit'}.")
    physical[c] = qc.find_bit(ins.qubits[0]).index
  if qc.layout is None:
    virtual = {p: p for p in range(qc.num_qubits)}
  else:
    virtual = {p: v for v, p in enumerate(qc.layout.final_index_layout())}
  out = tuple(virtual.get(physical.get(c), -1) for c in range(reg.size))
  if sorted(out) != sorted(wires):
    raise ValueError(f"{where} measures wires {out} into the bits of {REGISTER!r} (-1: no "
                     "wire or an ancilla); it must measure each of the group's wires once.")
  return out, tuple(physical[c] for c in range(reg.size))


def _pub_data(pubs: SamplerPubs, result) -> list:
  """The per-PUB data of ``result`` (a ``PrimitiveResult`` or a sequence of arrays),
  after checking their number and, for a ``PrimitiveResult``, the echoed metadata."""
  what = "the PrimitiveResult of sampler.run(pubs) or one array of counts per PUB"
  if isinstance(result, (str, bytes, Mapping)) or not hasattr(result, "__len__"):
    raise TypeError(f"`result` must be {what}; got {type(result).__name__}.")
  if len(result) != len(pubs):
    raise ValueError(
        f"`result` has {len(result)} PUB result(s); these PUBs are {len(pubs)} ({pubs!r}). "
        "Pass the result of sampler.run(pubs) for exactly these PUBs.")
  if not is_primitive_result(result):
    return list(result)
  data = []
  for i, pub_result in enumerate(result):
    meta = (getattr(pub_result, "metadata", None) or {}).get("circuit_metadata")
    if isinstance(meta, Mapping) and "qhess_pubs" in meta and (
        meta["qhess_pubs"] != pubs.token or meta.get("qhess_pub") != i):
      raise ValueError(
          f"`result[{i}]` ran PUB {meta.get('qhess_pub')} of the PUBs "
          f"{meta['qhess_pubs']!r}; expected PUB {i} of {pubs.token!r} (its circuit's "
          "metadata). Pass the result of sampler.run(pubs) for these PUBs, in order.")
    data.append(pub_result.data)
  return data


def _check_pub_data(pubs: SamplerPubs, i: int, data):
  """PUB ``i``'s data checked against the PUB: an array ``(B_i, 2**k)`` of counts of the
  register's values, or the register's ``BitArray`` (shape ``(B_i,)``, ``k`` bits) from
  its ``DataBin``."""
  b, k = len(pubs.rows[i]), len(pubs.bit_wires[i])
  if not hasattr(data, "keys") or not hasattr(data, "shape"):  # an array per PUB
    arr = np.asarray(data)
    if arr.dtype.kind not in "iuf" or arr.shape != (b, 2**k):
      raise ValueError(
          f"`result[{i}]` as an array must be real counts of shape ({b}, {2**k}) (PUB {i} "
          f"has {b} rows and measures {k} bits); got dtype {arr.dtype}, shape {arr.shape}.")
    return arr
  bits = getattr(data, REGISTER, None) if REGISTER in data.keys() else None
  bit_array = sys.modules["qiskit.primitives"].BitArray
  if not isinstance(bits, bit_array):
    raise ValueError(
        f"`result[{i}].data` has no BitArray {REGISTER!r} (the register the PUBs measure "
        f"into); it holds {list(data.keys())}. Pass the result of sampler.run(pubs).")
  if bits.shape != (b,) or bits.num_bits != k:
    raise ValueError(
        f"`result[{i}].data.{REGISTER}` has shape {bits.shape} and {bits.num_bits} bits; PUB "
        f"{i} has shape ({b},) and {k} bits. Pass the result of sampler.run(pubs) for "
        "these PUBs, in order.")
  return bits


def _register_counts(data, k: int) -> np.ndarray:
  """Counts of the register's values ``(B, 2**k)`` from a checked array or BitArray."""
  if isinstance(data, np.ndarray):
    return data
  b = data.shape[0]
  raw = data.array.astype(np.int64)  # (B, shots, bytes): big-endian bytes, bit 0 last
  shifts = 8 * np.arange(raw.shape[-1] - 1, -1, -1)
  values = (raw << shifts).sum(axis=-1) & (2**k - 1)  # (B, shots)
  flat = values + (np.arange(b) * 2**k)[:, None]
  return np.bincount(flat.ravel(), minlength=b * 2**k).reshape(b, 2**k)
