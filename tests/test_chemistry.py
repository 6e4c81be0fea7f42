"""Chemistry circuits from PennyLane (notebooks/chemistry.ipynb, issue 21, item 4): H2's
Hamiltonian from `qml.qchem` (differentiable Hartree-Fock) with `AllSinglesDoubles` and
`UCCSD`, circuit counts against PennyLane's `param_shift_hessian`, and UCCSD's fermionic
excitations, which PennyLane gives parameter frequencies but no generator: qhess records
each as one `Evolution` gate (generator read from its matrix) instead of decomposing it
into Pauli rotations sharing one angle (211 points instead of 31 for H2's Hessian).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import qhess

qml = pytest.importorskip("pennylane")
pnp = pytest.importorskip("pennylane.numpy")

TOL = dict(rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def h2():
  """H2 at 1.4 bohr: Pauli words as PennyLane ops, coefficients, HF state, excitations."""
  geometry = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.4]])
  H, n = qml.qchem.molecular_hamiltonian(["H", "H"], geometry, method="dhf")
  words = list(H.pauli_rep)
  ops = [w.operation() for w in words]
  coeffs = np.array([np.real(H.pauli_rep[w]) for w in words])
  singles, doubles = qml.qchem.excitations(2, n)
  return dict(n=n, ops=ops, c=coeffs, hf=qml.qchem.hf_state(2, n), singles=singles,
              doubles=doubles)


def _qnode(h2, template):
  n, hf, singles, doubles = h2["n"], h2["hf"], h2["singles"], h2["doubles"]
  s_wires, d_wires = qml.qchem.excitations_to_wires(singles, doubles)

  @qml.qnode(qml.device("default.qubit", wires=n))
  def energy(theta, c):
    if template == "AllSinglesDoubles":
      qml.AllSinglesDoubles(theta, wires=range(n), hf_state=hf, singles=singles,
                            doubles=doubles)
    else:
      qml.UCCSD(theta, wires=range(n), s_wires=s_wires, d_wires=d_wires, init_state=hf)
    return qml.expval(qml.Hamiltonian(c, h2["ops"]))

  return energy


@pytest.mark.parametrize("template", ["AllSinglesDoubles", "UCCSD"])
def test_h2_counts_and_hessian_match_pennylane(h2, template):
  qnode = _qnode(h2, template)
  circuit = qhess.from_pennylane(qnode)
  theta, c = jnp.array([0.11, -0.07, 0.23]), jnp.asarray(h2["c"])
  names = [op.name for op in circuit.tape(theta, c).operations]
  if template == "UCCSD":  # one gate per fermionic excitation, not 8 Pauli rotations
    assert names.count("Evolution") == 3 and "RZ" not in names
  theta_pl = pnp.array(np.asarray(theta), requires_grad=True)
  c_pl = pnp.array(h2["c"], requires_grad=False)
  pl_tapes, _ = qml.gradients.param_shift_hessian(
      qml.workflow.construct_tape(qnode)(theta_pl, c_pl))
  tape = circuit.tape(theta, c)
  product = qhess.hessian_tapes(tape)[0]
  diagonal = qhess.hessian_tapes(tape, off_diagonal_rule="diagonal")[0]
  points = qhess.optimize.count_circuits(qhess.hessian, circuit)(theta, c).points
  # 1 + 3P + 16 P(P-1)/2 with four-term rules; the diagonal rule: 7 per pair
  assert (len(pl_tapes), len(product), len(diagonal), points) == (58, 58, 31, 31)

  h_pl = np.array(qml.gradients.param_shift_hessian(qnode)(theta_pl, c_pl), dtype=float)
  h = qhess.hessian(circuit)(theta, c)
  np.testing.assert_allclose(h, h_pl, **TOL)
  np.testing.assert_allclose(float(circuit(theta, c)), float(qnode(theta_pl, c_pl)), **TOL)


def test_fermionic_excitation_generator_and_wide_fallback():
  theta = jnp.array([0.3, -0.8])
  obs = qml.Z(0) @ qml.X(2) + 0.5 * qml.Y(1) @ qml.Y(3) + qml.X(6)

  def qfunc(x):
    for w in range(9):
      qml.RY(0.2 + 0.1 * w, wires=w)
    qml.FermionicDoubleExcitation(x[0], wires1=[0, 1], wires2=[2, 3])
    qml.FermionicSingleExcitation(x[1], wires=range(9))  # 9 wires: decomposed
    return qml.expval(obs)

  qnode = qml.qnode(qml.device("default.qubit", wires=9))(qfunc)
  circuit = qhess.from_pennylane(qnode)
  names = [op.name for op in circuit.tape(theta).operations]
  assert names.count("Evolution") == 1 and "RZ" in names
  x_pl = pnp.array(np.asarray(theta), requires_grad=True)
  np.testing.assert_allclose(float(circuit(theta)), float(qnode(x_pl)), **TOL)
  np.testing.assert_allclose(qhess.hessian(circuit)(theta),
                             np.array(qml.gradients.param_shift_hessian(qnode)(x_pl)), **TOL)
