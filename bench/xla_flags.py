"""Compile and run time of jitted Hessians under XLA's default CPU flags and with the
CPU fusion emitters off (``--xla_cpu_use_fusion_emitters=false``).

XLA reads ``XLA_FLAGS`` once, when its backend starts, so each setting runs in its own
subprocess of this script (``--worker``); the two settings alternate family by family so
that a change in the machine's load hits both. Prints a table and writes JSON + Markdown.

Usage::

    python bench/xla_flags.py                         # hea_b, qaoa, random at 10 x 2
    python bench/xla_flags.py --families sel chem --wires 8 --out bench/results/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
SETTINGS = {"default": "", "emitters_off": "--xla_cpu_use_fusion_emitters=false"}


def worker(family: str, wires: int, layers: int, repeat: int) -> dict:
  """Compiles and times one family's jitted default Hessian in this process."""
  import jax
  import numpy as np

  jax.config.update("jax_enable_x64", True)
  sys.path.insert(0, str(HERE))
  import families  # noqa: E402  (bench/ is not a package)
  import qhess

  fam = families.FAMILIES[family](wires, layers, 0, device=None)
  fn = jax.jit(qhess.hessian(fam.circuit))
  t0 = time.perf_counter()
  compiled = fn.lower(fam.params).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(fam.params))
  times = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(fam.params))
    times.append(time.perf_counter() - t0)
  return {"compile_s": compile_s, "median_s": float(np.median(times)), "times_s": times,
          "loadavg": os.getloadavg()[0]}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--families", nargs="+", default=["hea_b", "qaoa", "random"])
  parser.add_argument("--wires", type=int, default=10)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--repeat", type=int, default=5)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  parser.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(worker(args.worker[0], args.wires, args.layers, args.repeat)))
    return
  rows = []
  for i, family in enumerate(args.families):
    row = {"family": family, "wires": args.wires, "layers": args.layers}
    for setting, flags in SETTINGS.items():
      print(f"[{i + 1}/{len(args.families)}] {family}: {setting} ...", flush=True)
      env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
      proc = subprocess.run(
          [sys.executable, __file__, "--worker", family, "--wires", str(args.wires),
           "--layers", str(args.layers), "--repeat", str(args.repeat)],
          capture_output=True, text=True, env=env, check=False)
      if proc.returncode:
        raise SystemExit(f"{family} ({setting}) failed:\n{proc.stderr[-3000:]}")
      row[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows.append(row)
  lines = ["| family | wires × layers | compile: default → emitters off | run: default → "
           "emitters off |", "|---|---|---|---|"]
  for r in rows:
    d, e = r["default"], r["emitters_off"]
    lines.append(f"| {r['family']} | {r['wires']} × {r['layers']} | {d['compile_s']:.1f} s → "
                 f"{e['compile_s']:.1f} s ({d['compile_s'] / e['compile_s']:.2f}×) | "
                 f"{d['median_s'] * 1e3:.1f} ms → {e['median_s'] * 1e3:.1f} ms |")
  table = "\n".join(lines)
  print(table)
  if args.out:
    import jax

    meta = {"jax_version": jax.__version__, "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
  main()
