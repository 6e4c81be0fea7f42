"""Circuit families, each as a qhess circuit and as a PennyLane QNode, and their benchmark.

Not a script: `bench/run.py --families` runs the benchmark (`run`, after the circuits).
Each family is a function ``(n_wires, n_layers, seed) -> Family(circuit, params, qnode)``:
the circuit is written once, for qhess; the PennyLane QNode of the same circuit (same
gates, wires, parameter map and observable, for ``qml.gradients.param_shift_hessian``) is
derived from its recorded tape by `to_pennylane.pennylane_qnode`, so the two cannot drift
apart.

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
- ``random``: a seeded random circuit over the whole gate catalogue (qhess's unitary
  gates, ``GATE_NAMES`` of its operation catalogue): ``3n`` gates per layer taken from
  consecutive random permutations of the catalogue (so every gate appears once the
  circuit has as many gates), random wires; Pauli words and ``MultiRZ`` / ``PauliRot``
  widths random; ``QubitUnitary`` a fixed random unitary; every parametrized gate its own
  arguments; a random 2-local Pauli sum ``sum_i P_i P'_{i+1}`` (letters from XYZ);
  params ``(P,)``.

The benchmark (``python bench/run.py --families [NAME ...]``): the question of
`bench/cases.py` for the circuits above — ``hea_a`` and ``hea_b`` (the HEA above in two
gate orders), ``sel`` (strongly entangling layers), ``qaoa`` (MaxCut on a ring, tied
parameters), ``chem`` (IsingXX/YY, MultiRZ, PauliRot; an observable with X and Y terms),
``random`` (the whole gate catalogue) — at one size, ``--wires`` x ``--layers`` (default
10 x 2), every family in a fresh worker process. Methods: ``qhess_default``;
``qhess_independent_default_rule`` (``evaluation="independent"`` with the default rule:
the same circuits as the default, none shared — the baseline for sharing);
``qhess_adjoint`` (``evaluation="adjoint"``); ``jax_hessian``; ``pl_lightning.qubit``,
tape-level ``param_shift_hessian`` as in the cases (PennyLane's fastest path; for tied
parameters its gate-argument Hessian is contracted with the 0/1 parameter map,
``Jᵀ H J``), and with ``--pl-qnode`` also ``pl_lightning.qubit_qnode``,
``param_shift_hessian(qnode)(x)`` on the family's QNode (the user-level call through the
autograd interface; 2.5-3x slower than the tape level at 8 wires on the reference
machine). A PennyLane method's warm-up is one circuit execution and every Hessian call is
timed (usually 1, the series rules of the cases). Timing and correctness as in the cases,
with ``--atol`` 1e-9. Per family: ``P`` (gate arguments), ``n_inputs`` (entries of the
parameter array), the default's circuit count, the times, ``t_indep / t_default``,
``t_PL / t_default``, ``t_default / t_jax``, the default's time per shifted circuit and
its ratio to ``hea_a``'s, the default's compile time, and the largest difference from
``jax.hessian``. ``--quick``: 4 wires x 1 layer, 1 timed call, all families in one
worker, no PennyLane unless ``--pennylane``.

Run (from the repository root)::

    python bench/run.py --families     # every family, 10 wires x 2 layers
    python bench/run.py --families qaoa chem --wires 8 --pl-qnode
    python bench/run.py --families --quick

Output: a line per method and the tables on stdout;
``bench/results/families-<date>-<host>.json`` (``families-quick-...`` with ``--quick``;
``--out`` to change it), a summary table and a table per family as ``.md``, and a PNG
(grouped bars per family: Hessian time per method, and time per shifted circuit; log
scale).

Examples:
  >>> import families
  >>> fam = families.FAMILIES["qaoa"](4, 2, 0, device=None)
  >>> fam.params.shape, fam.circuit.tape(fam.params).num_params
  ((2, 2), 16)
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Callable, NamedTuple

import numpy as np

import cases
import common
import qhess
import to_pennylane
from kernel import hea_circuit


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
  qnode = None if device is None else to_pennylane.pennylane_qnode(circuit, params, device)
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
  # unitary gates only (no channels or conjugates); not Evolution or PCPhase, whose
  # recording functions take a generator or a dimension besides angles and wires
  names = sorted(set(common.GATE_NAMES) - {"Evolution", "PCPhase"})
  gates, order = [], []  # gates: (name, wires, n_args, extra)
  for _ in range(3 * n * n_layers):
    if not order:
      order = list(rng.permutation(names))
    name = order.pop()
    spec = common.GATE_CATALOGUE[name]
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


# ------------------------------------------------------------------------ the benchmark

# qhess_default first: it runs first in its fresh worker, so its first call is a
# fresh process's (import excluded); the later methods' first calls find JAX warmed up.
METHODS = ("qhess_default", "qhess_shared", "qhess_independent_default_rule", "qhess_adjoint",
           "jax_hessian", "pl_lightning.qubit")
EXACT = ("qhess_shared", "qhess_independent_default_rule", "qhess_adjoint")
LABELS = {"qhess_default": "qhess default (auto)", "qhess_shared": "shared",
          "qhess_independent_default_rule": "independent",
          "qhess_adjoint": "adjoint",
          "jax_hessian": "jax.hessian", "pl_lightning.qubit": "PennyLane lightning",
          "pl_lightning.qubit" + to_pennylane.QNODE: "PennyLane lightning (QNode)",
          "pl_default.qubit": "PennyLane default.qubit"}
_DEFAULTS = {"wires": 10, "layers": 2}
_QUICK = {"wires": 4, "layers": 1}


def _settings(args, versions: dict) -> dict:
  """The run's size, methods and timing settings from the command line."""
  names = args.families or list(FAMILIES)
  defaults = _QUICK if args.quick else _DEFAULTS
  n, layers = args.wires or defaults["wires"], args.layers or defaults["layers"]
  use_pl = (versions["pennylane"] is not None and versions["pennylane_lightning"]
            is not None and not args.no_pennylane and (args.pennylane or not args.quick))
  methods = [m for m in METHODS if (use_pl or not m.startswith("pl_"))
             and not (m == "jax_hessian" and args.skip_jax)]
  if use_pl and args.pl_qnode:
    methods.append("pl_lightning.qubit" + to_pennylane.QNODE)
  return {
      "use_pl": use_pl, "methods": methods, "families": names, "n_qubits": n,
      "layers": layers, "seed": args.seed,
      "budget_s": args.budget or (0.5 if args.quick else 4.0),
      "repeat_max": args.repeat or (1 if args.quick else 15),
      # Compiling jax.hessian of a 60-gate circuit took 2-5 min on the loaded reference
      # machine.
      "case_timeout_s": args.case_timeout if args.case_timeout is not None else (
          120.0 if args.quick else 1200.0),
      "atol": args.atol or 1e-9,
      "descriptions": {f: DESCRIPTIONS[f] for f in names},
  }


def _run_batch(batch: list[dict], rows: dict, meta: dict, env: dict, bar, say) -> None:
  """Families in one worker: their rows into ``rows``, a line per method."""
  for spec in batch:
    rows[spec["family"]]["loadavg"] = list(os.getloadavg())
  if bar is not None:
    bar.set_postfix_str(" ".join(s["family"] for s in batch))
  worker = cases.spawn(batch if len(batch) > 1 else batch[0],
                       meta["case_timeout_s"] * len(batch) or None, env)
  warmed = set()
  for family, m, r in cases.stream(worker, meta, bar, warmed):
    row = rows[family]
    if m == "_info":
      row.update(r)
      continue
    row["methods"][m] = r
    where = f"family={family} n_qubits={meta['n_qubits']} n_params={row.get('n_params')}"
    err = r.get("max_abs_diff_vs_jax")
    say(cases.result_line(meta, where, m, r,
                          "" if err is None else f", max |H - H_jax| {err:.1e}"))
  why = worker.finish()
  for spec in batch:
    cases.fill_missing(rows[spec["family"]]["methods"], meta["methods"], why, warmed,
                       spec["family"], bar)
    if why:
      say(f"family={spec['family']}: worker {why}")


def _run_families(meta: dict, env: dict, quick: bool) -> list[dict]:
  """Every family in a worker (``--quick``: all in one); their rows, with summaries."""
  names, methods = meta["families"], meta["methods"]
  pl_skip = {m: f"skipped (n > {meta['pl_max_wires']})" for m in methods
             if m.startswith("pl_") and meta["n_qubits"] > meta["pl_max_wires"]}
  specs = [{"family": name, "n": meta["n_qubits"], "layers": meta["layers"],
            "methods": methods, "budget_s": meta["budget_s"],
            "repeat_max": meta["repeat_max"], "atol": meta["atol"], "pl_skip": pl_skip,
            "seed": meta["seed"]} for name in names]
  # --quick: one worker for all families (one JAX start-up); else one fresh process each.
  batches = [specs] if quick else [[s] for s in specs]
  rows = {name: {"family": name, "n_qubits": meta["n_qubits"], "layers": meta["layers"],
                 "methods": {}} for name in names}
  bar, say = common.progress(total=2 * len(names) * len(methods), desc="warm-ups + timings")
  for batch in batches:
    _run_batch(batch, rows, meta, env, bar, say)
  if bar is not None:
    bar.close()
  for name, row in rows.items():
    row["methods"] = cases.finish_methods(row["methods"], methods, meta["atol"], say,
                                          f"family={name}")
  hea_us = None
  if "hea_a" in rows:
    hea_us = summary(rows["hea_a"], None)["default_us_per_circuit"]
  for row in rows.values():
    row["summary"] = summary(row, hea_us)
  return [rows[name] for name in names]


def run(args) -> None:
  """The circuit-families benchmark (``run.py --families``): times, tables, JSON, plot."""
  versions, env = cases.setup(args)
  settings = _settings(args, versions)
  use_pl = settings.pop("use_pl")
  meta = {**cases.hessian_meta("How fast is qhess's Hessian on circuit families, against "
                               "independent evaluation, autodiff and PennyLane?", args,
                               versions, env), **settings}
  n, layers = meta["n_qubits"], meta["layers"]
  cases.print_header(f"circuit families {' '.join(meta['families'])}, {n} wires x "
                     f"{layers} layers", meta, versions, use_pl)
  t_start = time.perf_counter()
  rows = _run_families(meta, env, args.quick)
  meta["loadavg_end"] = list(os.getloadavg())
  meta["wall_s"] = time.perf_counter() - t_start

  header = cases.summary_header(meta, versions, lightning=True)
  table = markdown(rows)
  print(f"\n{header}\n\n{table}")
  q = meta["qhess"]
  md = (f"# Hessians of circuit families, {meta['date']}, {meta['host']}\n\n{header}; qhess "
        f"commit {q['commit']}{' (dirty)' if q['dirty'] else ''}. {n} wires × {layers} "
        f"layers, float64, seed {args.seed}. {cases.written_by()} Methods: qhess default = "
        "`jax.jit(qhess.hessian(f))`; "
        "independent = the same circuits with `evaluation=\"independent\"`; jax.hessian = "
        "`jax.jit(jax.hessian(f))` through qhess's simulator; PennyLane lightning = "
        "`qml.gradients.param_shift_hessian` at tape level on `lightning.qubit` (its "
        "fastest path; `Jᵀ H J` for tied parameters)"
        + ("; PennyLane lightning (QNode) = `param_shift_hessian(qnode)`" if args.pl_qnode
           else "")
        + ". P counts gate arguments; circuits is qhess's number of shifted circuits "
        "(`len(qhess.hessian_tapes(tape, off_diagonal_rule=<default>)[0])`); PennyLane's "
        "is its number of tapes.\n\n" + table + "\n")
  common.write_results(common.default_out(args.out, "families", args.quick, meta),
                       {"meta": meta, "families": rows}, md,
                       lambda png: plot(rows, meta, png))


# ------------------------------------------------------------------------ the report


def summary(row: dict, hea_a_us: float | None) -> dict:
  """The ratios of one family's row (medians; None where a method has no time)."""
  t = {m: r["median_s"] for m, r in row["methods"].items() if r.get("status") == "ok"}
  base = row["methods"].get("qhess_default", {})
  n_circ = base.get("n_circuits")
  pl = next((m for m in ("pl_lightning.qubit", "pl_lightning.qubit" + to_pennylane.QNODE)
             if m in t), None)

  def ratio(a, b):
    return None if a is None or b is None else a / b

  d = t.get("qhess_default")
  us = None if d is None or not n_circ else 1e6 * d / n_circ
  exact = {m: t[m] for m in EXACT if m in t}
  best = min(exact, key=exact.get) if exact else None
  errs = [r["max_abs_diff_vs_jax"] for m, r in row["methods"].items()
          if m.startswith("qhess") and r.get("max_abs_diff_vs_jax") is not None]
  return {
      "n_circuits": n_circ, "default_ms": None if d is None else 1e3 * d,
      "default_compile_s": base.get("compile_s"),
      "default_first_call_s": base.get("first_call_s"),
      "best_exact_method": best,
      "default_over_best": ratio(d, exact.get(best)),
      "independent_over_default": ratio(t.get("qhess_independent_default_rule"), d),
      "default_over_adjoint": ratio(d, t.get("qhess_adjoint")),
      "pennylane_over_default": ratio(t.get(pl), d), "pennylane_method": pl,
      "default_over_jax_hessian": ratio(d, t.get("jax_hessian")),
      "default_us_per_circuit": us,
      "per_circuit_over_hea_a": ratio(us, hea_a_us),
      "max_abs_diff_vs_jax": max(errs) if errs else None,
      "all_match_jax": all(r.get("matches_jax", True) for r in row["methods"].values()),
  }


def markdown(rows: list[dict]) -> str:
  """A summary table over the families, then one table per family."""
  head = ("| family | wires × layers | P | circuits | auto ms | shared ms | independent ms "
          "| adjoint ms | fastest exact | t_auto / t_fastest | auto first call s "
          "| jax.hessian ms | PennyLane ms | t_PL / t_auto | t_auto / t_jax | µs / circuit "
          "| max abs diff vs reference |")
  lines = ["## Summary (median warm times; t_auto / t_fastest: the default, "
           "`evaluation=\"auto\"`, against the fastest of the three exact methods; "
           "first call: trace + compile + run in a fresh process, import excluded)", "",
           head, "|:---|---:|" + "---:|" * 15]
  for row in rows:
    s, ms = row["summary"], {}
    for m, r in row["methods"].items():
      ms[m] = common.fmt_ms(r["median_s"]) if r.get("status") == "ok" else "—"
    pl = s["pennylane_method"] or "pl_lightning.qubit"
    err = s["max_abs_diff_vs_jax"]
    lines.append(
        f"| {row['family']} | {row['n_qubits']} × {row['layers']} "
        f"| {row.get('n_params', '')} | {s['n_circuits'] or ''} "
        f"| {ms.get('qhess_default', '')} | {ms.get('qhess_shared', '')} "
        f"| {ms.get('qhess_independent_default_rule', '')} | {ms.get('qhess_adjoint', '')} "
        f"| {LABELS.get(s.get('best_exact_method'), '')} "
        f"| {common.fmt_x(s.get('default_over_best'))} "
        f"| {common.fmt_s(s.get('default_first_call_s'))} "
        f"| {ms.get('jax_hessian', '')} | {ms.get(pl, '')} "
        f"| {common.fmt_x(s['pennylane_over_default'])} "
        f"| {common.fmt_x(s['default_over_jax_hessian'])} "
        f"| {common.fmt_s(s['default_us_per_circuit'])} "
        f"| {'' if err is None else f'{err:.1e}'}{'' if s['all_match_jax'] else ' MISMATCH'} |")
  for row in rows:
    lines += ["", f"## {row['family']}: {DESCRIPTIONS[row['family']]}", "",
              f"{row['n_qubits']} wires × {row['layers']} layers; params shape "
              f"{tuple(row.get('params_shape', ()))}, P = {row.get('n_params', '?')} gate "
              f"arguments, {row.get('n_gates', '?')} gates; load average "
              f"{row['loadavg'][0]:.2f} before it.", "",
              "| method | circuits | first call s | compile s | median ms | min–max ms | R "
              "| µs / circuit | t / t(qhess default) | max abs diff vs reference |",
              "|:---|" + "---:|" * 9]
    for m, r in row["methods"].items():
      label = LABELS.get(m, m)
      if r.get("status") != "ok":
        lines.append(f"| {label} | {r.get('status')} |" + " |" * 8)
        continue
      err = r.get("max_abs_diff_vs_jax")
      n_c = r.get("n_circuits")
      lines.append(
          f"| {label} | {n_c or ''} | {common.fmt_s(r.get('first_call_s'))} "
          f"| {common.fmt_s(r['compile_s'])} "
          f"| {common.fmt_ms(r['median_s'])} "
          f"| {common.fmt_ms(r['min_s'])}–{common.fmt_ms(r['max_s'])} | {r['repeat']} "
          f"| {common.fmt_s(1e6 * r['median_s'] / n_c) if n_c else ''} "
          f"| {common.fmt_s(r.get('ratio_to_default'))} "
          f"| {'' if err is None else f'{err:.1e}'}"
          f"{'' if r.get('matches_jax', True) else ' MISMATCH'} |")
  return "\n".join(lines)


_STYLE = {"qhess_default": "C0", "qhess_shared": "C1", "qhess_independent_default_rule": "C6",
                 "qhess_adjoint": "C7",
                 "jax_hessian": "C3", "pl_lightning.qubit": "C5",
                 "pl_lightning.qubit" + to_pennylane.QNODE: "C4"}


def plot(rows: list[dict], meta: dict, path: pathlib.Path) -> bool:
  """Grouped bars per family: median Hessian time and time per shifted circuit (log)."""
  plt = common.pyplot()
  if plt is None:
    return False
  methods = [m for m in _STYLE if any(
      r["methods"].get(m, {}).get("status") == "ok" for r in rows)]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True,
                                 gridspec_kw={"width_ratios": [3, 2]})
  x = np.arange(len(rows))
  width = 0.8 / max(1, len(methods))
  per_circuit = [m for m in methods if m != "jax_hessian"]
  width2 = 0.8 / max(1, len(per_circuit))
  for k, m in enumerate(methods):
    ok = [r["methods"].get(m, {}).get("status") == "ok" for r in rows]
    t = [r["methods"][m]["median_s"] if o else np.nan for r, o in zip(rows, ok)]
    bars = ax1.bar(x + (k - (len(methods) - 1) / 2) * width, t, width,
                   label=LABELS.get(m, m), color=_STYLE[m])
    if m == "qhess_default":  # the default's speed-ups over independent evaluation
      for b, r in zip(bars, rows):
        s = r["summary"]["independent_over_default"]
        if s is not None:
          ax1.annotate(f"{s:.2g}×", (b.get_x() + b.get_width() / 2, b.get_height()),
                       xytext=(0, 2), textcoords="offset points", ha="center",
                       va="bottom", fontsize=7, color="C0")
    if m in per_circuit:
      j = per_circuit.index(m)
      us = [1e6 * r["methods"][m]["median_s"] / r["methods"][m]["n_circuits"]
            if o and r["methods"][m].get("n_circuits") else np.nan
            for r, o in zip(rows, ok)]
      ax2.bar(x + (j - (len(per_circuit) - 1) / 2) * width2, us, width2,
              color=_STYLE[m], label=LABELS.get(m, m))
  labels = [f"{r['family']}\n{r['n_qubits']}×{r['layers']}, P={r.get('n_params', '?')}"
            for r in rows]
  for ax in (ax1, ax2):
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
  ax1.set_ylabel("median time per full Hessian [s]")
  ax1.set_title("full Hessian (numbers: t_independent / t_default)", fontsize=9)
  ax2.set_ylabel("median time per shifted circuit [µs]")
  ax2.set_title("per shifted circuit (qhess: default's circuit count)", fontsize=9)
  handles, names = ax1.get_legend_handles_labels()
  fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=8)
  fig.suptitle(f"Hessians of circuit families — qhess vs jax.hessian vs PennyLane "
               f"(param_shift_hessian); {meta['device']}, {meta['cpu_count']} cores, "
               f"JAX {meta['jax_version']}, {meta['dtype']}", fontsize=10)
  return common.save_figure(plt, fig, path)
