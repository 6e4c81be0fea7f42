"""Sharding the shifted circuits over several devices gives the same Hessian.

JAX fixes the device count at start-up, so the check runs in a subprocess with four
forced host (CPU) devices; see `_sharded_check.py`.
"""

import os
import pathlib
import subprocess
import sys


def test_hessian_sharded_over_four_devices_equals_one_device():
  here = pathlib.Path(__file__).parent
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run([sys.executable, str(here / "_sharded_check.py")], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "sharded OK" in proc.stdout and "partitioned OK" in proc.stdout
  assert "adjoint sharded OK" in proc.stdout
