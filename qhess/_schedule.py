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
    sweep: ``None`` or ``(steps, final_rows, gate_applications)``, the same work as one
      sweep over the
      segments (see `build_schedule`'s ``sweep``): ``steps[j]`` is a `Group` giving, for
      every branch alive after segment ``j``, its row in the previous table and its
      shifts; ``final_rows[t]`` is the row of plan point ``t`` in the last table.
  """

  def __init__(self, bounds, segments, points, order, gate_applications,
               independent_applications, sweep=None):
    self.bounds = tuple(int(b) for b in bounds)
    self.segments = tuple(segments)
    self.points = tuple(points)
    self.order = order
    self.sweep = sweep
    self.gate_applications = int(gate_applications)
    self.independent_applications = int(independent_applications)
    digest = hashlib.sha1(repr(self.bounds).encode())
    for g in self.segments + self.points:
      for a in g:
        digest.update(np.ascontiguousarray(a).tobytes())
    digest.update(order.tobytes())
    if sweep is not None:
      for g in sweep[0]:
        for a in g:
          digest.update(np.ascontiguousarray(a).tobytes())
      digest.update(sweep[1].tobytes())
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
                   shift: np.ndarray, n_segments: int = 8, sweep: bool = False) -> Schedule:
  """The prefix-sharing schedule of a plan's points.

  Args:
    param_positions: for each gate argument, the index of its gate in the op list.
    n_ops: number of operations ``L``.
    index: int array ``(T, 2)``: the points' shifted argument indices.
    shift: float array ``(T, 2)``: their shifts (0 where unused).
    n_segments: at most this many segments ``K`` (more share more).
    sweep: also lay the work out as a single sweep over the segments in which every
      branch (parents and points) stays alive to the end: each gate is compiled once
      (the grouped form compiles the circuit's tail once per boundary) but all ``T``
      states are held at once, so use it only when they fit in memory.

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
  grouped_points = tuple(points)
  sweep_form = None
  if sweep:
    points = list(points)  # the sweep renumbers parent rows in its own copy
    # Table j holds, in order: the unshifted branch, the parents spawned before segment
    # j, then the points started before boundary j. Step j keeps every row and appends
    # the parents spawned in segment j and the points starting at boundary j.
    steps, n_rows, n_started = [], 1, 0
    point_row = np.zeros(t_count, dtype=np.int64)
    n_par = len(spawn)
    row_par = np.arange(1, n_par + 1)
    branch_idx = [np.zeros((1, 2), np.int32)]
    branch_sh = [np.zeros((1, 2))]
    for j in range(k):
      new_p = np.nonzero(spawn == j)[0]
      new_t = points[j]
      rows = np.concatenate([np.arange(n_rows), np.zeros(len(new_p), int), new_t.rows])
      branch_idx += [np.stack([p_args[new_p], np.zeros(len(new_p), np.int32)], 1),
                     new_t.index]
      branch_sh += [np.stack([p_shifts[new_p], np.zeros(len(new_p))], 1), new_t.shift]
      steps.append(Group(rows.astype(np.int32),
                         np.concatenate(branch_idx).astype(np.int32),
                         np.concatenate(branch_sh)))
      # Rows of parents in the sweep table differ from the grouped table: remap the
      # points started later so that they find their parent's sweep row.
      row_par[new_p] = n_rows + np.arange(len(new_p))
      point_row[order[n_started:n_started + len(new_t.rows)]] = (
          n_rows + len(new_p) + np.arange(len(new_t.rows)))
      n_started += len(new_t.rows)
      n_rows += len(new_p) + len(new_t.rows)
      if j + 1 < k:  # translate grouped-table rows (1 + parent rank) to sweep rows
        nxt = points[j + 1]
        points[j + 1] = nxt._replace(rows=np.where(
            nxt.rows == 0, 0, row_par[np.maximum(nxt.rows - 1, 0)]).astype(np.int32))
    sweep_apps = sum(len(st.rows) * (bounds[j + 1] - bounds[j]) for j, st in enumerate(steps))
    sweep_form = (tuple(steps), point_row, sweep_apps)
  return Schedule(bounds, segments, grouped_points, order.astype(np.int64), applications,
                  t_count * n_ops, sweep_form)
