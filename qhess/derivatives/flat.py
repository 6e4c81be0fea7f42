"""Flat views of derivatives: a value, gradient and Hessian (and their standard errors)
laid out as `jax.grad` and `jax.hessian` (or `qhess.value_grad_and_hessian`) lay them out
for a pytree of parameters, checked and flattened to a vector and a matrix.

`qhess.optimize` runs its linear algebra on these flat views.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def flat_hessian(hess, sizes: list[int], n: int, name: str) -> jax.Array:
  """``hess`` (as `jax.hessian` lays it out for ``params``) as a ``(n, n)`` matrix."""
  leaves = jax.tree_util.tree_leaves(hess)
  n_leaves = len(sizes)
  if len(leaves) != n_leaves**2 or any(
      np.size(leaf) != sizes[i // n_leaves] * sizes[i % n_leaves]
      for i, leaf in enumerate(leaves)):
    raise ValueError(
        f"`{name}` must be laid out as jax.hessian lays it out for `params` ({n_leaves} "
        f"leaf/leaves of sizes {sizes}: {n_leaves**2} blocks, {n}x{n} entries); got "
        f"{len(leaves)} block(s) of sizes {[int(np.size(leaf)) for leaf in leaves]}.")
  if n_leaves == 0:
    return jnp.zeros((0, 0))
  # Leaves come outer leaf first: block (a, b) is leaves[a * n_leaves + b].
  rows = [jnp.concatenate([jnp.reshape(leaves[a * n_leaves + b], (sizes[a], sizes[b]))
                           for b in range(n_leaves)], axis=1) for a in range(n_leaves)]
  return jnp.concatenate(rows, axis=0)  # (n, n)


def flat_inputs(params, value, grad, hess, stderr, dtype, fname: str):
  """Flat ``(x, f, g, H, se_f, ‖se_H‖_F, unravel)`` in ``dtype``, shapes checked (static)."""
  x, unravel = ravel_pytree(params)
  n = x.shape[0]
  sizes = [int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params)]
  if np.ndim(value) != 0:
    raise ValueError(
        f"{fname}: `value` must be a scalar (the objective, e.g. one expval); got shape "
        f"{np.shape(value)}.")
  g_leaves = jax.tree_util.tree_leaves(grad)
  if [int(np.size(leaf)) for leaf in g_leaves] != sizes:
    raise ValueError(
        f"{fname}: `grad` must be laid out as `params` (leaf sizes {sizes}); got leaf "
        f"sizes {[int(np.size(leaf)) for leaf in g_leaves]}.")
  g = ravel_pytree(grad)[0] if g_leaves else jnp.zeros((0,), x.dtype)
  h = flat_hessian(hess, sizes, n, "hess")
  se_f = jnp.zeros((), dtype)
  se_h = jnp.zeros((), dtype)
  if stderr is not None:
    if not isinstance(stderr, (tuple, list)) or len(stderr) != 3:
      raise TypeError(
          f"{fname}: `stderr` must be None or the (value, grad, hess) standard errors that "
          "qhess.value_grad_and_hessian(..., return_stderr=True) returns; got "
          f"{type(stderr).__name__}"
          + (f" of length {len(stderr)}" if isinstance(stderr, (tuple, list)) else "") + ".")
    if np.ndim(stderr[0]) != 0:
      raise ValueError(
          f"{fname}: `stderr[0]` (the value's standard error) must be a scalar; got shape "
          f"{np.shape(stderr[0])}.")
    se_f = jnp.asarray(stderr[0], dtype)
    se_h = jnp.linalg.norm(flat_hessian(stderr[2], sizes, n, "stderr[2]")).astype(dtype)
  return (x.astype(dtype), jnp.asarray(value, dtype), g.astype(dtype), h.astype(dtype),
          se_f, se_h, unravel)
