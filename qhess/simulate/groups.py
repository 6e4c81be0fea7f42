"""Measurement groups: qubit-wise commuting Pauli words measured together.

`measurement_groups` splits the raw measurements of a tape into groups measured in one
basis; `estimator_matrix` maps each group's outcome probabilities to the raw
measurements; `Marginals` gives those probabilities from a state (with readout error).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from qhess.simulate import density as _density
from qhess.simulate import gates as _gates


_SQRT_HALF = float(np.sqrt(0.5))



# Basis rotations: measuring in the Z basis after U measures U† Z U.
_ROTATION = {
    "X": np.array([[1, 1], [1, -1]], dtype=complex) * _SQRT_HALF,  # H
    "Y": np.array([[1, -1j], [1, 1j]], dtype=complex) * _SQRT_HALF,  # H·S†
}



@dataclasses.dataclass(frozen=True)
class Group:
  """One measured circuit per point (static).

  Attributes:
    rotations: tuple of ``(char, wire)`` with char ``"X"``/``"Y"``, and
      ``("H", wires, const_index)`` for Hermitian eigenbases.
    wires: the measured wires, sorted; outcome index bits are in this order, MSB first.
  """

  rotations: tuple
  wires: tuple[int, ...]



@dataclasses.dataclass(frozen=True)
class MeasurementGroups:
  """The groups of a tape's raw measurements and where each term is measured (static).

  Attributes:
    groups: tuple of `Group`.
    assign: per raw measurement: for ``expval`` a tuple with each term's group, for
      ``expval_sq`` and ``probs`` a 1-tuple with the group of the whole measurement.
  """

  groups: tuple[Group, ...]
  assign: tuple[tuple[int, ...], ...]

  @property
  def n_outcomes(self) -> int:
    """Outcomes per group after padding: ``2**max(k_g)``."""
    return 2 ** max(len(g.wires) for g in self.groups)



def _factor_bases(factors) -> dict:
  out = {}
  for f in factors:
    if f[0] == "H":
      for w in f[1]:
        out[w] = ("H", f[1], f[2])
    else:
      out[f[1]] = f[0]
  return out



@functools.lru_cache(maxsize=64)
def measurement_groups(raw_measurements: tuple) -> MeasurementGroups:
  """Greedy qubit-wise-commuting grouping of a tape's raw measurements.

  Raises:
    ValueError: for ``var`` of an observable whose terms do not commute qubit-wise.
  """
  bases: list[dict] = []

  def place(item: dict) -> int:
    for g, basis in enumerate(bases):
      if all(basis.get(w, b) == b for w, b in item.items()):
        basis.update(item)
        return g
    bases.append(dict(item))
    return len(bases) - 1

  assign = []
  for m in raw_measurements:
    if m.kind == "probs":
      assign.append((place({w: "Z" for w in m.wires}),))
    elif m.kind == "expval":
      assign.append(tuple(place(_factor_bases(fs)) for _, fs in m.terms))
    else:  # expval_sq: the whole observable in one basis
      item: dict = {}
      for _, fs in m.terms:
        for w, b in _factor_bases(fs).items():
          if item.get(w, b) != b:
            raise ValueError(
                "var of an observable whose terms do not commute qubit-wise cannot be "
                "sampled: <O> and <O²> must come from one measurement basis. Measure "
                "the terms' expectation values instead; got wire {w} in bases "
                f"{item[w]!r} and {b!r}.")
          item[w] = b
      assign.append((place(item),))
  if not bases:
    bases.append({})
  groups = []
  for basis in bases:
    rotations = []
    for w in sorted(basis):
      b = basis[w]
      if b in ("X", "Y"):
        rotations.append((b, w))
      elif isinstance(b, tuple) and b[1][0] == w:  # one entry per Hermitian factor
        rotations.append(b)
    groups.append(Group(tuple(rotations), tuple(sorted(basis))))
  return MeasurementGroups(tuple(groups), tuple(assign))



def _outcome_bits(group: Group) -> np.ndarray:
  """int array ``(2**k, k)``: the bit of each measured wire in each outcome."""
  k = len(group.wires)
  o = np.arange(2**k)[:, None]
  return (o >> (k - 1 - np.arange(k))[None, :]) & 1



def _term_values(group: Group, factors, consts, dtype) -> jax.Array:
  """Value of a product of factors for each outcome of ``group``, shape ``(2**k,)``."""
  bits = _outcome_bits(group)
  pos = {w: i for i, w in enumerate(group.wires)}
  values = jnp.ones(len(bits), dtype)
  for f in factors:
    if f[0] == "H":
      eig = jnp.linalg.eigvalsh(consts[f[2]]).astype(dtype)
      index = np.zeros(len(bits), dtype=int)
      for w in f[1]:  # eigenvalue index: the factor's wires in its own order, MSB first
        index = 2 * index + bits[:, pos[w]]
      values = values * eig[index]
    else:
      values = values * (1.0 - 2.0 * bits[:, pos[f[1]]]).astype(dtype)
  return values



def estimator_matrix(mg: MeasurementGroups, raw_measurements, consts, dtype) -> jax.Array:
  """``A`` of shape ``(n_raw, G, O)``: raw outputs ``Y_r = Σ_{g,o} A[r, g, o] f_{g,o}``.

  ``f_{g,o}`` are the outcome frequencies of group ``g``; padded outcomes have ``A = 0``.
  """
  n_groups, n_out = len(mg.groups), mg.n_outcomes
  rows = []
  for m, assign in zip(raw_measurements, mg.assign):
    if m.kind == "probs":
      (g,) = assign
      group = mg.groups[g]
      bits = _outcome_bits(group)
      col = np.zeros(len(bits), dtype=int)
      for w in m.wires:  # requested wire order, MSB first
        col = 2 * col + bits[:, group.wires.index(w)]
      block = np.zeros((2 ** len(m.wires), n_groups, n_out))
      block[col, g, np.arange(len(bits))] = 1.0
      rows.append(jnp.asarray(block, dtype))
      continue
    row = jnp.zeros((n_groups, n_out), dtype)
    if m.kind == "expval":
      for (c, fs), g in zip(m.terms, assign):
        vals = c * _term_values(mg.groups[g], fs, consts, dtype)
        row = row.at[g, :len(vals)].add(vals)
    else:  # expval_sq: (Σ_terms value)², per outcome of the common basis
      (g,) = assign
      vals = sum(c * _term_values(mg.groups[g], fs, consts, dtype) for c, fs in m.terms)
      vals = jnp.broadcast_to(vals, (2 ** len(mg.groups[g].wires),)) ** 2
      row = row.at[g, :len(vals)].set(vals)
    rows.append(row[None])
  return jnp.concatenate(rows)



@dataclasses.dataclass(frozen=True)
class Marginals:
  """Each group's outcome probabilities from a final state (hashable: a jit static).

  ``marginals(psi, consts)`` with ``psi`` of shape ``(2**n,)`` returns a float array of
  shape ``(G, O)``: group ``g``'s state rotated into its eigenbasis, marginalised onto its
  ``k_g`` wires (outcome bits in sorted wire order, MSB first), zero-padded to ``O``.
  Deterministic: the kernel maps it over the points; `draw_counts` then samples.
  """

  groups: tuple[Group, ...]
  n_wires: int
  n_outcomes: int
  readout: tuple[float, ...] | None = None  # per-wire flip probability of measured bits

  def __call__(self, psi, consts):
    n, out = self.n_wires, []
    # A vector of 4**n amplitudes is a density matrix (`qhess.simulate.density`): U ρ U†, diagonal.
    mixed = psi.shape[0] != 2**n
    rotate = _density.apply_unitary if mixed else _gates.apply_matrix
    for g in self.groups:
      phi = psi
      for rot in g.rotations:
        if rot[0] == "H":
          _, vecs = jnp.linalg.eigh(consts[rot[2]])
          phi = rotate(phi, jnp.conj(vecs.T).astype(phi.dtype), rot[1], n)
        else:
          phi = rotate(phi, _ROTATION[rot[0]].astype(phi.dtype), (rot[1],), n)
      probs = _density.diagonal(phi, n) if mixed else jnp.real(phi * jnp.conj(phi))
      view = _gates._View(g.wires, n) if g.wires else None
      if view is None:
        marginal = jnp.sum(probs)[None]
      else:  # sum the unmeasured axes of the split view: (2,)*k in sorted wire order
        marginal = jnp.reshape(jnp.sum(jnp.reshape(probs, view.shape),
                                       axis=tuple(range(0, view.ndim, 2))), (-1,))
        if self.readout is not None:  # the measured bits flip (after the rotation)
          marginal = _density.flip_bits(marginal, tuple(self.readout[w] for w in g.wires))
      out.append(jnp.pad(marginal, (0, self.n_outcomes - marginal.shape[0])))
    return jnp.stack(out)  # (G, O)


def raw_from_counts(a, counts, shots) -> jax.Array:
  """Raw outputs ``(B, n_raw)`` from counts ``(B, G, O)`` and shots ``(B, G)``."""
  freq = counts / shots[..., None].astype(counts.dtype)
  return jnp.einsum("rgo,bgo->br", a, freq)
