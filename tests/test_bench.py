"""Smoke tests of the benchmarks: ``bench/run.py --quick`` (also with ``--families``) and
``bench/kernel.py --quick`` run and write their JSON.

No timing assertions: only that the script exits 0 and writes results of the expected
shape (every method timed or with a stated reason, the Hessians checked against
``jax.hessian``).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
METHODS = ("qhess_default", "qhess_product", "qhess_diagonal", "jax_hessian")


def _run_quick(script: str, out: pathlib.Path, *args: str) -> dict:
  """Runs ``bench/<script> --quick --out <out> *args``; its JSON results.

  With this checkout first on ``PYTHONPATH``: the scripts import an installed ``qhess``
  before the checkout's, and the installed one may be another worktree's. The scripts'
  own per-case timeouts are off (0): on a loaded machine a compile can exceed them, and a
  smoke test must not depend on the machine's speed.
  """
  path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
  proc = subprocess.run(
      [sys.executable, f"bench/{script}", "--quick", "--out", str(out),
       "--size-timeout" if script == "kernel.py" else "--case-timeout", "0", *args], cwd=ROOT,
      capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": path})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(out.read_text())


def test_bench_run_quick(tmp_path):
  out = tmp_path / "x.json"
  # One case, smaller than --quick's two (4x1, 6x1): 2 wires, 4 parameters.
  data = _run_quick("run.py", out, "--cases", "2x1")
  assert {"meta", "cases"} <= data.keys()
  meta = data["meta"]
  for key in ("device", "jax_version", "dtype", "cpu_count", "loadavg_start", "qhess",
              "methods"):
    assert key in meta, key
  assert meta["dtype"] == "float64"
  assert [c["n_qubits"] for c in data["cases"]] == [2]
  for case in data["cases"]:
    for key in ("n_qubits", "layers", "n_params", "n_gates", "loadavg", "methods"):
      assert key in case, key
    assert case["n_params"] == 2 * case["n_qubits"] * case["layers"]
    assert set(METHODS) <= case["methods"].keys()
    for method in METHODS:
      row = case["methods"][method]
      assert row["status"] == "ok", (case["case"], method, row["status"])
      for key in ("median_s", "min_s", "max_s", "compile_s", "repeat", "times_s",
                  "ratio_to_default"):
        assert key in row, (method, key)
      assert row["min_s"] <= row["median_s"] <= row["max_s"]
    for method in METHODS[:3]:
      row = case["methods"][method]
      assert row["n_circuits"] > 0 and row["gate_apps_per_s"] > 0
      assert row["matches_jax"], (case["case"], method, row["max_abs_diff_vs_jax"])
  assert out.with_suffix(".md").read_text().count("| qhess_default |") == 1


def test_bench_kernel_quick(tmp_path):
  # Two sizes (one worker each), the smallest, one layer.
  rows = _run_quick("kernel.py", tmp_path / "k.json", "--sizes", "2", "3", "--layers", "1")["rows"]
  assert [r["n_qubits"] for r in rows] == [2, 3]
  assert all(r["layers"] == 1 for r in rows)
  for r in rows:
    assert r["status"] == "ok", r["status"]
    # The ansatz's passes after fusion: one per wire and layer (see bench/kernel.py).
    assert r["passes"] == r["n_qubits"] * r["layers"]
    assert r["min_s"] <= r["median_s"] and r["bandwidth_fraction"] > 0


def test_bench_run_families_quick(tmp_path):
  # qaoa (tied parameters: PennyLane's gate-argument Hessian contracted with the
  # parameter map), PennyLane on; the other families only change the circuit.
  out = tmp_path / "f.json"
  data = _run_quick("run.py", out, "--families", "qaoa", "--wires", "3",
                    "--pennylane")
  assert data["meta"]["families"] == ["qaoa"]
  rows = {r["family"]: r for r in data["families"]}
  assert rows.keys() == {"qaoa"}
  assert rows["qaoa"]["n_params"] == 6 and rows["qaoa"]["n_inputs"] == 2  # tied
  for row in rows.values():
    assert list(row["methods"]) == ["qhess_default", "qhess_shared",
                                    "qhess_independent_default_rule", "qhess_adjoint",
                                    "jax_hessian", "pl_lightning.qubit"]
    for method, r in row["methods"].items():
      assert r["status"] == "ok", (row["family"], method, r["status"])
      assert r["repeat"] == 1 and r["min_s"] <= r["median_s"] <= r["max_s"]
      if method != "jax_hessian":
        assert r["matches_jax"] and r["max_abs_diff_vs_jax"] < 1e-9, (row["family"], method)
      if method not in ("jax_hessian", "qhess_adjoint"):  # adjoint: other circuits
        assert r["n_circuits"] > 0
    # Shared and independent evaluation run the same circuits.
    assert (row["methods"]["qhess_default"]["n_circuits"]
            == row["methods"]["qhess_independent_default_rule"]["n_circuits"])
    s = row["summary"]
    assert s["n_circuits"] == row["methods"]["qhess_default"]["n_circuits"]
    for key in ("independent_over_default", "pennylane_over_default",
                "default_over_jax_hessian", "default_us_per_circuit", "default_compile_s",
                "default_first_call_s", "default_over_best"):
      assert s[key] is not None and s[key] > 0, key
    exact = ("qhess_shared", "qhess_independent_default_rule", "qhess_adjoint")
    assert s["best_exact_method"] == min(exact, key=lambda m: row["methods"][m]["median_s"])
    assert s["all_match_jax"]
  md = out.with_suffix(".md").read_text()
  assert md.count("| qhess default (auto) |") == 1 and "| qaoa | 3 × 1 |" in md


def _bench_module(name: str):
  """Imports ``bench/<name>.py`` (bench/ is not a package)."""
  sys.path.insert(0, str(ROOT / "bench"))
  try:
    return __import__(name)
  finally:
    sys.path.remove(str(ROOT / "bench"))


def test_bench_families_bad_input():
  import numpy as np
  import qhess

  families = _bench_module("families")
  kernel = _bench_module("kernel")
  to_pennylane = _bench_module("to_pennylane")
  with pytest.raises(ValueError, match="family 'qaoa': `n_wires` must be at least 3; got 2"):
    families.FAMILIES["qaoa"](2, 1, 0, device=None)
  with pytest.raises(ValueError, match="`n_layers` must be at least 1; got 0"):
    families.FAMILIES["hea_a"](3, 0, 0, device=None)
  with pytest.raises(ValueError, match="`order` must be 'per_wire' or 'blocked'; got 'x'"):
    kernel.hea_circuit(2, 1, order="x")

  @qhess.circuit(wires=1)
  def doubled(x):
    qhess.RX(2 * x[0], wires=0)
    return qhess.var(qhess.Z(0))

  with pytest.raises(ValueError, match="every gate argument must be an entry of `params`"):
    to_pennylane.parameter_map(doubled, np.array([0.3]))
  with pytest.raises(ValueError, match=r"only a single expval translates; got \['var'\]"):
    to_pennylane.pennylane_tape(doubled.tape(np.array([0.3])))
  with pytest.raises(ValueError, match=r"only a single expval translates; got \['var'\]"):
    to_pennylane.pennylane_qnode(doubled, np.array([0.3]), "default.qubit")

  @qhess.circuit(wires=1)
  def hermitian(x):
    qhess.RX(x[0], wires=0)
    return qhess.expval(qhess.Hermitian(np.eye(2), wires=0))

  with pytest.raises(ValueError, match="only Pauli observables translate to PennyLane"):
    to_pennylane.pennylane_tape(hermitian.tape(np.array([0.3])))


def test_bench_families_pennylane_tape_gate_arguments_only():
  # The random family has a QubitUnitary: its matrix must not be a trainable parameter
  # of the PennyLane script (param_shift_hessian refuses it), the gate arguments must.
  import numpy as np

  families = _bench_module("families")
  to_pennylane = _bench_module("to_pennylane")
  # 3·4·4 = 48 gates: every catalogue gate at least once (names are drawn in permutations)
  fam = families.FAMILIES["random"](4, 4, 0, device=None)
  tape = fam.circuit.tape(fam.params)
  assert "QubitUnitary" in [op.name for op in tape.operations]
  script = to_pennylane.pennylane_tape(tape)
  got = np.array(script.get_parameters(trainable_only=True), dtype=np.float64)
  np.testing.assert_array_equal(got, np.asarray(tape.params))
