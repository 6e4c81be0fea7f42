"""Strict JAX settings and shared fixtures for the qhess tests.

x64 is on by default (the oracle comparisons need float64); a test that wants float32
requests the `float32` fixture (or parametrizes over `x64`). The reference simulator and
random circuits live in ``_reference.py``.

The suite's time is almost all XLA compilation of small circuits that then run for
milliseconds, so XLA's LLVM backend optimizations are off
(``jax_disable_most_optimizations``: about half the compile time, the same numbers). The
environment variable carries the setting to the subprocesses and notebook kernels that
the tests start; ``JAX_DISABLE_MOST_OPTIMIZATIONS=0`` turns it off. For the same reason
XLA's CPU fusion emitters are off (``XLA_FLAGS``, below).
"""

import os

os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
  # XLA's CPU fusion emitters compile these unrolled kernels about 1.6x more slowly than
  # the older loop emitter (measured, jaxlib 0.10.2). The flag is read when the backend
  # starts; an XLA that does not know it aborts, hence the version check.
  import importlib.metadata

  if importlib.metadata.version("jaxlib").startswith("0.10."):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_use_fusion_emitters=false").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import _reference  # noqa: E402
from qhess.derivatives import evaluate as _evaluate  # noqa: E402

collect_ignore = [  # run in subprocesses by test_sharding.py and test_distributed.py
    "_sharded_check.py", "_distributed_worker.py"]

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_disable_most_optimizations",
                  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() not in ("0", "false"))
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def always_share(monkeypatch):
  """Shared evaluation whenever it is asked for, whatever the cost model would pick.

  Test circuits are tiny, so the cost model (`_evaluate._shared_schedule`) would evaluate
  them independently and every "shared" test would silently test the baseline. The
  cost model's own test restores the thresholds.
  """
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_SAVING", -np.inf)
  monkeypatch.setattr(_evaluate, "_MIN_SHARED_WORK", -np.inf)


@pytest.fixture
def key() -> jax.Array:
  """A fixed JAX PRNG key."""
  return jax.random.key(0)


@pytest.fixture
def rng() -> np.random.Generator:
  """A fixed NumPy Generator (a fresh one per test, so tests do not depend on order)."""
  return np.random.default_rng(20240611)


@pytest.fixture
def float32():
  """Runs the test with x64 off (float32/complex64), restoring the setting afterwards."""
  with _reference.float32_mode():
    yield


@pytest.fixture(params=[True, False], ids=["float64", "float32"])
def x64(request):
  """Runs the test once with x64 on and once with it off; the value is the setting."""
  if request.param:
    yield True
  else:
    with _reference.float32_mode():
      yield False
