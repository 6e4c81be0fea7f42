"""Run by test_sharding.py in a subprocess with 4 forced host devices."""

import jax
import jax.numpy as jnp
import numpy as np

import qhess

jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 4, jax.devices()


@qhess.circuit(wires=3)
def circuit(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  qhess.Rot(x[2], jnp.sin(x[3]), x[0] * x[1], wires=2)
  qhess.CNOT(wires=(2, 0))
  return qhess.expval(qhess.Z(0) @ qhess.X(2) + 0.5 * qhess.Y(1)), qhess.var(qhess.Z(1))


x = jnp.array([0.5, 0.2, -0.3, 0.8])
expected = qhess.hessian(circuit)(x)
# None: one chunk of all points (as any batch_size above their number); 6: several chunks.
for batch_size in (None, 6):
  got = qhess.hessian(circuit, devices=jax.devices(), batch_size=batch_size)(x)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
v, g, h = qhess.value_grad_and_hessian(circuit, devices=jax.devices()[:3])(x)
np.testing.assert_allclose(h[0], expected[0], rtol=0, atol=1e-12)
print("sharded OK")

# The points really are partitioned: the compiled kernel runs on 4 devices.
from qhess.simulate import kernel as _kernel

tape = circuit.tape(x)
index = np.zeros((10, 2), np.int32)
shift = np.zeros((10, 2))
compiled = _kernel._run_points.lower(
    _kernel.kernel_key(tape), tape.params, jnp.asarray(index), jnp.asarray(shift),
    tape.consts, 1000, tuple(jax.devices())).compile()
assert "num_partitions=4" in compiled.as_text(), "kernel was not partitioned"
print("partitioned OK")

# evaluation="adjoint": the shifted rows sharded over the devices, chunked or not.
for batch_size in (None, 3):
  got = qhess.hessian(circuit, evaluation="adjoint", devices=jax.devices(),
                      batch_size=batch_size)(x)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=0, atol=1e-10)
print("adjoint sharded OK")
