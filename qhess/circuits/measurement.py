"""Measurement specifications of a tape: what the kernel computes and how outputs follow.

A `MeasurementSpec` is the static description of one measurement of a `qhess.Tape`
(expval, var, probs; Pauli words, Hermitian factors, coefficients static or as data),
split into *raw* measurements linear in the state (`MeasurementSpec.raw`) and combined
back into the output (`MeasurementSpec.finalize`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np



class MeasurementSpec(NamedTuple):
  """One measurement of a tape (static).

  Attributes:
    kind: ``"expval"``, ``"var"``, ``"probs"``, ``"expval_sq"`` (``<O²>``), or
      ``"expval_sum"``: an ``expval`` with coefficients as data folded into one raw
      output ``Σ_t c_t <P_t>`` (`folded`).
    terms: for observables, a tuple of ``(coefficient, factors)``; a factor is
      ``(char, wire)`` for a Pauli or ``("H", wires, const_index)`` for a Hermitian.
    wires: the wires of ``probs`` (all measured wires resolved).
    coeffs: ``None`` when the coefficients are in ``terms`` (static); else the index in
      ``Tape.consts`` of the coefficient vector, data of the computation (traced
      coefficients of an ``expval``): the terms then hold 1.0, each term is its own raw
      measurement, and `finalize` weighs them, so one compiled kernel serves every
      coefficient vector and derivatives with respect to the coefficients come from the
      per-term values.
  """

  kind: str
  terms: tuple | None = None
  wires: tuple[int, ...] | None = None
  coeffs: int | None = None

  def folded(self) -> MeasurementSpec:
    """This measurement with its coefficients as data weighed inside the kernel: one raw
    output ``Σ_t c_t <P_t>`` instead of one per term (``kind="expval_sum"``).

    For evaluations that differentiate the circuit's gate arguments only: the
    coefficients stay data (one compiled kernel serves every coefficient vector), but
    their derivatives are not available from the folded output. Others are unchanged.
    """
    return self._replace(kind="expval_sum") if self.coeffs is not None else self

  def raw(self) -> tuple[MeasurementSpec, ...]:
    """The measurements, linear in the density matrix, that this one is computed from."""
    if self.kind == "expval_sum":
      return (self,)
    if self.coeffs is not None:
      return tuple(MeasurementSpec("expval", (term,)) for term in self.terms)
    if self.kind == "var":
      return (self._replace(kind="expval"), self._replace(kind="expval_sq"))
    return (self,)

  def finalize(self, raw_values: Sequence[jax.Array], consts: Sequence = ()) -> jax.Array:
    """This measurement's output from the values of its `raw` measurements (and, for
    coefficients as data, the tape's ``consts``)."""
    if self.kind == "expval_sum":  # weighed by the kernel
      (value,) = raw_values
      return value
    if self.coeffs is not None:
      return jnp.stack(raw_values, axis=-1) @ consts[self.coeffs]
    if self.kind == "var":
      first, second = raw_values
      return second - first**2
    (value,) = raw_values
    return value

  @property
  def raw_size(self) -> int:
    """Number of raw real outputs, e.g. ``2**len(wires)`` for probs."""
    return sum(2 ** len(m.wires) if m.kind == "probs" else 1 for m in self.raw())

  @property
  def shape(self) -> tuple[int, ...]:
    """Shape of this measurement's output."""
    return (2 ** len(self.wires),) if self.kind == "probs" else ()

  @property
  def all_wires(self) -> tuple[int, ...]:
    if self.kind == "probs":
      return self.wires
    return tuple(sorted({w for _, fs in self.terms for f in fs
                         for w in ((f[1],) if f[0] != "H" else f[1])}))



def float_dtype():
  """float64 when ``jax_enable_x64`` is on, float32 otherwise."""
  # Not jnp.zeros(()).dtype: that runs a computation, once per gate argument when
  # recording under jax.ensure_compile_time_eval.
  return jax.dtypes.canonicalize_dtype(np.float64)
