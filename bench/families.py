"""Circuit families for the benchmarks, each as a qhess circuit and as a PennyLane QNode.

Not a script: `bench/run.py --families` times them (see its docs). Each family is a
function ``(n_wires, n_layers, seed) -> Family(circuit, params, qnode)``: the circuit is
written once, for qhess; the PennyLane QNode of the same circuit (same gates, wires,
parameter map and observable, for ``qml.gradients.param_shift_hessian``) is derived from
its recorded tape by `pennylane_qnode`, so the two cannot drift apart.

Families (``n`` wires, ``L`` layers, ``P`` gate arguments):

- ``hea_a``: hardware-efficient ansatz, per layer ``RY`` then ``RZ`` wire by wire, then
  ``CNOT(i, i+1)``; ``expval(sum_i Z_i Z_{i+1})``; params ``(2nL,)``, ``P = 2nL``
  (`kernel.hea_circuit`).
- ``hea_b``: the same gates, parameter map and Hessian, in another textual order: ``RY``
  on every wire, then ``RZ`` on every wire, then the ladder.
- ``sel``: strongly entangling layers, as PennyLane's ``StronglyEntanglingLayers``:
  ``Rot`` on every wire, then ``CNOT(i, (i + r) mod n)`` for every ``i``, with range
  ``r = (l mod (n - 1)) + 1`` in layer ``l``; ``expval(sum_i Z_i Z_{i+1})``; params
  ``(L, n, 3)``, ``P = 3nL``.
- ``qaoa``: QAOA for MaxCut on the ``n``-node ring: ``Hadamard`` on every wire, then per
  layer one ``γ_l`` feeding ``IsingZZ`` on every ring edge and one ``β_l`` feeding ``RX``
  on every wire; the cost ``expval(sum_edges Z_i Z_j)``; params ``(L, 2)`` (tied:
  ``P = 2nL`` gate arguments from ``2L`` inputs).
- ``chem``: chemistry-style: ``PauliX`` on the even wires (a Néel reference state),
  then per layer ``IsingXX`` and ``IsingYY`` on every bond ``(i, i+1)``, ``MultiRZ`` on
  alternating triples and ``PauliRot("XXXY")`` on disjoint quadruples; the Heisenberg
  energy ``expval(sum_i X_i X_{i+1} + Y_i Y_{i+1} + Z_i Z_{i+1})`` (X and Y terms: the
  Z-diagonal measurement paths do not apply); params ``(P,)``.
- ``random``: a seeded random circuit over the whole gate catalogue
  (``qhess._ops.GATE_NAMES``): ``3n`` gates per layer taken from consecutive random
  permutations of the catalogue (so every gate appears once the circuit has as many
  gates), random wires; Pauli words and ``MultiRZ`` / ``PauliRot`` widths random;
  ``QubitUnitary`` a fixed random unitary; every parametrized gate its own arguments;
  a random 2-local Pauli sum ``sum_i P_i P'_{i+1}`` (letters from XYZ); params ``(P,)``.

Examples:
  >>> import families
  >>> fam = families.FAMILIES["qaoa"](4, 2, 0, device=None)
  >>> fam.params.shape, fam.circuit.tape(fam.params).num_params
  ((2, 2), 16)
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Callable, NamedTuple

import numpy as np

_HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
try:
  import qhess  # installed: `pip install -e .`
except ImportError:  # a checkout: the repository root is this folder's parent
  sys.path.insert(0, str(_HERE.parent))
  import qhess
from kernel import hea_circuit  # noqa: E402
from qhess._ops import CATALOGUE, GATE_NAMES  # noqa: E402


class Family(NamedTuple):
  """One instance of a circuit family.

  Attributes:
    circuit: the `qhess.Circuit`, a function of ``params``.
    params: float64 NumPy array, the point the Hessian is taken at (shape per family).
    qnode: the same circuit as a PennyLane QNode on the requested device (a function of
      a ``pennylane.numpy`` array shaped like ``params``), or None without a device.
  """

  circuit: Any
  params: np.ndarray
  qnode: Any


def _zz_chain(n: int):
  obs = qhess.Z(0) @ qhess.Z(1)
  for i in range(1, n - 1):
    obs = obs + qhess.Z(i) @ qhess.Z(i + 1)
  return obs


def _angles(rng: np.random.Generator, shape) -> np.ndarray:
  return rng.uniform(0, 2 * np.pi, shape)


def _family(circuit, params: np.ndarray, device: str | None) -> Family:
  qnode = None if device is None else pennylane_qnode(circuit, params, device)
  return Family(circuit, params, qnode)


def _check_size(name: str, n_wires: int, n_layers: int, min_wires: int) -> None:
  if n_wires < min_wires:
    raise ValueError(f"family {name!r}: `n_wires` must be at least {min_wires}; "
                     f"got {n_wires}.")
  if n_layers < 1:
    raise ValueError(f"family {name!r}: `n_layers` must be at least 1; got {n_layers}.")


def hea_a(n_wires: int, n_layers: int, seed: int, *,
          device: str | None = "lightning.qubit") -> Family:
  """Hardware-efficient ansatz, RY·RZ wire by wire, then the CNOT ladder."""
  _check_size("hea_a", n_wires, n_layers, 2)
  params = _angles(np.random.default_rng(seed), 2 * n_wires * n_layers)
  return _family(hea_circuit(n_wires, n_layers), params, device)


def hea_b(n_wires: int, n_layers: int, seed: int, *,
          device: str | None = "lightning.qubit") -> Family:
  """`hea_a`'s gates in blocked order: RY on all wires, RZ on all wires, the ladder.

  Same seed, same parameters: the Hessian equals `hea_a`'s.
  """
  _check_size("hea_b", n_wires, n_layers, 2)
  params = _angles(np.random.default_rng(seed), 2 * n_wires * n_layers)
  return _family(hea_circuit(n_wires, n_layers, order="blocked"), params, device)


def strongly_entangling(n_wires: int, n_layers: int, seed: int, *,
                        device: str | None = "lightning.qubit") -> Family:
  """Strongly entangling layers: Rot on every wire, a CNOT ring of range (l mod (n-1)) + 1."""
  _check_size("sel", n_wires, n_layers, 2)
  n = n_wires

  @qhess.circuit(wires=n)
  def sel(x):  # x: (L, n, 3)
    for layer in range(n_layers):
      for w in range(n):
        qhess.Rot(x[layer, w, 0], x[layer, w, 1], x[layer, w, 2], wires=w)
      r = layer % (n - 1) + 1  # PennyLane's default ranges
      for w in range(n):
        qhess.CNOT(wires=(w, (w + r) % n))
    return qhess.expval(_zz_chain(n))

  params = _angles(np.random.default_rng(seed), (n_layers, n, 3))
  return _family(sel, params, device)


def qaoa_maxcut(n_wires: int, n_layers: int, seed: int, *,
                device: str | None = "lightning.qubit") -> Family:
  """QAOA MaxCut on the ring: one γ per layer for every IsingZZ, one β for every RX."""
  _check_size("qaoa", n_wires, n_layers, 3)
  n = n_wires
  edges = [(i, (i + 1) % n) for i in range(n)]
  cost = qhess.Z(edges[0][0]) @ qhess.Z(edges[0][1])
  for i, j in edges[1:]:
    cost = cost + qhess.Z(i) @ qhess.Z(j)

  @qhess.circuit(wires=n)
  def qaoa(x):  # x: (L, 2) = (γ_l, β_l)
    for w in range(n):
      qhess.Hadamard(wires=w)
    for layer in range(n_layers):
      for i, j in edges:
        qhess.IsingZZ(x[layer, 0], wires=(i, j))
      for w in range(n):
        qhess.RX(x[layer, 1], wires=w)
    return qhess.expval(cost)

  params = _angles(np.random.default_rng(seed), (n_layers, 2))
  return _family(qaoa, params, device)


def chemistry(n_wires: int, n_layers: int, seed: int, *,
              device: str | None = "lightning.qubit") -> Family:
  """IsingXX/YY bonds, MultiRZ triples, PauliRot quadruples; a Heisenberg observable."""
  _check_size("chem", n_wires, n_layers, 4)
  n = n_wires
  heis = qhess.X(0) @ qhess.X(1) + qhess.Y(0) @ qhess.Y(1) + qhess.Z(0) @ qhess.Z(1)
  for i in range(1, n - 1):
    heis = heis + qhess.X(i) @ qhess.X(i + 1) + qhess.Y(i) @ qhess.Y(i + 1) + (
        qhess.Z(i) @ qhess.Z(i + 1))
  per_layer = [2 * (n - 1) + len(range(layer % 2, n - 2, 2)) + len(range(0, n - 3, 3))
               for layer in range(n_layers)]

  @qhess.circuit(wires=n)
  def chem(x):  # x: (P,)
    for w in range(0, n, 2):
      qhess.PauliX(wires=w)
    k = 0
    for layer in range(n_layers):
      for i in range(n - 1):
        qhess.IsingXX(x[k], wires=(i, i + 1))
        qhess.IsingYY(x[k + 1], wires=(i, i + 1))
        k += 2
      for i in range(layer % 2, n - 2, 2):
        qhess.MultiRZ(x[k], wires=(i, i + 1, i + 2))
        k += 1
      for i in range(0, n - 3, 3):
        qhess.PauliRot(x[k], "XXXY", wires=(i, i + 1, i + 2, i + 3))
        k += 1
    return qhess.expval(heis)

  params = _angles(np.random.default_rng(seed), sum(per_layer))
  return _family(chem, params, device)


def _random_unitary(rng: np.random.Generator, k: int) -> np.ndarray:
  z = rng.standard_normal((2**k, 2**k)) + 1j * rng.standard_normal((2**k, 2**k))
  q, r = np.linalg.qr(z)
  return q * (np.diag(r) / np.abs(np.diag(r)))  # Haar-distributed (Mezzadri 2007)


def random_circuit(n_wires: int, n_layers: int, seed: int, *,
                   device: str | None = "lightning.qubit") -> Family:
  """A seeded random circuit over the whole gate catalogue, 3n gates per layer."""
  _check_size("random", n_wires, n_layers, 3)
  n = n_wires
  rng = np.random.default_rng(seed)
  names = sorted(GATE_NAMES)  # unitary gates only (no channels or conjugates)
  gates, order = [], []  # gates: (name, wires, n_args, extra)
  for _ in range(3 * n * n_layers):
    if not order:
      order = list(rng.permutation(names))
    name = order.pop()
    spec = CATALOGUE[name]
    k = spec.n_wires or int(rng.integers(1, 4))  # MultiRZ, PauliRot, QubitUnitary: 1-3
    wires = tuple(int(w) for w in rng.choice(n, size=k, replace=False))
    extra = None
    if name == "PauliRot":
      extra = "".join(rng.choice(list("XYZ"), size=k))
    elif name == "QubitUnitary":
      extra = _random_unitary(rng, k)
    gates.append((name, wires, spec.n_params, extra))
  words = ["".join(rng.choice(list("XYZ"), size=2)) for _ in range(n - 1)]
  obs = None
  for i, word in enumerate(words):
    term = getattr(qhess, word[0])(i) @ getattr(qhess, word[1])(i + 1)
    obs = term if obs is None else obs + term
  n_params = sum(g[2] for g in gates)

  @qhess.circuit(wires=n)
  def random(x):  # x: (P,)
    k = 0
    for name, wires, n_args, extra in gates:
      args = [x[k + a] for a in range(n_args)]
      k += n_args
      if name == "MultiRZ":
        qhess.MultiRZ(args[0], wires=wires)
      elif name == "PauliRot":
        qhess.PauliRot(args[0], extra, wires=wires)
      elif name == "QubitUnitary":
        qhess.QubitUnitary(extra, wires=wires)
      else:
        getattr(qhess, name)(*args, wires=wires)
    return qhess.expval(obs)

  params = _angles(rng, n_params)
  return _family(random, params, device)


FAMILIES: dict[str, Callable[..., Family]] = {
    "hea_a": hea_a, "hea_b": hea_b, "sel": strongly_entangling, "qaoa": qaoa_maxcut,
    "chem": chemistry, "random": random_circuit,
}
DESCRIPTIONS = {
    "hea_a": "hardware-efficient ansatz, RY·RZ wire by wire + CNOT ladder; Σ Z_i Z_i+1",
    "hea_b": "hardware-efficient ansatz, RY on all wires, RZ on all wires + CNOT ladder "
             "(hea_a's gates and Hessian, blocked order); Σ Z_i Z_i+1",
    "sel": "strongly entangling layers: Rot on every wire + CNOT ring of range "
           "(l mod (n-1)) + 1; Σ Z_i Z_i+1",
    "qaoa": "QAOA MaxCut on the ring: Hadamards, per layer γ → every IsingZZ, β → every "
            "RX (tied); Σ_edges Z_i Z_j",
    "chem": "IsingXX/YY bonds, MultiRZ triples, PauliRot XXXY on a Néel state; "
            "Heisenberg Σ XX + YY + ZZ",
    "random": "seeded random circuit over the whole gate catalogue, 3n gates per layer; "
              "random 2-local Pauli sum",
}


# ------------------------------------------------------------------------ PennyLane


def parameter_map(circuit, params: np.ndarray) -> np.ndarray:
  """Which entry of ``params`` (flat index) feeds each gate argument of the tape.

  Records the tape at marker values ``0.25, 1.25, 2.25, ...`` and reads them back, so it
  holds for circuits whose gate arguments are plain entries of ``params`` (every family
  here).

  Returns:
    int array of shape ``(P,)``.

  Raises:
    ValueError: when a gate argument is not one of the entries.
  """
  markers = np.arange(np.size(params), dtype=np.float64).reshape(np.shape(params)) + 0.25
  got = np.asarray(circuit.tape(markers).params, dtype=np.float64)
  index = np.rint(got - 0.25).astype(int)
  if not np.allclose(index + 0.25, got, atol=1e-6, rtol=0) or np.any(index < 0):
    raise ValueError("`circuit`: every gate argument must be an entry of `params` for the "
                     "PennyLane translation; got a computed argument.")
  return index


def _pennylane_observable(spec):
  import pennylane as qml
  paulis = {"X": qml.X, "Y": qml.Y, "Z": qml.Z}
  terms = []
  for coef, factors in spec.terms:
    if any(f[0] not in paulis for f in factors):
      raise ValueError(f"only Pauli observables translate to PennyLane; got {factors}.")
    word = [paulis[c](w) for c, w in factors]
    op = qml.prod(*word) if len(word) > 1 else (word[0] if word else qml.Identity(0))
    terms.append(op if coef == 1 else qml.s_prod(coef, op))
  return qml.sum(*terms) if len(terms) > 1 else terms[0]


def pennylane_ops(tape, arg) -> list:
  """The tape's gates as PennyLane operations; ``arg(i)`` gives gate argument ``i``."""
  import pennylane as qml
  ops = []
  for op in tape.operations:
    args = [arg(i) for i in op.param_index]
    if op.name == "PauliRot":
      ops.append(qml.PauliRot(*args, op.hyper, wires=op.wires))
    elif op.name == "QubitUnitary":
      ops.append(qml.QubitUnitary(np.asarray(tape.consts[op.hyper]), wires=op.wires))
    else:
      ops.append(getattr(qml, op.name)(*args, wires=op.wires))
  return ops


def pennylane_tape(tape):
  """A qhess tape as a PennyLane ``QuantumScript`` of its gate arguments (NumPy values)."""
  import pennylane as qml
  if len(tape.measurements) != 1 or tape.measurements[0].kind != "expval":
    raise ValueError("`tape`: only a single expval translates; got "
                     f"{[m.kind for m in tape.measurements]}.")
  theta = np.asarray(tape.params, dtype=np.float64)
  ops = pennylane_ops(tape, lambda i: theta[i])
  script = qml.tape.QuantumScript(ops, [qml.expval(_pennylane_observable(tape.measurements[0]))])
  # Every NumPy parameter of a script is trainable, QubitUnitary's matrix too (which
  # param_shift_hessian refuses): keep the gate arguments only, in the tape's order.
  trainable, k = [], 0
  for op in ops:
    if not isinstance(op, qml.QubitUnitary):
      trainable += range(k, k + len(op.data))
    k += len(op.data)
  script.trainable_params = trainable
  return script


def pennylane_qnode(circuit, params: np.ndarray, device: str = "lightning.qubit"):
  """The circuit as a PennyLane QNode of an array shaped like ``params``.

  Parameter-shift differentiation (``max_diff=2``), for
  ``qml.gradients.param_shift_hessian(qnode)(pnp.array(params, requires_grad=True))``;
  tied parameters (one entry feeding several gates) stay tied, as in the qhess circuit.
  """
  import pennylane as qml
  tape = circuit.tape(params)
  if len(tape.measurements) != 1 or tape.measurements[0].kind != "expval":
    raise ValueError("`circuit`: only a single expval translates; got "
                     f"{[m.kind for m in tape.measurements]}.")
  index = parameter_map(circuit, params)
  obs = _pennylane_observable(tape.measurements[0])
  dev = qml.device(device, wires=tape.n_wires)

  def fn(x):
    flat = qml.math.reshape(x, (-1,))
    pennylane_ops(tape, lambda i: flat[index[i]])  # made in the QNode's context: queued
    return qml.expval(obs)

  return qml.QNode(fn, dev, diff_method="parameter-shift", max_diff=2)
