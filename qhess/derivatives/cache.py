"""Compiled Hessians, keyed on everything a trace depends on.

`_cached_jit` keeps one ``jax.jit`` per circuit, options, static arguments and recorded
computation (`_tape_signature`: the tape's structure, its constant matrices, and the
literals and constants of the classical processing), least recently used out first.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import pathlib
import pickle
import sys
import warnings
from typing import Callable

import jax
import jax.extend.core as jex
import jax.numpy as jnp
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



def _cached_jit(key: tuple, circuit: Circuit, build: Callable[[], Callable],
                stored: Callable | None = None) -> Callable:
  """The compiled Hessian of ``key``: from memory, else ``build()`` (through ``stored``,
  `stored_program`'s disk cache, when given)."""
  hit = _JIT_CACHE.get(key)
  if hit is not None and hit[0] is circuit:  # (an id may be reused after collection)
    _JIT_CACHE.move_to_end(key)
    return hit[1]
  jitted = build() if stored is None else stored(build())
  _JIT_CACHE[key] = (circuit, jitted)
  _JIT_CACHE.move_to_end(key)
  while len(_JIT_CACHE) > _JIT_CACHE_SIZE:
    _JIT_CACHE.popitem(last=False)
  return jitted



# ------------------------------------------------------------- compiled Hessians on disk

# Where `enable_compilation_cache` keeps executables (None: not enabled).
_PROGRAM_DIR: list[pathlib.Path | None] = [None]
_FORMAT = 2  # bump when what a stored file means changes (2: executables)


def enable_compilation_cache(path: str | os.PathLike) -> pathlib.Path:
  """Keep compiled Hessians on disk, so that a later process skips compiling them.

  Two caches in one directory: qhess's own (``path/programs``: each compiled Hessian's
  XLA executable, serialised with `jax.experimental.serialize_executable`) and JAX's
  persistent compilation cache (``path/xla``: every other program, kept however fast
  it compiled). A later process calling a Hessian of the same circuit structure,
  options and argument shapes loads the executable instead of recording the circuit,
  tracing, lowering and compiling the evaluation: the first call of a 10-wire, 2-layer
  HEA Hessian drops from seconds to about a quarter of a second (the measured figures
  are in the performance guide).

  A stored executable is keyed on everything its trace depends on: the recorded tape
  (structure, coefficients, constant matrices), a digest of the classical processing's
  jaxpr with its literals and constants, the options and static arguments, the argument
  shapes and dtypes, the circuit function's code, and the versions of qhess (a digest of
  its sources), JAX and Python, and the backend. Calls under a JAX transformation
  (``jax.jit``, ``jax.vmap``, ``jax.grad`` of the Hessian), with traced arguments given as
  Python scalars (weakly typed), with ``progress=True`` (a host callback) or ``devices``
  run as without the cache. An executable that cannot be stored or read is compiled as
  usual, with a warning.

  The stored files are pickled executables: like JAX's own cache, the directory must be
  one only you can write to (loading a file runs what it holds).

  Args:
    path: a directory (created if missing).

  Returns:
    the directory, as a `pathlib.Path`.

  Raises:
    TypeError: when ``path`` is not a path.
    ValueError: when ``path`` is a file.

  Example (once per process, before the first Hessian; not run here, as it changes
  JAX's global configuration):
    >>> import qhess
    >>> qhess.enable_compilation_cache("~/.cache/qhess")  # doctest: +SKIP
    PosixPath('/home/me/.cache/qhess')
  """
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"`path` must be a directory path (str or os.PathLike); got {path!r}.")
  root = pathlib.Path(path).expanduser().resolve()
  if root.exists() and not root.is_dir():
    raise ValueError(f"`path` must be a directory; got the file {str(root)!r}.")
  (root / "programs").mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(root / "xla"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  _PROGRAM_DIR[0] = root / "programs"
  return root



@functools.cache
def _sources_digest() -> str:
  """A digest of qhess's own sources: a stored program never outlives the code."""
  digest = hashlib.blake2b(digest_size=16)
  package = pathlib.Path(__file__).resolve().parents[1]
  for file in sorted(package.rglob("*.py")):
    digest.update(str(file.relative_to(package)).encode())
    digest.update(file.read_bytes())
  return digest.hexdigest()



def _code_digest(fn) -> bytes:
  """The circuit function's code (bytecode and constants, nested code included)."""
  code = getattr(fn, "__code__", None)
  if code is None:
    raise TypeError("no code object")
  return pickle.dumps(_code_parts(code))


def _code_parts(code) -> tuple:
  consts = tuple(_code_parts(c) if hasattr(c, "co_code") else repr(c)
                 for c in code.co_consts)
  return code.co_code, consts, code.co_names, code.co_qualname



def stored_program(parts: tuple, circuit: Circuit, dynamic, key) -> Callable | None:
  """A wrapper for `_cached_jit`'s ``build`` that loads or stores the compiled Hessian's
  executable on disk, or ``None`` when the disk cache is off or the call cannot use it.
  The wrapped function runs the executable for concrete arguments and the jitted
  function for traced ones (a later call of the same entry under ``jax.jit``).

  ``parts``: the in-memory cache key without the circuit's id (options, tree structure,
  static arguments, tape signature).
  """
  directory = _PROGRAM_DIR[0]
  leaves = jax.tree_util.tree_leaves((dynamic, key))
  # Tracers: under a transformation. Python scalars: weakly typed, which a stored
  # executable's results do not keep (a later float32 product would promote differently).
  if directory is None or any(isinstance(x, (jax.core.Tracer, int, float, complex))
                              for x in leaves):
    return None
  try:
    avals = tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves)
    blob = pickle.dumps((_FORMAT, _sources_digest(), jax.__version__, sys.version,
                         jax.default_backend(), jax.config.jax_enable_x64, str(parts[1]),
                         parts[0], parts[2:], avals, _code_digest(circuit.fn)))
  except Exception:  # noqa: BLE001 -- a key we cannot digest: compile as usual
    return None
  file = directory / f"{hashlib.blake2b(blob, digest_size=20).hexdigest()}.bin"

  def wrap(jitted: Callable) -> Callable:
    from jax.experimental import serialize_executable  # pylint: disable=import-outside-toplevel
    try:
      if file.exists():
        compiled = serialize_executable.deserialize_and_load(
            *pickle.loads(file.read_bytes()))
      else:
        compiled = jitted.lower(dynamic, key).compile()
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(serialize_executable.serialize(compiled)))
        os.replace(tmp, file)
    except Exception as err:  # noqa: BLE001 -- the cache must never fail a call
      warnings.warn(f"qhess: compiled Hessian not stored in or read from {file}: {err!r}; "
                    "compiling it as usual.", RuntimeWarning, stacklevel=3)
      return jitted

    def call(dyn, k):  # the executable for concrete arguments; traced ones: the jit
      if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((dyn, k))):
        return jitted(dyn, k)
      return compiled(dyn, k)

    return call

  return wrap
