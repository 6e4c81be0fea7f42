"""Memory checks: the states a batch holds against the memory the devices have.

`check_memory` raises a ValueError with readable sizes before a batch of states that
cannot fit is allocated; `check_batch_size` validates the ``batch_size`` option.
"""

from __future__ import annotations

import decimal
import functools
import os

import jax
import numpy as np



def check_batch_size(batch_size) -> int | None:
  """``batch_size`` as an int (or None); ValueError unless a positive int or None."""
  if batch_size is not None and (isinstance(batch_size, bool) or
                                 not isinstance(batch_size, (int, np.integer)) or
                                 batch_size < 1):
    raise ValueError(f"`batch_size` must be a positive int or None; got {batch_size!r}.")
  return None if batch_size is None else int(batch_size)



# Copies of each state of a chunk alive while a gate is applied: its input, its output
# and a temporary. XLA reuses buffers where it can, so this is an estimate of the peak.
WORKING_COPIES = 3



@functools.cache
def _device_memory(device) -> int | None:
  stats = None
  try:
    stats = device.memory_stats()  # accelerators: the allocator's limit
  except Exception:  # pylint: disable=broad-except  (not every backend implements it)
    pass
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"])
  try:  # CPU: the host's physical memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (AttributeError, ValueError, OSError):
    return None



def available_memory(devices=None) -> int | None:
  """Bytes of memory of the smallest of ``devices`` (default: JAX's first device).

  ``device.memory_stats()["bytes_limit"]`` where the backend reports it (GPUs, TPUs),
  else the host's physical memory; ``None`` when neither is known.
  """
  sizes = [_device_memory(d) for d in (devices or jax.devices()[:1])]
  return None if any(s is None for s in sizes) else min(sizes)



def _size(n_bytes: int) -> str:
  """A byte count for a message: ``"16 MiB"``, ``"16384 GiB"``, or ``"1.7e302 bytes"``.

  Binary units up to GiB below ``2**50`` bytes (at most seven digits); beyond, a decimal
  mantissa and exponent, computed exactly from the integer (`decimal`), so the count of
  a state of any number of wires formats without overflowing a float.
  """
  n_bytes = int(n_bytes)
  if n_bytes >= 2**50:
    mantissa, exponent = f"{decimal.Decimal(n_bytes):.1e}".split("e")
    return f"{mantissa}e{int(exponent)} bytes"
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n_bytes >= scale:
      # n_bytes < 2**50: the quotient is an exact-enough float
      return f"{n_bytes / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
  return f"{n_bytes} bytes"



def check_memory(n_wires: int, n_rows: int, dtype, *, batch_size: int | None,
                 devices=None, extra_states: int = 0, what: str) -> None:
  """Refuses, before anything runs, a call whose state vectors cannot fit in memory.

  The kernel holds ``min(n_rows, batch_size)`` states at once (a chunk, split over
  ``devices``), each of ``2**n_wires`` complex amplitudes, with `WORKING_COPIES` copies
  while a gate is applied, plus ``extra_states`` stored states (a prefix-sharing table).

  Args:
    n_wires: qubits of the circuit.
    n_rows: circuits to evaluate (the batch).
    dtype: the float dtype of the gate arguments (float64: complex128 states).
    batch_size: the chunk size asked for (``None``: the whole batch at once).
    devices: ``None`` (JAX's first device) or the devices the chunk is sharded over.
    extra_states: states held besides the chunk.
    what: the caller, for the message.

  Raises:
    ValueError: naming the memory needed and available, and the largest ``batch_size``
      that would fit (or that none does).
  """
  state = 2**n_wires * 2 * np.dtype(dtype).itemsize
  n_dev = len(devices) if devices else 1
  rows = n_rows if batch_size is None else min(n_rows, batch_size)
  per_device = -(-rows // n_dev)
  need = (per_device * WORKING_COPIES + extra_states) * state
  if need <= 2**26:  # 64 MiB fit anywhere: skip the query
    return
  avail = available_memory(devices)
  if avail is None or need <= avail:
    return
  cdtype = "complex128" if np.dtype(dtype).itemsize == 8 else "complex64"
  fit = (avail // state - extra_states) // WORKING_COPIES * n_dev
  where = f"{_size(avail)} of memory per device" if n_dev > 1 else f"{_size(avail)} of memory"
  if fit < 1:
    hint = (" or turn jax_enable_x64 off (complex64 halves it)" if cdtype == "complex128"
            else "")
    raise ValueError(
        f"{what}: a circuit of {n_wires} wires needs {_size(state)} per state ({cdtype}), "
        f"about {_size((WORKING_COPIES + extra_states) * state)} for one state with its "
        f"working copies; only {where} is available, so no `batch_size` fits. Use fewer "
        f"wires{hint}.")
  chunk = (f"`batch_size`={batch_size}" if batch_size is not None
           else f"`batch_size`=None (all {rows} circuits at once)")
  raise ValueError(
      f"{what}: {chunk} holds {rows} states of {n_wires} wires "
      f"({_size(state)} each, {cdtype}) at once, about {_size(need)} with working copies; "
      f"only {where} is available: `batch_size` <= {fit} would fit.")
