"""Saved experiments (qhess.interop.persist), parameter-shift gradients, hybrid tapes.

Saved posts are loaded in a new Python process (no circuit there) and must give what
the original post gives, to 1e-12; a newer format version, a foreign and a corrupted
file are refused. `gradient_experiments` and `qhess.gradient` are checked against
`jax.grad` (exact probabilities as counts; sampled within 4.5 standard errors), and
`count_circuits(qhess.gradient)` against what runs. `hessian_tapes(circuit,
hybrid=True)` run on PennyLane's device and on Qiskit's estimator gives
`qhess.hessian`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.interop import mitigation as _mitigation
from qhess.interop import primitives as _primitives

X = jnp.array([0.5, -0.3, 0.8])


# Classical processing (non-linear, and coefficients computed from the inputs), X, Y
# and Z terms, a variance: the chain rule's every part.
@qhess.circuit(wires=3)
def _f(x):
  qhess.RY(x[0], wires=0)
  qhess.RX(jnp.sin(x[1]) * x[0], wires=1)
  qhess.CNOT(wires=(0, 1))
  qhess.IsingXX(x[2], wires=(1, 2))
  qhess.RZ(0.4, wires=2)
  qhess.RY(2 * x[2], wires=2)
  return (qhess.expval(x[1] * qhess.Z(0) @ qhess.Z(1) + 0.7 * qhess.X(2) - 0.5 * qhess.Y(1)),
          qhess.var(qhess.X(0)))


def _exact_counts(experiments, shots=1000):
  """Exact outcome probabilities times shots, in qhess's (big-endian) order."""
  return [shots * np.asarray(p) for p in qhess.execute([e.tape for e in experiments])]


def _max_diff(a, b) -> float:
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(la, lb))


def _in_new_process(code: str) -> None:
  subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)


# ------------------------------------------------------------------------ save and load


def test_saved_posts_give_the_same_derivatives_in_a_new_process(tmp_path):
  experiments, post = qhess.hessian_experiments(_f, shots=1000, bit_order="big",
                                                return_stderr=True)(X)
  g_experiments, g_post = qhess.gradient_experiments(_f, shots=(500, 1000),
                                                     bit_order="big")(X)
  tapes, t_post = qhess.hessian_tapes(_f, hybrid=True)(X)
  counts, g_counts = _exact_counts(experiments), _exact_counts(g_experiments, 500)
  rng = np.random.default_rng(0)  # noisy counts too: the standard errors must agree
  noisy = [rng.multinomial(1000, c / c.sum()) for c in counts]
  qhess.save_experiments(tmp_path / "h.npz", (experiments, post))
  qhess.save_experiments(tmp_path / "g.npz", (g_experiments, g_post))
  qhess.save_experiments(tmp_path / "t.npz", (tapes, t_post))
  results = qhess.execute(tapes)
  np.savez(tmp_path / "in.npz", *counts, *noisy, *g_counts,
           *[r for res in results for r in res])
  _in_new_process(f"""
      import jax, numpy as np, qhess
      jax.config.update("jax_enable_x64", True)
      d = {str(tmp_path)!r}
      data = np.load(d + "/in.npz")
      arrays = [data[f"arr_{{i}}"] for i in range(len(data.files))]
      h, g, t = (qhess.load_experiments(d + f"/{{n}}.npz") for n in "hgt")
      n, m, k = len(h.experiments), len(g.experiments), {len(results[0])}
      rs = arrays[2 * n + m:]  # k raw outputs per tape
      out = {{"h": h(arrays[:n]), "noisy": h(arrays[n:2 * n]),
             "g": g(arrays[2 * n:2 * n + m]),
             "t": t([tuple(rs[i:i + k]) for i in range(0, len(rs), k)])}}
      leaves = jax.tree_util.tree_leaves(out)
      np.savez(d + "/out.npz", *[np.asarray(x) for x in leaves])
  """)
  out = np.load(tmp_path / "out.npz")
  expected = {"h": post(counts), "noisy": post(noisy), "g": g_post(g_counts),
              "t": t_post(results)}
  leaves = jax.tree_util.tree_leaves(expected)
  assert len(out.files) == len(leaves)
  for i, leaf in enumerate(leaves):
    np.testing.assert_allclose(out[f"arr_{i}"], leaf, atol=1e-12, rtol=0)
  assert _max_diff(post(counts)[0], jax.hessian(_f)(X)) < 1e-10
  assert _max_diff(t_post(results), qhess.hessian(_f)(X)) < 1e-10


def test_saved_pubs_read_a_sampler_result_after_loading(tmp_path):
  pytest.importorskip("qiskit")
  from qiskit.primitives import StatevectorSampler  # pylint: disable=C0415

  experiments, post = qhess.hessian_experiments(_f, shots=2000, return_stderr=True)(X)
  pubs = qhess.to_sampler_pubs(experiments)
  result = StatevectorSampler(seed=3).run(pubs).result()
  qhess.save_experiments(tmp_path / "h.npz", (experiments, post), pubs=pubs)
  loaded = qhess.load_experiments(tmp_path / "h.npz")
  assert loaded.pubs.rows[0].tolist() == pubs.rows[0].tolist()
  assert loaded.pubs.bit_wires == pubs.bit_wires and loaded.pubs.token == pubs.token
  assert _max_diff(loaded(result, loaded.pubs), post(result, pubs)) < 1e-12
  with pytest.raises(ValueError, match=r"for a loaded post, post.pubs"):
    loaded(result, pubs)
  # ZNE's PUBs (one set per scale factor, extrapolated), here the same PUBs twice with
  # Richardson's weights at (1, 3), without mitiq's folding (whose import takes 8 s)
  zne = _mitigation.ZNE.__new__(_mitigation.ZNE)
  zne.scale_factors, zne.weights, zne.variance_factor = (1.0, 3.0), np.array([1.5, -0.5]), 2.5
  zne.folding, zne.seed, zne.extrapolation = "global", None, "richardson"
  n = len(pubs)
  zne_pubs = _primitives.SamplerPubs(
      list(pubs) * 2, pubs.rows * 2, pubs.bit_wires * 2, experiments, pubs.token,
      [tuple(w) for w in pubs.bit_wires] * 2, [0] * n + [1] * n, zne)
  arrays = [_primitives._register_counts(r.data.qhess, len(w))  # pylint: disable=W0212
            for r, w in zip(result, pubs.bit_wires)]
  arrays = arrays + [np.roll(a, 1, axis=0) for a in arrays]  # other counts at λ = 3
  qhess.save_experiments(tmp_path / "z.npz", (experiments, post), pubs=zne_pubs)
  loaded = qhess.load_experiments(tmp_path / "z.npz")
  assert loaded.pubs.scales == zne_pubs.scales and loaded.pubs.qubits == zne_pubs.qubits
  np.testing.assert_array_equal(loaded.pubs.zne.weights, zne.weights)
  assert _max_diff(loaded(arrays, loaded.pubs), post(arrays, zne_pubs)) < 1e-12


def test_newer_foreign_and_corrupted_files_are_refused(tmp_path):
  experiments, post = qhess.gradient_experiments(_f, shots=100)(X)
  path = tmp_path / "g.npz"
  qhess.save_experiments(path, (experiments, post))
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  header = json.loads(arrays["header"].tobytes())
  assert header["format"] == "qhess-experiments" and header["version"] == 1
  header["version"] = 2
  arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
  np.savez(tmp_path / "newer.npz", **arrays)
  with pytest.raises(ValueError, match=r"format version 2 .* reads versions up to 1\. "
                     r"Upgrade qhess"):
    qhess.load_experiments(tmp_path / "newer.npz")
  np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
  (tmp_path / "text.npz").write_text("hello")
  for name in ("foreign.npz", "text.npz"):
    with pytest.raises(ValueError, match=r"is not a qhess experiments file"):
      qhess.load_experiments(tmp_path / name)
  data = path.read_bytes()
  (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match=r"not a qhess experiments file .*corrupted"):
    qhess.load_experiments(tmp_path / "cut.npz")
  del arrays["plan.grad_coef"]
  header["version"] = 1
  arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
  np.savez(tmp_path / "missing.npz", **arrays)
  with pytest.raises(ValueError, match=r"corrupted qhess experiments file.*grad_coef"):
    qhess.load_experiments(tmp_path / "missing.npz")
  with pytest.raises(TypeError, match=r"must be \(experiments, post\)"):
    qhess.save_experiments(path, (experiments, "post"))
  with pytest.raises(ValueError, match=r"not the .* of this post"):
    qhess.save_experiments(path, (experiments[:-1], post))


# ---------------------------------------------------------------------------- gradients


def test_gradient_experiments_against_jax_grad():
  expected = jax.jacobian(_f)(X)
  experiments, post = qhess.gradient_experiments(_f, shots=4000, bit_order="big",
                                                 return_stderr=True)(X)
  g, err = post(_exact_counts(experiments))
  assert _max_diff(g, expected) < 1e-10
  rng = np.random.default_rng(7)
  counts = [rng.multinomial(4000, c / c.sum()) for c in _exact_counts(experiments)]
  g, err = post(counts)
  for a, b, e in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(expected),
                     jax.tree_util.tree_leaves(err)):
    assert np.all(np.abs(a - b) <= 4.5 * e + 1e-12)
  count = qhess.optimize.count_circuits(qhess.gradient, _f, shots=4000)(X)
  assert count.circuits == len(experiments)
  assert count.shots == sum(e.shots for e in experiments)


def test_gradient_exact_sampled_and_counted():
  @qhess.circuit(wires=2)
  def g(x):
    qhess.RX(x[0] ** 2, wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    qhess.RZ(0.3, wires=1)
    return qhess.expval(qhess.Z(0) @ qhess.X(1) - 0.4 * qhess.Z(1))

  x = jnp.array([0.7, 1.1])
  expected = jax.grad(g)(x)
  np.testing.assert_allclose(qhess.gradient(g)(x), expected, atol=1e-10, rtol=0)
  np.testing.assert_allclose(qhess.gradient(g, evaluation="adjoint")(x), expected,
                             atol=1e-10, rtol=0)
  grad, err = qhess.gradient(g, shots=20_000, return_stderr=True)(x, key=jax.random.key(1))
  assert np.all(np.abs(grad - expected) <= 4.5 * err)
  # RX: 2 points; CRY (frequencies 1/2 and 1): 4; the constant RZ: none.
  count = qhess.optimize.count_circuits(qhess.gradient, g)(x)
  assert (count.points, count.groups) == (6, 2)
  theta = qhess.gradient(g, hybrid=False)(x)  # θ = (x0², x1, 0.3)
  assert theta.shape == (3,)
  np.testing.assert_allclose(theta[:2] * jnp.array([2 * x[0], 1.0]), expected, atol=1e-10)


# ---------------------------------------------------------------- hybrid tapes on devices


def test_hybrid_tapes_on_pennylane_and_qiskit_devices(tmp_path):
  qml = pytest.importorskip("pennylane")
  pytest.importorskip("qiskit")
  from qiskit.primitives import StatevectorEstimator  # pylint: disable=C0415
  from qiskit.quantum_info import SparsePauliOp  # pylint: disable=C0415

  dev = qml.device("default.qubit", wires=3)

  @qml.qnode(dev)
  def qnode(x):
    qml.RX(x[0], wires=0)
    qml.RY(2 * x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RZ(x[0] * x[1], wires=1)
    qml.IsingXX(x[2], wires=[1, 2])
    qml.RY(jnp.cos(x[2]), wires=2)
    qml.Rot(x[0], 0.2, x[2], wires=0)
    return qml.expval(0.5 * qml.Z(0) @ qml.Z(1) + qml.X(2) - 0.3 * qml.Y(1))

  circuit = qhess.from_pennylane(qnode)
  expected = qhess.hessian(circuit)(X)
  assert expected.shape == (3, 3) and circuit.tape(X).num_params == 8
  tapes, post = qhess.hessian_tapes(circuit, hybrid=True)(X)
  results = qml.execute([qhess.to_pennylane(t) for t in tapes], dev)
  assert _max_diff(post(results), expected) < 1e-10
  gate_tapes, gate_post = qhess.hessian_tapes(circuit)(X)
  assert gate_post(qhess.execute(gate_tapes)).shape == (8, 8)

  def pauli_sum(spec, n):  # a raw expval's Pauli sum, Qiskit's labels (qubit 0 last)
    labels = []
    for _, factors in spec.terms:
      label = ["I"] * n
      for char, wire in factors:
        label[n - 1 - wire] = char
      labels.append("".join(label))
    return SparsePauliOp(labels, [c for c, _ in spec.terms])

  pubs = [(qhess.to_qiskit(t, measure=False), pauli_sum(t.measurements[0], 3))
          for t in tapes]
  evs = [np.asarray(r.data.evs) for r in StatevectorEstimator().run(pubs).result()]
  assert _max_diff(post(evs), expected) < 1e-10
  qhess.save_experiments(tmp_path / "t.npz", (tapes, post))
  assert _max_diff(qhess.load_experiments(tmp_path / "t.npz")(evs), expected) < 1e-10
  with pytest.raises(ValueError, match=r"pass the circuit"):
    qhess.hessian_tapes(circuit.tape(X), hybrid=True)
