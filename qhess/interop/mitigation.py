"""Error mitigation of hardware Hessians: readout (mthree's M3) and zero-noise
extrapolation (mitiq), through the estimators that raw counts go through.

Both act on the experiments of `qhess.hessian_experiments` run as Sampler V2 PUBs
(`qhess.to_sampler_pubs`); ``post(result, pubs, readout=...)`` turns the mitigated
distributions into the Hessian and its standard errors by the same estimators, standard
errors and chain rule as raw counts. A short loop::

    zne = qhess.ZNE((1, 3, 5))                           # once
    readout = qhess.readout_calibration(backend)         # once (M3 on the device)
    experiments, post = qhess.hessian_experiments(f, shots=4000, return_stderr=True)(x)
    pubs = qhess.to_sampler_pubs(experiments, backend, zne=zne)
    H, err = post(sampler.run(pubs).result(), pubs, readout=readout)

**Readout** (`readout_calibration`). Each PUB row's counts of the measured bits are
corrected by M3 (``M3Mitigation.apply_correction``) with the calibrations of the
physical qubits that the transpiled circuit measured into each bit (read from its layout
by `to_sampler_pubs`, ``pubs.qubits``). The corrected quasi-probabilities (they may be
slightly negative) take the place of the outcome frequencies in the estimates.
Standard errors: each experiment's shot-noise variance, the per-shot variance of its
estimate over its **measured** frequencies divided by its shots (as for raw counts), is
multiplied by M3's mitigation overhead of its distribution (``gamma**2``, ``gamma`` the
1-norm of the inverse of M3's reduced assignment matrix; M3's own ``stddev`` is
``sqrt(overhead / shots)``): the estimator is given the effective shots
``1 + (N - 1) / overhead``. The spread is taken from the measured frequencies, not the
quasi-probabilities: a quasi-distribution concentrated on one outcome has no spread,
while the corrected estimate does (the inverse amplifies the measured spread). For a
correction ``q = C f`` the exact per-shot variance is that of ``C^T v`` under ``f``;
``gamma**2`` times that of ``v`` bounds it in practice (0.95 to 2.2 times the exact
value over random states and observables with 7 to 15 % readout errors), and the
tests compare it with the spread of repeated draws. M3 solves in float32:
quasi-probabilities agree with an exact inverse to about 1e-7.

**Zero-noise extrapolation** (`ZNE`). Every group's circuit is folded by mitiq at each
scale factor λ (``fold_global``: U (U†U)^n and a partial fold of the last gates; or
``fold_gates_at_random``), with its parameters unbound, then transpiled once per group
and scale factor: mitiq folds circuits through OpenQASM 2, which has no unbound
parameters, so each instruction goes to mitiq as a placeholder gate and comes back as
itself or its inverse (``Instruction.inverse()``, parameters kept), with a barrier on
its qubits wherever a gate meets its inverse so that the transpiler cannot cancel the
folds. Each raw expectation value (linear in the outcome probabilities, so the
probabilities themselves) is extrapolated to λ = 0 by mitiq's factory
(``RichardsonFactory`` or ``LinearFactory``), which is linear in the values:
``y_0 = sum_l w_l y(λ_l)`` with fixed weights ``w`` (`ZNE.weights`, summing to 1); the
Hessian is assembled from ``y_0`` and its standard errors propagate through the weights
(variance ``sum_l w_l**2 var(y(λ_l))``, each scale from its own distribution).

What ZNE assumes: the noise of the folded circuit is λ times the noise of the circuit
(gate noise that grows with the number of gates: depolarizing-like errors; not readout
errors, which folding does not scale — mitigate them with the readout calibration — nor
coherent errors that cancel in U†U), and each expectation value follows the
extrapolation's model in λ (Richardson: the polynomial of degree L - 1 through the L
points; linear: the least-squares line). What it costs: every experiment runs at each
of the L scale factors with its shots (L times the shots, and the folded circuits are
λ times longer), and the variance of the extrapolated value is amplified by
``sum_l w_l**2`` (`ZNE.variance_factor`: 5.2 for Richardson at (1, 3, 5), 2.5 for
linear at (1, 3)) at equal shots per scale.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Callable

import jax.numpy as jnp
import numpy as np

from qhess.derivatives import estimators as _estimators
from qhess.interop import qiskit as _qiskit
from qhess.interop.optional import require_mitigation as _require

_FOLDINGS = {"global": "fold_global", "gates_at_random": "fold_gates_at_random"}
_FACTORIES = {"richardson": "RichardsonFactory", "linear": "LinearFactory"}


class ZNE:
  """Zero-noise extrapolation: scale factors, mitiq's folding and its extrapolation.

  Give it to ``qhess.to_sampler_pubs(experiments, backend, zne=ZNE(...))``: each group's
  circuit is folded at every scale factor (one transpile per group and scale factor, the
  parameters unbound), and ``post(result, pubs)`` extrapolates each raw expectation
  value to zero noise before assembling the Hessian (see `qhess.interop.mitigation` for
  what this assumes and costs).

  Args:
    scale_factors: at least two distinct real numbers, each ``>= 1`` (odd integers fold
      exactly: λ = 1 + 2n). The first PUBs run the first factor.
    extrapolation: ``"richardson"`` (mitiq's ``RichardsonFactory``: the polynomial
      through all points; needs distinct factors), ``"linear"`` (``LinearFactory``:
      least squares) or a function ``f(scale_factors, values) -> float`` linear in the
      values, e.g. ``functools.partial(mitiq.zne.inference.PolyFactory.extrapolate,
      order=2)``.
    folding: ``"global"`` (``mitiq.zne.scaling.fold_global``) or ``"gates_at_random"``
      (``fold_gates_at_random``, with ``seed``).
    seed: the seed of ``"gates_at_random"`` (an int or None).

  Attributes:
    scale_factors: a tuple of floats.
    weights: the extrapolation's weights ``w`` (float64 ``(L,)``, summing to 1): the
      zero-noise value is ``sum_l w_l y(λ_l)``.
    variance_factor: ``sum_l w_l**2``: the variance of the extrapolated value over that
      of one scale factor's at the same shots and spread.

  Raises:
    ImportError: without mitiq (``pip install "qhess[mitigation]"``).
    TypeError: for scale factors that are not real numbers, an extrapolation that is
      neither a name nor callable, or a seed that is not an int.
    ValueError: for fewer than two scale factors, one below 1 or not finite, repeated
      ones, an unknown extrapolation or folding, or an extrapolation that is not linear
      in the values with weights summing to 1.
  """

  def __init__(self, scale_factors: Sequence[float] = (1, 3, 5),
               extrapolation: str | Callable = "richardson", *, folding: str = "global",
               seed: int | None = None):
    self.scale_factors = _check_scale_factors(scale_factors)
    if folding not in _FOLDINGS:
      raise ValueError(f"qhess.ZNE: `folding` must be one of {sorted(_FOLDINGS)}; got "
                       f"{folding!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
      raise TypeError(f"qhess.ZNE: `seed` must be an int or None; got {seed!r}.")
    self.folding, self.seed, self.extrapolation = folding, seed, extrapolation
    self.weights = _extrapolation_weights(self.scale_factors, extrapolation)
    self.variance_factor = float(np.sum(self.weights**2))

  def __repr__(self) -> str:
    name = self.extrapolation if isinstance(self.extrapolation, str) else "custom"
    return (f"ZNE(scale_factors={self.scale_factors}, extrapolation={name!r}, "
            f"folding={self.folding!r}, weights={np.round(self.weights, 4).tolist()})")

  def fold(self, circuit, scale_factor: float):
    """``circuit`` (a Qiskit ``QuantumCircuit``, parameters unbound or not) folded by
    mitiq to ``scale_factor``, its final measurements kept at its end.

    Each gate goes through mitiq as a placeholder and comes back as itself or its
    inverse; a barrier on its qubits separates a gate from a neighbouring inverse, so
    that no transpiler pass cancels the folds. ``scale_factor == 1`` returns a copy.
    """
    final = _qiskit._final_measurements(circuit)  # pylint: disable=protected-access
    body = [ins for k, ins in enumerate(circuit.data) if k not in final]
    if any(ins.operation.name == "measure" for ins in body):
      raise ValueError("qhess.ZNE.fold: the circuit measures a qubit before a later gate "
                       "on it; only measurements at the end can stay out of the folds.")
    if scale_factor == 1 or not body:
      return circuit.copy()
    scaling = _require("mitiq.zne.scaling", "qhess.ZNE")
    cirq = _require("cirq", "qhess.ZNE")
    ref, line = _placeholder_gate(), cirq.LineQubit.range(circuit.num_qubits)
    placeholders = cirq.Circuit([
        ref(i, len(ins.qubits), False).on(*(line[circuit.find_bit(q).index]
                                             for q in ins.qubits))
        for i, ins in enumerate(body)])
    kwargs = {"seed": self.seed} if self.folding == "gates_at_random" else {}
    folded = getattr(scaling, _FOLDINGS[self.folding])(placeholders, float(scale_factor),
                                                       **kwargs)
    out = circuit.copy_empty_like()
    last: dict = {}  # qubit -> whether its last gate was an inverse
    for op in folded.all_operations():
      ins, inverse = body[op.gate.index], op.gate.inverse
      qubits = [q.x for q in op.qubits]
      if any(last.get(q, inverse) != inverse for q in qubits):
        out.barrier(qubits)
      out.append(ins.operation.inverse() if inverse else ins.operation, ins.qubits,
                 ins.clbits)
      last.update(dict.fromkeys(qubits, inverse))
    for k in sorted(final):
      out.append(circuit.data[k])
    return out


def check_zne(zne, fname: str) -> ZNE | None:
  """``zne`` as a `ZNE` (a sequence of scale factors is ``ZNE(scale_factors)``) or None."""
  if zne is None or isinstance(zne, ZNE):
    return zne
  if isinstance(zne, (str, bytes, Mapping)) or not isinstance(zne, Sequence):
    raise TypeError(f"{fname}: `zne` must be a qhess.ZNE or a sequence of scale factors; "
                    f"got {type(zne).__name__}.")
  return ZNE(zne)


def _check_scale_factors(scale_factors) -> tuple[float, ...]:
  where = "qhess.ZNE: `scale_factors`"
  if isinstance(scale_factors, (str, bytes, Mapping)) or not isinstance(scale_factors,
                                                                       Sequence):
    raise TypeError(f"{where} must be a sequence of real numbers; got "
                    f"{type(scale_factors).__name__}.")
  bad = [s for s in scale_factors if isinstance(s, bool)
         or not isinstance(s, (numbers.Real, np.number)) or isinstance(s, np.complexfloating)]
  if bad:
    raise TypeError(f"{where} must be real numbers; got {bad[0]!r}.")
  out = tuple(float(s) for s in scale_factors)
  if len(out) < 2:
    raise ValueError(f"{where} must hold at least two factors to extrapolate from; got "
                     f"{out}.")
  if not all(np.isfinite(s) and s >= 1 for s in out):
    raise ValueError(f"{where} must each be finite and >= 1 (1: the circuit as it is; "
                     f"folding only adds noise); got {out}.")
  if len(set(out)) != len(out):
    raise ValueError(f"{where} must be distinct; got {out}.")
  return out


def _extrapolation_weights(scale_factors: tuple[float, ...], extrapolation) -> np.ndarray:
  """The weights ``w`` of a linear extrapolation: its value on each unit vector, checked
  on a random vector and on a constant (whose extrapolation is itself)."""
  if isinstance(extrapolation, str):
    inference = _require("mitiq.zne.inference", "qhess.ZNE")
    if extrapolation not in _FACTORIES:
      raise ValueError(f"qhess.ZNE: `extrapolation` must be one of {sorted(_FACTORIES)} "
                       f"or a function (scale_factors, values) -> float; got "
                       f"{extrapolation!r}.")
    fn = getattr(inference, _FACTORIES[extrapolation]).extrapolate
  elif callable(extrapolation):
    fn = extrapolation
  else:
    raise TypeError("qhess.ZNE: `extrapolation` must be 'richardson', 'linear' or a "
                    f"function (scale_factors, values) -> float; got {extrapolation!r}.")
  n = len(scale_factors)
  weights = np.array([float(fn(list(scale_factors), list(e))) for e in np.eye(n)])
  probe = np.random.default_rng(0).uniform(-1, 1, n)
  got = float(fn(list(scale_factors), list(probe)))
  if (not np.all(np.isfinite(weights)) or abs(got - weights @ probe) > 1e-8 * (1 + abs(got))
      or abs(weights.sum() - 1) > 1e-8):
    raise ValueError(
        f"qhess.ZNE: the extrapolation {extrapolation!r} at {scale_factors} is not linear "
        f"in the values with weights summing to 1 (weights {weights.tolist()}); standard "
        "errors propagate through linear extrapolations only (Richardson, linear, "
        "polynomial).")
  return weights


@functools.cache
def _placeholder_gate():
  """A cirq gate class standing for instruction ``index`` of a circuit (or its inverse)."""
  cirq = _require("cirq", "qhess.ZNE")

  class Placeholder(cirq.Gate):
    """Instruction ``index`` of the circuit being folded, or its inverse."""

    def __init__(self, index: int, num_qubits: int, inverse: bool):
      self.index, self.n, self.inverse = index, num_qubits, inverse

    def _num_qubits_(self) -> int:
      return self.n

    def __pow__(self, exponent):
      if exponent == -1:
        return Placeholder(self.index, self.n, not self.inverse)
      return self if exponent == 1 else NotImplemented

    def __eq__(self, other):
      return isinstance(other, Placeholder) and (other.index, other.inverse) == (
          self.index, self.inverse)

    def __hash__(self):
      return hash((self.index, self.inverse))

    def _circuit_diagram_info_(self, args):
      return (f"g{self.index}{'^-1' if self.inverse else ''}",) * self.n

  return Placeholder


# ------------------------------------------------------------------------------ readout


class ReadoutCalibration:
  """Per-qubit readout calibrations in an ``mthree.M3Mitigation``, for
  ``post(result, pubs, readout=...)``; made by `readout_calibration`.

  Attributes:
    mitigator: the ``mthree.M3Mitigation`` holding the calibrations.
    qubits: the calibrated physical qubits (a tuple).
    matrices: ``{qubit: 2x2 assignment matrix}`` (float64; ``[measured, prepared]``).
    distance: the Hamming distance M3 corrects to (None: M3's default, min(k, 3)).
  """

  def __init__(self, mitigator, distance):
    self.mitigator, self.distance = mitigator, distance
    cals = mitigator.single_qubit_cals
    self.matrices = {q: np.asarray(m, np.float64) for q, m in enumerate(cals)
                     if m is not None}
    self.qubits = tuple(self.matrices)

  def __repr__(self) -> str:
    return f"ReadoutCalibration(qubits={self.qubits})"

  def mitigated_counts(self, counts, qubits: Sequence[int], where: str) -> np.ndarray:
    """M3's quasi-probabilities of each row of ``counts`` ``(B, 2**k)`` (value ``v`` has
    bit ``c`` measured on ``qubits[c]`` as ``(v >> c) & 1``), times the row's effective
    shots ``1 + (N - 1) / overhead`` (see the module doc): float64 ``(B, 2**k)``."""
    missing = [q for q in qubits if q not in self.matrices]
    if missing:
      raise ValueError(
          f"{where} measures physical qubit(s) {missing} with no readout calibration; the "
          f"calibration holds qubits {self.qubits}. Calibrate the qubits the PUBs measure "
          "(qhess.readout_calibration(backend, pubs)).")
    counts = np.asarray(counts, np.float64)
    k = counts.shape[1].bit_length() - 1
    dicts = [{format(v, f"0{k}b"): float(row[v]) for v in np.flatnonzero(row)}
             for row in counts]
    if not all(dicts):
      raise ValueError(f"{where} has a row without counts.")
    quasi = self.mitigator.apply_correction(dicts, [int(q) for q in qubits],
                                            distance=self.distance,
                                            return_mitigation_overhead=True)
    out = np.zeros(counts.shape)
    for r, dist in enumerate(quasi):
      for key, value in dist.items():
        out[r, int(key, 2)] = float(value)
      shots = counts[r].sum()
      out[r] *= 1 + max(shots - 1, 0) / max(float(dist.mitigation_overhead), 1.0)
    return out


def readout_calibration(source, qubits=None, *, shots: int | None = None,
                        distance: int | None = None) -> ReadoutCalibration:
  """Readout calibrations for ``post(result, pubs, readout=...)``, through mthree (M3).

  From a backend, M3 runs its calibration circuits on it
  (``mthree.M3Mitigation(backend).cals_from_system(qubits, shots)``); or from given
  per-qubit 2×2 assignment matrices ``A[measured, prepared]`` (columns sum to 1:
  ``A[1, 0]`` is the probability of reading 1 from a prepared 0), keyed by physical
  qubit. ``post`` corrects each PUB row's counts with the calibrations of the physical
  qubits it measured (``pubs.qubits``, from the transpiled layout) by M3's
  ``apply_correction``; the quasi-probabilities go through the estimators as outcome
  frequencies, each experiment's variance multiplied by M3's mitigation overhead (see
  `qhess.interop.mitigation`).

  Args:
    source: a ``qiskit.providers.BackendV2`` (the device, or a fake backend whose noise
      model M3 samples), or the matrices: a mapping ``{qubit: 2x2}`` or a sequence whose
      entry ``q`` is qubit ``q``'s matrix (None for an uncalibrated qubit).
    qubits: with a backend, the physical qubits to calibrate: a sequence of ints, or the
      `SamplerPubs` to be mitigated (the qubits they measure); None: all of them.
    shots: with a backend, M3's calibration shots (None: M3's default).
    distance: the Hamming distance M3 corrects to (None: M3's default, min(k, 3) for k
      bits; -1: all).

  Returns:
    a `ReadoutCalibration`.

  Raises:
    ImportError: without mthree (``pip install "qhess[mitigation]"``).
    TypeError: for a source that is neither a backend nor matrices.
    ValueError: for a matrix that is not 2×2, not finite, negative, with columns not
      summing to 1, or singular; ``qubits`` or ``shots`` with matrices.
  """
  mthree = _require("mthree", "qhess.readout_calibration")
  if distance is not None and (isinstance(distance, bool)
                               or not isinstance(distance, numbers.Integral)):
    raise TypeError(f"qhess.readout_calibration: `distance` must be an int or None; got "
                    f"{distance!r}.")
  if hasattr(source, "target") and hasattr(source, "num_qubits"):  # a BackendV2
    if qubits is not None and hasattr(qubits, "qubits") and hasattr(qubits, "rows"):
      qubits = sorted({q for bits in qubits.qubits for q in bits})
    mitigator = mthree.M3Mitigation(source)
    mitigator.cals_from_system(None if qubits is None else [int(q) for q in qubits],
                               shots=shots, async_cal=False)
    return ReadoutCalibration(mitigator, distance)
  if qubits is not None or shots is not None:
    raise ValueError("qhess.readout_calibration: `qubits` and `shots` calibrate on a "
                     "backend; given matrices name their qubits themselves.")
  matrices = _check_matrices(source)
  mitigator = mthree.M3Mitigation()
  mitigator.cals_from_matrices([None if m is None else m.astype(np.float32)
                                for m in matrices])
  return ReadoutCalibration(mitigator, distance)


def _check_matrices(source) -> list:
  """Given assignment matrices as a list indexed by qubit (None: not calibrated)."""
  where = "qhess.readout_calibration"
  if isinstance(source, Mapping):
    keys = list(source)
    if not all(isinstance(q, numbers.Integral) and not isinstance(q, bool) and q >= 0
               for q in keys):
      raise TypeError(f"{where}: the matrices' keys must be physical qubits (ints >= 0); "
                      f"got {keys}.")
    listed = [source.get(q) for q in range(max(keys, default=-1) + 1)]
  elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
    listed = list(source)
  else:
    raise TypeError(f"{where}: `source` must be a Qiskit BackendV2 or per-qubit 2x2 "
                    f"assignment matrices (a mapping or a sequence); got "
                    f"{type(source).__name__}.")
  out = []
  for q, m in enumerate(listed):
    if m is None:
      out.append(None)
      continue
    a = np.asarray(m, dtype=np.float64)
    if (a.shape != (2, 2) or not np.all(np.isfinite(a)) or np.any(a < 0)
        or not np.allclose(a.sum(axis=0), 1, atol=1e-6) or abs(np.linalg.det(a)) < 1e-6):
      raise ValueError(
          f"{where}: qubit {q}'s assignment matrix must be 2x2, finite, non-negative, with "
          "columns summing to 1 (A[measured, prepared]) and invertible; got "
          f"{np.asarray(m).tolist()}.")
    out.append(a)
  if not any(m is not None for m in out):
    raise ValueError(f"{where}: no assignment matrices given.")
  return out


# ------------------------------------------------------------------------------ estimate


def stack(raw: list, mitigated: list, zne: ZNE | None, dtype) -> tuple:
  """Per scale factor ``(freq, totals)`` of the raw counts and of the readout-mitigated
  tables (the same without readout), each float64 ``(S, B, G, O)``, ``(S, B, G)``, as
  ``dtype`` arrays ``(L, S, B, G, O)`` (mitigated, raw) and ``(L, S, B, G)`` (the
  mitigated tables' totals: effective shots, clipped to the dtype's range, where they
  are as good as infinitely many shots), and the weights ``(L,)``."""
  top = np.finfo(dtype).max
  totals = np.minimum(np.stack([t for _, t in mitigated]), top)
  weights = np.ones(1) if zne is None else zne.weights
  return (jnp.asarray(np.stack([f for f, _ in mitigated]), dtype),
          jnp.asarray(np.stack([f for f, _ in raw]), dtype), jnp.asarray(totals, dtype),
          jnp.asarray(weights, dtype))


def extrapolated_estimate(post_y: Callable, a, freq, raw, shots, weights, *,
                          return_stderr: bool):
  """``post`` of the extrapolated raw values, ``post_y(sum_l w_l y_l)``, with standard
  errors through the weights.

  The L scale factors' experiments are stacked as ``L * B`` points of one estimate
  (`qhess.derivatives.estimators`), so each scale's variance comes from its own
  distribution and shots and is weighted by ``w_l**2``. The values come from the
  (readout-mitigated) ``freq``; the spread of each experiment's outcomes from its raw
  frequencies ``raw``, over its effective ``shots``.

  Args:
    post_y: raw point values ``(B, n_raw)`` -> outputs.
    a: the estimator matrix ``(n_raw, G, O)``.
    freq: ``(L, B, G, O)`` outcome frequencies or quasi-probabilities per scale.
    raw: ``(L, B, G, O)`` the measured outcome frequencies per scale.
    shots: ``(L, B, G)`` (effective) shots per scale.
    weights: ``(L,)`` extrapolation weights (``[1.]`` without ZNE).
    return_stderr: also return the standard errors.
  """
  n_scales, b = freq.shape[:2]

  def stacked(y):  # (L * B, n_raw)
    return post_y(jnp.tensordot(weights, y.reshape((n_scales, b) + y.shape[1:]), axes=1))

  flat = (n_scales * b,)
  y = jnp.einsum("rgo,bgo->br", a, freq.reshape(flat + freq.shape[2:]))
  if not return_stderr:
    return stacked(y)
  return _estimators._post_and_stderr(  # pylint: disable=protected-access
      stacked, y, raw.reshape(flat + raw.shape[2:]), shots.reshape(flat + shots.shape[2:]), a)
