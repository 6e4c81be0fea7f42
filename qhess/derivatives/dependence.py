"""How the gate arguments depend on the differentiated inputs, read from the jaxpr.

`_dependence` classifies each gate argument θ_k = g(params)_k as constant, affine or
non-linear in the differentiated inputs by walking the jaxpr of the classical processing
(`_jaxpr_levels`): constants get no circuits, affine processing needs no first-order
points, and non-linear processing needs them for the chain rule. `_feeds` tells which
input elements feed which gate arguments, so that `_check_selection` can refuse a
``gate_argnum`` that splits one input's gate arguments.
"""

from __future__ import annotations


import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.circuits.tape import Tape, record_parts
from qhess.derivatives.options import _is_static, _leaf_range, _mask


CONST, AFFINE, NONLINEAR = 0, 1, 2



# Primitives that are linear in their (non-index) operands.
_LINEAR = {
    "add", "sub", "neg", "reshape", "broadcast_in_dim", "squeeze", "expand_dims",
    "slice", "concatenate", "transpose", "reduce_sum", "copy", "copy_p", "rev",
    "convert_element_type", "real", "imag", "cumsum", "add_any", "reduce_precision",
}



_BILINEAR = {"mul", "dot_general"}



# Primitives whose leading operand is data and whose other operands are indices.
_INDEXED = {"dynamic_slice", "gather"}



# Primitives that run their sub-jaxpr exactly once, its inputs and outputs being the
# equation's: their levels are the sub-jaxpr's. Loops (scan, while) are not among them:
# one pass over a loop body under-estimates the level of a carry (c <- c·x is affine
# after one step, non-linear after two), so they count as unknown (non-linear).
_CALLS = {"jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint",
          "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"}



def _sub_jaxpr(eqn):
  if eqn.primitive.name not in _CALLS:
    return None
  for value in eqn.params.values():
    inner = getattr(value, "jaxpr", value)
    if (isinstance(inner, jex.Jaxpr) and len(inner.invars) == len(eqn.invars)
        and len(inner.outvars) == len(eqn.outvars)):
      return inner
  return None



def _eqn_levels(eqn, ins: list[int]) -> list[int]:
  n_out = len(eqn.outvars)
  if max(ins, default=CONST) == CONST:
    return [CONST] * n_out
  name = eqn.primitive.name
  inner = _sub_jaxpr(eqn)
  if inner is not None:  # jit, custom_jvp, checkpoint, ...: look inside
    return _jaxpr_levels(inner, ins)
  top = max(ins)
  if name in _LINEAR:
    if name == "convert_element_type" and not jnp.issubdtype(
        eqn.params["new_dtype"], jnp.inexact):
      return [NONLINEAR] * n_out
    return [top] * n_out
  if name in _BILINEAR:
    return [top if sum(i > CONST for i in ins) == 1 else NONLINEAR] * n_out
  if name == "div":
    return [ins[0] if ins[1] == CONST else NONLINEAR] * n_out
  if name in _INDEXED:
    return [ins[0] if max(ins[1:]) == CONST else NONLINEAR] * n_out
  if name == "select_n":
    return [max(ins[1:]) if ins[0] == CONST else NONLINEAR] * n_out
  if name == "integer_pow" and eqn.params.get("y") == 1:
    return [top] * n_out
  if name in ("dynamic_update_slice", "scatter-add", "scatter_add", "pad"):
    return [top] * n_out if all(
        lvl == CONST for lvl in ins[2:] if name != "pad") else [NONLINEAR] * n_out
  return [NONLINEAR] * n_out  # unknown: be correct rather than cheap



def _jaxpr_levels(jaxpr, in_levels) -> list[int]:
  env = {}

  def read(v):
    return env.get(v, CONST) if isinstance(v, jex.Var) else CONST

  for v, lvl in zip(jaxpr.invars, in_levels):
    env[v] = lvl
  for eqn in jaxpr.eqns:
    for v, lvl in zip(eqn.outvars, _eqn_levels(eqn, [read(v) for v in eqn.invars])):
      env[v] = lvl
  return [read(v) for v in jaxpr.outvars]



def _dependence(circuit: Circuit, args, kwargs, argnums,
                tape: Tape) -> tuple[np.ndarray, bool]:
  """``(levels, coefficients_depend)``: how each gate argument depends on the
  differentiated inputs (CONST/AFFINE/NONLINEAR), and whether observable coefficients
  held as data (`MeasurementSpec.coeffs`) depend on them.

  Decided from the traced computation params -> θ. Raises when a QubitUnitary or
  Hermitian matrix depends on the differentiated inputs (no shift rule applies).
  """
  closed, dynamic, positions, _ = _processing_jaxpr(circuit, args, kwargs, argnums, tape)
  in_levels = [AFFINE if i in positions else CONST for i in dynamic]
  out = _jaxpr_levels(closed.jaxpr, in_levels)
  levels, const_levels = np.array(out[:tape.num_params], dtype=int), out[tape.num_params:]
  coefficients = {m.coeffs for m in tape.measurements if m.coeffs is not None}
  coefficients_depend = any(const_levels[i] > CONST for i in coefficients)
  const_levels = [lvl for i, lvl in enumerate(const_levels) if i not in coefficients]
  if any(lvl > CONST for lvl in const_levels):
    raise ValueError(
        "A QubitUnitary or Hermitian matrix depends on the differentiated arguments (or "
        "a noise channel's parameter does); parameter-shift rules apply to gate arguments "
        "only. Express the dependence through parametrized gates, or pass the matrix or "
        "noise parameter as a non-differentiated argument.")
  return levels, coefficients_depend



def _processing_jaxpr(circuit: Circuit, args, kwargs, argnums, tape: Tape):
  """``(closed, dynamic, positions, leaves)``: the jaxpr of the classical processing
  ``traced leaves -> (θ, tape consts)``, the indices of the traced leaves among all
  leaves of ``(args, kwargs)``, those of the differentiated ones, and all leaves."""
  structure = tape.structure
  leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
  positions = {i for a in argnums for i in _leaf_range(args, a)}
  dynamic = [i for i, leaf in enumerate(leaves) if not _is_static(leaf)]

  def flat_fn(*flat):  # static leaves (Python ints, strings) stay as they are
    merged = list(leaves)
    for i, value in zip(dynamic, flat):
      merged[i] = value
    a, kw = jax.tree_util.tree_unflatten(treedef, merged)
    t, params = record_parts(circuit.fn, circuit.n_wires, a, kw)
    _check_same_structure(structure, t)
    return params, list(t.consts)

  avals = [jax.ShapeDtypeStruct(jnp.shape(leaves[i]), jnp.result_type(leaves[i]))
           for i in dynamic]
  return jax.make_jaxpr(flat_fn)(*avals), dynamic, positions, leaves



def _feeds(circuit: Circuit, args, kwargs, argnums, tape: Tape) -> np.ndarray | None:
  """Bool ``(P, N)``: which gate arguments each of the ``N`` differentiated input
  elements feeds, or ``None`` when it cannot be told at trace time.

  Read from the Jacobian of the classical processing at a random point (a structural
  zero is zero everywhere; a zero of a non-zero derivative at a random point has
  probability zero), evaluated eagerly on the recorded jaxpr.
  """
  closed, dynamic, positions, leaves = _processing_jaxpr(circuit, args, kwargs, argnums,
                                                         tape)
  rng = np.random.default_rng(0)
  point = []
  for i in dynamic:
    aval = jax.ShapeDtypeStruct(jnp.shape(leaves[i]), jnp.result_type(leaves[i]))
    point.append(rng.uniform(0.3, 1.1, aval.shape).astype(aval.dtype)
                 if jnp.issubdtype(aval.dtype, jnp.inexact) else np.zeros(aval.shape,
                                                                          aval.dtype))
  wrt = [k for k, i in enumerate(dynamic) if i in positions]

  def theta_of(*diff):
    flat = list(point)
    for k, value in zip(wrt, diff):
      flat[k] = value
    outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *flat)
    outs = outs[:len(outs) - len(tape.consts)]  # θ, without the tape's constants
    return jnp.concatenate([jnp.ravel(o) for o in outs]) if outs else jnp.zeros(0)

  try:
    with jax.ensure_compile_time_eval():
      jac = jax.jacfwd(theta_of, argnums=tuple(range(len(wrt))))(*[point[k] for k in wrt])
      blocks = [np.asarray(j).reshape(tape.num_params, -1) for j in jac]
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return None  # the processing closes over traced values: nothing to read here
  if not blocks:
    return np.zeros((tape.num_params, 0), dtype=bool)
  jac = np.concatenate(blocks, axis=1)
  return ~np.isfinite(jac) | (jac != 0)



def _check_selection(circuit: Circuit, args, kwargs, argnums, tape: Tape,
                     gate_argnum) -> None:
  """Refuses a hybrid ``gate_argnum`` that splits the gate arguments of one input.

  ``gate_argnum`` selects entries of the Hessian of the tape's gate arguments; the hybrid
  result maps it to the inputs by the chain rule. An input that feeds several gate
  arguments (a parameter used twice, an imported gate decomposed into several rotations)
  has a meaningful Hessian only when all of its gate arguments are selected, or none.
  """
  feeds = _feeds(circuit, args, kwargs, argnums, tape)
  if feeds is None:
    return
  mask = _mask(gate_argnum, tape.num_params)
  active = mask.any(axis=1)
  sets = [np.nonzero(col)[0] for col in feeds.T]
  for i, si in enumerate(sets):
    if 0 < active[si].sum() < len(si):
      raise ValueError(_split_message(tape, i, si, active))
    for j in range(i, len(sets)):
      block = mask[np.ix_(si, sets[j])]
      if block.any() and not block.all():
        raise ValueError(_split_message(tape, i, si, active, sets[j]))



def _split_message(tape: Tape, i: int, si, active, sj=None) -> str:
  names = {k: op.name for op in tape.operations for k in op.param_index}
  args = ", ".join(f"{k} ({names.get(k, '?')})" for k in si)
  what = (f"selects {[int(k) for k in si if active[k]]} of them" if sj is None else
          f"selects some but not all of their entries with gate arguments {list(map(int, sj))}")
  return (
      "`gate_argnum` indexes the tape's gate arguments (`circuit.tape(*args).params`: the "
      "arguments of the recorded gates, after any decomposition), not the circuit's "
      f"inputs. Differentiated input element {i} (in the order of the flattened "
      f"`argnums` arguments) feeds gate arguments {args}, and `gate_argnum` {what}: that "
      "is not a Hessian of the inputs. Select all gate arguments an input feeds, or "
      "compute the full Hessian and index it (or pass the inputs you do not want as "
      "non-differentiated arguments); `hybrid=False` gives the Hessian of the gate "
      "arguments themselves.")



def _check_same_structure(structure, tape: Tape) -> None:
  if tape.structure != structure:
    raise ValueError(
        "The circuit's structure (gates, wires, measurements) changed between two "
        "recordings at the same arguments; qhess needs a circuit whose structure does not "
        "depend on anything but the argument shapes (no randomness or outside state in "
        "the circuit function).")
