"""Tests for `qhess.shift.rules`: every recipe is exact on trigonometric polynomials.

A gate argument with spectrum ``(base w, count R)`` makes expectation values of the form
``a0 + sum_l a_l cos(l w θ) + b_l sin(l w θ)`` (l = 1..R). A recipe
``(shifts, coeffs)`` must reproduce the d-th derivative at θ0 as
``sum(coeffs * f(θ0 + shifts))`` for *every* such polynomial, so each test draws random
coefficients and compares with the derivative written in closed form.
"""

import numpy as np
import pytest

from qhess.shift import rules as rules
from qhess.circuits.catalogue import Spectrum

SPECTRA = [Spectrum(w, r) for w in (1.0, 0.5, 1.3) for r in (1, 2, 3)]
SPECTRUM_IDS = [f"w{s.base}-R{s.count}" for s in SPECTRA]


class TrigPoly:
  """``a0 + sum_l a_l cos(l w θ) + b_l sin(l w θ)`` and its derivatives, vectorized."""

  def __init__(self, rng: np.random.Generator, spectrum: Spectrum):
    self.w, self.r = spectrum
    self.a0 = rng.normal()
    self.a = rng.normal(size=self.r)
    self.b = rng.normal(size=self.r)

  def derivative(self, theta, order: int = 0) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)[..., None]
    freq = np.arange(1, self.r + 1) * self.w  # (R,)
    # d^n/dθ^n of cos and sin: rotate the phase by n·π/2 and scale by freq^n.
    phase = freq * theta + order * np.pi / 2
    terms = freq**order * (self.a * np.cos(phase) + self.b * np.sin(phase))
    return np.sum(terms, axis=-1) + (self.a0 if order == 0 else 0.0)


def _apply(recipe: rules.Recipe, poly: TrigPoly, theta0: float) -> float:
  return float(np.sum(recipe.coeffs * poly.derivative(theta0 + recipe.shifts)))


def _custom_shifts(rng: np.random.Generator, spectrum: Spectrum) -> np.ndarray:
  """R well-separated positive shifts inside ``(0, period/2)`` (a regular system)."""
  per = rules.period(spectrum)
  grid = (np.arange(1, spectrum.count + 1) - 0.5) / spectrum.count * per / 2
  return grid + rng.uniform(-0.15, 0.15, size=spectrum.count) * per / (4 * spectrum.count)


THETAS = (0.0, 0.37, -2.1, 5.5)


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_first_order_exact(rng, spectrum):
  recipe = rules.first_order(spectrum)
  assert recipe.shifts.shape == recipe.coeffs.shape == (2 * spectrum.count,)
  assert not np.any(recipe.shifts == 0)
  for _ in range(3):
    poly = TrigPoly(rng, spectrum)
    for theta0 in THETAS:
      got, expected = _apply(recipe, poly, theta0), poly.derivative(theta0, 1)
      np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_first_order_single_frequency_is_the_pi_over_two_rule():
  recipe = rules.first_order(Spectrum(1.0, 1))
  np.testing.assert_allclose(recipe.shifts, [np.pi / 2, -np.pi / 2], rtol=0, atol=1e-15)
  np.testing.assert_allclose(recipe.coeffs, [0.5, -0.5], rtol=0, atol=1e-15)


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_second_order_exact(rng, spectrum):
  recipe = rules.second_order(spectrum)
  # The unshifted point and 2R - 1 shifts (Wierichs et al., Eq. (34)).
  assert recipe.shifts.shape == recipe.coeffs.shape == (2 * spectrum.count,)
  assert recipe.shifts[0] == 0
  for _ in range(3):
    poly = TrigPoly(rng, spectrum)
    for theta0 in THETAS:
      got, expected = _apply(recipe, poly, theta0), poly.derivative(theta0, 2)
      np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_second_order_single_frequency_is_the_pi_rule():
  # f'' = (f(θ+π) - f(θ)) / 2 for one frequency (Wierichs et al. 2022).
  recipe = rules.second_order(Spectrum(1.0, 1))
  np.testing.assert_allclose(recipe.shifts, [0.0, np.pi], rtol=0, atol=1e-15)
  np.testing.assert_allclose(recipe.coeffs, [-0.5, 0.5], rtol=0, atol=1e-15)


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_first_order_from_shifts_exact(rng, spectrum):
  for _ in range(3):
    shifts = _custom_shifts(rng, spectrum)
    recipe = rules.first_order_from_shifts(shifts, spectrum)
    np.testing.assert_array_equal(recipe.shifts, np.concatenate([shifts, -shifts]))
    poly = TrigPoly(rng, spectrum)
    for theta0 in THETAS:
      got, expected = _apply(recipe, poly, theta0), poly.derivative(theta0, 1)
      np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_first_order_from_default_shifts_matches_first_order(spectrum):
  default = rules.first_order(spectrum)
  got = rules.first_order_from_shifts(default.shifts[:spectrum.count], spectrum)
  np.testing.assert_allclose(got.shifts, default.shifts, rtol=0, atol=1e-14)
  np.testing.assert_allclose(got.coeffs, default.coeffs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("custom", [False, True], ids=["default", "custom"])
@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_second_order_shared_exact(rng, spectrum, custom):
  if custom:
    first = rules.first_order_from_shifts(_custom_shifts(rng, spectrum), spectrum)
  else:
    first = rules.first_order(spectrum)
  recipe = rules.second_order_shared(first, spectrum)
  # It uses exactly the unshifted point and the first-order points.
  assert recipe.shifts[0] == 0
  np.testing.assert_array_equal(recipe.shifts[1:], first.shifts)
  for _ in range(3):
    poly = TrigPoly(rng, spectrum)
    for theta0 in THETAS:
      got, expected = _apply(recipe, poly, theta0), poly.derivative(theta0, 2)
      np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_second_order_shared_single_frequency_formula():
  # f'' = (f(θ+π/2) + f(θ-π/2))/2 - f(θ) (Wierichs et al. 2022).
  spectrum = Spectrum(1.0, 1)
  recipe = rules.second_order_shared(rules.first_order(spectrum), spectrum)
  np.testing.assert_allclose(recipe.shifts, [0.0, np.pi / 2, -np.pi / 2], rtol=0, atol=1e-15)
  np.testing.assert_allclose(recipe.coeffs, [-1.0, 0.5, 0.5], rtol=0, atol=1e-14)


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_compose_exact(rng, spectrum):
  first = rules.first_order(spectrum)
  custom = rules.first_order_from_shifts(_custom_shifts(rng, spectrum), spectrum)
  second = rules.second_order(spectrum)
  cases = [  # (recipe, derivative order)
      (rules.compose(first, first), 2),
      (rules.compose(custom, custom), 2),
      (rules.compose(custom, first), 2),
      (rules.compose(first, second), 3),
      (rules.compose(second, second), 4),
  ]
  for recipe, order in cases:
    assert recipe.shifts.shape == recipe.coeffs.shape
    poly = TrigPoly(rng, spectrum)
    for theta0 in THETAS:
      got, expected = _apply(recipe, poly, theta0), poly.derivative(theta0, order)
      np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * spectrum.count**order)


def test_compose_layout():
  a = rules.Recipe(np.array([1.0, 2.0]), np.array([3.0, 5.0]))
  b = rules.Recipe(np.array([10.0, 20.0, 30.0]), np.array([1.0, -1.0, 2.0]))
  got = rules.compose(a, b)
  np.testing.assert_array_equal(got.shifts, [11, 21, 31, 12, 22, 32])
  np.testing.assert_array_equal(got.coeffs, [3, -3, 6, 5, -5, 10])


@pytest.mark.parametrize("spectrum", SPECTRA, ids=SPECTRUM_IDS)
def test_recipes_are_periodic(rng, spectrum):
  # Shifting every point by a whole period changes nothing: the basis of merging.
  poly = TrigPoly(rng, spectrum)
  per = rules.period(spectrum)
  recipe = rules.second_order(spectrum)
  moved = rules.Recipe(recipe.shifts + per * rng.integers(-3, 4, size=recipe.shifts.shape),
                       recipe.coeffs)
  np.testing.assert_allclose(_apply(moved, poly, 0.4), poly.derivative(0.4, 2),
                             rtol=0, atol=1e-11)


def test_period():
  assert rules.period(Spectrum(1.0, 1)) == pytest.approx(2 * np.pi, abs=1e-15)
  assert rules.period(Spectrum(0.5, 2)) == pytest.approx(4 * np.pi, abs=1e-15)


@pytest.mark.parametrize("per", [2 * np.pi, 4 * np.pi, 2 * np.pi / 1.3])
def test_canonical_shift(per):
  shifts = np.array([0.0, 0.3, -0.3, per / 2, -per / 2, per, -per, 3 * per + 0.3,
                     -2 * per - 0.3, per / 2 + 0.1, 1e-15, -1e-15, per - 1e-15])
  got = rules.canonical_shift(shifts, per)
  expected = np.array([0.0, 0.3, -0.3, per / 2, per / 2, 0.0, 0.0, 0.3, -0.3,
                       -per / 2 + 0.1, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
  # Range (-per/2, per/2], exact zeros, and agreement modulo the period.
  assert np.all(got > -per / 2) and np.all(got <= per / 2)
  np.testing.assert_array_equal(got[[0, 5, 6, 10, 11, 12]], 0.0)
  np.testing.assert_allclose(np.cos(2 * np.pi / per * (got - shifts)), 1.0, rtol=0, atol=1e-12)


def test_canonical_shift_scalar():
  assert float(rules.canonical_shift(2 * np.pi + 0.25, 2 * np.pi)) == pytest.approx(0.25)
  assert float(rules.canonical_shift(-np.pi, 2 * np.pi)) == pytest.approx(np.pi)


@pytest.mark.parametrize("spectrum,shifts", [
    (Spectrum(1.0, 1), (2 * np.pi,)),  # a whole period: sin(x) = 0
    (Spectrum(1.0, 1), (np.pi,)),  # half a period: sin(x) = 0 too
    (Spectrum(1.0, 1), (4 * np.pi,)),
    (Spectrum(0.5, 2), (1.0, 1.0)),  # two equal shifts
    (Spectrum(0.5, 2), (1.0, 4 * np.pi - 1.0)),  # equal up to sign modulo the period
    (Spectrum(0.5, 2), (1.0, 4 * np.pi + 1.0)),  # equal modulo the period
    (Spectrum(0.5, 2), (4 * np.pi, 1.0)),
    (Spectrum(1.3, 3), (0.4, 0.8, 0.4)),
], ids=["period", "half-period", "two-periods", "repeated", "mirrored", "wrapped",
        "controlled-period", "R3-repeated"])
def test_first_order_from_shifts_singular_raises(spectrum, shifts):
  with pytest.raises(ValueError, match=r"singular"):
    rules.first_order_from_shifts(shifts, spectrum)


@pytest.mark.parametrize("shifts", [(0.0,), (-0.5,), (np.inf,), (np.nan,)])
def test_first_order_from_shifts_non_positive_raises(shifts):
  with pytest.raises(ValueError, match=r"positive and finite"):
    rules.first_order_from_shifts(shifts, Spectrum(1.0, 1))


@pytest.mark.parametrize("spectrum,shifts", [
    (Spectrum(1.0, 1), (0.5, 1.0)),
    (Spectrum(0.5, 2), (0.5,)),
    (Spectrum(1.3, 3), ()),
])
def test_first_order_from_shifts_wrong_count_raises(spectrum, shifts):
  with pytest.raises(ValueError,
                     match=rf"my_arg: expected {spectrum.count} shift\(s\).*got {len(shifts)}"):
    rules.first_order_from_shifts(shifts, spectrum, "my_arg")


def test_second_order_shared_singular_raises():
  # A hand-made "first-order rule" whose shift is a whole period: its points coincide
  # with the unshifted one, so the diagonal cannot be recovered from them.
  spectrum = Spectrum(1.0, 1)
  fake = rules.Recipe(np.array([2 * np.pi, -2 * np.pi]), np.array([1.0, -1.0]))
  with pytest.raises(ValueError, match=r"shared: the shifts .* singular"):
    rules.second_order_shared(fake, spectrum, "shared")
