"""The entry points `hessian` and `value_grad_and_hessian`: options, caches, and the call.

Each builds a function that validates its arguments, looks up a compiled Hessian
(`qhess.derivatives.cache`) and runs the pipeline (`qhess.derivatives.pipeline`) under
``jax.jit``. Data flow (docs/architecture.md): record the circuit into a tape (gate
arguments θ = g(params), static structure) → build the `ShiftPlan` → evaluate its
points in one batched kernel call → contract the raw outputs Y with the plan's
coefficients into R(θ), ∂R/∂θ and ∂²R/∂θ² → chain rule through the classical parts
with JAX autodiff.

The chain rule is applied by differentiating a *local model*: the second-order Taylor
polynomial of the raw outputs around θ0,

    R̃(θ) = R0 + ∂R·(θ - θ0) + ½ (θ - θ0)ᵀ ∂²R (θ - θ0),

composed with the classical pre-processing g and post-processing φ (e.g. variance =
<O²> - <O>²). ``F̃ = φ ∘ R̃ ∘ g`` has the same value, gradient and Hessian at the
evaluation point as ``F = φ ∘ R ∘ g``, so ``jax.hessian(F̃)`` gives

    H = Jᵀ ∂²R J + Σ_k ∂R/∂θ_k ∇²θ_k   (pushed through φ with its own derivatives),

in exactly the layout of ``jax.hessian(circuit)``. Only R is ever shifted; g and φ are
differentiated by autodiff. Because R0, ∂R, ∂²R are computed from θ0 = g(params) by the
(differentiable) kernel, the result is itself differentiable in the parameters.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import numpy as np

from qhess.simulate.circuit import Circuit
from qhess.simulate import sampling as _shots
from qhess.simulate import sampling as _sampling
from qhess.derivatives.cache import _cached_jit, _tape_signature, stored_program
from qhess.derivatives.options import (_DYNAMIC, _Options, _check_argnums, _check_circuit,
                                       _check_float_inputs, _hashable, _merge_leaves,
                                       _normalize_argnums, _split_leaves)
from qhess.derivatives.pipeline import _FNAMES, _derivatives



def _make(circuit, argnums, hybrid, want, gate_argnum, diagonal_shifts,
          off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
          shots=None, return_stderr=False, progress=False):
  fname = _FNAMES[want]
  opts = _Options(gate_argnum, diagonal_shifts, off_diagonal_shifts, batch_size,
                  off_diagonal_rule, devices, evaluation, progress)
  argnums = _check_argnums(argnums)
  if not isinstance(hybrid, (bool, np.bool_)):
    raise TypeError(f"`hybrid` must be a bool; got {hybrid!r}.")
  hybrid = bool(hybrid)
  shots = _shots.check_shots(shots)
  if shots is not None and evaluation == "adjoint":
    raise ValueError(
        'evaluation="adjoint" is exact only: it differentiates the simulated state, '
        "and a gradient is not an observable of sampled circuits; got "
        f"shots={shots!r}. Use shots=None, or the default evaluation with shots.")
  if not isinstance(return_stderr, bool):
    raise TypeError(f"`return_stderr` must be a bool; got {return_stderr!r}.")
  if return_stderr and shots is None:
    raise ValueError("`return_stderr=True` needs `shots`: exact evaluation has no error.")
  sampling = None if shots is None else (shots, return_stderr)
  try:
    options = (_hashable((gate_argnum, diagonal_shifts, off_diagonal_shifts, batch_size,
                          off_diagonal_rule, evaluation)), argnums, hybrid, want,
               opts.devices, _shots.shots_key(shots), return_stderr, opts.progress)
  except TypeError:  # an option we cannot key on: no sharing between calls of _make
    options = object()

  def build(treedef, static):
    def traced(dynamic, key):
      args, kwargs = jax.tree_util.tree_unflatten(treedef, _merge_leaves(static, dynamic))
      if sampling is not None:  # jax.grad through sampled outputs: a clear error
        args, kwargs = _sampling.no_derivatives((args, kwargs))
      return _derivatives(circuit, opts, argnums, hybrid, want, args, kwargs, sampling, key)
    return jax.jit(traced)

  @functools.wraps(circuit.fn)
  def fn(*args, **kwargs):
    key = None
    if sampling is not None:  # else a `key` keyword, if any, is the circuit's own
      key = _shots.check_key(kwargs.pop("key", None))
    _check_float_inputs(args, _normalize_argnums(argnums, len(args)), fname)
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    static, dynamic = _split_leaves(leaves, fname)
    signature = _tape_signature(circuit, treedef, static, dynamic)
    cache_key = (id(circuit), options, treedef,
                 tuple(s if s is _DYNAMIC else (type(s), s) for s in static), signature)
    stored = (None if opts.progress or opts.devices is not None or not isinstance(
        options, tuple) else stored_program(cache_key[1:], circuit, dynamic, key))
    return _cached_jit(cache_key, circuit, lambda: build(treedef, static),
                       stored)(dynamic, key)

  return fn


def hessian(circuit: Circuit, argnums: int | Sequence[int] = 0, *, hybrid: bool = True,
            gate_argnum=None, diagonal_shifts=None, off_diagonal_shifts=None,
            off_diagonal_rule: str | None = None,
            batch_size: int | None = None, devices=None,
            evaluation: str = "auto",
            shots=None, return_stderr: bool = False, progress: bool = False) -> Callable:
  """The parameter-shift Hessian of a circuit.

  With ``hybrid=True`` (the default) the result has exactly the layout of
  ``jax.hessian(circuit, argnums)(*args)``: the shift rules give the second derivatives
  of the quantum part with respect to the gate arguments, and the classical processing
  around it (arbitrary JAX code mapping the inputs to gate arguments, and variances)
  enters through the chain rule, differentiated by JAX. With ``hybrid=False`` the
  Hessian is taken with respect to the tape's gate arguments ``θ`` (recording order; Rot
  and U3 count 3): an array of shape ``(*out_shape, P, P)`` per measurement.

  Circuit count: gate arguments that do not depend on the differentiated inputs get no
  circuits, nor do those of gates outside the backward light cone of the measured wires
  (no path to a measurement, as in PennyLane: their Hessian and gradient entries are
  exactly zero, and the evaluated circuits leave those gates out); when the classical
  processing is affine and no variance is measured, only second-derivative circuits run,
  otherwise the diagonal shares the gradient's points. Shifted points that coincide
  (also modulo the period) are merged. For P single-frequency arguments that is
  ``(3P² - P + 2)/2`` circuits with the default diagonal rule for mixed entries
  (``1 + 2P + 3P(P-1)/2`` with the gradient), and
  ``1 + P + 2P(P-1)`` with ``off_diagonal_rule="product"`` (PennyLane's count;
  ``1 + 2P + 2P(P-1)`` with the gradient). The diagonal rule is the default for exact
  evaluation because it runs fewer circuits for the same result (25% fewer at large
  P); with ``shots`` the product rule is the default, as it needs fewer shots for the
  same error.

  Calls and compilation: every call records the circuit (an abstract trace, no
  simulation) and reuses a compiled Hessian only when the recorded tape (structure,
  observable coefficients, constant QubitUnitary and Hermitian matrices), the static
  arguments and the argument shapes match an earlier call, as `jax.jit` compares avals
  and static values; a global or closed-over value the circuit reads is thus read
  afresh, as by `jax.hessian`. Non-array arguments (Python ints, bools, strings, None,
  and tuples of them) are static, as `jax.hessian` passes them through: they may set a
  layer count or choose gates. Arrays, NumPy scalars and Python floats are traced. The
  ``_JIT_CACHE_SIZE`` (32) most recently used compiled Hessians are kept.

  Args:
    circuit: a `Circuit` (from `qhess.circuit`).
    argnums: which positional arguments to differentiate, as in `jax.hessian`.
    hybrid: differentiate with respect to the inputs (True) or the gate arguments.
    gate_argnum: which Hessian entries (of the gate arguments) to compute: None (all),
      an int ``i`` (only entry ``(i, i)``), a sequence (every pair among its indices;
      empty: no entries), or a symmetric boolean mask of shape ``(P, P)``, over the
      tape's gate arguments (``circuit.tape(x).params``, after any decomposition of
      imported gates). Other entries are zero and cost no circuits; the gradient terms
      of the chain rule are restricted to the selected arguments. With ``hybrid=True``
      the result is ``Jᵀ (H_θ ∘ M) J`` plus those terms, and the selection must take
      all or none of the gate arguments each input feeds (for each pair of inputs, all
      or none of their block of ``M``): a ValueError otherwise, since a part of an
      input's gate arguments gives no Hessian of the inputs.
    diagonal_shifts: one tuple of positive shifts per gate argument, as many as it has
      frequencies (1 for RX, 2 for CRX); the diagonal uses that first-order rule twice.
      Shifts whose rule amplifies rounding errors into a meaningless Hessian (shifts
      near 0 or nearly equal) are rejected, milder cases warn: see
      `IllConditionedShiftsWarning` and ``qhess.shift.rules``.
    off_diagonal_shifts: likewise, for the product rule of mixed entries.
    off_diagonal_rule: ``"product"`` (4·R_i·R_j circuits per mixed entry, PennyLane's
      rule) or ``"diagonal"`` (Wierichs et al. 2022, Sec. 4: ``H_ij = ½[E''(0) - H_ii -
      H_jj]`` along ``e_i + e_j``: 3 instead of 4 circuits for single frequencies, so
      ``(3P² - P + 2)/2`` in all; it needs more shots for the same error). ``None``
      picks the default (see the module docs); custom ``off_diagonal_shifts`` imply
      the product rule.
    batch_size: at most this many shifted circuits (states) in memory at once; by
      default ``max(1, 2**17 // 2**n_wires)``, which keeps memory bounded at any width.
    devices: a jax device, or a sequence of distinct jax devices (e.g.
      ``jax.devices()``) to shard the shifted circuits over, with `jax.sharding`
      (padded to a multiple of the device count).
      Across hosts, call ``jax.distributed.initialize()`` first and pass
      ``jax.devices()``: the same code then shards over every host's devices.
    evaluation: ``"auto"`` (default): for exact Hessians, the cost model of
      ``qhess.derivatives.evaluate`` (``_adjoint_pays``) picks between the shifted
      circuits (evaluated as ``"shared"``) and ``"adjoint"``: it counts state passes —
      the prefix-shared schedule's gate applications (or ``T · L``) against ``Σ 2R_i``
      adjoint circuits of ``L`` gates carrying ``2 + min(n_raw, rows)`` states each —
      weighs an adjoint pass as two gate applications (measured on a 2-core CPU: five
      10 × 2 circuit families 1.9–2.1× faster with the adjoint method, 4 × 25 7×, 20 × 1
      6.6×, 4 × 1 as fast) and takes the adjoint method when it is predicted 1.25×
      faster. For noisy circuits (channels, readout error) the choice is between the
      shifted circuits and the noisy adjoint sweep (`qhess.derivatives.adjoint_noisy`:
      its ``(2 + rows per chunk) × (L + parametrized gates)`` swept-state gate
      applications per raw output and chunk, weighed 2×, against the shift rules'),
      taken when predicted 1.25× faster and the shift work exceeds ``2**26``
      amplitude updates (the sweep compiles about 4× longer): the noisy HEA at
      10 × 2 took 14–20 s warm against about 7 minutes with the shift rules
      (bench/results/noise-adjoint-2026-12-08-vm.md). Shots and custom shift
      options always use the shift rules. ``"shared"`` evaluates the shifted circuits as a tree that
      shares unshifted prefixes (each point runs only from a boundary before its last
      shifted gate, starting from a stored state); ``"independent"`` runs every shifted
      circuit from the start (the baseline). Both give the same Hessian. A static cost
      model runs ``"shared"`` independently when sharing does not pay: when it saves
      less than 10% of the gate applications of independent evaluation, or fewer than
      ``2**24`` amplitude updates (saved gate applications × ``2**n_wires``: then a
      call takes milliseconds either way and independent evaluation compiles faster).
      ``"adjoint"`` (exact mode only) shifts one index and differentiates the other:
      row i is the first-order shift rule of argument i (2R_i circuits) applied to
      the gradients of the shifted circuits, each computed by the adjoint method
      (`qhess.derivatives.adjoint`; memory independent of the depth), then symmetrised.
      A noisy circuit (a density matrix: channels cannot be un-computed) takes the
      noisy adjoint sweep instead (`qhess.derivatives.adjoint_noisy`): one forward pass,
      then one backward sweep carrying the density vector, its adjoint and one tangent
      adjoint per Hessian row, restoring the vector at each channel from a state stored
      in the forward pass; ``batch_size`` is then the Hessian rows per sweep. It
      rejects ``shots`` and custom shift options (``diagonal_shifts``,
      ``off_diagonal_shifts``, ``off_diagonal_rule``) with a ``ValueError``.
      ``qhess.evaluation_method(qhess.hessian, circuit, **options)(*args)`` says which
      evaluation a call runs, without running it.
    shots: ``None`` (exact expectation values), an int (every shifted circuit is
      measured that many times), a tuple of ints (a shot vector: the samples are split
      into consecutive partitions, one result per entry) or a `ShotBudget` (a total
      allocated across the circuits). A sum of Pauli words is measured in qubit-wise
      commuting groups, one circuit per group per shifted point, and ``shots`` counts
      per circuit (see ``qhess.simulate.sampling``). The returned function then takes a required
      keyword ``key=`` (a PRNG key; equal keys give equal numbers, under jit and vmap).
      With shots the off-diagonal rule defaults to ``"product"``, and sampling is not
      differentiable.
    return_stderr: with ``shots``, also return first-order standard errors in the
      result's layout: ``(hessian, stderr)`` (for a shot vector, a tuple of each).
    progress: report the shifted circuits done as the kernel's chunks finish (exact
      evaluation, shift rules or adjoint): a tqdm bar when tqdm is installed, else a
      line per chunk with the time spent and an estimate of the time left. Works under
      ``jax.jit`` (through ``jax.debug.callback``); useful with ``batch_size`` on long
      calls (a 20-wire Hessian), where the chunks are many.

  Returns:
    a function with the circuit's signature returning the Hessian (a pytree as
    `jax.hessian` returns it, or per-measurement ``(*out_shape, P, P)`` arrays).

  Raises:
    TypeError: for a non-circuit, integer inputs, or a badly typed option (also a
      non-bool ``hybrid``, a non-integer ``shots`` or a ``key`` that is not a PRNG
      key); when called: for an argument that is neither an array nor a hashable
      static value, or a circuit function that uses a traced value in Python control
      flow (``if x[0] > 0:``; write ``jnp.where`` or ``jax.lax.cond``); with shots,
      when the sampled result is differentiated (``jax.grad`` of a sampled Hessian has
      no meaning here: differentiate the exact one, ``shots=None``).
    ValueError: for out-of-range ``argnums``/``gate_argnum``, a bad mask, repeated
      ``devices``, custom shifts of the wrong count, making the coefficient system
      singular or ill-conditioned (``_shift_rules.check_amplification``), a matrix
      (QubitUnitary, Hermitian) that depends on the differentiated inputs, or states
      that cannot fit in the device's memory (the message names the memory needed and
      a ``batch_size`` that fits, if any); with shots: a count below 1, a budget
      smaller than the number of circuits, a missing ``key``, ``return_stderr``
      without ``shots``, or ``var`` of an observable whose terms do not commute
      qubit-wise.

  Warns:
    IllConditionedShiftsWarning: for custom shifts that amplify errors of the circuit
      values more than ``_shift_rules.WARN_AMPLIFICATION`` (1e4) times the default
      shifts do.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CRY(x[1], wires=(0, 1))
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1))
    >>> x = jnp.array([0.5, 0.2])
    >>> print(qhess.hessian(f)(x).round(6))
    [[-0.868836  0.047624]
     [ 0.047624  0.059989]]
    >>> bool(jnp.allclose(qhess.hessian(f)(x), jax.jit(jax.hessian(f))(x), atol=1e-6))
    True
    >>> h, err = qhess.hessian(f, shots=10_000, return_stderr=True)(x, key=jax.random.key(0))
    >>> bool(jnp.all(jnp.abs(h - qhess.hessian(f)(x)) < 5 * err + 1e-9))
    True
  """
  _check_circuit(circuit, "qhess.hessian")
  return _make(circuit, argnums, hybrid, "hessian", gate_argnum, diagonal_shifts,
               off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
               shots, return_stderr, progress)


def value_grad_and_hessian(circuit: Circuit, argnums: int | Sequence[int] = 0, *,
                           hybrid: bool = True, gate_argnum=None, diagonal_shifts=None,
                           off_diagonal_shifts=None, off_diagonal_rule: str | None = None,
                           batch_size: int | None = None, devices=None,
            evaluation: str = "auto",
            shots=None, return_stderr: bool = False, progress: bool = False) -> Callable:
  """Value, gradient and Hessian of a circuit from ONE batch of shifted circuits.

  The diagonal second derivatives use the gradient's points (for one frequency,
  ``f'' = (f(θ+π/2) + f(θ-π/2))/2 - f(θ)``), so the batch has ``1 + 2P + 2P(P-1)``
  circuits for P single-frequency arguments with the product rule — fewer than
  PennyLane's separate gradient and Hessian calls (``2P + 1 + P + 2P(P-1)``) — and
  ``1 + 2P + 3P(P-1)/2`` with the default diagonal rule for mixed entries.

  Args:
    circuit: as in `hessian`.
    argnums: as in `hessian`.
    hybrid: as in `hessian`.
    gate_argnum: as in `hessian`.
    diagonal_shifts: as in `hessian`.
    off_diagonal_shifts: as in `hessian`.
    off_diagonal_rule: as in `hessian`.
    batch_size: as in `hessian`.
    devices: as in `hessian`.
    evaluation: as in `hessian`.
    shots: as in `hessian` (with shots the function takes ``key=``).
    return_stderr: as in `hessian`.
    progress: as in `hessian`.

  Returns:
    a function returning ``(value, grad, hess)``: the circuit's outputs, their
    Jacobian as ``jax.jacobian(circuit, argnums)`` lays it out, and the Hessian as
    `hessian` returns it. With ``return_stderr``: ``((value, grad, hess), stderrs)``
    with ``stderrs`` in the same layout.

  Raises:
    TypeError, ValueError: as `hessian`.

  Warns:
    IllConditionedShiftsWarning: as `hessian`.

  Examples:
    >>> import jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=1)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   return qhess.expval(qhess.Z(0))
    >>> v, g, h = qhess.value_grad_and_hessian(f)(jnp.array([0.3]))
    >>> print(round(float(v), 6), g.round(6), h.round(6))
    0.955336 [-0.29552] [[-0.955336]]
  """
  _check_circuit(circuit, "qhess.value_grad_and_hessian")
  return _make(circuit, argnums, hybrid, "all", gate_argnum, diagonal_shifts,
               off_diagonal_shifts, batch_size, off_diagonal_rule, devices, evaluation,
               shots, return_stderr, progress)


def gradient(circuit: Circuit, argnums: int | Sequence[int] = 0, *, hybrid: bool = True,
             gate_argnum=None, shifts=None, batch_size: int | None = None, devices=None,
             evaluation: str = "auto", shots=None,
             return_stderr: bool = False, progress: bool = False) -> Callable:
  """The parameter-shift gradient (Jacobian) of a circuit.

  First-order points only: ``2R`` shifted circuits per differentiated gate argument of
  ``R`` frequencies (plus the unshifted circuit for a variance, or for observable
  coefficients computed from the inputs), the classical processing through the chain
  rule as in `hessian`. The result is laid out as ``jax.jacobian(circuit,
  argnums)(*args)`` (``jax.grad``'s layout for one expval); with ``hybrid=False`` one
  ``(*out_shape, P)`` array per measurement. ``qhess.gradient_experiments`` gives the
  same circuits for a device, and ``qhess.optimize.count_circuits(qhess.gradient,
  circuit, ...)`` counts them.

  Args:
    circuit: a `Circuit`.
    argnums: as in `hessian`.
    hybrid: as in `hessian`.
    gate_argnum: as in `hessian`: the gate arguments whose derivatives are computed
      (``None``: all); the others' are zero.
    shifts: ``None`` or one tuple of positive shifts per gate argument: custom
      first-order rules (as ``diagonal_shifts`` of `hessian`).
    batch_size: as in `hessian`.
    devices: as in `hessian`.
    evaluation: as in `hessian`. The default ``"auto"`` takes the adjoint method for an
      exact gradient when the cost model predicts it faster (almost always beyond a
      few arguments: one forward and one backward pass at θ, against ``2R`` shifted
      circuits per argument); ``qhess.evaluation_method(qhess.gradient, circuit)(x)``
      says which runs.
    shots: as in `hessian`: ``None`` (exact) or sampled (the function takes ``key=``).
    return_stderr: as in `hessian`: ``(gradient, stderr)`` with shots.
    progress: as in `hessian`.

  Returns:
    a function of the circuit's arguments returning the gradient.

  Raises:
    TypeError, ValueError: as `hessian`.

  Examples:
    >>> import jax, jax.numpy as jnp, qhess
    >>> @qhess.circuit(wires=2)
    ... def f(x):
    ...   qhess.RX(x[0], wires=0)
    ...   qhess.CNOT(wires=(0, 1))
    ...   qhess.RY(x[1] ** 2, wires=1)
    ...   return qhess.expval(qhess.Z(0) @ qhess.Z(1) + qhess.X(1))
    >>> x = jnp.array([0.5, 0.25])
    >>> print(qhess.gradient(f)(x).round(6))
    [-0.029945  0.406705]
    >>> bool(jnp.allclose(qhess.gradient(f)(x), jax.grad(f)(x), atol=1e-12))
    True
    >>> g, err = qhess.gradient(f, shots=10_000, return_stderr=True)(x, key=jax.random.key(0))
    >>> bool(jnp.all(jnp.abs(g - jax.grad(f)(x)) < 5 * err))
    True
  """
  _check_circuit(circuit, "qhess.gradient")
  return _make(circuit, argnums, hybrid, "gradient", gate_argnum, shifts, None, batch_size,
               None, devices, evaluation, shots, return_stderr, progress)


