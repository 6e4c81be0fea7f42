"""Saving experiments' post-processing to a file, and loading it in another process.

`save_experiments` writes the ``post`` of `qhess.hessian_experiments`,
`qhess.gradient_experiments` or `qhess.hessian_tapes` (and, optionally, the layout of
the Qiskit Sampler V2 PUBs made from the experiments) to a file; `load_experiments`
reads it back as a ``post`` that gives the same derivatives and standard errors from
the same counts or results, without the circuit: counts that arrive days later are
processed in a new process. Nothing is pickled: the file holds arrays and a JSON
header, and loading runs no code from it.

**File format, version 1.** A NumPy ``.npz`` archive (a zip of ``.npy`` arrays, read
with ``allow_pickle=False``). The array ``header`` holds UTF-8 JSON:

- ``format``: ``"qhess-experiments"``; ``version``: ``1`` (a file of a newer version is
  refused); ``kind``: ``"experiments"`` (an `ExperimentsPost`) or ``"tapes"`` (a
  `TapesPost` of `hessian_tapes`); ``qhess``: the version that wrote it.
- ``chain``: the post-processing (`LocalChain`): ``order`` (1 gradient, 2 Hessian),
  ``dtype``, ``n_params`` and ``has_unshifted`` of the shift plan, ``measurements`` (the
  measurement specs: ``kind``, ``terms`` as ``[coefficient, factors]`` with a factor
  ``[pauli, wire]`` or ``["H", wires, const]``, ``wires``, ``coeffs``),
  ``returns_tuple``, ``in_shapes`` (the differentiated input leaves),
  ``out_tree`` (the result's pytree: ``{"tuple": [...]}``, ``{"list": [...]}``,
  ``{"dict": [[key, node], ...]}``, ``{"none": null}``, or a leaf's index),
  ``out_dtypes``, ``identity_jacobian``, ``coeffs`` and ``coeff_derivatives`` (the const
  indices of coefficient vectors held as data, and of those depending on the inputs).
- ``experiments`` (kind ``experiments``): ``shot_vector``, ``return_stderr``,
  ``bit_order``, ``group_wires`` (per measurement group), and ``pubs`` (``null`` or
  ``{"token", "register", "count", "qubits", "zne"}``, ``zne`` being ``null`` or its
  ``scale_factors``, ``folding``, ``seed`` and ``extrapolation`` name).
- ``tapes`` (kind ``tapes``): ``out_shapes`` (each tape's raw outputs), ``n_tapes``,
  ``f0`` (whether ``f0_raw`` is stored).

Arrays (``P`` gate arguments, ``n`` input elements, ``T`` points):

- the shift plan: ``plan.point_index`` ``(T, 2)``, ``plan.point_shift`` ``(T, 2)``,
  ``plan.grad_arg``, ``plan.grad_point``, ``plan.grad_coef``, ``plan.hess_row``,
  ``plan.hess_col``, ``plan.hess_point``, ``plan.hess_coef``;
- the chain rule at the inputs: ``chain.jac`` ``(P, n)`` = ∂θ/∂x (absent for the
  identity), ``chain.curv_rows`` ``(Q,)`` and ``chain.curv`` ``(Q, n, n)`` (the non-zero
  second derivatives ∂²θ/∂x²), ``chain.coeff.K``, ``chain.coeff_jac.K`` ``(c, n)``,
  ``chain.coeff_curv.K`` ``(c, n, n)`` for coefficient vector ``K``;
- experiments: ``experiments.estimator`` ``(n_raw, G, O)`` (raw values from the groups'
  outcome frequencies), ``experiments.shots`` ``(S, T, G)``, ``experiments.points``
  ``(T, P)``, ``experiments.point``, ``.group``, ``.entry``, ``.n_shots`` (one per
  experiment); with PUBs ``pubs.rows`` and ``pubs.row_offsets`` (the experiment of each
  parameter row, PUB ``i`` in ``rows[offsets[i]:offsets[i + 1]]``), ``pubs.bit_wires``
  and ``pubs.bit_offsets`` (the wire of each bit of the register), ``pubs.qubits`` and
  ``pubs.qubit_offsets`` (the physical qubit of each bit, for readout mitigation),
  ``pubs.scales`` (each PUB's ZNE scale factor) and ``pubs.zne_weights`` (the
  extrapolation's weights);
- tapes: ``tapes.points`` ``(n_tapes, P)``, ``tapes.f0_raw``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

from qhess.circuits.tape import MeasurementSpec
from qhess.shift.plan import ShiftPlan
from qhess.derivatives.chain import LocalChain
from qhess.derivatives.tapes import TapesPost
from qhess.interop import mitigation as _mitigation
from qhess.interop.experiments import Experiment, ExperimentsPost
from qhess.interop.primitives import SamplerPubs

FORMAT = "qhess-experiments"
VERSION = 1  # the newest format version this qhess writes and reads
_PLAN = ("point_index", "point_shift", "grad_arg", "grad_point", "grad_coef", "hess_row",
         "hess_col", "hess_point", "hess_coef")


def save_experiments(path, experiments_and_post, *, pubs=None) -> None:
  """Saves the post-processing of experiments (or tapes) to a file, for later counts.

  Args:
    path: the file to write (a str or path; ``.npz`` by convention, written as given).
    experiments_and_post: ``(experiments, post)`` as returned by
      ``qhess.hessian_experiments(...)(*args)``, ``qhess.gradient_experiments(...)``
      or ``qhess.hessian_tapes(...)`` (``(tapes, post)``), or the ``post`` alone.
    pubs: the ``qhess.to_sampler_pubs(experiments, ...)`` that will run, so that the
      loaded ``post(result, post.pubs)`` reads a Sampler V2 result (its bit→wire maps
      are saved, not the Qiskit circuits).

  Raises:
    TypeError: for something other than such a ``post`` (or pair), PUBs of other
      experiments, or a result layout that cannot be saved (a pytree of other
      containers than tuples, lists, dicts and None).
    ValueError: for experiments or tapes that are not the post's.

  Examples:
    >>> import jax.numpy as jnp, numpy as np, qhess, tempfile, os
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RY(2 * x[1], wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1) + qhess.X(1))
    >>> x = jnp.array([0.5, 0.25])
    >>> experiments, post = qhess.hessian_experiments(f, shots=1000, bit_order="big")(x)
    >>> path = os.path.join(tempfile.mkdtemp(), "hessian.npz")
    >>> qhess.save_experiments(path, (experiments, post))
    >>> loaded = qhess.load_experiments(path)  # e.g. in another process, days later
    >>> counts = [1000 * np.asarray(p) for p in qhess.execute([e.tape for e in experiments])]
    >>> bool(np.allclose(loaded(counts), post(counts), atol=1e-12, rtol=0))
    True
  """
  post = _post_of(experiments_and_post)
  header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "qhess": _version()}
  arrays: dict[str, np.ndarray] = {}
  header["chain"] = _save_chain(post.chain, arrays)
  if isinstance(post, ExperimentsPost):
    header["kind"] = "experiments"
    header["experiments"] = _save_experiments_post(post, pubs, arrays)
  else:
    if pubs is not None:
      raise TypeError("`pubs` belong to hessian_experiments' experiments, not to tapes.")
    header["kind"] = "tapes"
    header["tapes"] = {"out_shapes": [list(s) for s in post.out_shapes],
                       "n_tapes": post.n_tapes, "f0": post.f0_raw is not None}
    arrays["tapes.points"] = np.asarray(post.points, np.float64)
    if post.f0_raw is not None:
      arrays["tapes.f0_raw"] = np.asarray(post.f0_raw)
  text = json.dumps(header, sort_keys=True)
  with open(os.fspath(path), "wb") as f:
    np.savez_compressed(f, header=np.frombuffer(text.encode(), np.uint8), **arrays)


def load_experiments(path):
  """Loads a ``post`` saved by `save_experiments`, without the circuit.

  Args:
    path: the file.

  Returns:
    the ``post``: an `ExperimentsPost` (``post(counts)``, or ``post(result, post.pubs)``
    when the PUBs were saved; ``post.experiments`` holds the experiments' shots,
    wires, points and groups, with ``tape=None``) or a `TapesPost` (``post(results)``),
    giving what the saved ``post`` gave.

  Raises:
    FileNotFoundError: when there is no such file.
    ValueError: for a file that is not one of qhess's (not an ``.npz`` archive, or
      without its header), a corrupted one, or one of a newer format version.
  """
  header, arrays = _read(path)
  try:
    chain = _load_chain(header["chain"], arrays)
    if header["kind"] == "experiments":
      return _load_experiments_post(header["experiments"], chain, arrays)
    if header["kind"] == "tapes":
      t = header["tapes"]
      return TapesPost(chain, [tuple(s) for s in t["out_shapes"]], int(t["n_tapes"]),
                       arrays["tapes.f0_raw"] if t["f0"] else None, arrays["tapes.points"])
    raise ValueError(f"unknown kind {header['kind']!r}")
  except (KeyError, TypeError, ValueError, IndexError) as err:
    raise ValueError(f"{os.fspath(path)!r} is a corrupted qhess experiments file "
                     f"(format version {header['version']}): {type(err).__name__}: {err}."
                     ) from err


def _post_of(experiments_and_post):
  """The ``post`` of ``(items, post)`` or of a bare ``post``, checked."""
  post, items = experiments_and_post, None
  if isinstance(experiments_and_post, tuple) and len(experiments_and_post) == 2:
    items, post = experiments_and_post
  if not isinstance(post, (ExperimentsPost, TapesPost)):
    raise TypeError(
        "`experiments_and_post` must be (experiments, post) from qhess.hessian_experiments "
        "or qhess.gradient_experiments, (tapes, post) from qhess.hessian_tapes, or that "
        f"post; got {type(post).__name__}.")
  if items is not None:
    n = len(post.experiments) if isinstance(post, ExperimentsPost) else post.n_tapes
    mine = (isinstance(post, ExperimentsPost) and len(items) == n
            and all(a is b for a, b in zip(items, post.experiments)))
    if len(items) != n or (isinstance(post, ExperimentsPost) and not mine):
      raise ValueError(
          f"the {len(items)} experiments (or tapes) are not the {n} of this post; pass the "
          "pair returned by one call.")
  return post


def _save_chain(chain: LocalChain, arrays: dict) -> dict:
  """The header of a `LocalChain`; its arrays go into ``arrays``."""
  for name in _PLAN:
    arrays[f"plan.{name}"] = np.asarray(getattr(chain.plan, name))
  if chain.jac is not None:
    arrays["chain.jac"] = np.asarray(chain.jac)
  arrays["chain.curv_rows"] = np.asarray(chain.curv_rows, np.int64)
  arrays["chain.curv"] = np.asarray(chain.curv)
  for k, c in chain.coeffs.items():
    arrays[f"chain.coeff.{k}"] = np.asarray(c)
  for k in chain.coeff_jac:
    arrays[f"chain.coeff_jac.{k}"] = np.asarray(chain.coeff_jac[k])
    arrays[f"chain.coeff_curv.{k}"] = np.asarray(chain.coeff_curv[k])
  return {
      "order": chain.order, "dtype": np.dtype(chain.dtype).name,
      "n_params": int(chain.plan.n_params), "has_unshifted": bool(chain.plan.has_unshifted),
      "measurements": [_spec_to_json(m) for m in chain.measurements],
      "returns_tuple": bool(chain.returns_tuple),
      "in_shapes": [list(s) for s in chain.in_shapes],
      "out_tree": _tree_to_json(chain.out_tree),
      "out_dtypes": [np.dtype(d).name for d in chain.out_dtypes],
      "identity_jacobian": chain.jac is None,
      "coeffs": sorted(int(k) for k in chain.coeffs),
      "coeff_derivatives": sorted(int(k) for k in chain.coeff_jac)}


def _load_chain(h: dict, arrays) -> LocalChain:
  plan = ShiftPlan(n_params=int(h["n_params"]), has_unshifted=bool(h["has_unshifted"]),
                   **{name: arrays[f"plan.{name}"] for name in _PLAN})
  n_points = len(plan.point_index)
  for name in ("grad_point", "hess_point"):
    if np.any(getattr(plan, name) >= n_points) or np.any(getattr(plan, name) < 0):
      raise ValueError(f"plan.{name} indexes points beyond the {n_points} of the plan")
  in_shapes = tuple(tuple(int(d) for d in s) for s in h["in_shapes"])
  order = int(h["order"])
  if order not in (1, 2):
    raise ValueError(f"order {order} is neither 1 nor 2")
  chain = LocalChain(
      plan, tuple(_spec_from_json(m) for m in h["measurements"]), bool(h["returns_tuple"]),
      {k: arrays[f"chain.coeff.{k}"] for k in h["coeffs"]},
      None if h["identity_jacobian"] else arrays["chain.jac"],
      arrays["chain.curv_rows"], arrays["chain.curv"],
      {k: arrays[f"chain.coeff_jac.{k}"] for k in h["coeff_derivatives"]},
      {k: arrays[f"chain.coeff_curv.{k}"] for k in h["coeff_derivatives"]},
      order, in_shapes, _tree_from_json(h["out_tree"]),
      tuple(np.dtype(d) for d in h["out_dtypes"]), np.dtype(h["dtype"]))
  if chain.out_tree.num_leaves != len(chain.out_dtypes) or len(chain.out_dtypes) != len(
      chain.measurements) * len(in_shapes) ** order:
    raise ValueError("the result layout does not match the measurements and inputs")
  if chain.jac is not None and chain.jac.shape != (plan.n_params, chain.n_inputs):
    raise ValueError(f"chain.jac has shape {chain.jac.shape}, not "
                     f"({plan.n_params}, {chain.n_inputs})")
  return chain


def _save_experiments_post(post: ExperimentsPost, pubs, arrays: dict) -> dict:
  arrays["experiments.estimator"] = np.asarray(post.estimator)
  arrays["experiments.shots"] = np.asarray(post.shots, np.int64)
  arrays["experiments.points"] = np.asarray(post.points, np.float64)
  for field in ("point", "group", "entry"):
    arrays[f"experiments.{field}"] = np.array([getattr(e, field) for e in post.experiments],
                                              np.int64)
  arrays["experiments.n_shots"] = np.array([e.shots for e in post.experiments], np.int64)
  h = {"shot_vector": post.shot_vector, "return_stderr": post.return_stderr,
       "bit_order": post.bit_order, "group_wires": [list(w) for w in post.group_wires],
       "pubs": None}
  pubs = post.pubs if pubs is None else pubs
  if pubs is not None:
    if not isinstance(pubs, SamplerPubs) or len(pubs.experiments) != len(post.experiments) or any(
        a is not b for a, b in zip(pubs.experiments, post.experiments)):
      raise TypeError("`pubs` must be qhess.to_sampler_pubs(experiments, ...) of these "
                      f"experiments; got {type(pubs).__name__}.")
    h["pubs"] = _save_pubs(pubs, arrays)
  return h


def _save_pubs(pubs: SamplerPubs, arrays: dict) -> dict:
  """The header of PUBs' layout (rows, bits, physical qubits, ZNE scale factors)."""
  arrays["pubs.rows"], arrays["pubs.row_offsets"] = _ragged(pubs.rows)
  arrays["pubs.bit_wires"], arrays["pubs.bit_offsets"] = _ragged(pubs.bit_wires)
  arrays["pubs.scales"] = np.asarray(pubs.scales, np.int64)
  if pubs.qubits is not None:
    arrays["pubs.qubits"], arrays["pubs.qubit_offsets"] = _ragged(pubs.qubits)
  zne = None
  if pubs.zne is not None:
    arrays["pubs.zne_weights"] = np.asarray(pubs.zne.weights, np.float64)
    extrapolation = pubs.zne.extrapolation
    zne = {"scale_factors": list(pubs.zne.scale_factors), "folding": pubs.zne.folding,
           "seed": pubs.zne.seed,
           "extrapolation": extrapolation if isinstance(extrapolation, str) else "custom"}
  return {"token": pubs.token, "register": pubs.register, "count": len(pubs),
          "qubits": pubs.qubits is not None, "zne": zne}


def _load_pubs(p: dict, experiments: tuple, arrays) -> SamplerPubs:
  rows = _unragged(arrays["pubs.rows"], arrays["pubs.row_offsets"])
  bit_wires = [tuple(int(w) for w in b)
               for b in _unragged(arrays["pubs.bit_wires"], arrays["pubs.bit_offsets"])]
  qubits = None if not p["qubits"] else [
      tuple(int(q) for q in b)
      for b in _unragged(arrays["pubs.qubits"], arrays["pubs.qubit_offsets"])]
  scales = [int(s) for s in arrays["pubs.scales"]]
  if any(len(x) != p["count"] for x in (rows, bit_wires, scales, qubits or scales)):
    raise ValueError("the PUBs' arrays do not match their count")
  zne = None
  if p["zne"] is not None:  # the data post uses (no mitiq needed to read results)
    zne = _mitigation.ZNE.__new__(_mitigation.ZNE)
    zne.scale_factors = tuple(float(f) for f in p["zne"]["scale_factors"])
    zne.folding, zne.seed = p["zne"]["folding"], p["zne"]["seed"]
    zne.extrapolation = p["zne"]["extrapolation"]
    zne.weights = arrays["pubs.zne_weights"]
    zne.variance_factor = float(np.sum(zne.weights**2))
    if len(zne.weights) != len(zne.scale_factors) or max(scales) >= len(zne.weights):
      raise ValueError("the ZNE weights do not match the scale factors")
  return SamplerPubs([None] * p["count"], rows, bit_wires, experiments, p["token"], qubits,
                     scales, zne)


def _load_experiments_post(h: dict, chain: LocalChain, arrays) -> ExperimentsPost:
  group_wires = tuple(tuple(int(w) for w in ws) for ws in h["group_wires"])
  fields = [arrays[f"experiments.{f}"] for f in ("n_shots", "point", "group", "entry")]
  if len({len(f) for f in fields}) != 1:
    raise ValueError("the experiments' arrays have different lengths")
  experiments = tuple(Experiment(None, int(n), group_wires[int(g)], int(t), int(g), int(s))
                      for n, t, g, s in zip(*fields))
  shots = arrays["experiments.shots"]
  if shots.ndim != 3 or shots.shape[1:] != (len(chain.plan.point_index), len(group_wires)):
    raise ValueError(f"experiments.shots has shape {shots.shape}")
  pubs = None if h["pubs"] is None else _load_pubs(h["pubs"], experiments, arrays)
  return ExperimentsPost(chain, arrays["experiments.estimator"], shots, experiments,
                         group_wires, bool(h["shot_vector"]), bool(h["return_stderr"]),
                         str(h["bit_order"]), arrays["experiments.points"], pubs)


def _read(path) -> tuple[dict, dict]:
  """The header and the arrays of a file, after checking format and version."""
  name = os.fspath(path)
  foreign = (f"{name!r} is not a qhess experiments file (an .npz archive written by "
             "qhess.save_experiments)")
  with open(name, "rb") as fh:  # (np.load leaks the handle of a broken zip it opened)
    arrays = _arrays(fh, foreign)
  try:
    header = json.loads(arrays.pop("header").tobytes().decode())
  except (ValueError, UnicodeDecodeError) as err:
    raise ValueError(f"{foreign}: its header is not JSON ({err}).") from err
  if not isinstance(header, dict) or header.get("format") != FORMAT:
    raise ValueError(f"{foreign}: its header names the format "
                     f"{header.get('format') if isinstance(header, dict) else None!r}.")
  version = header.get("version")
  if not isinstance(version, int) or isinstance(version, bool) or version < 1:
    raise ValueError(f"{name!r} is a corrupted qhess experiments file: version {version!r}.")
  if version > VERSION:
    raise ValueError(
        f"{name!r} has format version {version} (written by qhess {header.get('qhess')}); "
        f"this qhess ({_version()}) reads versions up to {VERSION}. Upgrade qhess to load it.")
  return header, arrays


def _arrays(fh, foreign: str) -> dict:
  """The arrays of an open ``.npz`` file, or ValueError."""
  try:
    npz = np.load(fh, allow_pickle=False)
    if not hasattr(npz, "files") or "header" not in npz.files:
      raise ValueError(f"{foreign}: it has no header.")
    return {key: npz[key] for key in npz.files}
  except ValueError as err:
    if str(err).startswith(foreign):
      raise
    raise ValueError(f"{foreign}: {err}") from err
  except Exception as err:  # a broken zip, a truncated array: never qhess's file as written
    raise ValueError(f"{foreign} or it is corrupted: {type(err).__name__}: {err}") from err


def _ragged(seqs) -> tuple[np.ndarray, np.ndarray]:
  """Sequences of ints as one flat int64 array and their offsets ``(len + 1,)``."""
  flat = [np.asarray(s, np.int64).reshape(-1) for s in seqs]
  offsets = np.cumsum([0] + [len(f) for f in flat]).astype(np.int64)
  return (np.concatenate(flat) if flat else np.zeros(0, np.int64)), offsets


def _unragged(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
  if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != len(flat) or np.any(
      np.diff(offsets) < 0):
    raise ValueError("ragged offsets do not match their array")
  return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _spec_to_json(m: MeasurementSpec) -> dict:
  terms = None if m.terms is None else [
      [float(c), [[f[0], f[1]] if f[0] != "H" else ["H", list(f[1]), int(f[2])]
                  for f in factors]] for c, factors in m.terms]
  return {"kind": m.kind, "terms": terms, "wires": None if m.wires is None else list(m.wires),
          "coeffs": m.coeffs}


def _spec_from_json(d: dict) -> MeasurementSpec:
  terms = None if d["terms"] is None else tuple(
      (float(c), tuple((f[0], int(f[1])) if f[0] != "H" else ("H", tuple(f[1]), int(f[2]))
                       for f in factors)) for c, factors in d["terms"])
  if d["kind"] not in ("expval", "var", "probs", "expval_sq"):
    raise ValueError(f"unknown measurement kind {d['kind']!r}")
  return MeasurementSpec(d["kind"], terms, None if d["wires"] is None else tuple(d["wires"]),
                         None if d["coeffs"] is None else int(d["coeffs"]))


def _tree_to_json(treedef):
  """A pytree structure of tuples, lists, dicts (str or int keys) and None as JSON."""
  def encode(node):
    if type(node) is int:  # noqa: E721 (a leaf's index; not bool)
      return node
    if node is None:
      return {"none": None}
    if type(node) in (tuple, list):
      return {type(node).__name__: [encode(c) for c in node]}
    if type(node) is dict and all(type(k) in (str, int) for k in node):
      return {"dict": [[k, encode(v)] for k, v in node.items()]}
    raise TypeError(
        f"the result's layout holds a {type(node).__name__}, which cannot be saved; "
        "save_experiments saves layouts of tuples, lists, dicts (str or int keys) and None: "
        "pass the differentiated arguments as such containers.")
  return encode(jax.tree_util.tree_unflatten(treedef, list(range(treedef.num_leaves))))


def _tree_from_json(obj):
  def decode(node):
    if isinstance(node, int) and not isinstance(node, bool):
      return node
    (kind, value), = node.items()
    if kind == "none":
      return None
    if kind in ("tuple", "list"):
      return (tuple if kind == "tuple" else list)(decode(c) for c in value)
    if kind == "dict":
      return {k: decode(v) for k, v in value}
    raise ValueError(f"unknown pytree node {kind!r}")
  tree = decode(obj)
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  if leaves != list(range(len(leaves))):
    raise ValueError("the result layout's leaves are out of order")
  return treedef


def _version() -> str:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return metadata.version("qhess")
  except metadata.PackageNotFoundError:
    return "unknown"
