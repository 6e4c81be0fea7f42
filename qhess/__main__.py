"""`python -m qhess`: a short demonstration.

Prints the parameter-shift Hessian of a two-qubit circuit, the 13 shifted circuits it is
computed from (two of them drawn), and its difference to ``jax.hessian`` through the
simulator.
"""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

import qhess

jax.config.update("jax_enable_x64", True)


@qhess.circuit(wires=2)
def circuit(x):
  qhess.RX(x[0], wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


def _pi(shift: float) -> str:
  """A shift as a multiple of π: ``+π/2``, ``-π``, ``+3π/2``, ``+2π``."""
  frac = Fraction(shift / np.pi).limit_denominator(8)
  num = {1: "+", -1: "-"}.get(frac.numerator, f"{frac.numerator:+d}")
  return f"{num}π" + (f"/{frac.denominator}" if frac.denominator > 1 else "")


def _indent(text: str) -> str:
  return "\n".join("  " + line for line in text.splitlines())


def main() -> None:
  x = jnp.array([0.5, 0.2])
  tape = circuit.tape(x)
  print(f"circuit at x = {x.tolist()}:")
  print(_indent(tape.draw(decimals=2)))
  print(f"\nvalue <Z0 Z1>: {float(circuit(x)):.8f}")

  hess = qhess.hessian(circuit)(x)
  print("\nparameter-shift Hessian, qhess.hessian(circuit)(x):")
  print(_indent(np.array2string(np.asarray(hess), precision=8)))

  tapes, post = qhess.hessian_tapes(tape)
  shifts = [np.asarray(t.params) - np.asarray(tape.params) for t in tapes]
  shifted = [tuple(np.flatnonzero(s)) for s in shifts]  # which arguments each tape shifts
  diagonal = " + ".join(f"{shifted.count((k,))} {op.name}"
                        for k, op in enumerate(tape.operations))
  print(f"\nshifted circuits, qhess.hessian_tapes(circuit.tape(x)): {len(tapes)}")
  print(f"  {shifted.count(())} unshifted, {diagonal} for the diagonal, "
        f"{sum(len(s) == 2 for s in shifted)} mixed")
  for i in (shifted.index((0,)), shifted.index((0, 1))):  # a diagonal one, a mixed one
    label = ", ".join(f"θ{k}{_pi(shifts[i][k])}" for k in shifted[i])
    print(f"tape {i} ({label}):")
    print(_indent(tapes[i].draw(decimals=2)))
  diff = float(jnp.max(jnp.abs(post(qhess.execute(tapes)) - hess)))
  print(f"max |post(execute(tapes)) - qhess.hessian|: {diff:.1e}")

  diff = float(jnp.max(jnp.abs(hess - jax.hessian(circuit)(x))))
  print(f"max |qhess.hessian - jax.hessian|:          {diff:.1e}")


if __name__ == "__main__":
  main()
