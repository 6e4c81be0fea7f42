"""Noisy tapes on the kernel: how channels and readout error become a kernel key.

A tape with channels runs as its vectorized density matrix, a state of ``2 * n_wires``
wires: each gate U on wires w becomes U on w and its conjugate U* on w + n, each channel
its superoperator on (w, w + n) (`kernel_key`), and measurements read the diagonal
(`qhess.simulate.density.MixedMeasurement`). Readout error replaces the measurements by
`ReadoutMeasurement`, the infinite-shot limit of the flipped counts.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.simulate import evolve as _evolve
from qhess.circuits.catalogue import CATALOGUE
from qhess.simulate import groups as _groups
from qhess.simulate.density import MixedMeasurement, conjugate_name, is_mixed, readout_of


class ReadoutMeasurement(NamedTuple):
  """All raw measurements of a tape under readout error, exactly (hashable).

  ``Y = Σ_{g,o} A[r, g, o] q_{g,o}``: the sampled estimator (`_groups.estimator_matrix`)
  applied to the outcome probabilities ``q`` of each measurement group with the readout
  flips applied (`_groups.Marginals`), i.e. the infinite-shot limit of what ``shots``
  estimate. Works on pure states ``(2**n,)`` and vectorized density matrices ``(4**n,)``.
  """

  raw_measurements: tuple
  n: int
  readout: tuple[float, ...]

  @property
  def kind(self) -> str:
    return "readout"

  def __call__(self, psi, consts):
    mg = _groups.measurement_groups(self.raw_measurements)
    dtype = jnp.real(psi[:1]).dtype
    a = _groups.estimator_matrix(mg, self.raw_measurements, consts, dtype)  # (R, G, O)
    q = _groups.Marginals(mg.groups, self.n, mg.n_outcomes, self.readout)(psi, consts)
    return jnp.einsum("rgo,go->r", a, q)



def _static_superoperator(kraus):
  """A concrete channel's superoperator as a hashable tuple of rows (``None`` if traced)."""
  if isinstance(kraus, jax.core.Tracer):
    return None
  k = np.asarray(kraus)
  d = k.shape[-1]
  s = np.einsum("kab,kcd->acbd", k, k.conj()).reshape(d * d, d * d)
  return tuple(tuple(complex(v) for v in row) for row in s)



def kernel_key(tape) -> tuple:
  """The kernel key of a noisy tape (channels and/or readout error); see the module doc.

  A channel whose Kraus operators are concrete (a fixed noise model, the common case)
  becomes a ``"Superoperator"`` gate with its matrix in the key: a NumPy constant, so the
  kernel skips its zero entries (a depolarizing channel's 16 become 6) and never reads
  them from memory. A channel with traced parameters reads ``Tape.consts``.

  Returns:
    ``(operations, raw_measurements, n_vector_wires)``: with channels, the doubled gates
    on ``2 * n_wires`` wires and `MixedMeasurement` s; with readout error one
    `ReadoutMeasurement`.
  """
  static = tuple(_static_superoperator(tape.consts[op.hyper])
                 if CATALOGUE[op.name].kind == "channel" else None for op in tape.operations)
  return _kernel_key(tape.operations, tape.raw_measurements, tape.n_wires, readout_of(tape),
                     static)



def density_key(tape) -> tuple:
  """`kernel_key` as a density matrix even without channels (readout error alone): a
  key whose measurements are linear in the vectorized ``ρ`` (the noisy adjoint method,
  `qhess.derivatives.adjoint_noisy`, needs that)."""
  static = tuple(_static_superoperator(tape.consts[op.hyper])
                 if CATALOGUE[op.name].kind == "channel" else None for op in tape.operations)
  return _kernel_key(tape.operations, tape.raw_measurements, tape.n_wires, readout_of(tape),
                     static, True)



@functools.lru_cache(maxsize=256)
def _kernel_key(operations, raw_measurements, n, readout, static, force_mixed=False):
  mixed = force_mixed or is_mixed(operations)
  if mixed:
    doubled = []
    for op, superop in zip(operations, static):
      shifted = tuple(w + n for w in op.wires)
      if op.name == "ReadoutError":
        continue
      if superop is not None:
        doubled.append(op._replace(name="Superoperator", wires=op.wires + shifted,
                                   hyper=superop))
      elif CATALOGUE[op.name].kind == "channel":
        doubled.append(op._replace(wires=op.wires + shifted))
      else:
        doubled += [op, op._replace(name=conjugate_name(op.name), wires=shifted)]
    ops = doubled
  else:
    ops = [op for op in operations if op.name != "ReadoutError"]
  if readout is not None:
    measurements = (ReadoutMeasurement(tuple(raw_measurements), n, tuple(readout)),)
  elif mixed:
    measurements = tuple(MixedMeasurement(m, n) for m in raw_measurements)
  else:
    measurements = tuple(raw_measurements)
  return (tuple(ops), measurements, 2 * n if mixed else n)



def density_matrix(tape) -> jax.Array:
  """The final density matrix of a tape, complex array ``(2**n_wires, 2**n_wires)``.

  Readout error (a property of the measurement) is not part of it.
  """
  ops, _, n2 = kernel_key(tape)
  return _density_matrix(ops, n2, tape.n_wires, tape.params, tuple(tape.consts))



@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _density_matrix(ops, n2, n, params, consts):
  v = _evolve.evolve(ops, n2, params, consts)
  if n2 == n:  # no channel: a pure state
    return jnp.outer(v, jnp.conj(v))
  return jnp.reshape(v, (2**n, 2**n))
