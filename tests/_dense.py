"""A dense, differentiable jnp simulation of `_reference` op lists: the autodiff oracle.

`Dense` simulates an op list with full ``(2**n, 2**n)`` matrices built from `_reference`'s
gate matrices (independent of qhess's kernel); ``jax.hessian`` of it is the reference
Hessian of test_hessian.py and test_evaluation.py. `make_case` builds a qhess circuit and
its dense twin from the same op list and measurements.
"""

from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import _reference as ref
import qhess

# -------------------------------------------------------------------- the dense oracle
# jax.hessian through qhess's own kernel compiles slowly (seconds per circuit on CPU)
# and is not independent of it. `Dense` simulates a `_reference` op list with full
# (2**n, 2**n) matrices in jnp. Every entry of every reference gate is a trigonometric
# polynomial with frequencies k/2 (|k| <= 2) in each real argument (half angles, and the
# e^{iφ} of phase gates), so 5 samples per argument over the period 4π interpolate it
# exactly (a DFT), and the matrix becomes a differentiable function of the arguments.

_FREQS = np.arange(-2, 3) / 2
_GRID = 4 * np.pi * np.arange(5) / 5


def _dense_gate(op, n: int, rng: np.random.Generator):
  """``(freqs (m, r), coef (m, 2**n, 2**n))`` with ``U(θ) = Σ_t exp(i freqs[t]·θ) coef[t]``."""
  name, wires, args = op
  r = ref.N_REAL[name]

  def small(angles):
    return ref.gate_matrix(name, tuple(angles) + tuple(args[r:]), wires)

  freqs = np.array(list(itertools.product(_FREQS, repeat=r)), dtype=float)  # (5**r, r)
  grid = np.array(list(itertools.product(_GRID, repeat=r)), dtype=float)  # (5**r, r)
  samples = np.stack([small(g) for g in grid])  # (5**r, 2**k, 2**k)
  coef = np.einsum("tm,mij->tij", np.exp(-1j * freqs @ grid.T), samples) / len(grid)
  probe = rng.uniform(-7, 7, size=r)
  np.testing.assert_allclose(np.einsum("t,tij->ij", np.exp(1j * freqs @ probe), coef),
                             small(probe), rtol=0, atol=1e-12)
  return freqs, np.stack([ref.embed(c, wires, n) for c in coef])


def probs_matrix(wires, n: int) -> np.ndarray:
  """``(2**len(wires), 2**n)`` 0/1 matrix summing basis probabilities into marginals."""
  m = np.zeros((2 ** len(wires), 2**n))
  for i in range(2**n):
    bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]
    m[int("".join(str(bits[w]) for w in wires) or "0", 2), i] = 1.0
  return m


class Dense:
  """A dense jnp simulation of ``ops``: θ ``(n_params,)`` -> the circuit's outputs.

  ``specs`` are the measurements, ``(kind, arg)``: ``("expval"|"var", Obs)`` or
  ``("probs", wires or None)``; one spec gives one output, several a tuple.

  The gates run as one `jax.lax.scan` over stacked, zero-padded Fourier tables (every
  gate padded to the most terms and arguments of any gate, a padded argument reading a
  zero appended to θ), so that compiling ``jax.hessian`` of the oracle costs about the
  same for 2 gates as for 30.
  """

  def __init__(self, ops, n: int, specs):
    rng = np.random.default_rng(0)
    self.ops, self.n, self.specs = ops, n, specs
    gates = [_dense_gate(op, n, rng) for op in ops]
    r_max = max([ref.N_REAL[op[0]] for op in ops] + [1])
    m_max = max(len(freqs) for freqs, _ in gates)
    d = 2**n
    self.n_params = sum(ref.N_REAL[op[0]] for op in ops)
    self.freqs = np.zeros((len(ops), m_max, r_max))
    self.coef = np.zeros((len(ops), m_max, d, d), dtype=complex)
    self.index = np.full((len(ops), r_max), self.n_params)  # padding reads θ[P] = 0
    k = 0
    for g, ((freqs, coef), op) in enumerate(zip(gates, ops)):
      r = ref.N_REAL[op[0]]
      self.freqs[g, :len(freqs), :r] = freqs
      self.coef[g, :len(coef)] = coef
      self.index[g, :r] = np.arange(k, k + r)
      k += r
    self.outputs = []
    for kind, arg in specs:
      if kind == "probs":
        self.outputs.append((kind, probs_matrix(tuple(range(n)) if arg is None else arg, n)))
      else:
        self.outputs.append((kind, ref.observable_matrix(arg, n)))

  def __call__(self, theta):
    theta = jnp.concatenate([jnp.ravel(theta), jnp.zeros(1, dtype=theta.dtype)])

    def gate(psi, table):
      freqs, coef, index = table
      u = jnp.einsum("t,tij->ij", jnp.exp(1j * (freqs @ theta[index])), coef)
      return u @ psi, None

    psi = jnp.zeros(2**self.n, dtype=complex).at[0].set(1.0)
    psi, _ = jax.lax.scan(gate, psi, (self.freqs, self.coef, self.index))
    out = []
    for kind, m in self.outputs:
      if kind == "probs":
        out.append(m @ jnp.abs(psi)**2)
        continue
      value = jnp.real(jnp.vdot(psi, m @ psi))
      if kind == "var":
        value = jnp.real(jnp.vdot(psi, m @ (m @ psi))) - value**2
      out.append(value)
    return tuple(out) if len(out) > 1 else out[0]

  def reference(self, theta):
    """The same outputs from `_reference`'s NumPy simulator (checks the oracle)."""
    state = ref.circuit_state(ref.with_params(self.ops, theta), self.n)
    out = []
    for kind, arg in self.specs:
      if kind == "probs":
        out.append(ref.ref_probs(state, tuple(range(self.n)) if arg is None else arg, self.n))
      else:
        out.append(getattr(ref, f"ref_{kind}")(state, arg, self.n))
    return tuple(out) if len(out) > 1 else out[0]


def _measure(specs):
  out = []
  for kind, arg in specs:
    if kind == "probs":
      out.append(qhess.probs(wires=arg) if arg is not None else qhess.probs())
    else:
      out.append(getattr(qhess, kind)(ref.qhess_observable(arg)))
  return tuple(out) if len(out) > 1 else out[0]


class Case(NamedTuple):
  """A qhess circuit of some inputs, its dense twin, and the processing inputs -> θ."""

  circuit: qhess.Circuit
  oracle: Callable  # the same function of the inputs, dense
  dense: Dense  # the same function of θ
  processing: Callable


def make_case(ops, n: int, specs, processing=None) -> Case:
  """``processing`` maps the inputs to θ: an array, or a list of scalars (one per gate
  argument, so that qhess sees which inputs each gate argument depends on)."""
  processing = processing or (lambda x: x)
  dense = Dense(ops, n, specs)

  @qhess.circuit(wires=n)
  def circuit(*args, **kwargs):
    ref.apply_ops(ops, processing(*args, **kwargs))
    return _measure(specs)

  def oracle(*args, **kwargs):
    theta = processing(*args, **kwargs)
    return dense(jnp.stack(theta) if isinstance(theta, (list, tuple)) else theta)

  return Case(circuit, oracle, dense, processing)


def jit_hessian(fn, argnums=0):
  """`jax.hessian`, jitted: one compile instead of many small eager ones."""
  return jax.jit(jax.hessian(fn, argnums))


def placeholder_op(name, wires, n_real=None):
  """An op of `_reference`'s format whose real arguments are placeholders."""
  return (name, tuple(wires), (0.0,) * (ref.N_REAL[name] if n_real is None else n_real))
