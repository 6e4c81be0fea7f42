"""What a user passes: options, argument numbers, and the leaves of the arguments.

`_Options` validates the options of `qhess.hessian` once, at construction; `_mask` turns
``gate_argnum`` into the selected Hessian entries; `_shifts` validates custom shifts.
`_split_leaves` separates the traced leaves of the arguments from static Python values,
as `jax.hessian` does.
"""

from __future__ import annotations

import reprlib

import jax
import jax.numpy as jnp
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.circuits.catalogue import op_spectra
from qhess.shift import rules as _shift_rules
from qhess.circuits.tape import Tape
from qhess.simulate import memory as _memory


# Off-diagonal rule of exact evaluation when none is asked for: Wierichs et al.'s
# diagonal rule, 3 circuits per single-frequency pair instead of 4 (measured faster
# in bench/run.py). hessian_tapes and sampled Hessians default to the product rule
# (PennyLane's counts; fewer shots for the same error).
_DEFAULT_RULE = "diagonal"



def _leaf_range(args, argnum) -> range:
  start = sum(len(jax.tree_util.tree_leaves(a)) for a in args[:argnum])
  return range(start, start + len(jax.tree_util.tree_leaves(args[argnum])))



def _tape_spectra(tape: Tape):
  spectra = [None] * tape.num_params
  for op in tape.operations:
    for i, s in zip(op.param_index, op_spectra(op.name, op.hyper)):
      spectra[i] = s
  return tuple(spectra)



def _mask(gate_argnum, n_params: int) -> np.ndarray:
  """The (P, P) boolean selection of Hessian entries from ``gate_argnum``."""
  if gate_argnum is None:
    return np.ones((n_params, n_params), dtype=bool)
  arr = np.asarray(gate_argnum)
  if arr.ndim == 2 or arr.dtype == bool:
    if arr.dtype != bool:
      raise TypeError(f"`gate_argnum` as a mask must be a boolean array; got dtype {arr.dtype}.")
    if arr.shape != (n_params, n_params):
      raise ValueError(
          f"`gate_argnum` as a mask must have shape ({n_params}, {n_params}) for a tape "
          f"with {n_params} gate arguments; got {arr.shape}.")
    if not np.array_equal(arr, arr.T):
      raise ValueError("`gate_argnum` as a mask must be symmetric; got an asymmetric mask.")
    return arr.copy()
  if arr.ndim == 1 and arr.size == 0:  # an empty selection: no entries, no circuits
    return np.zeros((n_params, n_params), dtype=bool)
  if arr.ndim > 1 or not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(
        "`gate_argnum` must be None, an int, a sequence of ints or a (P, P) boolean "
        f"mask; got {gate_argnum!r}.")
  indices = arr.reshape(-1)
  for i in indices:
    if not -n_params <= i < n_params:
      raise ValueError(
          f"`gate_argnum` {int(i)} is out of range for a tape with {n_params} gate "
          "arguments.")
  indices = np.mod(indices, max(n_params, 1))
  mask = np.zeros((n_params, n_params), dtype=bool)
  if arr.ndim == 0:
    mask[indices[0], indices[0]] = True
  else:
    mask[np.ix_(indices, indices)] = True
  return mask



def _shifts(shifts, spectra, name: str, eps: float = float(np.finfo(np.float64).eps)):
  """Validates custom shifts; returns a hashable tuple of tuples (or None).

  Also checks their conditioning (`_shift_rules.check_amplification`) for circuits
  evaluated in a dtype of machine epsilon ``eps``: a diagonal entry amplifies errors
  by κ_k², a mixed entry of the product rule by κ_i·κ_j (checked for the worst pair).
  """
  if shifts is None:
    return None
  try:
    entries = [tuple(float(s) for s in np.atleast_1d(np.asarray(e, dtype=float)))
               for e in shifts]
  except (TypeError, ValueError) as err:
    raise TypeError(
        f"`{name}` must be a sequence of tuples of shifts, one per gate argument; "
        f"got {shifts!r}.") from err
  if len(entries) != len(spectra):
    raise ValueError(
        f"`{name}` has {len(entries)} entries; the tape has {len(spectra)} gate "
        "arguments (one tuple of shifts per argument).")
  kappas = [_shift_rules.amplification(
      _shift_rules.first_order_from_shifts(entry, spectrum, f"{name}[{k}]"), spectrum)
             for k, (entry, spectrum) in enumerate(zip(entries, spectra))]
  if name == "diagonal_shifts":
    for k, entry in enumerate(entries):
      _shift_rules.check_amplification(kappas[k]**2, eps, entry, f"{name}[{k}]")
  elif len(entries) > 1:  # the worst mixed entry, named by its worse argument
    k = int(np.argmax(kappas))
    kappa2 = kappas[k] * max(kappas[:k] + kappas[k + 1:])
    _shift_rules.check_amplification(kappa2, eps, entries[k], f"{name}[{k}]")
  return tuple(entries)



class _Options:
  """Validated, hashable keyword options shared by all entry points."""

  def __init__(self, gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
               batch_size=None, off_diagonal_rule=None, devices=None,
               evaluation="shared", progress=False):
    self.batch_size = _memory.check_batch_size(batch_size)
    self.gate_argnum = gate_argnum
    self.diagonal_shifts = diagonal_shifts
    self.off_diagonal_shifts = off_diagonal_shifts
    if off_diagonal_rule not in (None, "product", "diagonal"):
      raise ValueError(
          '`off_diagonal_rule` must be None, "product" or "diagonal"; got '
          f"{off_diagonal_rule!r}.")
    if off_diagonal_rule == "diagonal" and off_diagonal_shifts is not None:
      raise ValueError(
          '`off_diagonal_shifts` define a product rule; they cannot be combined with '
          'off_diagonal_rule="diagonal".')
    self.off_diagonal_rule = off_diagonal_rule
    if isinstance(devices, jax.Device):  # one device: a sequence of one
      devices = (devices,)
    if devices is not None:
      error = TypeError(
          "`devices` must be None, a jax device or a non-empty sequence of jax devices "
          f"(e.g. jax.devices()); got {devices!r}.")
      try:
        devices = tuple(devices)
      except TypeError:
        raise error from None
      if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise error
      for d in devices:
        if devices.count(d) > 1:
          raise ValueError(
              f"`devices` must be distinct; got {d} {devices.count(d)} times among "
              f"{len(devices)} devices (the shifted circuits are sharded over them).")
    self.devices = devices
    if evaluation not in ("auto", "shared", "independent", "adjoint"):
      raise ValueError(
          '`evaluation` must be "auto", "shared", "independent" or "adjoint"; got '
          f"{evaluation!r}.")
    if evaluation == "adjoint":
      custom = [(name, value) for name, value in (
          ("diagonal_shifts", diagonal_shifts), ("off_diagonal_shifts", off_diagonal_shifts),
          ("off_diagonal_rule", off_diagonal_rule)) if value is not None]
      if custom:
        name, value = custom[0]
        raise ValueError(
            f'`{name}` chooses shift rules for second derivatives, but evaluation='
            '"adjoint" shifts each argument once, by its default first-order rule, and '
            f"differentiates exactly along the other; got {name}={value!r}. Leave it "
            "None, or use another evaluation.")
    self.evaluation = evaluation
    if not isinstance(progress, (bool, np.bool_)):
      raise TypeError(f"`progress` must be a bool; got {progress!r}.")
    self.progress = bool(progress)

  @property
  def custom_shifts(self) -> bool:
    """Whether the options choose shift rules (custom shifts or an off-diagonal rule)."""
    return not (self.diagonal_shifts is None and self.off_diagonal_shifts is None
                and self.off_diagonal_rule is None)

  def rule(self, default: str) -> str:
    """The off-diagonal rule in force: custom shifts imply the product rule."""
    if self.off_diagonal_rule is not None:
      return self.off_diagonal_rule
    return "product" if self.off_diagonal_shifts is not None else default



def _check_argnums(argnums):
  """``argnums`` as given (an int) or as a tuple of ints; TypeError for anything else."""
  error = TypeError(f"`argnums` must be an int or a tuple of ints; got {argnums!r}.")
  if isinstance(argnums, bool):
    raise error
  if isinstance(argnums, (int, np.integer)):
    return argnums
  try:
    nums = tuple(argnums)
  except TypeError:
    raise error from None
  if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in nums):
    raise error
  return nums



def _normalize_argnums(argnums, n_args: int) -> tuple[int, ...]:
  single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
  nums = (argnums,) if single else tuple(argnums)
  for a in nums:
    if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
      raise TypeError(f"`argnums` must be an int or a tuple of ints; got {argnums!r}.")
    if not -n_args <= a < n_args:
      raise ValueError(
          f"`argnums` {a} is out of range for a call with {n_args} positional "
          "argument(s).")
  return tuple(int(a) % n_args for a in nums)



def _check_float_inputs(args, argnums: tuple[int, ...], fname: str) -> None:
  for a in argnums:
    for leaf in jax.tree_util.tree_leaves(args[a]):
      numeric = not _is_static(leaf) or isinstance(leaf, (bool, int))
      dtype = jnp.result_type(leaf) if numeric else type(leaf).__name__
      if not numeric or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{fname} requires real floating-point inputs for the differentiated "
            f"arguments (argnums); argument {a} has a leaf of dtype {dtype}. Convert it, "
            "e.g. with jnp.asarray(x, dtype=float).")



def _check_circuit(circuit, fname: str) -> Circuit:
  if not isinstance(circuit, Circuit):
    raise TypeError(
        f"{fname} takes a circuit made with @qhess.circuit(wires=...); got "
        f"{type(circuit).__name__}.")
  return circuit



def _hashable(x):
  """A hashable key for an option value (arrays by content); TypeError if impossible."""
  if x is None:
    return x
  if isinstance(x, (int, float, str, bool, np.integer, np.floating)):
    # With the type: 1, 1.0 and True hash equal but are different options (a float
    # gate_argnum is an error, a bool one a mask), so they must not share a cache entry.
    return (type(x).__name__, x)
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    arr = np.asarray(x)
    return ("array", arr.shape, str(arr.dtype), arr.tobytes())
  return tuple(_hashable(e) for e in x)



class _Dynamic:
  """Marks a traced leaf among the static ones (see `_split_leaves`)."""

  def __repr__(self) -> str:
    return "<traced>"



_DYNAMIC = _Dynamic()



def _is_static(leaf) -> bool:
  """Non-array Python values (int, bool, str, ...) are static, as `jax.hessian` passes
  them through untraced; arrays, NumPy scalars, floats and complex numbers are traced."""
  return not (isinstance(leaf, (jax.Array, jax.core.Tracer, np.ndarray, np.generic, float,
                                complex)) or hasattr(leaf, "__jax_array__"))



def _split_leaves(leaves, fname: str) -> tuple[tuple, list]:
  """``(static, dynamic)``: the leaves with `_DYNAMIC` for traced ones, and those."""
  static, dynamic = [], []
  for leaf in leaves:
    if _is_static(leaf):
      try:
        hash(leaf)
      except TypeError:
        raise TypeError(
            f"{fname}: an argument of type {type(leaf).__name__} is neither an array nor "
            f"a hashable static value (int, str, bool, tuple); got {reprlib.repr(leaf)}."
        ) from None
      static.append(leaf)
    else:
      static.append(_DYNAMIC)
      dynamic.append(leaf)
  return tuple(static), dynamic



def _merge_leaves(static: tuple, dynamic) -> list:
  it = iter(dynamic)
  return [next(it) if s is _DYNAMIC else s for s in static]
