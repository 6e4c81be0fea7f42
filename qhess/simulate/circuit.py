"""`qhess.circuit` and `qhess.execute`: recorded tapes run on the kernel.

This module joins recording (`qhess.circuits.tape`) and simulation (`qhess.simulate.kernel`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax.numpy as jnp

from qhess.simulate import sampling as _shots
from qhess.circuits.tape import Tape, check_n_wires, record
from qhess.simulate import kernel as _kernel
from qhess.simulate.memory import check_batch_size, check_memory


class Circuit:
  """A circuit function turned into a pure JAX function of its parameters.

  Calling it records the gates (a Python-level trace, cheap) and runs the compiled
  kernel for that structure; it composes with `jax.jit`, `jax.vmap`, `jax.grad` and
  `jax.hessian`. The kernel is compiled once per circuit structure (gates, wires,
  measurements), so new parameter values never recompile.

  Calling it raises ``ValueError`` (before simulating) when one state of its width
  cannot fit in memory (`check_memory`), and ``TypeError`` when the circuit function
  uses a traced value in Python control flow (under `jax.jit` or `jax.vmap`: write
  ``jnp.where`` or ``jax.lax.cond``).

  Attributes:
    fn: the recording function.
    n_wires: number of qubits.
  """

  def __init__(self, fn: Callable, n_wires: int):
    self.fn = fn
    self.n_wires = n_wires
    functools.update_wrapper(self, fn)

  def tape(self, *args, **kwargs) -> Tape:
    """Records the circuit at these arguments into a `Tape`."""
    return record(self.fn, self.n_wires, args, kwargs)

  def __call__(self, *args, **kwargs) -> Any:
    tape = self.tape(*args, **kwargs)
    check_memory(_kernel.kernel_wires(tape), 1, tape.params.dtype, batch_size=None,
                 what="the circuit")
    raw = _kernel.run(_kernel.kernel_key(tape), tape.params[None], tape.consts)
    return tape.finalize(raw[0])

  def sample(self, shots, key) -> Callable:
    """The circuit measured with finitely many shots: a function of the circuit's args.

    A method taking ``shots`` and ``key`` (rather than call keywords) so that it can
    never clash with the circuit's own keyword arguments. Expectation values average
    the sampled eigenvalues (Pauli words: ±1 parities in their eigenbasis; sums of words
    in qubit-wise commuting groups, ``shots`` per group), ``probs`` are relative
    frequencies, and ``var`` is ``<O²> - <O>²`` of the sampled moments.

    Args:
      shots: an int, or a tuple of ints (a shot vector: one result per entry, from
        consecutive partitions of the samples).
      key: a PRNG key, e.g. ``jax.random.key(0)``; the same key gives the same numbers.

    Returns:
      a function with the circuit's signature returning its sampled outputs (a tuple of
      them, one per entry, for a shot vector).

    Raises:
      TypeError: for non-integer shots or a ``key`` that is not a PRNG key, and when
        the sampled outputs are differentiated (they are random estimates).
      ValueError: for shots below 1, above ``2**53`` (``2**24`` without x64: counts are
        floats of the computation's dtype), or a missing ``key``.

    Examples:
      >>> import jax, jax.numpy as jnp, qhess
      >>> @qhess.circuit(wires=1)
      ... def f(x):
      ...   qhess.RY(x, wires=0)
      ...   return qhess.probs(wires=0)
      >>> p = f.sample(1000, jax.random.key(0))(jnp.pi / 2)
      >>> p.shape, bool(abs(p[0] - 0.5) < 0.06), float(p.sum())
      ((2,), True, 1.0)
    """
    shots = _shots.check_shots(shots, allow_budget=False)
    key = _shots.check_key(key)

    def sample_fn(*args, **kwargs):
      return _shots.sample_tapes([self.tape(*args, **kwargs)], shots, key)[0]

    return sample_fn

  def __repr__(self) -> str:
    return f"<qhess.Circuit {getattr(self.fn, '__name__', '?')}: wires={self.n_wires}>"


def circuit(fn: Callable | None = None, *, wires: int):
  """Turns a function that calls gates and returns measurements into a pure function.

  The function takes any arguments (arrays, pytrees such as dicts and nested tuples),
  calls gate functions such as `RX` and `CNOT`, and returns one measurement
  (`expval`, `var`, `probs`) or a tuple of them. The result is a `Circuit` with the same
  signature, returning a float array per measurement.

  Args:
    fn: the circuit function (when used as ``@qhess.circuit(wires=...)`` it is omitted).
    wires: number of qubits; wires are labelled ``0 .. wires-1``, wire 0 being the
      most significant bit of basis-state indices.

  Returns:
    a `Circuit` (or a decorator making one).

  Raises:
    TypeError: when ``wires`` is not an int.
    ValueError: when ``wires`` is not positive.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(params):
    ...   qhess.RX(params["a"], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   return qhess.expval(qhess.Z(1)), qhess.probs(wires=(0, 1))
    >>> value, probs = f({"a": jnp.array(0.3)})
    >>> print(f"{float(value):.4f}", probs.round(4))
    0.9553 [0.9777 0.     0.     0.0223]
  """
  n_wires = check_n_wires(wires)
  if fn is None:
    return lambda f: Circuit(f, n_wires)
  return Circuit(fn, n_wires)


def execute(tapes: Sequence[Tape], *, batch_size: int | None = None, shots=None,
            key=None) -> list[Any]:
  """Runs several tapes; tapes of equal structure run as one batched kernel call.

  Args:
    tapes: a sequence of `Tape` objects (any mix of structures).
    batch_size: at most this many states live at once per structure (``None``: all).
    shots: ``None`` (exact), an int or a tuple of ints (a shot vector): sample each
      tape as `Circuit.sample` does (each tape's result is then a tuple, one entry per
      shot-vector entry).
    key: a PRNG key, required with ``shots``; tape ``i`` uses ``split(key, n)[i]``.

  Returns:
    a list with one entry per tape: its outputs, as the circuit returns them (one array
    or a tuple of arrays).

  Raises:
    TypeError: when an entry is not a `Tape`, for non-integer ``shots``, or when
      sampled outputs are differentiated.
    ValueError: for a ``batch_size`` that is not a positive int, ``shots`` below 1 or
      above ``2**53`` (``2**24`` without x64), ``shots`` without ``key``, or states that
      cannot fit in memory (see `check_memory`; a smaller ``batch_size`` may help).

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RY(x, wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> out = qhess.execute([f.tape(0.0), f.tape(jnp.pi)])
    >>> [round(float(v), 6) for v in out]
    [1.0, -1.0]
  """
  batch_size = check_batch_size(batch_size)
  tapes = list(tapes)
  groups: dict[tuple, list[int]] = {}
  for i, tape in enumerate(tapes):
    if not isinstance(tape, Tape):
      raise TypeError(f"`tapes[{i}]` must be a qhess.Tape; got {type(tape).__name__}.")
    groups.setdefault((tape.structure, _consts_id(tape)), []).append(i)
  for indices in groups.values():  # before running anything
    first = tapes[indices[0]]
    check_memory(_kernel.kernel_wires(first), 1 if shots is not None else len(indices),
                 first.params.dtype, batch_size=batch_size, what="qhess.execute")
  if shots is not None:
    return _shots.sample_tapes(tapes, shots, key, batch_size)
  results: list[Any] = [None] * len(tapes)
  for indices in groups.values():
    first = tapes[indices[0]]
    params = jnp.stack([tapes[i].params for i in indices])
    raw = _kernel.run(_kernel.kernel_key(first), params, first.consts, batch_size)
    for row, i in enumerate(indices):
      results[i] = tapes[i].finalize(raw[row])
  return results


def _consts_id(tape: Tape) -> tuple:
  # Tapes share a kernel call only when they share the very same matrices.
  return tuple(id(c) for c in tape.consts)
