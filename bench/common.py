"""What the benchmarks share: the qhess under test, timing, progress output, results files.

Not a script. The benchmark modules import it before qhess: it makes ``qhess``
importable from a checkout (the repository root, when no qhess is installed), and it is
the one place in ``bench/`` that imports qhess's private modules (the block below the
imports; the benchmarks use the names it defines). ``noise.py`` uses public
qhess only and does without it.

- The measured qhess and machine: `device_name`, `qhess_version`, `source_line`,
  `machine_meta`.
- Timing: `timed`, `series_done` (when a method has had enough timed calls),
  `timing_row` (median, min, max, throughput), and `Worker`, a benchmark's case in a
  fresh process whose ``RESULT`` / ``WARM`` lines are read as they come.
- Output: `progress` (a tqdm bar when tqdm is installed), `fmt_s` / `fmt_ms` / `fmt_x`,
  `default_out`, `write_results` (JSON, Markdown, PNG), `pyplot` / `save_figure`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
try:
  import qhess  # installed: `pip install -e .`
except ImportError:  # a checkout: the repository root is this folder's parent
  sys.path.insert(0, str(HERE.parent))
  import qhess

# qhess internals the benchmarks read; the only imports of qhess's private modules in bench/.
from qhess.circuits import catalogue as _catalogue  # noqa: E402
from qhess.derivatives import options as _options  # noqa: E402
from qhess.simulate import evolve as _evolve  # noqa: E402
from qhess.simulate import groups as _groups  # noqa: E402
from qhess.simulate import kernel as _kernel  # noqa: E402
from qhess.simulate import measure as _measure  # noqa: E402

# kernel.py: the kernel entry, its key and chunk size, the measured tail, the passes
run, kernel_key, default_batch_size = _kernel.run, _kernel.kernel_key, _kernel.default_batch_size
split_tail, count_passes = _measure.split_tail, _evolve.count_passes
GATE_CATALOGUE = _catalogue.CATALOGUE  # families.py: the random family's gates
GATE_NAMES = _catalogue.GATE_NAMES
measurement_groups = _groups.measurement_groups  # shots.py: circuits per shifted point


def default_rule() -> str:
  """The off-diagonal rule ``qhess.hessian`` uses when given none (exact mode)."""
  return getattr(_options, "_DEFAULT_RULE", "product")


RESULT = "RESULT "  # prefix of a worker's result lines on stdout
WARM = "WARM "  # prefix of its warm-up lines


def parse_case(text: str) -> tuple[int, int]:
  """``"NxL"`` (wires x layers) as ``(n, layers)``."""
  n, layers = (int(v) for v in text.lower().split("x"))
  return n, layers


# ------------------------------------------------------------------ qhess and the machine


def device_name() -> str:
  """JAX's default device; on a CPU, its model name."""
  device = jax.devices()[0]
  if device.platform != "cpu":
    return f"{device.platform}:{device.device_kind}"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    model = platform.processor() or platform.machine()
  return f"cpu:{model}"


def qhess_version() -> dict:
  """Which qhess was measured: its folder, git commit, uncommitted changes, source hash."""
  folder = pathlib.Path(qhess.__file__).resolve().parent
  digest = hashlib.sha256()
  for f in sorted(folder.rglob("*.py")):
    digest.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes())

  def git(*cmd):
    try:
      out = subprocess.run(["git", "-C", str(folder), *cmd], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
      return None
    return out.stdout.strip() if out.returncode == 0 else None

  status = git("status", "--porcelain", "--", ".")
  return {"path": str(folder), "commit": git("rev-parse", "HEAD"),
          "dirty": None if status is None else bool(status),
          "sources_sha256": digest.hexdigest()[:16]}


def source_line(q: dict) -> str:
  """The header line naming the measured qhess: path, commit, dirty tree, source hash."""
  return (f"# qhess from {q['path']} commit {q['commit']}"
          f"{' + uncommitted changes' if q['dirty'] else ''} (sources {q['sources_sha256']})")


def machine_meta(question: str, device: str, dtype: str) -> dict:
  """The first entries of every benchmark's JSON ``meta``: question, run, machine."""
  return {
      "question": question, "argv": sys.argv[1:], "date": datetime.date.today().isoformat(),
      "host": socket.gethostname(), "device": device,
      "jax_version": jax.__version__, "numpy_version": np.__version__,
      "python": platform.python_version(), "machine": platform.machine(),
      "cpu_count": os.cpu_count(), "dtype": dtype,
  }


# ------------------------------------------------------------------------ timing


def timed(fn):
  """``(fn(), seconds)``."""
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def series_done(times: list[float], budget_s: float, repeat_max: int) -> bool:
  """Whether a method's timed calls are enough: ``repeat_max`` of them, or at least 3 and
  ``budget_s`` seconds spent, or one more (as slow as the last) would pass 3 x budget."""
  spent = sum(times)
  return (len(times) >= repeat_max or (len(times) >= 3 and spent >= budget_s)
          or spent + times[-1] > 3 * budget_s)


def timing_row(first: float, times: list[float], n_circuits, n_gates: int,
               compiled: bool) -> dict:
  """A method's result row: median, min, max, compile time, circuits/s, gate apps/s."""
  med = statistics.median(times)
  row = {"status": "ok", "first_call_s": first,
         "compile_s": max(0.0, first - min(times)) if compiled else None,
         "median_s": med, "min_s": min(times), "max_s": max(times), "repeat": len(times),
         "times_s": times, "n_circuits": n_circuits}
  if n_circuits is not None:
    row["circuits_per_s"] = n_circuits / med
    row["gate_apps_per_s"] = n_circuits * n_gates / med
  return row


class Worker:
  """``python <script> --worker <spec as JSON>`` in a fresh process, its lines read as they
  come; killed after ``timeout`` seconds (None: no limit)."""

  def __init__(self, script: pathlib.Path, spec, timeout: float | None,
               env: dict | None = None):
    self.stderr = tempfile.TemporaryFile(mode="w+")
    cmd = [sys.executable, str(script), "--worker", json.dumps(spec)]
    self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                 text=True, env=env)
    self.timed_out = False
    self.timer = None
    if timeout:
      self.timer = threading.Timer(timeout, self._kill)
      self.timer.start()

  def _kill(self):
    self.timed_out = True
    self.proc.kill()

  def results(self):
    """``(kind, row)`` per line: kind "warm" (a warm-up done) or "result"."""
    for line in self.proc.stdout:
      if line.startswith(RESULT):
        yield "result", json.loads(line[len(RESULT):])
      elif line.startswith(WARM):
        yield "warm", json.loads(line[len(WARM):])

  def finish(self) -> str | None:
    """None when the worker ended cleanly, else why not ("timed out" or "failed ...")."""
    code = self.proc.wait()
    if self.timer:
      self.timer.cancel()
    self.stderr.seek(0)
    tail = self.stderr.read().strip().splitlines()[-5:]
    self.stderr.close()
    if self.timed_out:
      return "timed out"
    return None if code == 0 else f"failed (exit {code}): " + " / ".join(tail)


# ------------------------------------------------------------------------ output


def progress(items=None, **kwargs):
  """A tqdm bar over ``items`` (or, with ``total=``, one updated by hand) and a print
  function that does not break it; ``(items, print)`` when tqdm is not installed."""
  try:
    from tqdm import tqdm
  except ImportError:
    return items, print
  return tqdm(items, file=sys.stderr, **kwargs), tqdm.write


def fmt_s(v):
  return "" if v is None else f"{v:.3g}"


def fmt_ms(v):
  return "" if v is None else f"{1e3 * v:.4g}"


def fmt_x(v):
  return "" if v is None else f"{v:.3g}×"


def default_out(out: pathlib.Path | None, stem: str, quick: bool, meta: dict) -> pathlib.Path:
  """``out``, or ``bench/results/<stem>-[quick-]<date>-<host>.json``."""
  if out is not None:
    return out
  return RESULTS / f"{stem}-{'quick-' if quick else ''}{meta['date']}-{meta['host']}.json"


def write_results(out: pathlib.Path, data: dict, markdown: str | None = None,
                  plot=None) -> None:
  """Writes ``data`` as JSON at ``out``, ``markdown`` beside it as ``.md`` and, when
  ``plot(path)`` draws one (True), a ``.png``; prints each path written."""
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(data, indent=1) + "\n")
  print(f"\nwrote {out}")
  if markdown is not None:
    out.with_suffix(".md").write_text(markdown)
    print(f"wrote {out.with_suffix('.md')}")
  if plot is not None and plot(out.with_suffix(".png")):
    print(f"wrote {out.with_suffix('.png')}")


def pyplot():
  """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is missing."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return None
  return plt


def save_figure(plt, fig, path: pathlib.Path) -> bool:
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True
