"""How fast is qhess's parameter-shift Hessian, against autodiff and PennyLane?

The command line of the two Hessian benchmarks (argument parsing and dispatch only):

- the cases (`bench/cases.py`): the hardware-efficient ansatz at n = 4..16 wires and a
  P = 200 case; qhess's default, product and diagonal rules, independent and adjoint
  evaluation, ``jax.hessian`` through qhess's simulator and PennyLane's
  ``param_shift_hessian`` on ``default.qubit`` / ``lightning.qubit``;
- ``--families [NAME ...]`` (`bench/families.py`): the same question over circuit
  families at one size.

Each case or family runs in a fresh worker process, ``run.py --worker <spec>``
(`bench/hessians.py`). The workloads, methods, timing rules and outputs are described in
those modules.

Run (from the repository root; qhess need not be installed)::

    python bench/run.py                # the cases, ~10 min on 2 cores
    python bench/run.py --quick        # n = 4, 6 (1 layer), 1-2 repeats, no PennyLane, < 60 s
    python bench/run.py --cases 18x1 20x1 --no-pennylane
    python bench/run.py --families     # every family, 10 wires x 2 layers
    python bench/run.py --families qaoa chem --wires 8 --pl-qnode
    python bench/run.py --families --quick

Output: a line per method and Markdown tables on stdout; JSON, Markdown and (with
matplotlib) a PNG at ``bench/results/hessian-<date>-<host>.{json,md,png}`` or
``bench/results/families-<date>-<host>.{json,md,png}`` (``-quick-`` after the name with
``--quick``; ``--out`` for another JSON path, the others beside it).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import cases
import families
import hessians


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true",
                 help="cases 4x1 6x1, at most 2 repeats, no PennyLane (< 60 s); with "
                      "--families: 4 wires x 1 layer, 1 repeat, one worker, no PennyLane")
  p.add_argument("--cases", nargs="+",
                 help="NxL cases, wires x layers (default " + " ".join(cases.DEFAULT_CASES) + ")")
  p.add_argument("--families", nargs="*", choices=list(families.FAMILIES), metavar="NAME",
                 help="the circuit-families benchmark instead: these families (none "
                      "named: all of " + " ".join(families.FAMILIES) + ")")
  p.add_argument("--wires", type=int, default=None,
                 help="with --families: wires (default 10; 4 with --quick)")
  p.add_argument("--layers", type=int, default=None,
                 help="with --families: layers (default 2; 1 with --quick)")
  p.add_argument("--seed", type=int, default=0,
                 help="with --families: the parameters' (and the random circuit's) seed")
  p.add_argument("--no-pennylane", action="store_true", help="skip the PennyLane methods")
  p.add_argument("--skip-jax", action="store_true",
                 help="families: skip jax.hessian (compiling it takes minutes at 10 x 2); "
                      "the Hessians are then checked against independent evaluation")
  p.add_argument("--pennylane", action="store_true",
                 help="with --families --quick: time PennyLane all the same")
  p.add_argument("--pl-qnode", action="store_true",
                 help="with --families: also time param_shift_hessian through the QNode")
  p.add_argument("--pl-max-wires", type=int, default=10,
                 help="largest n for PennyLane (default 10)")
  p.add_argument("--pl-limit", type=float, default=20.0,
                 help="skip a PennyLane device when its predicted call exceeds this (s)")
  p.add_argument("--repeat", type=int, default=None,
                 help="most timed calls per method (default 15; 2 with --quick, 1 with "
                      "--families --quick)")
  p.add_argument("--budget", type=float, default=None,
                 help="timed seconds aimed at per method (default 4; 0.5 with --quick)")
  p.add_argument("--case-timeout", type=float, default=None,
                 help="seconds per case (default 360; 60 with --quick) or family "
                      "(default 1200; 120 per family with --quick); 0: no limit")
  p.add_argument("--blas-threads", type=int, default=1,
                 help="OMP/OpenBLAS/MKL threads in the workers (default 1; 0: inherit). "
                      "XLA's own thread pool is not affected")
  p.add_argument("--atol", type=float, default=None,
                 help="correctness tolerance vs jax.hessian (default 1e-8; 1e-9 with "
                      "--families)")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="JSON path (default bench/results/hessian-<date>-<host>.json, or "
                      "families-<date>-<host>.json)")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: case specs, JSON
  return p.parse_args(argv)



def main(argv=None) -> None:
  args = parse_args(argv)
  if args.worker:
    hessians.work(json.loads(args.worker))
  elif args.families is not None:
    families.run(args)
  else:
    cases.run(args)


if __name__ == "__main__":
  main()
