"""Prefix-shared evaluation of a plan's points: a static schedule, built in NumPy.

Every shifted circuit equals the unshifted one up to its first shifted gate, and a
point that shifts two arguments equals the single-shift circuit of its first argument
up to its second shifted gate. The schedule cuts the gate list into ``K`` segments at
*boundaries* and evaluates

1. *parents* segment by segment: the unshifted circuit (row 0) and, for every
   (argument, shift) that starts a two-shift point, the single-shift branch, spawned
   from the unshifted state at the boundary before its gate; the states of all live
   parents at boundary ``j`` form the table ``table_j`` (one row per parent);
2. each *point* from the table at the boundary ``j`` before its last shifted gate: the
   row of its first-shift parent when that gate lies before the boundary, the
   unshifted row otherwise; it runs only the gates from that boundary on.

Gate applications: parents ``Σ_j |table_{j+1}| · len(segment j)``, points
``Σ_t (L - b_{j_t})``, against ``T · L`` for independent evaluation. For pairs spread
uniformly over the circuit the points' share tends to ``T · L · (1/3 + 1/(2K))``.
Everything here is static: the schedule is part of the jit cache key.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Sequence

import numpy as np

_QUANTUM = 1e-9


class Group(NamedTuple):
  """Work starting at one boundary: rows into the table, and per-item shifts."""

  rows: np.ndarray   # int32 (m,)
  index: np.ndarray  # int32 (m, 2)
  shift: np.ndarray  # float64 (m, 2)


class Schedule:
  """A static prefix-sharing schedule (hashable by content).

  Attributes:
    bounds: op indices ``b_0 = 0 < b_1 < ... < b_K = L`` delimiting the segments.
    segments: ``K - 1`` `Group` s: row ``r`` of ``table_{j+1}`` is ``segments[j]``'s
      item ``r`` run over segment ``j`` from ``table_j[rows[r]]``.
    points: ``K`` `Group` s: the points that start at boundary ``j``.
    order: int array ``(T,)``: the plan's point index of each item of ``points``,
      concatenated in ``j`` order.
    gate_applications: gates applied by this schedule.
    independent_applications: ``T · L``, gates applied evaluating points independently.
    n_parents: single-shift branches kept in the tables besides the unshifted one (a
      table holds at most ``n_parents + 1`` states).
  """

  def __init__(self, bounds, segments, points, order, gate_applications,
               independent_applications, n_parents):
    self.bounds = tuple(int(b) for b in bounds)
    self.segments = tuple(segments)
    self.points = tuple(points)
    self.order = order
    self.gate_applications = int(gate_applications)
    self.independent_applications = int(independent_applications)
    self.n_parents = int(n_parents)
    digest = hashlib.sha1(repr(self.bounds).encode())
    for g in self.segments + self.points:
      for a in g:
        digest.update(np.ascontiguousarray(a).tobytes())
    digest.update(order.tobytes())
    self._digest = digest.hexdigest()

  def __hash__(self) -> int:
    return hash(self._digest)

  def __eq__(self, other) -> bool:
    return isinstance(other, Schedule) and other._digest == self._digest


def _boundaries(positions: np.ndarray, n_ops: int, n_segments: int) -> np.ndarray:
  """Segment starts at quantiles of the parametrized gates' positions."""
  distinct = np.unique(positions)
  k = max(1, min(n_segments, len(distinct)))
  cuts = distinct[(np.arange(1, k) * len(distinct)) // k] if k > 1 else np.zeros(0, int)
  return np.unique(np.concatenate([[0], cuts, [n_ops]])).astype(int)


def build_schedule(param_positions: Sequence[int], n_ops: int, index: np.ndarray,
                   shift: np.ndarray, n_segments: int = 4) -> Schedule:
  """The prefix-sharing schedule of a plan's points.

  Args:
    param_positions: for each gate argument, the index of its gate in the op list.
    n_ops: number of operations ``L``.
    index: int array ``(T, 2)``: the points' shifted argument indices.
    shift: float array ``(T, 2)``: their shifts (0 where unused).
    n_segments: at most this many segments ``K``: more share more, but the tail of the
      circuit is compiled once per segment (4 gave most of the sharing at 10 wires).
  Returns:
    a `Schedule`.
  """
  pos = np.asarray(param_positions, dtype=int)
  index = np.asarray(index)
  shift = np.asarray(shift, dtype=np.float64)
  t_count = len(index)
  bounds = _boundaries(pos, n_ops, n_segments)
  k = len(bounds) - 1

  def segment_of(p):
    return np.searchsorted(bounds, p, side="right") - 1

  shifted = shift != 0
  gate_pos = np.where(shifted, pos[index] if len(pos) else 0, -1)  # (T, 2)
  last = gate_pos.max(axis=1) if t_count else np.zeros(0, int)
  first = np.where(shifted, gate_pos, n_ops).min(axis=1) if t_count else last
  start = np.where(last >= 0, segment_of(np.maximum(last, 0)), k - 1)
  # A point inherits its first shift from a parent when that gate is in an earlier
  # segment than the point's start.
  col = np.where(shifted, gate_pos, n_ops).argmin(axis=1) if t_count else last
  has_parent = shifted.all(axis=1) & (segment_of(np.minimum(first, n_ops - 1)) < start)
  parents: dict[tuple[int, int], int] = {}
  parent_args, parent_shifts, parent_spawn = [], [], []
  point_parent = np.zeros(t_count, dtype=int)  # 0: the unshifted circuit
  for t in np.nonzero(has_parent)[0]:
    arg, s = int(index[t, col[t]]), float(shift[t, col[t]])
    key = (arg, int(round(s / _QUANTUM)))
    if key not in parents:
      parents[key] = len(parent_args) + 1
      parent_args.append(arg)
      parent_shifts.append(s)
      parent_spawn.append(int(segment_of(pos[arg])))
    point_parent[t] = parents[key]
  # Rows: the unshifted circuit first, then parents in order of their spawn segment.
  order_p = np.argsort(np.asarray(parent_spawn, dtype=int), kind="stable")
  row_of = np.zeros(len(parent_args) + 1, dtype=int)
  row_of[order_p + 1] = np.arange(1, len(order_p) + 1)
  spawn = np.asarray(parent_spawn, dtype=int)[order_p]
  p_args = np.asarray(parent_args, dtype=np.int32)[order_p]
  p_shifts = np.asarray(parent_shifts, dtype=np.float64)[order_p]

  segments, applications = [], 0
  for j in range(k - 1):
    alive = int(np.sum(spawn < j))
    new = int(np.sum(spawn == j))
    rows = np.concatenate([[0], np.arange(1, alive + 1), np.zeros(new, int)])
    sel = slice(0, alive + new)
    idx = np.concatenate([[[0, 0]], np.stack([p_args[sel], np.zeros(alive + new, np.int32)], 1)])
    sh = np.concatenate([[[0.0, 0.0]], np.stack([p_shifts[sel], np.zeros(alive + new)], 1)])
    segments.append(Group(rows.astype(np.int32), idx.astype(np.int32), sh))
    applications += len(rows) * (bounds[j + 1] - bounds[j])
  points, order = [], []
  for j in range(k):
    members = np.nonzero(start == j)[0]
    rows = row_of[point_parent[members]]
    points.append(Group(rows.astype(np.int32), index[members].astype(np.int32),
                        shift[members]))
    order.append(members)
    applications += len(members) * (n_ops - bounds[j])
  order = np.concatenate(order) if order else np.zeros(0, int)
  return Schedule(bounds, segments, points, order.astype(np.int64), applications,
                  t_count * n_ops, len(parent_args))
