"""Qiskit gate arguments as JAX functions of the parameter array (`param_fn`).

A Qiskit `ParameterExpression` is rebuilt from its replay (``_qpy_replay``: the
operations that built it, in order, as Qiskit's own ``sympify`` reads it; no SymPy
needed) into a JAX function of the parameter array, with an interval that holds its
value for every real parameter value. The interval proves each argument of ``log``,
``asin``, ``acos`` and of a non-integer power inside the function's real domain; an
expression it cannot prove real (``log(a - 1)``: complex for a < 1, NaN in JAX) is
refused, naming the gate and the expression. ``conjugate(θ)`` is ``θ``.

Qiskit is imported inside the functions only (`qhess.interop.qiskit` calls them).
"""

from __future__ import annotations

import numbers
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from qhess.interop.optional import QISKIT_EXTRA

_INF = float("inf")
_BINARY = ("ADD", "SUB", "MUL", "DIV", "POW", "RSUB", "RDIV", "RPOW")
_SYMBOL = {"ADD": "+", "SUB": "-", "MUL": "*", "DIV": "/", "POW": "**"}


class _Node:
  """A real subexpression: its JAX function, text, value interval and constant value."""

  __slots__ = ("const", "fn", "hi", "lo", "text")

  def __init__(self, fn: Callable, text: str, lo: float, hi: float,
               const: float | None = None):
    self.fn, self.text, self.lo, self.hi, self.const = fn, text, lo, hi, const

  @classmethod
  def constant(cls, c: float) -> _Node:
    return cls(lambda x: c, format(c, ".12g"), c, c, c)


def _hull(*values: float) -> tuple[float, float]:
  """The smallest interval holding ``values`` (unbounded when one is NaN)."""
  if any(np.isnan(v) for v in values):  # inf - inf, 0 * inf, ...: unknown
    return -_INF, _INF
  return min(values), max(values)


def _times(a: float, b: float) -> float:
  return 0.0 if a == 0 or b == 0 else a * b  # 0 * inf is 0 for interval bounds


def _pow_interval(lo: float, hi: float, p: float) -> tuple[float, float]:
  """The values of ``b**p`` for b in [lo, hi] (``p`` constant; lo >= 0 unless integral)."""
  with np.errstate(all="ignore"):
    ends = (np.float64(lo) ** p, np.float64(hi) ** p)
  if float(p).is_integer() and p % 2 == 0 and lo < 0 < hi:  # even power through 0
    return (0.0, max(ends)) if p > 0 else (0.0, _INF)
  if p < 0 and lo <= 0 <= hi:  # a pole inside
    return (0.0, _INF) if lo == 0 else (-_INF, _INF)
  return _hull(float(ends[0]), float(ends[1]))


# Each function of an opcode, of the array module ``xp`` (NumPy for constants, else
# jax.numpy); those with a restricted domain clip to it, which the interval has proven
# their argument in, so that a rounding error cannot leave it.
_UNARY_FNS = {
    "SIN": lambda xp, v: xp.sin(v), "COS": lambda xp, v: xp.cos(v),
    "TAN": lambda xp, v: xp.tan(v), "ATAN": lambda xp, v: xp.arctan(v),
    "EXP": lambda xp, v: xp.exp(v), "SIGN": lambda xp, v: xp.sign(v),
    "ABS": lambda xp, v: xp.abs(v),
    "ASIN": lambda xp, v: xp.arcsin(xp.clip(v, -1.0, 1.0)),
    "ACOS": lambda xp, v: xp.arccos(xp.clip(v, -1.0, 1.0)),
    "LOG": lambda xp, v: xp.log(xp.maximum(v, 0.0)),
}


def _nonnegative_power(xp, u, v):
  return xp.power(xp.maximum(u, 0.0), v)


class _Context(NamedTuple):
  """What converting one gate argument needs besides the subexpression at hand.

  Attributes:
    index: each circuit parameter's position in ``x``.
    fname, gate: for messages.
    whole: the whole expression's text, for messages.
    names: Qiskit's opcode numbers -> their names (``"ADD"``, ``"SIN"``, ...).
  """

  index: dict
  fname: str
  gate: str
  whole: str
  names: dict


def _refuse(ctx: _Context, why: str):
  """Raises the ValueError refusing the expression, saying ``why``."""
  raise ValueError(
      f"{ctx.fname}: gate {ctx.gate!r} has the argument {ctx.whole!r}, {why}. qhess takes "
      "real gate arguments only, and refuses an expression it cannot show real for every "
      "real parameter value (log and non-integer powers need a non-negative argument, "
      "asin and acos one in [-1, 1]). Rewrite it so that it is (e.g. log(abs(a)) or "
      "log(a**2 + 1) for log(a) when a > 0), or bind those parameters first "
      "(QuantumCircuit.assign_parameters).")


def _leaf(ctx: _Context, v) -> _Node:
  """An operand of the replay: a parameter, a nested expression or a real constant."""
  from qiskit.circuit import Parameter, ParameterExpression  # pylint: disable=C0415
  if isinstance(v, Parameter):
    i = ctx.index[v]
    return _Node(lambda x: x[i], v.name, -_INF, _INF)
  if isinstance(v, ParameterExpression):
    return _build(ctx, v)
  if isinstance(v, (numbers.Number, np.number)):
    c = complex(v)
    if c.imag != 0:
      _refuse(ctx, f"which holds the complex constant {v!r}")
    return _Node.constant(float(c.real))
  _refuse(ctx, f"which holds {v!r} ({type(v).__name__}), not a number or parameter")
  raise AssertionError  # (unreachable)


def _unary_interval(ctx: _Context, name: str, a: _Node, text: str) -> tuple[float, float]:
  """The values of the function ``name`` of ``a``, or a refusal outside its domain."""
  lo, hi = a.lo, a.hi
  with np.errstate(all="ignore"):
    if name in ("SIN", "COS"):
      return (-1.0, 1.0)
    if name == "TAN":
      return (-_INF, _INF)
    if name in ("ASIN", "ATAN", "EXP"):  # increasing
      f = {"ASIN": np.arcsin, "ATAN": np.arctan, "EXP": np.exp}[name]
      return (float(f(np.float64(lo))), float(f(np.float64(hi))))
    if name == "ACOS":
      return (float(np.arccos(np.float64(hi))), float(np.arccos(np.float64(lo))))
    if name == "LOG":
      return (float(np.log(np.float64(lo))), float(np.log(np.float64(hi))))
    if name == "SIGN":
      return (-1.0, 1.0)
    if name == "ABS":
      return ((lo, hi) if lo >= 0 else (-hi, -lo) if hi <= 0 else (0.0, max(-lo, hi)))
  # GRAD, SUBSTITUTE
  _refuse(ctx, f"built with the operation {name.lower()}, which qhess does not evaluate; "
          "bind or rebuild the expression first")
  raise AssertionError  # (unreachable)


def _unary(ctx: _Context, name: str, a: _Node) -> _Node:
  """The function ``name`` (``SIN``, ``LOG``, ``CONJ``, ...) of ``a``."""
  inner = a.text if a.text.startswith("(") and a.text.endswith(")") else f"({a.text})"
  text = f"{name.lower()}{inner}"
  lo, hi = a.lo, a.hi
  if name == "LOG" and lo < 0:
    _refuse(ctx, f"the logarithm of {a.text}, which can be negative (its values lie in "
            f"[{lo:g}, {hi:g}] as far as qhess can tell)")
  if name in ("ASIN", "ACOS") and (lo < -1 or hi > 1):
    _refuse(ctx, f"{text}, whose argument can leave [-1, 1] (its values lie in "
            f"[{lo:g}, {hi:g}] as far as qhess can tell)")
  if name == "CONJ":  # real: its own conjugate
    return a
  interval = _unary_interval(ctx, name, a, text)
  f, g = _UNARY_FNS[name], a.fn
  if a.const is not None:  # (in float64 NumPy)
    with np.errstate(all="ignore"):
      c = float(f(np, np.float64(a.const)))
    return _Node(lambda x: c, text, c, c, c)
  return _Node(lambda x: f(jnp, g(x)), text, *interval)


def _power(ctx: _Context, a: _Node, b: _Node, text: str) -> tuple[tuple, Callable]:
  """The interval and function of ``a ** b``, or a refusal when it may not be real."""
  p = b.const
  if p is not None and p.is_integer() and abs(p) < 2**31:
    n = int(p)
    # an integer power: real for every base
    return _pow_interval(a.lo, a.hi, p), lambda xp, u, v: u ** n
  if a.lo < 0:
    _refuse(ctx, f"the power {text} of {a.text}, which can be negative, to "
            f"{'the non-integer ' + repr(p) if p is not None else 'a variable exponent'}"
            f" (its base lies in [{a.lo:g}, {a.hi:g}] as far as qhess can tell)")
  if p is not None:
    return _pow_interval(a.lo, a.hi, p), _nonnegative_power
  # a non-negative base to a variable exponent: exp(v log u)
  logs = [float(np.log(np.float64(t))) if t > 0 else -_INF for t in (a.lo, a.hi)]
  prods = [_times(s, t) for s in logs for t in (b.lo, b.hi)]
  with np.errstate(all="ignore"):
    interval = _hull(*(float(np.exp(np.float64(t))) for t in prods))
  return interval, _nonnegative_power


def _binary(ctx: _Context, name: str, a: _Node, b: _Node) -> _Node:
  """``a <name> b`` for ``name`` in ADD, SUB, MUL, DIV, POW."""
  text = f"({a.text} {_SYMBOL[name]} {b.text})"
  if name == "ADD" and b.const is not None and b.const < 0:  # (cos(a) - 2)
    text = f"({a.text} - {_Node.constant(-b.const).text})"
  if name == "ADD":
    interval = _hull(a.lo + b.lo, a.hi + b.hi)
    f = lambda xp, u, v: u + v
  elif name == "SUB":
    interval = _hull(a.lo - b.hi, a.hi - b.lo)
    f = lambda xp, u, v: u - v
  elif name == "MUL":
    interval = _hull(*(_times(u, v) for u in (a.lo, a.hi) for v in (b.lo, b.hi)))
    f = lambda xp, u, v: u * v
  elif name == "DIV":
    interval = ((-_INF, _INF) if b.lo <= 0 <= b.hi else
                _hull(*(_times(u, 1 / v) for u in (a.lo, a.hi) for v in (b.lo, b.hi))))
    f = lambda xp, u, v: u / v
  else:  # POW
    interval, f = _power(ctx, a, b, text)
  fa, fb = a.fn, b.fn
  if a.const is not None and b.const is not None:
    with np.errstate(all="ignore"):
      c = float(f(np, np.float64(a.const), np.float64(b.const)))
    return _Node(lambda x: c, text, c, c, c)
  return _Node(lambda x: f(jnp, fa(x), fb(x)), text, *interval)


def _build(ctx: _Context, e) -> _Node:
  """The node of a parameter or expression: its replay evaluated on a stack."""
  from qiskit.circuit import Parameter  # pylint: disable=import-outside-toplevel
  if isinstance(e, Parameter):
    return _leaf(ctx, e)
  if not e.parameters:
    return _leaf(ctx, complex(e.numeric()))
  replay = getattr(e, "_qpy_replay", None)
  if replay is None:
    raise TypeError(
        f"{ctx.fname}: cannot read the expression {ctx.whole!r} of gate {ctx.gate!r} with "
        "this Qiskit version (ParameterExpression._qpy_replay is missing); install the "
        f"version of the qiskit extra: {QISKIT_EXTRA}.")
  stack: list[_Node] = []
  for inst in replay:  # as qiskit.circuit.parameterexpression.sympify reads it
    for operand in (inst.lhs, inst.rhs):
      if operand is not None:
        stack.append(_leaf(ctx, operand))
    name = ctx.names.get(int(inst.op), str(inst.op))
    if name in _BINARY:
      rhs, lhs = stack.pop(), stack.pop()
      if name.startswith("R"):  # reversed: rhs op lhs (2**a is RPOW(a, 2))
        name, lhs, rhs = name[1:], rhs, lhs
      stack.append(_binary(ctx, name, lhs, rhs))
    else:
      stack.append(_unary(ctx, name, stack.pop()))
  return stack.pop()


def expression_fn(value, index: dict, fname: str, gate: str) -> Callable:
  """A symbolic gate argument as a JAX function of the parameter array ``x``.

  Args:
    value: a `ParameterExpression` with parameters.
    index: each circuit parameter's position in ``x``.
    fname, gate: for messages.

  Raises:
    ValueError: for an expression that is not real for every real parameter value as
      far as its interval shows (``log``, ``asin``/``acos``, non-integer powers of
      possibly negative values, complex constants), or one built with operations
      qhess does not evaluate (``gradient``, ``subs`` left in the replay).
  """
  from qiskit.circuit.parameterexpression import OpCode  # pylint: disable=C0415
  names = {int(getattr(OpCode, n)): n for n in dir(OpCode) if n.isupper()}
  ctx = _Context(index, fname, gate, str(value), names)
  return _build(ctx, value).fn


def param_fn(value, index: dict, fname: str, gate: str) -> Callable:
  """A gate argument (a number or a `ParameterExpression`) as a JAX function of the
  parameter array."""
  from qiskit.circuit import ParameterExpression  # pylint: disable=import-outside-toplevel
  if isinstance(value, ParameterExpression):
    if not value.parameters:
      value = complex(value.numeric())
    else:
      return expression_fn(value, index, fname, gate)
  if isinstance(value, (int, float, complex, np.number)):
    if complex(value).imag != 0:
      raise ValueError(f"{fname}: gate {gate!r} has a complex argument {value!r}.")
    v = float(complex(value).real)
    return lambda x: v
  raise TypeError(
      f"{fname}: gate {gate!r} has an argument of type {type(value).__name__} "
      f"({value!r}); expected a number or a ParameterExpression.")
