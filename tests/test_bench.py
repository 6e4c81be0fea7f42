"""Smoke tests of the benchmarks: ``bench/run.py --quick`` (also with ``--families``) and
``bench/kernel.py --quick`` run and write their JSON.

No timing assertions: only that the script exits 0 and writes results of the expected
shape (every method timed or with a stated reason, the Hessians checked against
``jax.hessian``).
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
METHODS = ("qhess_default", "qhess_product", "qhess_diagonal", "jax_hessian")


def _run_quick(script: str, out: pathlib.Path, *args: str) -> dict:
  """Runs ``bench/<script> --quick --out <out> *args``; its JSON results."""
  proc = subprocess.run(
      [sys.executable, f"bench/{script}", "--quick", "--out", str(out), *args], cwd=ROOT,
      capture_output=True, text=True, timeout=180)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(out.read_text())


def test_bench_run_quick(tmp_path):
  out = tmp_path / "x.json"
  data = _run_quick("run.py", out)
  assert {"meta", "cases"} <= data.keys()
  meta = data["meta"]
  for key in ("device", "jax_version", "dtype", "cpu_count", "loadavg_start", "qhess",
              "methods"):
    assert key in meta, key
  assert meta["dtype"] == "float64"
  assert [c["n_qubits"] for c in data["cases"]] == [4, 6]
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
  assert out.with_suffix(".md").read_text().count("| qhess_default |") == 2


def test_bench_kernel_quick(tmp_path):
  rows = _run_quick("kernel.py", tmp_path / "k.json")["rows"]
  assert [r["n_qubits"] for r in rows] == [4, 8, 12]
  for r in rows:
    assert r["status"] == "ok", r["status"]
    # The ansatz's passes after fusion: one per wire and layer (see bench/kernel.py).
    assert r["passes"] == r["n_qubits"] * r["layers"]
    assert r["min_s"] <= r["median_s"] and r["bandwidth_fraction"] > 0


def test_bench_run_families_quick(tmp_path):
  # Two families in one worker: hea_b (blocked gate order) and qaoa (tied parameters,
  # PennyLane's gate-argument Hessian contracted with the parameter map), PennyLane on.
  out = tmp_path / "f.json"
  data = _run_quick("run.py", out, "--families", "hea_b", "qaoa", "--wires", "3",
                    "--pennylane")
  assert data["meta"]["families"] == ["hea_b", "qaoa"]
  rows = {r["family"]: r for r in data["families"]}
  assert rows.keys() == {"hea_b", "qaoa"}
  assert rows["hea_b"]["n_params"] == rows["hea_b"]["n_inputs"] == 6  # 2 n L
  assert rows["qaoa"]["n_params"] == 6 and rows["qaoa"]["n_inputs"] == 2  # tied
  for row in rows.values():
    assert list(row["methods"]) == ["qhess_default", "qhess_independent_default_rule",
                                    "jax_hessian", "pl_lightning.qubit"]
    for method, r in row["methods"].items():
      assert r["status"] == "ok", (row["family"], method, r["status"])
      assert r["repeat"] == 1 and r["min_s"] <= r["median_s"] <= r["max_s"]
      if method != "jax_hessian":
        assert r["n_circuits"] > 0
        assert r["matches_jax"] and r["max_abs_diff_vs_jax"] < 1e-9, (row["family"], method)
    # Shared and independent evaluation run the same circuits.
    assert (row["methods"]["qhess_default"]["n_circuits"]
            == row["methods"]["qhess_independent_default_rule"]["n_circuits"])
    s = row["summary"]
    assert s["n_circuits"] == row["methods"]["qhess_default"]["n_circuits"]
    for key in ("independent_over_default", "pennylane_over_default",
                "default_over_jax_hessian", "default_us_per_circuit", "default_compile_s"):
      assert s[key] is not None and s[key] > 0, key
    assert s["all_match_jax"]
  md = out.with_suffix(".md").read_text()
  assert md.count("| qhess default |") == 2 and "| hea_b | 3 × 1 |" in md
