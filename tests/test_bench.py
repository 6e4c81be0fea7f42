"""Smoke tests of the benchmarks: ``bench/run.py --quick`` and ``bench/kernel.py --quick``
run and write their JSON.

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


def _run_quick(script: str, out: pathlib.Path) -> dict:
  """Runs ``bench/<script> --quick --out <out>``; its JSON results."""
  proc = subprocess.run(
      [sys.executable, f"bench/{script}", "--quick", "--out", str(out)], cwd=ROOT,
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
