"""Compiled Hessians, keyed on everything a trace depends on.

`_cached_jit` keeps one ``jax.jit`` per circuit, options, static arguments and recorded
computation (`_tape_signature`: the tape's structure, its constant matrices, and the
literals and constants of the classical processing), least recently used out first.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Callable

import jax
import jax.extend.core as jex
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.derivatives.options import _merge_leaves


# Compiled Hessians, least recently used first: ``key -> (circuit, jitted function)``.
# The key holds everything a trace depends on besides the traced arrays' shapes and
# dtypes: the circuit, the options, the static arguments, and the recorded tape's
# structure and constant matrices (`_tape_signature`), so that a changed global
# coefficient, matrix or layer count is a new entry, never a stale result. At most
# `_JIT_CACHE_SIZE` entries are kept (each holds compiled executables, a few MiB).
_JIT_CACHE: collections.OrderedDict[tuple, tuple[Circuit, Callable]] = (
    collections.OrderedDict())



_JIT_CACHE_SIZE = 32



def _tape_signature(circuit: Circuit, treedef, static: tuple, dynamic) -> tuple:
  """What a trace of ``circuit`` depends on besides its traced arguments' avals.

  The circuit is recorded abstractly (a jaxpr trace, no simulation): the tape's
  structure (gates, wires, measurements with their coefficients, layer counts) and a
  digest of each matrix that does not depend on the arguments (a global or closed-over
  QubitUnitary or Hermitian matrix, read now, also after an in-place change). As
  `jax.jit` compares avals and static arguments, a compiled Hessian is reused only for
  an equal signature.
  """
  tapes = []

  def record_fn(*flat):
    args, kwargs = jax.tree_util.tree_unflatten(treedef, _merge_leaves(static, flat))
    tapes.append(circuit.tape(*args, **kwargs))
    return ()

  closed = jax.make_jaxpr(record_fn)(*dynamic)
  (tape,) = tapes
  consts = tuple(
      None if isinstance(c, jax.core.Tracer) else
      (c.shape, str(c.dtype), hashlib.blake2b(np.asarray(c).tobytes(), digest_size=16).digest())
      for c in tape.consts)
  return tape.structure, consts, tape.n_wires, _jaxpr_digest(closed)



def _jaxpr_digest(closed) -> bytes:
  """A digest of a recorded computation: its text and the exact bytes of every literal
  and constant in it (also in sub-jaxprs), as `jax.jit` would retrace on them.

  The tape's structure does not show the classical processing that computes the gate
  arguments: ``RX(x[0] * A)`` records the same tape for every value of a global ``A``,
  but the jaxpr holds ``A`` as a literal or a constant.
  """
  digest = hashlib.blake2b(str(closed.jaxpr).encode(), digest_size=16)

  def add(value) -> None:
    arr = np.asarray(value)
    digest.update(f"{arr.shape}{arr.dtype}".encode())
    digest.update(arr.tobytes())

  def walk(value) -> None:
    if isinstance(value, jex.ClosedJaxpr):
      for c in value.consts:
        if not isinstance(c, jax.core.Tracer):
          add(c)
      walk(value.jaxpr)
    elif isinstance(value, jex.Jaxpr):
      for eqn in value.eqns:
        for v in eqn.invars:
          if isinstance(v, jex.Literal):
            add(v.val)
        for param in eqn.params.values():
          walk(param)
    elif isinstance(value, (tuple, list)):
      for v in value:
        walk(v)

  walk(closed)
  return digest.digest()



def _cached_jit(key: tuple, circuit: Circuit, build: Callable[[], Callable]) -> Callable:
  hit = _JIT_CACHE.get(key)
  if hit is not None and hit[0] is circuit:  # (an id may be reused after collection)
    _JIT_CACHE.move_to_end(key)
    return hit[1]
  jitted = build()
  _JIT_CACHE[key] = (circuit, jitted)
  _JIT_CACHE.move_to_end(key)
  while len(_JIT_CACHE) > _JIT_CACHE_SIZE:
    _JIT_CACHE.popitem(last=False)
  return jitted
