"""Parameter-shift recipes for one gate argument, in NumPy.

A gate ``exp(-i θ G)`` makes every expectation value a trigonometric polynomial in θ
with frequencies ``l * base`` (``l = 1..count``, see `_ops.Spectrum`). A *recipe* is a
pair of arrays ``(shifts, coeffs)`` with ``f^(d)(0) = sum_k coeffs[k] * f(shifts[k])``,
exact for every such polynomial.

Formulas (Wierichs, Izaac, Wang, Lin, "General parameter-shift rules for quantum
gradients", Quantum 6, 677 (2022), Eqs. (15)-(16) and (32)-(34)), for base frequency
``w`` and ``R = count``:

- first order: shifts ``±x_μ``, ``x_μ = (2μ-1)π / (2Rw)``, coefficients
  ``±w (-1)^(μ-1) / (4R sin²((2μ-1)π/(4R)))``, μ = 1..R;
- second order: shifts ``0`` and ``μπ/(Rw)``, μ = 1..2R-1, coefficients
  ``-w² (2R²+1)/6`` and ``w² (-1)^(μ-1) / (2 sin²(μπ/(2R)))``.

Custom shifts define a first-order rule by solving the R×R system
``sum_μ c_μ · 2 sin(l w x_μ) = l w`` (l = 1..R); the second derivative is then that rule
applied twice (shift sums), and mixed derivatives the product of two first-order rules.

Conditioning of custom shifts: a rule ``f' ≈ Σ c_k f(x_k)`` turns errors δ of the circuit
values (rounding, shot noise) into an error of at most ``‖c‖₁ δ``. Its *amplification*
``κ = ‖c‖₁ / ‖c_default‖₁`` compares that with the default rule (κ = 1/sin(x) for one
frequency and shift x). A second derivative applies a rule twice (diagonal) or multiplies
two (mixed entries), so its error grows like κ²: shifts of 1e-8 give κ² = 1e16 and, in
float64 (ε = 2.2e-16), errors of order 1 — a meaningless Hessian. `check_amplification`
rejects rules whose rounding error alone, κ²ε, exceeds `REJECT_ERROR`, and warns (with
`IllConditionedShiftsWarning`) when κ² exceeds `WARN_AMPLIFICATION`.
"""

from __future__ import annotations

import fractions
import warnings
from typing import NamedTuple, Sequence

import numpy as np

from qhess.circuits.catalogue import Spectrum


class Recipe(NamedTuple):
  """``f^(d)(0) = sum(coeffs * f(shifts))``; both float64 arrays of shape ``(n_terms,)``."""

  shifts: np.ndarray
  coeffs: np.ndarray


class IllConditionedShiftsWarning(UserWarning):
  """Custom shifts whose rule amplifies errors of the circuit values far more than the
  default rule does (see `qhess.hessian`'s ``diagonal_shifts``)."""


# κ²ε above this: a relative error above 1% from rounding alone, before the rounding of
# the circuit simulation itself (which grows with its depth) or any shot noise: reject.
REJECT_ERROR = 1e-2
# κ² above this: four significant digits lost compared with the default shifts, and
# shot-noise standard errors about that many times larger: warn.
WARN_AMPLIFICATION = 1e4


def period(spectrum: Spectrum) -> float:
  """The period ``2π / base`` of a function with this spectrum."""
  return 2 * np.pi / spectrum.base


# π to 64 digits: periods are split from it exactly (`period_parts`).
_PI = fractions.Fraction("3.141592653589793238462643383279502884197169399375105820974944592")


def period_parts(spectrum: Spectrum, dtype) -> tuple[float, float, float]:
  """``2π / base`` as three ``dtype`` numbers whose exact sum is the period to about three
  times ``dtype``'s precision (each part is the rounding error of the ones before)."""
  rest = 2 * _PI / fractions.Fraction(spectrum.base)
  parts = []
  for _ in range(3):
    part = np.dtype(dtype).type(float(rest))
    parts.append(float(part))
    rest -= fractions.Fraction(float(part))
  return tuple(parts)


def reduce_angles(theta, spectra: Sequence[Spectrum | None]):
  """Gate arguments reduced modulo their periods, exactly: ``θ - k·(2π/base)`` with ``k``
  the nearest integer, so that a shifted argument ``θ + s`` keeps the precision of ``s``.

  Shifting a large argument directly rounds the shift to the argument's precision: at
  ``|θ| = 1e9`` in float32 (a spacing of 64) ``θ + π/2`` is meaningless, and in float64
  the error reaches 1e-3 at ``|θ| = 1e15``. The period is held as three parts
  (`period_parts`), each product ``k·part`` is split exactly (Dekker's two-product) and
  the terms are summed in double-word arithmetic (Knuth's two-sum), twice, so the
  residual is the exact remainder of the stored angle to about the dtype's precision.
  Three passes (each removes what the previous, rounded ``k`` left over) make it exact for
  ``|θ| ≲ 4e14`` in float32 and ``≲ 1e31`` in float64, where the three parts of the period
  run out of digits. Arguments within half a period are returned unchanged (``k = 0``);
  arguments without a spectrum (``None``) too.

  Args:
    theta: ``(..., P)`` real array of gate arguments (traced or concrete).
    spectra: ``P`` spectra, one per argument (`_ops.Spectrum`), or ``None``.

  Returns:
    The reduced arguments, same shape and dtype; derivatives pass through unchanged
    (``k`` is locally constant).
  """
  import jax
  import jax.numpy as jnp

  theta = jnp.asarray(theta)
  dtype = np.dtype(theta.dtype)
  periodic = np.array([s is not None for s in spectra], dtype=bool)
  if not periodic.any():
    return theta
  parts = np.array([period_parts(s, dtype) if s is not None else (1.0, 0.0, 0.0)
                    for s in spectra], dtype=dtype).T  # (3, P)
  split = dtype.type(2.0 ** ((np.finfo(dtype).nmant + 2) // 2) + 1)

  def halves(a):  # Veltkamp: a = hi + lo, each with half the mantissa
    c = split * a
    hi = c - (c - a)
    return hi, a - hi

  def two_prod(a, b, b_hi, b_lo):  # a·b = p + e exactly (b split in NumPy)
    p = a * b
    a_hi, a_lo = halves(a)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo

  def two_sum(a, b):  # a + b = s + e exactly
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)

  c = split * parts
  p_hi = c - (c - parts)
  p_lo = parts - p_hi
  hi, lo = theta, jnp.zeros_like(theta)
  for _ in range(3):
    k = jax.lax.stop_gradient(jnp.round(hi / parts[0]))
    k = jnp.where(periodic & jnp.isfinite(k), k, 0)
    p0, e0 = two_prod(k, parts[0], p_hi[0], p_lo[0])
    p1, e1 = two_prod(k, parts[1], p_hi[1], p_lo[1])
    s, err = hi - p0, lo  # exact (Sterbenz): p0 is within a rounding of hi
    for term in (-e0, -p1, -e1, -k * parts[2]):
      s, e = two_sum(s, term)
      err = err + e
    hi, lo = two_sum(s, err)
  return hi + lo


def first_order(spectrum: Spectrum) -> Recipe:
  """The default first-derivative recipe (2R shifts, no unshifted term)."""
  w, r = spectrum
  mu = np.arange(1, r + 1)
  x = (2 * mu - 1) * np.pi / (2 * r)
  c = w * (-1.0) ** (mu - 1) / (4 * r * np.sin(x / 2) ** 2)
  return Recipe(np.concatenate([x / w, -x / w]), np.concatenate([c, -c]))


def second_order(spectrum: Spectrum) -> Recipe:
  """The default second-derivative recipe: the unshifted point and 2R-1 shifts."""
  w, r = spectrum
  mu = np.arange(1, 2 * r)
  x = mu * np.pi / r
  c = w**2 * (-1.0) ** (mu - 1) / (2 * np.sin(x / 2) ** 2)
  c0 = -(w**2) * (2 * r**2 + 1) / 6
  return Recipe(np.concatenate([[0.0], x / w]), np.concatenate([[c0], c]))


def _solve(matrix: np.ndarray, rhs: np.ndarray, what: str, shifts) -> np.ndarray:
  # A shift of 0 or of a whole period makes columns vanish or repeat: refuse such sets
  # rather than return huge, meaningless coefficients. The entries are O(1), so the
  # smallest singular value is compared with max(1, largest) as well: a condition
  # number alone misses a 1×1 system (R = 1), whose condition number is always 1.
  sv = np.linalg.svd(matrix, compute_uv=False)
  if sv[-1] <= 1e-10 * max(sv[0], 1.0):
    raise ValueError(
        f"{what}: the shifts {tuple(float(s) for s in shifts)} make the coefficient "
        "system singular (a shift of 0, a multiple of the period, or two shifts that "
        "coincide up to sign modulo the period); choose other shifts.")
  return np.linalg.solve(matrix, rhs)


def first_order_from_shifts(shifts: Sequence[float], spectrum: Spectrum,
                            what: str = "shifts") -> Recipe:
  """First-derivative recipe on ``±shifts`` for R = ``spectrum.count`` positive shifts.

  Raises:
    ValueError: for the wrong number of shifts, non-positive shifts, or shifts that
      make the system singular.
  """
  w, r = spectrum
  x = np.asarray(shifts, dtype=np.float64).reshape(-1)
  if x.shape != (r,):
    raise ValueError(
        f"{what}: expected {r} shift(s), one per frequency of this gate argument; "
        f"got {len(x)}: {tuple(x.tolist())}.")
  if np.any(x <= 0) or not np.all(np.isfinite(x)):
    raise ValueError(f"{what}: shifts must be positive and finite; got {tuple(x.tolist())}.")
  l = np.arange(1, r + 1)[:, None]
  c = _solve(2 * np.sin(l * w * x[None, :]), (l[:, 0] * w).astype(float), what, x)
  return Recipe(np.concatenate([x, -x]), np.concatenate([c, -c]))


def amplification(first: Recipe, spectrum: Spectrum) -> float:
  """``κ = ‖c‖₁ / ‖c_default‖₁``: error amplification of a first-order rule relative to
  the default rule for ``spectrum`` (1 for the default shifts, ``1/sin(x)`` for one
  frequency and shift ``x``)."""
  return float(np.sum(np.abs(first.coeffs)) / np.sum(np.abs(first_order(spectrum).coeffs)))


def check_amplification(kappa2: float, eps: float, shifts, what: str) -> None:
  """Rejects or warns about a second-order rule amplifying errors by ``kappa2`` (κ²).

  Args:
    kappa2: κ² of the diagonal rule (κ of the first-order rule, squared), or κ_i·κ_j of
      a product rule.
    eps: machine epsilon of the dtype the circuits are evaluated in.
    shifts: the shifts, for the message.
    what: the argument's name, e.g. ``"diagonal_shifts[1]"``.

  Raises:
    ValueError: when ``kappa2 * eps > REJECT_ERROR``.

  Warns:
    IllConditionedShiftsWarning: when ``kappa2 > WARN_AMPLIFICATION``.
  """
  shifts = tuple(float(s) for s in shifts)
  error = kappa2 * eps
  if error > REJECT_ERROR:
    raise ValueError(
        f"{what}: the shifts {shifts} give an ill-conditioned rule: it amplifies errors "
        f"of the circuit values about {kappa2:.2g} times more than the default shifts "
        f"(κ², κ = sum of |coefficients| relative to the default rule's), so rounding "
        f"alone (ε = {eps:.2g}) would leave relative errors of about {error:.2g} in the "
        f"Hessian, above the limit of {REJECT_ERROR:.0e}: the result would be "
        "meaningless. Choose shifts further from 0, from multiples of the half period "
        "and from each other.")
  if kappa2 > WARN_AMPLIFICATION:
    warnings.warn(IllConditionedShiftsWarning(
        f"{what}: the shifts {shifts} amplify errors of the circuit values (rounding, "
        f"shot noise) about {kappa2:.2g} times more than the default shifts (warning "
        f"above {WARN_AMPLIFICATION:.0e}); expect relative errors of about "
        f"{error:.2g} or more in the Hessian."), stacklevel=2)


def second_order_shared(first: Recipe, spectrum: Spectrum, what: str = "shifts") -> Recipe:
  """Second-derivative recipe on the unshifted point and the first-order rule's points.

  With ``2R + 1`` points a degree-R trigonometric polynomial is fixed, so value,
  gradient and second derivative come from one set of circuits; for R = 1 and the
  default shifts this is ``f'' = (f(π/2) + f(-π/2))/2 - f(0)``.
  """
  w, r = spectrum
  x = first.shifts[:r]
  # Unknowns d0 (for f(0)) and d_μ (for f(x_μ) + f(-x_μ)); exact on 1 and cos(l w θ).
  l = np.arange(0, r + 1)[:, None]
  matrix = np.concatenate([np.ones((r + 1, 1)), 2 * np.cos(l * w * x[None, :])], axis=1)
  rhs = -((l[:, 0] * w) ** 2).astype(float)
  d = _solve(matrix, rhs, what, x)
  return Recipe(np.concatenate([[0.0], x, -x]), np.concatenate([d[:1], d[1:], d[1:]]))


def compose(a: Recipe, b: Recipe) -> Recipe:
  """The same-argument recipe of applying ``a`` then ``b`` (shift sums, coefficient products)."""
  shifts = (a.shifts[:, None] + b.shifts[None, :]).reshape(-1)
  coeffs = (a.coeffs[:, None] * b.coeffs[None, :]).reshape(-1)
  return Recipe(shifts, coeffs)


def canonical_shift(shift, per: float):
  """Shift(s) reduced modulo the period into ``(-per/2, per/2]``; near-zero snapped to 0."""
  s = np.mod(np.asarray(shift, dtype=np.float64) + per / 2, per) - per / 2
  s = np.where(np.isclose(s, -per / 2, rtol=0, atol=1e-12 * per), per / 2, s)
  return np.where(np.abs(s) < 1e-12 * per, 0.0, s)
