"""Per-shot variances of post-processed outputs, for standard errors and shot allocation.

A sampled raw value is a linear function (`estimator_matrix`) of multinomial counts, so
the variance of an output is a quadratic form of the Jacobian of ``post`` with the
per-shot covariance of the outcome frequencies.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp



def _per_shot_values(jac, a):
  """``v`` of shape ``(K, B, G, O)``: each output's per-shot value of each outcome."""
  return jnp.einsum("kbr,rgo->kbgo", jac, a)



def _flat_jacobian(post: Callable, y):
  flat = lambda y_: jax.flatten_util.ravel_pytree(post(y_))[0]
  return jax.jacobian(flat)(y)  # (K, B, n_raw)
