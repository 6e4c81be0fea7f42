"""One process of a two-process qhess run on localhost; started by test_distributed.py.

Usage (one command per process, e.g. with two forced host devices each)::

  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    python tests/_distributed_worker.py 127.0.0.1:PORT 2 PROCESS_ID

Every process runs the same program: `jax.distributed.initialize` joins the processes,
`jax.devices()` then lists the devices of all of them, and ``qhess.hessian(circuit,
devices=jax.devices())`` shards the shifted circuits over all of them. CPU computations
across processes use JAX's CPU collectives (gloo over TCP, the default of
``jax_cpu_collectives_implementation``).
"""

import sys

import jax

coordinator, num_processes, process_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                           process_id=process_id, initialization_timeout=60)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import qhess  # noqa: E402

assert jax.process_count() == num_processes, jax.process_count()
n_local = len(jax.local_devices())
assert len(jax.devices()) == num_processes * n_local, jax.devices()


@qhess.circuit(wires=3)
def circuit(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  qhess.Rot(x[2], jnp.sin(x[3]), x[0] * x[1], wires=2)
  qhess.CNOT(wires=(2, 0))
  return qhess.expval(qhess.Z(0) @ qhess.X(2) + 0.5 * qhess.Y(1)), qhess.probs(wires=(1, 2))


x = jnp.array([0.5, 0.2, -0.3, 0.8])
expected = qhess.hessian(circuit)(x)  # on this process's first device only
for evaluation in ("shared", "independent"):
  for batch_size in (None, 6):
    got = qhess.hessian(circuit, devices=jax.devices(), batch_size=batch_size,
                        evaluation=evaluation)(x)
    for g, e in zip(got, expected):
      # A global array on all processes' devices, replicated, so every process can read
      # it (np.asarray); a sharded one would need multihost_utils.process_allgather.
      assert not g.is_fully_addressable and g.sharding.is_fully_replicated, g.sharding
      np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=0, atol=1e-12)

# The points really are partitioned over all processes' devices.
from qhess.simulate import kernel as _kernel

tape = circuit.tape(x)
index, shift = np.zeros((10, 2), np.int32), np.zeros((10, 2))
compiled = _kernel._run_points.lower(
    _kernel.kernel_key(tape), tape.params, jnp.asarray(index), jnp.asarray(shift),
    tape.consts, 1000, tuple(jax.devices())).compile()
assert f"num_partitions={len(jax.devices())}" in compiled.as_text(), "not partitioned"
print(f"process {process_id}: distributed OK over {len(jax.devices())} devices", flush=True)
jax.distributed.shutdown()
