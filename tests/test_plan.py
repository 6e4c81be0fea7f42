"""Tests for `qhess.shift.plan`: circuit counts, merging, exactness and O(T) storage.

A plan is checked by *executing* it on a random multivariate trigonometric polynomial
with the plan's spectra (each argument's frequencies ``l * w_k``, ``|l| <= R_k``):
contracting the plan's coefficients with the polynomial's values at the plan's points
must give its gradient and Hessian exactly, written in closed form.
"""

import itertools

import numpy as np
import pytest

from qhess.shift import rules as rules
from qhess.circuits.catalogue import Spectrum
from qhess.shift.plan import build_plan
from qhess.derivatives import options as _options

ONE = Spectrum(1.0, 1)  # RX, RY, IsingXX, ...
CONTROLLED = Spectrum(0.5, 2)  # CRX, CRY, CRZ


class MultiTrigPoly:
  """``sum_t c_t cos(ω_t · θ + φ_t)`` with every frequency vector ``ω_t`` allowed by the
  spectra (``ω_t[k] = l * w_k``, ``-R_k <= l <= R_k``), or a random subset of them."""

  def __init__(self, rng: np.random.Generator, spectra, max_terms: int = 200):
    levels = [range(-s.count, s.count + 1) for s in spectra]
    grid = np.array(list(itertools.product(*levels)), dtype=float)  # (n_terms, P)
    if len(grid) > max_terms:
      grid = grid[rng.choice(len(grid), size=max_terms, replace=False)]
    self.omega = grid * np.array([s.base for s in spectra])
    self.c = rng.normal(size=len(grid))
    self.phi = rng.uniform(0, 2 * np.pi, size=len(grid))

  def value(self, theta):  # theta: (..., P)
    return np.cos(theta @ self.omega.T + self.phi) @ self.c

  def grad(self, theta):  # (P,)
    return -(self.c * np.sin(self.omega @ theta + self.phi)) @ self.omega

  def hess(self, theta):  # (P, P)
    w = self.c * np.cos(self.omega @ theta + self.phi)
    return -np.einsum("t,ti,tj->ij", w, self.omega, self.omega)


def _points(plan, theta0):
  """The plan's shifted argument vectors, dense ``(T, P)``."""
  points = np.tile(theta0, (plan.n_points, 1))
  rows = np.broadcast_to(np.arange(plan.n_points)[:, None], plan.point_index.shape)
  np.add.at(points, (rows, plan.point_index), plan.point_shift)
  return points


def _execute(plan, fn, theta0):
  """Value (if planned), gradient and Hessian of ``fn`` at ``theta0`` from the plan."""
  y = fn(_points(plan, theta0))  # (T,)
  p = plan.n_params
  grad = np.zeros(p)
  np.add.at(grad, plan.grad_arg, plan.grad_coef * y[plan.grad_point])
  hess = np.zeros((p, p))
  np.add.at(hess, (plan.hess_row, plan.hess_col), plan.hess_coef * y[plan.hess_point])
  value = y[0] if plan.has_unshifted else None
  return value, grad, hess


def _single_frequency_count(p: int) -> int:
  return 1 + p + 2 * p * (p - 1)


def _canonical_points(plan, spectra):
  """Each point as a sorted tuple of (argument, shift reduced modulo its period)."""
  out = []
  for idx, shift in zip(plan.point_index, plan.point_shift):
    entries = []
    for i, s in zip(idx, shift):
      s = float(rules.canonical_shift(s, rules.period(spectra[i])))
      if s != 0:
        entries.append((int(i), round(s, 9)))
    out.append(tuple(sorted(entries)))
  return out


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("p", [1, 2, 3, 5, 8])
def test_count_default_single_frequency(p):
  plan = build_plan([ONE] * p, np.ones((p, p), bool))
  assert plan.n_points == _single_frequency_count(p)
  assert plan.has_unshifted


def test_count_rx_cry_example_is_13():
  # RX then CRY gives 13 circuits, as PennyLane's param_shift_hessian (docs/guide/pennylane.md).
  plan = build_plan([ONE, CONTROLLED], np.ones((2, 2), bool))
  assert plan.n_points == 13


@pytest.mark.parametrize("p", [1, 2, 4, 6])
def test_count_with_gradient_shared_diagonal(p):
  plan = build_plan([ONE] * p, np.ones((p, p), bool), need_value=True,
                    grad_args=range(p), shared_diagonal=True)
  assert plan.n_points == 1 + 2 * p + 2 * p * (p - 1)


@pytest.mark.parametrize("p", [1, 3, 6])
def test_count_diagonal_only(p):
  plan = build_plan([ONE] * p, np.eye(p, dtype=bool))
  assert plan.n_points == 1 + p
  np.testing.assert_array_equal(plan.hess_row, plan.hess_col)


def test_count_off_diagonal_only_has_no_unshifted_point():
  mask = np.array([[False, True], [True, False]])
  plan = build_plan([ONE, ONE], mask)
  assert plan.n_points == 4
  assert not plan.has_unshifted
  plan = build_plan([ONE, ONE], mask, need_value=True)
  assert plan.n_points == 5
  assert plan.has_unshifted


def test_count_empty_mask():
  plan = build_plan([ONE] * 3, np.zeros((3, 3), bool))
  assert plan.n_points == 0
  assert plan.hess_coef.shape == (0,)
  plan = build_plan([ONE] * 3, np.zeros((3, 3), bool), need_value=True)
  assert plan.n_points == 1


def test_count_no_params():
  plan = build_plan([], np.zeros((0, 0), bool), need_value=True)
  assert plan.n_points == 1 and plan.n_params == 0


@pytest.mark.parametrize("p", [1, 4])
def test_gate_argnum_int_selects_one_diagonal_entry(p):
  mask = _options._mask(p - 1, p)
  expected = np.zeros((p, p), bool)
  expected[p - 1, p - 1] = True
  np.testing.assert_array_equal(mask, expected)
  np.testing.assert_array_equal(_options._mask(-1, p), expected)
  assert build_plan([ONE] * p, mask).n_points == 2


def test_gate_argnum_sequence_selects_all_pairs():
  mask = _options._mask([0, 2], 4)
  expected = np.zeros((4, 4), bool)
  expected[np.ix_([0, 2], [0, 2])] = True
  np.testing.assert_array_equal(mask, expected)
  np.testing.assert_array_equal(_options._mask((2, -4), 4), expected)
  assert build_plan([ONE] * 4, mask).n_points == _single_frequency_count(2)
  # A one-element sequence is the same as the int.
  np.testing.assert_array_equal(_options._mask([1], 4), _options._mask(1, 4))


def test_gate_argnum_none_and_mask():
  np.testing.assert_array_equal(_options._mask(None, 3), np.ones((3, 3), bool))
  mask = np.array([[True, False, True], [False, False, False], [True, False, False]])
  got = _options._mask(mask, 3)
  np.testing.assert_array_equal(got, mask)
  assert got is not mask
  # (0,0) diagonal: 1 + 1; off-diagonal (0,2): 4 points.
  assert build_plan([ONE] * 3, got).n_points == 1 + 1 + 4


# -------------------------------------------------------------------------- merging


def test_points_are_distinct_modulo_the_period():
  spectra = [ONE, CONTROLLED, Spectrum(1.3, 3), ONE]
  p = len(spectra)
  for kwargs in [{}, dict(need_value=True, grad_args=range(p), shared_diagonal=True)]:
    plan = build_plan(spectra, np.ones((p, p), bool), **kwargs)
    canon = _canonical_points(plan, spectra)
    assert len(set(canon)) == len(canon)
    if plan.has_unshifted:
      assert canon[0] == () and canon.count(()) == 1
    # Every point differs from θ in at most two arguments, and shifts are canonical.
    for idx, shift in zip(plan.point_index, plan.point_shift):
      for i, s in zip(idx, shift):
        per = rules.period(spectra[i])
        assert -per / 2 < s <= per / 2 + 1e-12


def test_merging_modulo_period_custom_diagonal_shifts():
  # diagonal_shifts (π/2,) applied twice: shifts {π, 0, 0, -π}; π ≡ -π modulo 2π and
  # 0 is the unshifted circuit: two circuits in all.
  plan = build_plan([ONE], np.ones((1, 1), bool), diagonal_shifts=((np.pi / 2,),))
  assert plan.n_points == 2
  np.testing.assert_allclose(plan.point_shift[:, 0], [0.0, np.pi], rtol=0, atol=1e-15)
  # Coefficients of coinciding points are kept (and summed by the contraction):
  # f'' = (f(π) + f(-π))/4 - 2 f(0)/4 = (f(π) - f(0))/2.
  hess = np.zeros(2)
  np.add.at(hess, plan.hess_point, plan.hess_coef)
  np.testing.assert_allclose(hess, [-0.5, 0.5], rtol=0, atol=1e-14)


def test_merging_shifts_beyond_one_period():
  # Off-diagonal shifts 2π + 0.3 and 0.3 are the same circuits.
  mask = np.ones((2, 2), bool)
  a = build_plan([ONE, ONE], mask, off_diagonal_shifts=((0.3,), (0.7,)))
  b = build_plan([ONE, ONE], mask, off_diagonal_shifts=((2 * np.pi + 0.3,), (0.7,)))
  assert a.n_points == b.n_points == _single_frequency_count(2)
  np.testing.assert_allclose(a.point_shift, b.point_shift, rtol=0, atol=1e-12)
  np.testing.assert_allclose(a.hess_coef, b.hess_coef, rtol=0, atol=1e-12)


def test_gradient_points_shared_with_diagonal():
  plan = build_plan([ONE, CONTROLLED], np.ones((2, 2), bool), need_value=True,
                    grad_args=(0, 1), shared_diagonal=True)
  diag_points = set(plan.hess_point[plan.hess_row == plan.hess_col].tolist())
  assert set(plan.grad_point.tolist()) <= diag_points | {0}
  # 1 + (2 for RX) + (4 for CRY) + 2·4 off-diagonal.
  assert plan.n_points == 1 + 2 + 4 + 8


# ------------------------------------------------------------------------ exactness

SPECTRA_CASES = {
    "single": [ONE, ONE, ONE],
    "controlled": [CONTROLLED, ONE, CONTROLLED],
    "mixed": [Spectrum(1.3, 3), ONE, CONTROLLED, ONE],
}


@pytest.mark.parametrize("mode", ["hessian", "shared", "gradient-separate"])
@pytest.mark.parametrize("case", list(SPECTRA_CASES))
def test_plan_exact_on_trig_polynomials(rng, case, mode):
  spectra = SPECTRA_CASES[case]
  p = len(spectra)
  kwargs = {
      "hessian": {},
      "shared": dict(need_value=True, grad_args=range(p), shared_diagonal=True),
      "gradient-separate": dict(grad_args=range(p)),
  }[mode]
  plan = build_plan(spectra, np.ones((p, p), bool), **kwargs)
  for _ in range(2):
    poly = MultiTrigPoly(rng, spectra)
    theta0 = rng.uniform(-np.pi, np.pi, size=p)
    value, grad, hess = _execute(plan, poly.value, theta0)
    np.testing.assert_allclose(hess, poly.hess(theta0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-12)
    if mode != "hessian":
      np.testing.assert_allclose(grad, poly.grad(theta0), rtol=0, atol=1e-10)
    if kwargs.get("need_value"):
      np.testing.assert_allclose(value, poly.value(theta0), rtol=0, atol=1e-12)


def test_plan_exact_with_mask_and_partial_gradient(rng):
  spectra = [ONE, CONTROLLED, ONE, Spectrum(1.3, 2)]
  mask = np.zeros((4, 4), bool)
  mask[np.ix_([1, 3], [1, 3])] = True
  mask[0, 0] = True
  plan = build_plan(spectra, mask, grad_args=(1, 3), shared_diagonal=True)
  poly = MultiTrigPoly(rng, spectra)
  theta0 = rng.uniform(-np.pi, np.pi, size=4)
  _, grad, hess = _execute(plan, poly.value, theta0)
  np.testing.assert_allclose(hess, np.where(mask, poly.hess(theta0), 0.0), rtol=0, atol=1e-10)
  np.testing.assert_allclose(grad, np.where([False, True, False, True],
                                            poly.grad(theta0), 0.0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shared", [False, True])
def test_plan_exact_with_custom_shifts(rng, shared):
  spectra = [ONE, CONTROLLED, Spectrum(1.3, 3)]
  diagonal = ((0.25,), (0.1, 0.2), (0.3, 0.9, 1.7))
  off_diagonal = ((0.5,), (0.2, 0.4), (0.2, 0.6, 1.1))
  kwargs = dict(need_value=True, grad_args=(0, 1, 2), shared_diagonal=True) if shared else {}
  plan = build_plan(spectra, np.ones((3, 3), bool), diagonal_shifts=diagonal,
                    off_diagonal_shifts=off_diagonal, **kwargs)
  poly = MultiTrigPoly(rng, spectra)
  theta0 = rng.uniform(-np.pi, np.pi, size=3)
  _, grad, hess = _execute(plan, poly.value, theta0)
  # Custom-shift systems are less well conditioned than the default ones.
  np.testing.assert_allclose(hess, poly.hess(theta0), rtol=0, atol=1e-8)
  if shared:
    np.testing.assert_allclose(grad, poly.grad(theta0), rtol=0, atol=1e-9)


def test_plan_is_cached():
  mask = np.ones((3, 3), bool)
  assert build_plan([ONE] * 3, mask) is build_plan([ONE] * 3, mask.copy())
  assert build_plan([ONE] * 3, mask) is not build_plan([ONE] * 3, mask, need_value=True)


# ------------------------------------------------------------------------------ size


@pytest.mark.parametrize("p", [7, 200])
def test_plan_storage_is_linear_in_points(p):
  # Coordinate storage, O(T): never a dense (P, P, T) tensor. (Built in well under a
  # second for P = 200; not asserted as a time.)
  plan = build_plan([ONE] * p, np.ones((p, p), bool), need_value=True,
                    grad_args=range(p), shared_diagonal=True)
  t = plan.n_points
  assert t == 1 + 2 * p + 2 * p * (p - 1)
  assert plan.point_index.shape == plan.point_shift.shape == (t, 2)
  assert plan.point_index.dtype == np.int32
  for arr in (plan.hess_row, plan.hess_col, plan.hess_point, plan.hess_coef):
    assert arr.shape == plan.hess_coef.shape
    assert arr.shape[0] <= 4 * t
  for arr in (plan.grad_arg, plan.grad_point, plan.grad_coef):
    assert arr.shape == plan.grad_coef.shape
    assert arr.shape[0] <= 4 * t
  # Every point is used by some coefficient.
  used = np.zeros(t, bool)
  used[plan.hess_point] = True
  used[plan.grad_point] = True
  assert used.all()
