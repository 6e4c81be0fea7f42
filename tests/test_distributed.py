"""A two-process run on localhost with jax.distributed gives the same Hessian.

Each process is `_distributed_worker.py` with two forced host (CPU) devices; after
`jax.distributed.initialize` the Hessian is sharded over all four devices of both
processes, with JAX's CPU collectives (gloo over TCP) between them. Only 127.0.0.1 is
used. Where this jaxlib has no CPU collectives the test skips with the worker's error.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

_TIMEOUT = 120  # seconds for both processes together
# Errors that mean the CPU collectives are unavailable here (skip), not a qhess bug.
# Matched against the last line of a failed worker's stderr (the exception).
_NO_COLLECTIVES = ("gloo", "Gloo", "collectives", "Multiprocess computations aren't implemented")


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _stop(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
  for p in procs:
    try:
      p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
      pass


def test_hessian_over_two_processes_equals_one_device():
  here = pathlib.Path(__file__).parent
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, str(here / "_distributed_worker.py"), address, "2", str(i)],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [None, None]
  deadline = time.monotonic() + _TIMEOUT
  try:
    # Waiting on one process while the other fails would hang the first until its own
    # timeout, so poll both and give up on all as soon as one fails.
    while any(o is None for o in outs):
      for i, p in enumerate(procs):
        if outs[i] is None and p.poll() is not None:
          outs[i] = (p.returncode, *p.communicate())
          if p.returncode != 0:
            break
      if any(o is not None and o[0] != 0 for o in outs):
        break
      if time.monotonic() > deadline:
        pytest.fail(f"two-process run did not finish within {_TIMEOUT} s")
      time.sleep(0.1)
  finally:
    _stop(procs)
  for i, out in enumerate(outs):
    if out is None:
      continue
    rc, stdout, stderr = out
    if rc != 0:
      last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {rc}"
      if any(s in last for s in _NO_COLLECTIVES):
        pytest.skip(f"JAX CPU collectives unavailable for multi-process runs here: {last}")
      pytest.fail(f"process {i} failed (exit status {rc}):\n{stderr[-3000:]}")
    assert f"process {i}: distributed OK over 4 devices" in stdout, stdout
