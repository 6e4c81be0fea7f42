"""The chain rule as data: post-processing that no longer needs the circuit.

`LocalChain` maps the raw values ``Y`` ``(T, n_raw)`` of a plan's points to the
derivatives of the circuit's outputs with respect to the user's inputs, from arrays only:
the plan's coefficients (R0, ∂R, ∂²R at θ, `_contract`), the measurement specs (the
non-linear part ``φ``, e.g. variances), and the classical processing θ = g(x) evaluated
at the inputs: its Jacobian ``J = ∂θ/∂x`` and its non-zero second derivatives (and those
of observable coefficients held as data). The composition

    F̃(δ) = φ(R0 + ∂R·d + ½ dᵀ∂²R d, c̃(δ)),   d = J δ + ½ δᵀ∇²θ δ

has the gradient and Hessian of ``F = φ ∘ R ∘ g`` at ``δ = 0`` (the inputs), so
differentiating it gives what `qhess.hessian` gives, without recording the circuit again.
Being data (NumPy arrays, measurement specs, a pytree structure), it can be saved
(``qhess.save_experiments``) and used in another process.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from qhess.circuits.tape import MeasurementSpec, Tape
from qhess.shift.plan import ShiftPlan
from qhess.derivatives.dependence import _check_same_structure
from qhess.derivatives.evaluate import _contract


@dataclasses.dataclass(frozen=True, eq=False)
class LocalChain:
  """``post(Y)``: the derivatives of a circuit's outputs from its points' raw values.

  Attributes:
    plan: the `ShiftPlan` whose coefficients contract ``Y`` into R0, ∂R, ∂²R.
    measurements: the tape's `MeasurementSpec` s (how raw values become outputs).
    returns_tuple: whether the circuit returns a tuple of outputs.
    coeffs: ``{const index: (c,) array}``: coefficient vectors held as data, at x.
    jac: ``(P, n)`` ∂θ/∂x, or ``None``: the identity (derivatives with respect to the
      gate arguments themselves, ``n = P``).
    curv_rows: int ``(Q,)``: the gate arguments with a non-zero second derivative.
    curv: ``(Q, n, n)``: their second derivatives ∂²θ/∂x².
    coeff_jac: ``{const index: (c, n)}``: ∂c/∂x of the coefficients that depend on x.
    coeff_curv: ``{const index: (c, n, n)}``: their second derivatives.
    order: 1 (gradient, the layout of ``jax.jacobian``) or 2 (``jax.hessian``).
    in_shapes: the shapes of the differentiated input leaves (``n`` is their total size).
    out_tree: the result's pytree structure: leaves in the order output, input leaf
      (, input leaf), as ``jax.jacobian`` / ``jax.hessian`` lay them out.
    out_dtypes: the dtype of each result leaf.
    dtype: the dtype of the computation (the tape's).
  """

  plan: ShiftPlan
  measurements: tuple[MeasurementSpec, ...]
  returns_tuple: bool
  coeffs: dict
  jac: np.ndarray | None
  curv_rows: np.ndarray
  curv: np.ndarray
  coeff_jac: dict
  coeff_curv: dict
  order: int
  in_shapes: tuple[tuple[int, ...], ...]
  out_tree: Any
  out_dtypes: tuple
  dtype: Any

  @property
  def n_inputs(self) -> int:
    """``n``: the number of differentiated input elements."""
    return sum(math.prod(s) for s in self.in_shapes)

  @property
  def output_shapes(self) -> tuple[tuple[int, ...], ...]:
    return tuple(m.shape for m in self.measurements)

  def __call__(self, y: jax.Array):
    """The derivatives (``order`` 1 or 2) in ``out_tree``'s layout from ``Y`` ``(T, n_raw)``."""
    value, grad, hess = _contract(self.plan, y)
    model = self._model(value, grad, hess)
    x0 = jnp.zeros(self.n_inputs, y.dtype)
    deriv = jax.hessian(model)(x0) if self.order == 2 else jax.jacfwd(model)(x0)
    return self._unflatten(deriv)

  def _model(self, value, grad, hess) -> Callable:
    """δ ``(n,)`` -> the flat outputs of the local model F̃ (see the module doc)."""
    tape = Tape((), self.measurements, jnp.zeros((0,), self.dtype), (), 0, self.returns_tuple)

    def model(x):
      d = x if self.jac is None else jnp.asarray(self.jac, x.dtype) @ x
      if len(self.curv_rows):
        bend = jnp.einsum("qij,i,j->q", jnp.asarray(self.curv, x.dtype), x, x)
        d = d.at[self.curv_rows].add(0.5 * bend)
      raw = value + grad @ d + 0.5 * jnp.einsum("rij,i,j->r", hess, d, d)
      consts = {}
      for k, c in self.coeffs.items():
        c = jnp.asarray(c, x.dtype)
        if k in self.coeff_jac:
          c = (c + jnp.asarray(self.coeff_jac[k], x.dtype) @ x + 0.5 * jnp.einsum(
              "cij,i,j->c", jnp.asarray(self.coeff_curv[k], x.dtype), x, x))
        consts[k] = c
      outs = tape.finalize(raw, consts)
      outs = outs if self.returns_tuple else (outs,)
      return jnp.concatenate([jnp.reshape(o, (-1,)) for o in outs])

    return model

  def _unflatten(self, deriv):
    """The flat derivatives ``(N_out, n[, n])`` as the result pytree."""
    bounds = np.cumsum([0] + [math.prod(s) for s in self.in_shapes])
    pieces = [(slice(int(a), int(b)), s)
              for a, b, s in zip(bounds[:-1], bounds[1:], self.in_shapes)]
    leaves, start = [], 0
    for shape in self.output_shapes:
      size = math.prod(shape)
      block = deriv[start:start + size]
      start += size
      if self.order == 1:
        leaves += [block[:, si].reshape(shape + s) for si, s in pieces]
      else:
        leaves += [block[:, si][:, :, sj].reshape(shape + s + t)
                   for si, s in pieces for sj, t in pieces]
    leaves = [leaf.astype(dt) for leaf, dt in zip(leaves, self.out_dtypes)]
    return jax.tree_util.tree_unflatten(self.out_tree, leaves)


def gate_chain(tape: Tape, plan: ShiftPlan, order: int = 2) -> LocalChain:
  """The `LocalChain` of derivatives with respect to the tape's gate arguments
  (``hybrid=False``): one ``(*out_shape, P[, P])`` array per measurement."""
  p, dtype = tape.num_params, np.dtype(tape.params.dtype)
  k = len(tape.measurements)
  tree = jax.tree_util.tree_structure(tuple(range(k)) if tape.returns_tuple else 0)
  return LocalChain(
      plan, tape.measurements, tape.returns_tuple, _coefficients(tape), None,
      np.zeros(0, np.int64), np.zeros((0, p, p), dtype), {}, {}, order, ((p,),), tree,
      (dtype,) * k, dtype)


def processing_derivatives(circuit, tape: Tape, argnums, args, kwargs, curved):
  """``(jacobian, hessian)`` pytrees of the classical processing x -> (θ, coefficient
  vectors held as data) at ``args`` with respect to ``args[argnums]`` (an int or a
  tuple, as `jax.jacfwd` takes it), by recording the circuit; the Hessian of θ only at
  the indices ``curved`` (int ``(Q,)``: those that depend non-linearly on x; the others
  have none). Traceable (`concrete_plan` evaluates it under `jax.jit`)."""
  coeff_index = sorted(_coefficients_index(tape))

  def processing(*a):
    t = circuit.tape(*a, **kwargs)
    _check_same_structure(tape.structure, t)
    return t.params, [t.consts[k] for k in coeff_index]

  def bent(*a):
    params, coeffs = processing(*a)
    return params[curved], coeffs

  return (jax.jacfwd(processing, argnums=argnums)(*args),
          jax.hessian(bent, argnums=argnums)(*args))


def hybrid_chain(tape: Tape, plan: ShiftPlan, in_shapes, derivs, curved, order: int,
                 out_shape) -> LocalChain:
  """The `LocalChain` of derivatives with respect to the inputs (``hybrid=True``).

  Args:
    tape: the concrete tape.
    plan: its plan.
    in_shapes: the shapes of the differentiated input leaves, in pytree order.
    derivs: `processing_derivatives` at the inputs (concrete).
    curved: its ``curved`` indices of θ.
    order: 1 or 2.
    out_shape: the pytree of ``jax.ShapeDtypeStruct`` of the result (`jax.eval_shape` of
      the traced chain rule): its structure and dtypes are kept.
  """
  dtype = np.dtype(tape.params.dtype)
  coeff_index = sorted(_coefficients_index(tape))
  sizes = [math.prod(s) for s in in_shapes]
  jac_theta = _flat_derivative(derivs[0][0], tape.num_params, sizes, 1, dtype)
  hess_theta = _flat_derivative(derivs[1][0], len(curved), sizes, 2, dtype)
  jac_c, hess_c = ([_flat_derivative(t, np.size(tape.consts[i]), sizes, k, dtype)
                    for t, i in zip(tree[1], coeff_index)]
                   for k, tree in ((1, derivs[0]), (2, derivs[1])))
  nonzero = np.any(hess_theta != 0, axis=(1, 2))
  coeff_jac, coeff_curv = {}, {}
  for j, k in enumerate(coeff_index):
    if np.any(jac_c[j] != 0) or np.any(hess_c[j] != 0):
      coeff_jac[k], coeff_curv[k] = jac_c[j], hess_c[j]
  leaves, tree = jax.tree_util.tree_flatten(out_shape)
  return LocalChain(
      plan, tape.measurements, tape.returns_tuple, _coefficients(tape), jac_theta,
      np.asarray(curved, np.int64)[nonzero], hess_theta[nonzero], coeff_jac, coeff_curv,
      order, tuple(in_shapes), tree,
      tuple(np.dtype(leaf.dtype) for leaf in leaves), dtype)


def _flat_derivative(tree, rows: int, sizes: list[int], order: int, dtype) -> np.ndarray:
  """One array's derivative pytree from ``jax.jacfwd`` (``order`` 1) or ``jax.hessian``
  (2) with respect to inputs of ``sizes`` as a flat array ``(rows, n[, n])``: the leaves
  are in input-leaf order (pairs ``(i, j)`` row-major for the Hessian)."""
  leaves = [np.asarray(a, dtype) for a in jax.tree_util.tree_leaves(tree)]
  n, m = sum(sizes), len(sizes)
  if not m:
    return np.zeros((rows,) + (n,) * order, dtype)
  if order == 1:
    return np.concatenate([a.reshape(rows, s) for a, s in zip(leaves, sizes)], axis=1)
  return np.concatenate([
      np.concatenate([leaves[i * m + j].reshape(rows, sizes[i], sizes[j])
                      for j in range(m)], axis=2) for i in range(m)], axis=1)


def _coefficients_index(tape: Tape) -> set:
  """The indices in ``tape.consts`` of its coefficient vectors held as data."""
  return {m.coeffs for m in tape.measurements if m.coeffs is not None}


def _coefficients(tape: Tape) -> dict:
  """``{const index: array}``: the tape's coefficient vectors held as data."""
  return {k: np.asarray(tape.consts[k]) for k in sorted(_coefficients_index(tape))}
