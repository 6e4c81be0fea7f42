"""ShiftPlan: the shifted circuits of a Hessian and how to combine their outputs.

A plan is built once per circuit structure and options, in NumPy, at trace time. It holds

- the *points*: ``T`` shifted gate-argument vectors, stored sparsely — each differs from
  the unshifted arguments θ in at most two entries, so a point is two (index, shift)
  pairs (unused pairs have shift 0);
- sparse coefficients, in coordinate form, for the gradient ``∂R/∂θ_k = Σ c Y[t]`` and
  the Hessian ``∂²R/∂θ_i∂θ_j = Σ c Y[t]`` (both triangles stored), where ``Y[t]`` are
  the raw outputs of point ``t``.

Memory is O(T) (never a dense ``(P, P, T)`` tensor), so a 200-argument circuit plans in
well under a second. Points that coincide — also modulo the argument's period — are one
circuit with summed coefficients; every zero shift is the unshifted circuit, which is
point 0 when it is used at all.

Default rules give ``1 + P + 4·P(P-1)/2`` points for P single-frequency arguments
(PennyLane's `param_shift_hessian` generates the same); with the gradient, the diagonal
shares the first-order points: ``1 + 2P + 4·P(P-1)/2``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from qhess.shift import rules as rules
from qhess.circuits.catalogue import Spectrum

_QUANTUM = 1e-9  # shifts closer than this (after reduction modulo the period) coincide


@dataclasses.dataclass(frozen=True, eq=False)
class ShiftPlan:
  """Points and sparse coefficients of a parameter-shift Hessian (and gradient).

  Attributes:
    n_params: ``P``, number of gate arguments.
    point_index: int32 array ``(T, 2)``: the (up to two) shifted argument indices.
    point_shift: float64 array ``(T, 2)``: the shifts (0 where unused).
    has_unshifted: whether point 0 is the unshifted circuit.
    grad_arg, grad_point, grad_coef: ``(n_g,)`` arrays: ``∂R/∂θ[grad_arg] +=
      grad_coef * Y[grad_point]``.
    hess_row, hess_col, hess_point, hess_coef: ``(n_h,)`` arrays: ``∂²R/∂θ[row]∂θ[col]
      += hess_coef * Y[hess_point]``, both triangles.
  """

  n_params: int
  point_index: np.ndarray
  point_shift: np.ndarray
  has_unshifted: bool
  grad_arg: np.ndarray
  grad_point: np.ndarray
  grad_coef: np.ndarray
  hess_row: np.ndarray
  hess_col: np.ndarray
  hess_point: np.ndarray
  hess_coef: np.ndarray

  @property
  def n_points(self) -> int:
    """``T``, the number of distinct circuits."""
    return len(self.point_index)


def _first_order_rule(spectrum: Spectrum, custom, what: str) -> rules.Recipe:
  if custom is None:
    return rules.first_order(spectrum)
  return rules.first_order_from_shifts(custom, spectrum, what)


class _Singles:
  """Merges single-argument points; id 0 is the unshifted circuit."""

  def __init__(self):
    self.ids: dict[tuple[int, int], int] = {}
    self.args: list[int] = []
    self.shifts: list[float] = []

  def add(self, arg: int, recipe: rules.Recipe, per: float) -> list[tuple[int, float]]:
    out = []
    for s, c in zip(rules.canonical_shift(recipe.shifts, per), recipe.coeffs):
      if s == 0:
        out.append((0, c))
        continue
      key = (arg, int(round(s / _QUANTUM)))
      if key not in self.ids:
        self.ids[key] = len(self.args) + 1
        self.args.append(arg)
        self.shifts.append(float(s))
      out.append((self.ids[key], c))
    return out


def build_plan(spectra: Sequence[Spectrum], mask: np.ndarray, *, need_value: bool = False,
               grad_args: Sequence[int] = (), diagonal_shifts=None,
               off_diagonal_shifts=None, shared_diagonal: bool = False,
               off_diagonal_rule: str = "product") -> ShiftPlan:
  """Builds the plan (cached on its arguments).

  Args:
    spectra: one `Spectrum` per gate argument (length P).
    mask: bool array ``(P, P)``, symmetric: the Hessian entries to compute.
    need_value: include the unshifted circuit even if no rule uses it.
    grad_args: arguments whose first derivative is needed.
    diagonal_shifts: ``None`` or one tuple of positive shifts per argument; the
      diagonal then uses that first-order rule applied twice.
    off_diagonal_shifts: ``None`` or one tuple per argument for the product rule.
    shared_diagonal: compute the diagonal from the first-order points (one batch for
      value, gradient and Hessian); ignored where ``diagonal_shifts`` is given.
    off_diagonal_rule: ``"product"`` (product of first-order rules, 4·R_i·R_j points)
      or ``"diagonal"`` (Wierichs et al. Sec. 4: ``H_ij = ½[E''(0) - H_ii - H_jj]``
      along ``e_i + e_j``, fewer points; used where both diagonal entries are selected).

  Returns:
    a `ShiftPlan`.
  """
  mask = np.asarray(mask, dtype=bool)
  return _build_cached(tuple(spectra), mask.tobytes(), mask.shape, need_value,
                       tuple(int(a) for a in grad_args), diagonal_shifts,
                       off_diagonal_shifts, shared_diagonal, off_diagonal_rule)


def _direction_spectrum(a: Spectrum, b: Spectrum) -> Spectrum | None:
  """Spectrum of ``t -> f(θ + t(e_i + e_j))``: multiples of gcd(a, b) up to the sum."""
  for base in (min(a.base, b.base) / q for q in range(1, 9)):
    ra, rb = a.base / base, b.base / base
    if abs(ra - round(ra)) < 1e-9 and abs(rb - round(rb)) < 1e-9:
      return Spectrum(base, int(round(a.count * ra + b.count * rb)))
  return None  # incommensurate frequencies: no equidistant spectrum, use the product rule


def _columns(records, width: int) -> list[np.ndarray]:
  """``width`` flat arrays, one per field of ``records`` (tuples of scalars or of
  equal-length arrays); the last is float, the others int."""
  if not records:
    return [np.zeros(0, np.int64)] * (width - 1) + [np.zeros(0)]
  cols = list(zip(*[tuple(np.atleast_1d(x) for x in rec) for rec in records]))
  return [np.concatenate(col) for col in cols]


class _PlanBuilder:
  """Collects a plan's points and coefficients, one step at a time (`_build_cached`).

  Single-argument points are merged in ``singles`` (id 0 the unshifted circuit);
  two-argument points are numbered after all of them, block by block (`add_pairs`), so
  every single-argument point must be added before the first pair block.
  """

  def __init__(self, spectra):
    self.spectra = spectra
    self.n = len(spectra)
    self.periods = [rules.period(s) for s in spectra]
    self.singles = _Singles()
    self.grad = []  # (arg, point, coef)
    self.hess = []  # (row, col, point, coef): scalars or equal-length arrays
    self.diag: dict[int, list[tuple[int, float]]] = {}  # the diagonal recipes' (point, coef)
    self.pair_blocks = []  # (index (m, 2), shift (m, 2)) per block of pair points
    self.n_pair_points = 0

  def first_rule(self, k: int, custom_shifts, what: str) -> rules.Recipe:
    """Argument ``k``'s first-order recipe: the default, or from ``custom_shifts[k]``."""
    custom = None if custom_shifts is None else custom_shifts[k]
    return _first_order_rule(self.spectra[k], custom, f"{what}[{k}]")

  def add_gradient(self, grad_args, diagonal_shifts) -> None:
    """The first-order points of ``grad_args`` and their gradient coefficients."""
    for k in grad_args:
      rule = self.first_rule(k, diagonal_shifts, "diagonal_shifts")
      for pid, c in self.singles.add(k, rule, self.periods[k]):
        self.grad.append((k, pid, c))

  def add_diagonal(self, args, diagonal_shifts, shared_diagonal: bool) -> None:
    """The points of the diagonal entries ``H_kk``, k in ``args``, and their terms:
    the custom first-order rule applied twice, the second-order rule sharing the
    first-order points, or the default second-order rule."""
    for k in args:
      k = int(k)
      if diagonal_shifts is not None:
        first = self.first_rule(k, diagonal_shifts, "diagonal_shifts")
        recipe = rules.compose(first, first)
      elif shared_diagonal:
        recipe = rules.second_order_shared(
            self.first_rule(k, diagonal_shifts, "diagonal_shifts"), self.spectra[k])
      else:
        recipe = rules.second_order(self.spectra[k])
      self.diag[k] = self.singles.add(k, recipe, self.periods[k])
      self.hess.extend((k, k, pid, c) for pid, c in self.diag[k])

  def _diagonal_arrays(self) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal recipes as padded ``(P, D)`` arrays of points and coefficients."""
    width = max((len(v) for v in self.diag.values()), default=0)
    diag_pid = np.zeros((self.n, width), np.int64)
    diag_coef = np.zeros((self.n, width))
    for k, recs in self.diag.items():
      diag_pid[k, :len(recs)] = [p for p, _ in recs]
      diag_coef[k, :len(recs)] = [c for _, c in recs]
    return diag_pid, diag_coef

  def add_by_direction(self, rows, cols) -> np.ndarray:
    """The off-diagonal entries ``(rows, cols)`` under the diagonal rule, where it applies.

    ``H_ij = ½ [E''(0) - H_ii - H_jj]`` with ``E(t) = f(θ + t(e_i + e_j))`` (Wierichs et
    al. 2022, Sec. 4), for the pairs with both diagonal entries computed and
    commensurate frequencies. Returns the mask of the pairs left to the product rule.
    """
    keep = np.ones(len(rows), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for n_pair, (i, j) in enumerate(zip(rows.tolist(), cols.tolist())):
      if i in self.diag and j in self.diag:
        groups.setdefault((self.spectra[i], self.spectra[j]), []).append(n_pair)
    diag_pid, diag_coef = self._diagonal_arrays()
    width = diag_pid.shape[1]
    direction = []  # (rows, cols, shift_row, shift_col, coef) arrays of the pair points
    for (spec_i, spec_j), members in groups.items():
      spec = _direction_spectrum(spec_i, spec_j)
      if spec is None:
        continue
      keep[members] = False
      r, c = rows[members], cols[members]
      direction += self._add_direction_terms(r, c, spec_i, spec_j, spec)
      for k in (r, c):  # -½ H_ii - ½ H_jj
        nz = diag_coef[k] != 0
        rr, cc = np.repeat(r, width)[nz.ravel()], np.repeat(c, width)[nz.ravel()]
        pid, coef = diag_pid[k][nz], -0.5 * diag_coef[k][nz]
        self.hess.extend([(rr, cc, pid, coef), (cc, rr, pid, coef)])
    if direction:
      self.add_pairs(*(np.concatenate(col) for col in zip(*direction)))
    return keep

  def _add_direction_terms(self, r, c, spec_i: Spectrum, spec_j: Spectrum,
                           spec: Spectrum) -> list[tuple]:
    """The ``½ E''(0)`` terms of the pairs ``(r, c)``: adds those at the unshifted or a
    single-argument point, returns those shifting both arguments as
    ``(rows, cols, shift_row, shift_col, coef)`` arrays."""
    recipe = rules.second_order(spec)
    si = rules.canonical_shift(recipe.shifts, rules.period(spec_i))
    sj = rules.canonical_shift(recipe.shifts, rules.period(spec_j))
    out = []
    for a, b, coef in zip(si, sj, 0.5 * recipe.coeffs):
      if a != 0 and b != 0:
        out.append((r, c, np.full(len(r), a), np.full(len(r), b), np.full(len(r), coef)))
        continue
      if a == 0 and b == 0:  # the unshifted circuit
        zeros, coefs = np.zeros(len(r), np.int64), np.full(len(r), coef)
        self.hess.extend([(r, c, zeros, coefs), (c, r, zeros, coefs)])
        continue
      for i, j in zip(r.tolist(), c.tolist()):  # degenerate: a single-argument point
        k, shift = (j, b) if a == 0 else (i, a)
        for pid, cc in self.singles.add(k, rules.Recipe(np.array([shift]), np.array([coef])),
                                        self.periods[k]):
          self.hess.extend([(i, j, pid, cc), (j, i, pid, cc)])
    return out

  def add_products(self, rows, cols, off_diagonal_shifts) -> None:
    """The off-diagonal entries ``(rows, cols)`` under the product of first-order rules.

    Its points shift two arguments by non-zero amounts, so they never coincide with
    another entry's points: no merging, and they are generated vectorized, one block
    per pair of rule sizes.
    """
    first = {}
    for k in np.unique(np.concatenate([rows, cols])).tolist():
      rule = self.first_rule(k, off_diagonal_shifts, "off_diagonal_shifts")
      first[k] = rules.Recipe(rules.canonical_shift(rule.shifts, self.periods[k]), rule.coeffs)
    size = np.array([len(first[k].shifts) if k in first else 0 for k in range(self.n)])
    for si in np.unique(size[rows]) if len(rows) else []:
      for sj in np.unique(size[cols]):
        sel = (size[rows] == si) & (size[cols] == sj)
        if sel.any():
          self.add_pairs(*_product_points(rows[sel], cols[sel], first))

  def add_pairs(self, r, c, shift_r, shift_c, coef) -> None:
    """A block of two-argument points (``shift_r`` on ``r``, ``shift_c`` on ``c``) and
    their Hessian terms ``coef``, in both triangles."""
    pid = 1 + len(self.singles.args) + self.n_pair_points + np.arange(len(coef))
    self.n_pair_points += len(coef)
    self.pair_blocks.append((np.stack([r, c], 1), np.stack([shift_r, shift_c], 1)))
    self.hess.extend([(r, c, pid, coef), (c, r, pid, coef)])

  def plan(self, need_value: bool) -> ShiftPlan:
    """The `ShiftPlan`: point 0 (unshifted), the single points, the pair points, and the
    coefficient arrays; point 0 is dropped if nothing uses it."""
    singles = self.singles
    idx = [np.zeros((1, 2), np.int32),
           np.stack([np.asarray(singles.args, np.int32),
                     np.zeros(len(singles.args), np.int32)], 1).reshape(-1, 2)]
    sh = [np.zeros((1, 2)),
          np.stack([np.asarray(singles.shifts), np.zeros(len(singles.shifts))],
                   1).reshape(-1, 2)]
    for i, s in self.pair_blocks:
      idx.append(i.astype(np.int32))
      sh.append(s)
    point_index = np.concatenate(idx)
    point_shift = np.concatenate(sh)
    g_arg, g_pt, g_coef = _columns(self.grad, 3)
    h_row, h_col, h_pt, h_coef = _columns(self.hess, 4)
    used0 = need_value or np.any(g_pt == 0) or np.any(h_pt == 0)
    if not used0:
      point_index, point_shift = point_index[1:], point_shift[1:]
      g_pt, h_pt = g_pt - 1, h_pt - 1
    return ShiftPlan(
        n_params=self.n, point_index=point_index, point_shift=point_shift,
        has_unshifted=bool(used0),
        grad_arg=g_arg.astype(np.int32), grad_point=g_pt.astype(np.int32),
        grad_coef=g_coef.astype(np.float64),
        hess_row=h_row.astype(np.int32), hess_col=h_col.astype(np.int32),
        hess_point=h_pt.astype(np.int32), hess_coef=h_coef.astype(np.float64))


def _product_points(r, c, first: dict[int, rules.Recipe]):
  """The product rule's points for the pairs ``(r, c)`` whose rules in ``first`` have
  equal sizes ``si`` and ``sj``: ``(rows, cols, shift_row, shift_col, coef)``, each of
  length ``m·si·sj``."""
  shift_r = np.stack([first[int(k)].shifts for k in r])  # (m, si)
  shift_c = np.stack([first[int(k)].shifts for k in c])  # (m, sj)
  coef_r = np.stack([first[int(k)].coeffs for k in r])
  coef_c = np.stack([first[int(k)].coeffs for k in c])
  (m, si), sj = shift_r.shape, shift_c.shape[1]
  sr = np.broadcast_to(shift_r[:, :, None], (m, si, sj)).reshape(-1)
  sc = np.broadcast_to(shift_c[:, None, :], (m, si, sj)).reshape(-1)
  coef = (coef_r[:, :, None] * coef_c[:, None, :]).reshape(-1)
  return np.repeat(r, si * sj), np.repeat(c, si * sj), sr, sc, coef


@functools.lru_cache(maxsize=64)
def _build_cached(spectra, mask_bytes, mask_shape, need_value, grad_args, diagonal_shifts,
                  off_diagonal_shifts, shared_diagonal, off_diagonal_rule) -> ShiftPlan:
  """`build_plan`, on hashable arguments: gradient and diagonal points first (merged),
  then the off-diagonal pairs, under the diagonal rule where asked and possible, else the
  product rule."""
  mask = np.frombuffer(mask_bytes, dtype=bool).reshape(mask_shape)
  builder = _PlanBuilder(spectra)
  builder.add_gradient(grad_args, diagonal_shifts)
  builder.add_diagonal(np.nonzero(np.diag(mask))[0], diagonal_shifts, shared_diagonal)
  rows, cols = np.nonzero(np.triu(mask, 1))
  if off_diagonal_rule == "diagonal":
    keep = builder.add_by_direction(rows, cols)
    rows, cols = rows[keep], cols[keep]
  builder.add_products(rows, cols, off_diagonal_shifts)
  return builder.plan(need_value)
