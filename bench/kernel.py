"""How fast is qhess's batched forward evaluation?

Expected hardware: a CPU (the reference run is a shared 2-core x86 container); the script
runs unchanged on a GPU, where JAX's default device is used and the copy baseline is
still a host NumPy copy (the fraction then compares device bandwidth with host bandwidth).

Workload: the hardware-efficient ansatz on ``n`` wires, ``L`` layers — per layer ``RY``
and ``RZ`` on every wire, then ``CNOT(i, i+1)`` for ``i = 0 .. n-2`` — measured as
``expval(sum_i Z_i Z_{i+1})``; ``n_params = 2 n L`` and ``n_gates = (3n - 1) L``. For each
``n`` a batch of ``B`` random gate-argument vectors (shape ``(B, n_params)``) goes through
the kernel entry ``qhess._common.run(key, params, consts)``: one ``jit(vmap)``, all
``B`` states live at once. ``B`` is chosen so that ``B * 2**n`` stays near
``2**log2_amplitudes`` (default ``2**22``; at least one circuit); the kernel processes
them in chunks of qhess's default size (``_common.default_batch_size(n)`` states,
about ``2**17`` amplitudes), as a user's call would.

Timing: each size runs in a fresh worker process (so one size's compile cache and memory
do not affect the next, and a size can be given up on: ``--size-timeout``; once a size
times out the larger ones are skipped, as cost grows with ``n``). The first call (trace +
XLA compile + one run) is timed on its own; then
``timeit.repeat(lambda: jax.block_until_ready(f(x)), number=1, repeat=R)`` with ``R``
chosen from the first call's time (at least 3); the min and the median are reported.
``compile_s`` is the first call minus the min.

Memory model (an *effective* bandwidth, not a hardware counter): every pass the kernel
makes over the state counts one read and one write of it, and the measurement counts one
read; preparing ``|0...0>`` is not counted. ``passes`` is read off the traced kernel
(``_common.count_passes``, after fusion: RY·RZ on a wire is one pass, a CNOT is
fused with its target's pending gates, and the final CNOT ladder is folded into the
measured observable), so it is what runs — ``n L`` for this ansatz, against
``n_gates = (3n - 1) L`` gates. With ``b`` bytes per amplitude (16 for complex128, 8 for
complex64) one circuit moves::

    bytes = (2 * passes + 1) * 2**n * b

and the effective bandwidth is ``B * bytes / t_min``. The baseline is a NumPy copy
(``np.copyto`` of a 256 MiB float64 array, best of several) measured in the same run,
counting its read and its write likewise (``2 * nbytes / t``); the fraction is the ratio of
the two. A fraction far below 1 means the passes are slower than a copy (compute-bound
or badly vectorized); when a chunk fits in cache, the comparison with a DRAM-sized copy
flatters the kernel and fractions above 1 are possible. XLA's CPU backend uses all
cores; ``np.copyto`` uses one.

Run (from the repository root; qhess need not be installed)::

    python bench/kernel.py                       # n = 4, 6, ..., 20
    python bench/kernel.py --quick               # n = 4, 8, 12, small batches, < 30 s
    python bench/kernel.py --sizes 10 14 --layers 4 --float32 --log2-amplitudes 18

Output: a line per size and a Markdown table on stdout, JSON at
``bench/results/kernel-<date>-<host>.json`` (``--out`` to change it; ``--quick`` writes
``kernel-quick-...``) and, when matplotlib is installed, a PNG plot with the same stem.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import time
import timeit

import jax
import numpy as np

import common  # before qhess: makes it importable from a checkout
import qhess

_DEFAULT_SIZES = (4, 6, 8, 10, 12, 14, 16, 18, 20)
_QUICK_SIZES = (4, 8, 12)


def hea_circuit(n: int, layers: int, *, order: str = "per_wire") -> qhess.Circuit:
  """The hardware-efficient ansatz as a `qhess.Circuit` of a flat parameter vector.

  Args:
    n: wires.
    layers: layers; the parameter vector has shape ``(2 * n * layers,)``, entry
      ``2 * (n * l + w)`` feeding layer ``l``'s RY on wire ``w`` and the next entry its RZ.
    order: ``"per_wire"`` (RY then RZ wire by wire, then the CNOT ladder) or
      ``"blocked"`` (RY on every wire, then RZ on every wire, then the ladder): the same
      gates and the same function of the parameters, in another textual order.

  Returns:
    a circuit measuring ``expval(sum_i Z_i Z_{i+1})``.
  """
  if order not in ("per_wire", "blocked"):
    raise ValueError(f"`order` must be 'per_wire' or 'blocked'; got {order!r}.")
  obs = qhess.Z(0) @ qhess.Z(1)
  for i in range(1, n - 1):
    obs = obs + qhess.Z(i) @ qhess.Z(i + 1)

  @qhess.circuit(wires=n)
  def hea(x):
    for layer in range(layers):
      k = 2 * n * layer
      if order == "per_wire":
        for w in range(n):
          qhess.RY(x[k + 2 * w], wires=w)
          qhess.RZ(x[k + 2 * w + 1], wires=w)
      else:
        for w in range(n):
          qhess.RY(x[k + 2 * w], wires=w)
        for w in range(n):
          qhess.RZ(x[k + 2 * w + 1], wires=w)
      for w in range(n - 1):
        qhess.CNOT(wires=(w, w + 1))
    return qhess.expval(obs)

  return hea


def copy_bandwidth(mib: int = 256, repeat: int = 7) -> float:
  """Bytes per second of ``np.copyto`` on a large array, read + write, best of ``repeat``."""
  src = np.random.default_rng(0).standard_normal(mib * 2**20 // 8)
  dst = np.empty_like(src)
  np.copyto(dst, src)  # touch the pages
  t = min(timeit.repeat(lambda: np.copyto(dst, src), number=1, repeat=repeat))
  return 2 * src.nbytes / t


def sizes_of(n: int, layers: int, log2_amplitudes: int, float32: bool) -> dict:
  """The static numbers of one size (known without running anything)."""
  n_gates = (3 * n - 1) * layers
  tape = hea_circuit(n, layers).tape(np.zeros(2 * n * layers, np.float32))
  cut = common.split_tail(tape.operations, tape.raw_measurements)
  passes = common.count_passes(tape.operations[:cut], n)
  amp_bytes = 8 if float32 else 16
  return {
      "n_qubits": n, "layers": layers, "n_params": 2 * n * layers, "n_gates": n_gates,
      "passes": passes, "batch": max(1, 2 ** max(0, log2_amplitudes - n)),
      "bytes_per_circuit": (2 * passes + 1) * 2**n * amp_bytes,
  }


def bench_size(n: int, layers: int, float32: bool, log2_amplitudes: int,
               repeat_max: int, budget_s: float, seed: int = 0) -> dict:
  """Times one size in this process; returns its row (without the copy fraction)."""
  jax.config.update("jax_enable_x64", not float32)
  dtype = np.float32 if float32 else np.float64
  row = sizes_of(n, layers, log2_amplitudes, float32)
  batch, n_params = row["batch"], row["n_params"]
  tape = hea_circuit(n, layers).tape(np.zeros(n_params, dtype))
  assert tape.num_params == n_params and len(tape.operations) == row["n_gates"]
  key = common.kernel_key(tape)
  consts = tape.consts
  rng = np.random.default_rng(seed + n)
  x = jax.device_put(rng.uniform(0, 2 * np.pi, (batch, n_params)).astype(dtype))

  def f(p):
    return common.run(key, p, consts, batch_size=common.default_batch_size(n))

  t0 = time.perf_counter()
  out = jax.block_until_ready(f(x))
  first = time.perf_counter() - t0
  assert out.shape == (batch, 1) and bool(np.all(np.isfinite(np.asarray(out))))
  repeat = int(max(3, min(repeat_max, budget_s // first)))
  times = timeit.repeat(lambda: jax.block_until_ready(f(x)), number=1, repeat=repeat)
  t_min = min(times)
  row.update({
      "status": "ok", "device": common.device_name(),
      "dtype": np.dtype(dtype).name, "repeat": repeat, "first_call_s": first,
      "compile_s": max(0.0, first - t_min), "min_s": t_min,
      "median_s": statistics.median(times), "circuits_per_s": batch / t_min,
      "bandwidth_Bps": batch * row["bytes_per_circuit"] / t_min, "times_s": times,
  })
  return row


def markdown_table(rows: list[dict]) -> str:
  head = ("| n_qubits | n_params | gates | passes | batch | compile s | min ms | median ms "
          "| circuits/s | GB/s | of copy |")
  lines = [head, "|" + "---:|" * 11]
  for r in rows:
    start = (f"| {r['n_qubits']} | {r['n_params']} | {r['n_gates']} | {r.get('passes', '')} "
             f"| {r['batch']} ")
    if r["status"] != "ok":
      lines.append(start + f"| {r['status']} |" + " |" * 5)
      continue
    lines.append(
        start + f"| {r['compile_s']:.2f} | {1e3 * r['min_s']:.4g} "
        f"| {1e3 * r['median_s']:.4g} | {r['circuits_per_s']:.4g} "
        f"| {r['bandwidth_Bps'] / 1e9:.3g} | {r['bandwidth_fraction']:.3g} |")
  return "\n".join(lines)


def plot(rows: list[dict], meta: dict, path: pathlib.Path) -> bool:
  """Circuits/s and bandwidth fraction vs n; False when matplotlib is missing."""
  plt = common.pyplot()
  if plt is None:
    return False
  ok = [r for r in rows if r["status"] == "ok"]
  missing = [r for r in rows if r["status"] != "ok"]
  n = [r["n_qubits"] for r in ok]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
  ax1.semilogy(n, [r["circuits_per_s"] for r in ok], "o-")
  ax1.set_ylabel("circuits / s")
  ax1.set_title("throughput")
  ax2.semilogy(n, [r["bandwidth_fraction"] for r in ok], "o-", color="C1")
  ax2.axhline(1.0, color="gray", ls="--", lw=1)
  ax2.text(n[0] if n else 4, 1.0, " np.copyto", va="top", color="gray")
  ax2.set_ylabel("effective bandwidth / NumPy copy bandwidth")
  ax2.set_title(f"bandwidth (copy: {meta['copy_bandwidth_Bps'] / 1e9:.1f} GB/s)")
  all_n = [r["n_qubits"] for r in rows]
  for ax in (ax1, ax2):
    ax.set_xlabel("n_qubits")
    ax.set_xticks(all_n)
    ax.set_xlim(min(all_n) - 0.5, max(all_n) + 0.5)
    ax.grid(True, which="both", alpha=0.3)
    if missing:
      first = missing[0]["n_qubits"]
      ax.axvspan(first - 0.5, max(all_n) + 0.5, color="gray", alpha=0.12)
      ax.text(first - 0.3, 0.5, f"n ≥ {first}: {missing[0]['status']}", rotation=90,
              transform=ax.get_xaxis_transform(), va="center", fontsize=8)
  fig.suptitle(
      f"qhess forward kernel — HEA, {meta['layers']} layers, {meta['dtype']}, "
      f"batch·2^n ≈ 2^{meta['log2_amplitudes']}; {meta['device']}, "
      f"{meta['cpu_count']} cores, JAX {meta['jax_version']}", fontsize=10)
  return common.save_figure(plt, fig, path)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true",
                 help="sizes 4 8 12, batch*2**n ~ 2**14, 3 repeats, 10 s per size (< 30 s)")
  p.add_argument("--sizes", type=int, nargs="+", help="qubit counts (default 4 6 ... 20)")
  p.add_argument("--layers", type=int, default=2, help="ansatz layers (default 2)")
  p.add_argument("--float32", action="store_true",
                 help="float32 parameters, complex64 states (default float64/complex128)")
  p.add_argument("--log2-amplitudes", type=int, default=None,
                 help="batch*2**n is kept near 2**this (default 22; 14 with --quick)")
  p.add_argument("--repeat", type=int, default=None,
                 help="most timed repeats per size (default 20; 3 with --quick)")
  p.add_argument("--size-timeout", type=float, default=None,
                 help="seconds per size before giving up on it and the larger sizes "
                      "(default 150; 10 with --quick; 0: no limit)")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="JSON path (default bench/results/kernel-<date>-<host>.json)")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one size, JSON spec
  return p.parse_args(argv)


def run_size(spec: dict, timeout: float | None) -> dict | str:
  """Runs `bench_size` in a fresh process; its row, or a reason it has none."""
  worker = common.Worker(common.HERE / "kernel.py", spec, timeout)
  rows = [row for kind, row in worker.results() if kind == "result"]
  why = worker.finish()
  if rows:
    return rows[0]
  if why == "timed out":
    return f"timed out after {timeout:g} s"
  return why or "failed (exit 0): no result line"


def run_sizes(sizes, args, meta: dict, settings: dict) -> list[dict]:
  """Every size in its own worker, one line each; a timed-out size skips the larger."""
  bar, say = common.progress(sizes, desc="sizes", unit="size")
  rows, gave_up, copy_bw = [], None, meta["copy_bandwidth_Bps"]
  for n in bar:
    if hasattr(bar, "set_postfix_str"):
      bar.set_postfix_str(f"n={n}")
    row = sizes_of(n, args.layers, meta["log2_amplitudes"], args.float32)
    if gave_up is not None:
      row["status"] = f"skipped (n={gave_up} timed out)"
    else:
      spec = {"n": n, "layers": args.layers, "float32": args.float32,
              "log2_amplitudes": meta["log2_amplitudes"], **settings}
      result = run_size(spec, meta["size_timeout_s"] or None)
      if isinstance(result, dict):
        row = result
        row["bandwidth_fraction"] = row["bandwidth_Bps"] / copy_bw
        meta["device"] = row["device"]
      else:
        row["status"] = result
        gave_up = n if result.startswith("timed out") else None
    rows.append(row)
    tag = (f"device={meta['device']} jax={jax.__version__} dtype={meta['dtype']} "
           f"n_qubits={n} n_params={row['n_params']} batch={row['batch']}")
    if row["status"] != "ok":
      say(f"{tag}: {row['status']}")
    else:
      say(f"{tag}: compile {row['compile_s']:.2f} s, min {1e3 * row['min_s']:.4g} ms, "
          f"median {1e3 * row['median_s']:.4g} ms (R={row['repeat']}), "
          f"{row['circuits_per_s']:.4g} circuits/s, {row['bandwidth_Bps'] / 1e9:.3g} GB/s "
          f"= {row['bandwidth_fraction']:.3g} of copy")
  if hasattr(bar, "close"):
    bar.close()
  return rows


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.worker:
    print(common.RESULT + json.dumps(bench_size(**json.loads(args.worker))), flush=True)
    return
  sizes = args.sizes or (_QUICK_SIZES if args.quick else _DEFAULT_SIZES)
  log2_amp = args.log2_amplitudes or (14 if args.quick else 22)
  settings = {"repeat_max": args.repeat or (3 if args.quick else 20),
              "budget_s": 0.5 if args.quick else 6.0}  # timed seconds aimed at per size
  size_timeout = args.size_timeout if args.size_timeout is not None else (
      10.0 if args.quick else 150.0)
  dtype = "float32" if args.float32 else "float64"

  # The parent never touches a JAX backend (on a GPU it would hold the memory the
  # workers need); the device name comes back from the workers.
  copy_bw = copy_bandwidth()
  meta = {
      **common.machine_meta("How fast is qhess's batched forward evaluation?", "?", dtype),
      "layers": args.layers, "log2_amplitudes": log2_amp, "size_timeout_s": size_timeout,
      "copy_bandwidth_Bps": copy_bw, "qhess": common.qhess_version(),
      "model": "bytes/circuit = (2*passes + 1) * 2**n * bytes_per_amplitude; "
               "copy = 2 * nbytes (read + write)",
  }
  print(f"# qhess forward kernel, HEA {args.layers} layers, jax={jax.__version__} "
        f"dtype={dtype}, batch*2**n ~ 2**{log2_amp}")
  print(f"# NumPy copy bandwidth (read + write, 256 MiB): {copy_bw / 1e9:.2f} GB/s")
  print(common.source_line(meta["qhess"]))
  rows = run_sizes(sizes, args, meta, settings)

  print(f"\ndevice={meta['device']} ({os.cpu_count()} cores) jax={jax.__version__} "
        f"dtype={dtype} layers={args.layers} batch*2**n~2**{log2_amp} "
        f"copy={copy_bw / 1e9:.2f} GB/s\n")
  print(markdown_table(rows))
  out = common.default_out(args.out, "kernel", args.quick, meta)
  common.write_results(out, {"meta": meta, "rows": rows},
                       plot=lambda png: plot(rows, meta, png))


if __name__ == "__main__":
  main()
