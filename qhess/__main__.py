"""`python -m qhess`: a short demonstration."""

import jax
import jax.numpy as jnp

import qhess

jax.config.update("jax_enable_x64", True)


@qhess.circuit(wires=2)
def circuit(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


def main() -> None:
  x = jnp.array([0.5, 0.2])
  print("circuit:")
  print(circuit.tape(x).draw(decimals=2))
  print(f"value  <Z0 Z1> at x = {x.tolist()}: {float(circuit(x)):.8f}")
  print("autodiff Hessian through the simulator:")
  print(jax.hessian(circuit)(x))


if __name__ == "__main__":
  main()
