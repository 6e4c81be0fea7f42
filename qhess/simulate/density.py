"""Mixed states on the statevector kernel: a density matrix is a vector of twice the wires.

A density matrix ``ρ`` of ``n`` qubits, flattened row-major, is a vector ``v`` of length
``4**n`` with ``v[i * 2**n + j] = ρ[i, j]``: a "state" of ``2n`` wires, where wires
``0 .. n-1`` index the rows and wires ``n .. 2n-1`` the columns (wire 0 still the most
significant bit). Every operation on ``ρ`` is then a gate on ``v``, so the statevector
kernel (`qhess.simulate.evolve`: block views, fusion, repeated-block scans, batching,
chunking, prefix sharing, sharding) runs mixed states unchanged:

- a gate ``U`` on wires ``w`` maps ``ρ -> U ρ U†``, i.e. ``v -> (U ⊗ conj(U)) v``: ``U``
  on wires ``w`` and ``conj(U)`` on wires ``w + n``, two ordinary gates (``conj(U)`` is
  the catalogue's ``name + "*"`` gate with the same arguments, or the gate itself when
  its matrix is real). The two gates take the *same* gate arguments, so a shifted
  argument shifts both and parameter-shift rules hold unchanged: ``Tr(O ρ(θ))`` is the
  same trigonometric polynomial in ``θ`` as for a pure state;
- a channel with Kraus operators ``K_k`` on wires ``w`` maps ``v -> S v`` with the
  superoperator ``S = Σ_k K_k ⊗ conj(K_k)`` on wires ``(w, w + n)``
  (`_ops._superoperator`, a dense gate on ``2k`` wires whose matrix is data);
- the measurement reads the diagonal ``ρ[i, i] = v[i * (2**n + 1)]``: probabilities,
  ``Tr(Z-word ρ)`` as a weighted sum of them, ``Tr(O ρ)`` as the trace of ``O`` applied
  to the row wires of ``v`` (`MixedMeasurement`).

`kernel_key` turns a tape with channels into the key of this doubled circuit (each gate
followed by its conjugate, so that a gate's index in the tape maps to the first of its
pair and prefix-sharing boundaries never fall between the two); the kernel compiles and
runs it like any other key. A tape without channels keeps its statevector key: noiseless
circuits pay nothing. Cost: a ``2n``-wire vector per circuit, so a noisy circuit of ``n``
wires costs about what a ``2n``-wire pure circuit with twice the gates costs.

Readout error (`_noise.with_noise`) replaces the measurements of a key by one
`ReadoutMeasurement`: the exact (infinite-shot) value of the sampled estimator, the
outcome probabilities of each measurement group with each measured bit flipped, so that
exact and sampled results agree on what is measured.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.catalogue import CATALOGUE, _REAL_GATES
from qhess.simulate import gates as _gates
from qhess.simulate import measure as _measure


def conjugate_name(name: str) -> str:
  """The catalogue name of the gate whose matrix is ``conj`` of ``name``'s."""
  return name if name in _REAL_GATES else name + "*"


def diagonal(v, n: int) -> jax.Array:
  """The real diagonal of a vectorized density matrix ``v`` ``(4**n,)``: ``(2**n,)``."""
  d = 2**n
  return jnp.real(jnp.diagonal(jnp.reshape(v, (d, d))))


def apply_unitary(v, matrix, wires, n: int) -> jax.Array:
  """``U ρ U†`` for a ``(2**k, 2**k)`` matrix on ``wires`` of a vectorized ``ρ``."""
  conj = np.conj(matrix) if isinstance(matrix, np.ndarray) else jnp.conj(matrix)
  v = _gates.apply_matrix(v, matrix, tuple(wires), 2 * n)
  return _gates.apply_matrix(v, conj, tuple(w + n for w in wires), 2 * n)


def flip_bits(p, flip: tuple) -> jax.Array:
  """Outcome probabilities ``(2**k,)`` after each bit ``i`` flips with prob. ``flip[i]``.

  Bits are in ``p``'s index order, MSB first. Confusion matrices are applied per bit:
  ``[[1 - f, f], [f, 1 - f]]`` (independent flips).
  """
  k = len(flip)
  x = jnp.reshape(p, (2,) * k)
  for axis, f in enumerate(flip):
    if f:
      m = jnp.asarray([[1.0 - f, f], [f, 1.0 - f]], p.dtype)
      x = jnp.moveaxis(jnp.tensordot(m, x, axes=(1, axis)), 0, axis)
  return jnp.reshape(x, p.shape)


class MixedMeasurement(NamedTuple):
  """One raw measurement of a vectorized density matrix (hashable: part of a kernel key).

  Called as ``m(v, consts)`` with ``v`` of shape ``(4**n,)``; returns a float array of
  shape ``(raw_size,)`` like `_measure.measure`.
  """

  spec: object  # a raw `_tape.MeasurementSpec`
  n: int

  @property
  def kind(self) -> str:  # not one the statevector path folds gates into
    return "mixed"

  def __call__(self, v, consts):
    spec, n = self.spec, self.n
    probs = diagonal(v, n)

    def trace(w):  # Tr of the matrix vectorized in w
      return jnp.sum(diagonal(w, n))

    if spec.kind == "probs":
      view = _gates._View(spec.wires, n)
      p = jnp.sum(jnp.reshape(probs, view.shape), axis=tuple(range(0, view.ndim, 2)))
      p = jnp.transpose(p, np.argsort(np.argsort(spec.wires))) if len(spec.wires) > 1 else p
      return jnp.reshape(p, (-1,))
    if spec.kind == "expval":
      # Z words are diagonal: one weighted sum of the probabilities; others Tr(P ρ).
      z_terms = [(c, fs) for c, fs in spec.terms if all(f[0] == "Z" for f in fs)]
      value = jnp.zeros((), probs.dtype)
      if z_terms:
        value = jnp.sum(probs * _measure._z_diagonal(z_terms, n, probs.dtype))
      for c, fs in spec.terms:
        if not all(f[0] == "Z" for f in fs):
          value = value + c * trace(_measure._apply_term(v, fs, consts, 2 * n))
    elif spec.kind == "expval_sq":  # Tr(O O ρ), O applied to the rows twice
      def apply_o(w):
        return sum(c * _measure._apply_term(w, fs, consts, 2 * n) for c, fs in spec.terms)
      value = trace(apply_o(apply_o(v)))
    else:
      raise ValueError(f"The kernel computes raw measurements only; got {spec.kind!r}.")
    return jnp.reshape(jnp.asarray(value, probs.dtype), (1,))


def combine_flips(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
  """Two independent bit flips in a row, per wire: ``a + b - 2ab``."""
  return tuple(float(x + y - 2 * x * y) for x, y in zip(a, b))


def readout_of(tape) -> tuple[float, ...] | None:
  """The per-wire readout flip probabilities of a tape, or ``None`` without any."""
  out = None
  for op in tape.operations:
    if op.name == "ReadoutError":
      out = op.hyper if out is None else combine_flips(out, op.hyper)
  return out


def is_mixed(operations) -> bool:
  """Whether a tape's operations include a channel (density-matrix simulation)."""
  return any(CATALOGUE[op.name].kind == "channel" for op in operations)


