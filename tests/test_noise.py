"""Noisy circuits (qhess.circuits.channels, qhess.simulate.density): channels, density
matrices, readout error.

References: an independent NumPy density-matrix simulator (explicit Kraus sums, the Kraus
operators written out below from PennyLane's documentation, gate matrices from
`_reference`), closed forms for readout error, ``jax.hessian`` of a dense jnp
density matrix oracle (`DenseMixed`) for Hessians. The cross-checks against PennyLane's
``default.mixed`` are in test_pennylane.py.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _dense
import _reference as ref
import qhess
from qhess.simulate import density as _density
from qhess.simulate import noisy as _noisy

# ------------------------------------------------------------- independent reference

_I, _X, _Y, _Z = (ref.PAULI[c] for c in "IXYZ")


def _kraus(name, args, k=1):
  """Kraus operators of PennyLane's channels, written out here (not from qhess)."""
  if name == "DepolarizingChannel":
    (p,) = args
    return [np.sqrt(1 - p) * _I] + [np.sqrt(p / 3) * m for m in (_X, _Y, _Z)]
  if name == "AmplitudeDamping":
    (g,) = args
    return [np.array([[1, 0], [0, np.sqrt(1 - g)]]), np.array([[0, np.sqrt(g)], [0, 0]])]
  if name == "GeneralizedAmplitudeDamping":
    g, p = args
    return [np.sqrt(1 - p) * np.array([[1, 0], [0, np.sqrt(1 - g)]]),
            np.sqrt(1 - p) * np.array([[0, np.sqrt(g)], [0, 0]]),
            np.sqrt(p) * np.array([[np.sqrt(1 - g), 0], [0, 1]]),
            np.sqrt(p) * np.array([[0, 0], [np.sqrt(g), 0]])]
  if name == "PhaseDamping":
    (g,) = args
    return [np.array([[1, 0], [0, np.sqrt(1 - g)]]), np.array([[0, 0], [0, np.sqrt(g)]])]
  if name == "BitFlip":
    (p,) = args
    return [np.sqrt(1 - p) * _I, np.sqrt(p) * _X]
  if name == "PhaseFlip":
    (p,) = args
    return [np.sqrt(1 - p) * _I, np.sqrt(p) * _Z]
  if name == "PauliError":
    word, p = args
    return [np.sqrt(1 - p) * np.eye(2**len(word)), np.sqrt(p) * ref.pauli_word_matrix(word)]
  if name == "QubitChannel":
    return list(args[0])
  raise ValueError(name)


def _random_kraus(rng, k: int, r: int):
  """``r`` Kraus operators on ``k`` wires: blocks of a random isometry (Stinespring)."""
  d = 2**k
  v = ref.random_unitary(rng, d * r)[:, :d]  # (d r, d), V†V = I
  return [v[i * d:(i + 1) * d] for i in range(r)]


def ref_density(ops, n: int) -> np.ndarray:
  """ρ after ``ops`` from |0..0><0..0|; a channel op is ``("channel", name, wires, args)``."""
  rho = np.zeros((2**n, 2**n), dtype=complex)
  rho[0, 0] = 1
  for op in ops:
    if op[0] == "channel":
      _, name, wires, args = op
      es = [ref.embed(np.asarray(k, complex), wires, n) for k in _kraus(name, args)]
      rho = sum(e @ rho @ e.conj().T for e in es)
    else:
      name, wires, args = op
      u = ref.embed(ref.gate_matrix(name, args, wires), wires, n)
      rho = u @ rho @ u.conj().T
  return rho


class DenseMixed:
  """A dense, differentiable jnp density-matrix simulation: θ -> outputs (the oracle).

  Every step is a Kraus sum ``ρ -> Σ_k E_k ρ E_k†``: a gate is ``E_0 = U(θ)`` (from
  `_dense`'s Fourier tables of `_reference`'s matrices), a channel its constant Kraus
  operators; steps run as one `jax.lax.scan` over zero-padded tables, so ``jax.hessian``
  of it compiles in about a second.
  """

  def __init__(self, ops, n: int, specs):
    self.n, d = n, 2**n
    rng = np.random.default_rng(0)
    steps, k = [], 0
    for op in ops:
      if op[0] == "channel":
        kraus = [ref.embed(np.asarray(m, complex), op[2], n) for m in _kraus(op[1], op[3])]
        steps.append((np.zeros((1, 1)), np.stack(kraus)[:, None], [], 0))
        continue
      freqs, coef = _dense._dense_gate(op, n, rng)
      r = ref.N_REAL[op[0]]
      steps.append((freqs, coef[None], list(range(k, k + r)), r))
      k += r
    n_params = k
    r_max = max([s[3] for s in steps] + [1])
    m_max = max(s[0].shape[0] for s in steps)
    k_max = max(s[1].shape[0] for s in steps)
    self.freqs = np.zeros((len(steps), m_max, r_max))
    self.coef = np.zeros((len(steps), k_max, m_max, d, d), dtype=complex)
    self.index = np.full((len(steps), r_max), n_params)  # padding reads θ[P] = 0
    for i, (freqs, coef, index, r) in enumerate(steps):
      self.freqs[i, :freqs.shape[0], :freqs.shape[1]] = freqs
      self.coef[i, :coef.shape[0], :coef.shape[1]] = coef
      self.index[i, :r] = index
    self.outputs = [(kind, _dense.probs_matrix(arg, n) if kind == "probs"
                     else ref.observable_matrix(arg, n)) for kind, arg in specs]

  def __call__(self, theta):
    theta = jnp.concatenate([jnp.ravel(jnp.asarray(theta)), jnp.zeros(1)])

    def step(rho, table):
      freqs, coef, index = table
      es = jnp.einsum("t,ktij->kij", jnp.exp(1j * (freqs @ theta[index])), coef)
      return jnp.einsum("kij,jl,kml->im", es, rho, jnp.conj(es)), None

    rho = jnp.zeros((2**self.n,) * 2, complex).at[0, 0].set(1.0)
    rho, _ = jax.lax.scan(step, rho, (self.freqs, self.coef, self.index))
    out = []
    for kind, m in self.outputs:
      if kind == "probs":
        out.append(m @ jnp.real(jnp.diagonal(rho)))
        continue
      value = jnp.real(jnp.trace(m @ rho))
      if kind == "var":
        value = jnp.real(jnp.trace(m @ m @ rho)) - value**2
      out.append(value)
    return tuple(out)


def ref_outputs(rho, specs, n):
  out = []
  for kind, arg in specs:
    if kind == "probs":
      p = np.zeros(2 ** len(arg))
      for i in range(2**n):
        bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]
        p[int("".join(str(bits[w]) for w in arg), 2)] += rho[i, i].real
      out.append(p)
    else:
      m = ref.observable_matrix(arg, n)
      e = np.trace(m @ rho).real
      out.append(e if kind == "expval" else np.trace(m @ m @ rho).real - e**2)
  return out


def _measure(specs):
  return tuple(qhess.probs(wires=arg) if kind == "probs" else
               getattr(qhess, kind)(ref.qhess_observable(arg)) for kind, arg in specs)


def noisy_circuit(ops, n, specs):
  """A qhess circuit of a flat parameter array; channels as in `ref_density`."""
  @qhess.circuit(wires=n)
  def circuit(params):
    k = 0
    for op in ops:
      if op[0] == "channel":
        _, name, wires, args = op
        getattr(qhess, name)(*args, wires=wires)
        continue
      name, wires, args = op
      r = ref.N_REAL[name]
      getattr(qhess, name)(*(params[k + i] for i in range(r)), *args[r:], wires=wires)
      k += r
    return _measure(specs)
  return circuit


def _random_channel(rng, n):
  name = str(rng.choice(["DepolarizingChannel", "AmplitudeDamping",
                         "GeneralizedAmplitudeDamping", "PhaseDamping", "BitFlip", "PhaseFlip",
                         "PauliError", "QubitChannel"]))
  if name == "PauliError":
    wires = tuple(int(w) for w in rng.choice(n, size=2, replace=False))
    return ("channel", name, wires, ("".join(rng.choice(list("IXYZ"), 2)), rng.uniform()))
  if name == "QubitChannel":
    k = int(rng.integers(1, 3))
    wires = tuple(int(w) for w in rng.choice(n, size=k, replace=False))
    return ("channel", name, wires, (_random_kraus(rng, k, int(rng.integers(1, 4))),))
  n_args = 2 if name == "GeneralizedAmplitudeDamping" else 1
  return ("channel", name, (int(rng.integers(n)),), tuple(rng.uniform(size=n_args)))


def random_noisy_circuit(rng, n, n_channels):
  ops = ref.random_circuit(rng, n, n_extra=1)
  for _ in range(n_channels):
    ops.insert(int(rng.integers(len(ops) + 1)), _random_channel(rng, n))
  return ops


def _specs(rng, n):
  return [("expval", ref.random_observable(rng, n, kind)) for kind in ref.OBSERVABLE_KINDS] + [
      ("var", ref.random_pauli_sum(rng, n)), ("var", ref.random_hermitian_obs(rng, n)),
      ("probs", (2, 0))]


# ----------------------------------------------------------------------- simulation


@pytest.mark.parametrize("name", ["DepolarizingChannel", "AmplitudeDamping",
                                  "GeneralizedAmplitudeDamping", "PhaseDamping", "BitFlip",
                                  "PhaseFlip", "PauliError"])
def test_channel_kraus_operators_match_pennylane_conventions(name):
  args = {"GeneralizedAmplitudeDamping": (0.3, 0.8), "PauliError": ("XY", 0.2)}.get(name, (0.3,))
  wires = (0, 1) if name == "PauliError" else (0,)
  got = getattr(qhess, name)(*args, wires=wires)  # outside a circuit: a description
  assert isinstance(got, qhess.Channel) and got.name == name and got.wires == wires
  np.testing.assert_allclose(got.kraus, np.stack(_kraus(name, args)), rtol=0, atol=1e-15)
  # PennyLane's own matrices: test_pennylane.py (importing PennyLane takes 8 CPU seconds).


def _identity_channel(op):
  """``op`` with parameters giving the identity channel: same structure, no noise."""
  _, name, wires, args = op
  if name == "QubitChannel":
    (kraus,) = args
    return ("channel", name, wires, ([np.eye(len(kraus[0]))] + [0 * k for k in kraus[1:]],))
  if name == "PauliError":
    return ("channel", name, wires, (args[0], 0.0))
  return ("channel", name, wires, (0.0,) + tuple(args[1:]))  # GAD: gamma = 0


def test_noisy_outputs_equal_kraus_sum_reference_and_statevector_without_noise(rng):
  # The whole gate set and every channel on 3 wires, every observable kind. With zero
  # noise (the same kernel, other Kraus operators) it equals the state-vector kernel.
  n = 3
  ops = random_noisy_circuit(rng, n, n_channels=8)
  specs = _specs(rng, n)
  circuit = noisy_circuit(ops, n, specs)
  gates = [op for op in ops if op[0] != "channel"]
  x = jnp.asarray(ref.flat_params(gates))
  rho = ref_density(ops, n)
  chex.assert_trees_all_close(tuple(circuit(x)), tuple(ref_outputs(rho, specs, n)), rtol=0,
                              atol=1e-12)

  # The noiseless twin runs through the same compiled kernel (its structure is equal)
  # and equals the state-vector reference; the pure circuit is not simulated as mixed.
  quiet = noisy_circuit([_identity_channel(op) if op[0] == "channel" else op for op in ops],
                        n, specs)
  assert quiet.tape(x).structure == circuit.tape(x).structure
  assert not _density.is_mixed(noisy_circuit(gates, n, specs).tape(x).operations)
  psi = ref.circuit_state(gates, n)
  (got,) = qhess.execute([quiet.tape(x)])
  chex.assert_trees_all_close(tuple(got), tuple(ref_outputs(np.outer(psi, psi.conj()), specs, n)),
                              rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- Hessians

_HYBRID_OPS = [("RX", (0,), (0.0,)), ("CRY", (0, 1), (0.0,)),
               ("channel", "AmplitudeDamping", (1,), (0.2,)), ("Rot", (1,), (0.0,) * 3),
               ("CNOT", (0, 1), ()), ("channel", "DepolarizingChannel", (1,), (0.1,)),
               ("PhaseShift", (0,), (0.0,)), ("CRX", (1, 0), (0.0,)),
               ("channel", "PauliError", (0, 1), ("YX", 0.15))]
_HYBRID_SPECS = [
    ("expval", ("sum", ((1.0, ("prod", (("P", "Z", 0), ("P", "Z", 1)))), (0.5, ("P", "Y", 0))))),
    ("var", ("P", "X", 1)), ("probs", (1, 0))]


def _processing(params):
  a, b = params["a"], params["b"]
  return [a[0], jnp.sin(b) * a[1], a[0] * b, 0.3, a[1] ** 2, b, a[0] - a[1]]


@qhess.circuit(wires=2)
def hybrid(params, scale):
  """A pytree input, non-linear classical processing, var and probs, four channels."""
  theta = _processing(params)
  k = 0
  for op in _HYBRID_OPS:
    if op[0] == "channel":
      _, name, wires, args = op
      getattr(qhess, name)(*args, wires=wires)
      continue
    name, wires, _ = op
    r = ref.N_REAL[name]
    getattr(qhess, name)(*theta[k:k + r], wires=wires)
    k += r
  qhess.PhaseFlip(scale, wires=1)  # a channel parameter from a non-differentiated input
  return _measure(_HYBRID_SPECS)


@functools.cache
def _hybrid_oracle_hessian():
  dense = DenseMixed(_HYBRID_OPS + [("channel", "PhaseFlip", (1,), (0.25,))], 2, _HYBRID_SPECS)
  return jax.jit(jax.hessian(lambda p: dense(jnp.stack(_processing(p)))))


_P1 = {"a": jnp.array([0.4, -1.1]), "b": jnp.array(0.8)}
_P2 = {"a": jnp.array([-0.9, 0.6]), "b": jnp.array(-0.3)}


def test_noisy_hessian_equals_dense_oracle_jit_vmap_pytree_hybrid():
  # One compile for jit and vmap together: a batch of two pytrees, each entry against
  # the oracle at that point. Independent evaluation (it compiles 3x faster); the
  # prefix-shared path on the doubled gate list is tested with `seed` below.
  batch = jax.tree.map(lambda u, v: jnp.stack([u, v]), _P1, _P2)
  got = jax.jit(jax.vmap(qhess.hessian(hybrid, evaluation="independent"), in_axes=(0, None)))(
      batch, 0.25)
  for i, p in enumerate((_P1, _P2)):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], got),
                                _hybrid_oracle_hessian()(p), rtol=0, atol=1e-10)


_SEED_OPS = [("RX", (0,), (0.0,)), ("channel", "DepolarizingChannel", (0,), (0.1,)),
             ("CRY", (0, 1), (0.0,)), ("channel", "AmplitudeDamping", (1,), (0.2,))]
_SEED_SPECS = [("expval", ("prod", (("P", "Z", 0), ("P", "Z", 1))))]


@qhess.circuit(wires=2)
def seed(x):
  qhess.RX(x[0], wires=0)
  qhess.DepolarizingChannel(0.1, wires=0)
  qhess.CRY(x[1], wires=(0, 1))
  qhess.AmplitudeDamping(0.2, wires=1)
  return qhess.expval(qhess.Z(0) @ qhess.Z(1))


@functools.cache
def _seed_oracle():
  dense = DenseMixed(_SEED_OPS, 2, _SEED_SPECS)
  fn = lambda x: dense(x)[0]  # noqa: E731
  return jax.jit(lambda x: (fn(x), jax.grad(fn)(x), jax.hessian(fn)(x)))


_X_SEED = jnp.array([0.5, 0.2])


def test_noisy_value_grad_hessian_and_tapes():
  got = qhess.value_grad_and_hessian(seed)(_X_SEED)
  expected = _seed_oracle()(_X_SEED)
  chex.assert_trees_all_close(got, expected, rtol=0, atol=1e-10)
  tapes, post = qhess.hessian_tapes(seed.tape(_X_SEED))
  assert len(tapes) == 13  # as noiseless: channels have no shifted arguments
  assert [op.name for op in tapes[0].operations] == [
      "RX", "DepolarizingChannel", "CRY", "AmplitudeDamping"]
  chex.assert_trees_all_close(post(qhess.execute(tapes)), expected[2], rtol=0, atol=1e-10)
  rho = ref_density([("RX", (0,), (0.5,)), _SEED_OPS[1], ("CRY", (0, 1), (0.2,)),
                     _SEED_OPS[3]], 2)
  np.testing.assert_allclose(_noisy.density_matrix(tapes[0]), rho, rtol=0, atol=1e-12)


def test_channel_parameter_depending_on_differentiated_input_raises():
  @qhess.circuit(wires=1)
  def f(x):
    qhess.RX(x[0], wires=0)
    qhess.BitFlip(0.1 * x[1] ** 2, wires=0)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(ValueError, match="noise channel's parameter does"):
    qhess.hessian(f)(jnp.array([0.3, 0.5]))
  # A channel parameter from a non-differentiated argument is data: see `hybrid`'s scale.


# ------------------------------------------------------------------------ noise models


def test_with_noise_equals_hand_written_channels():
  @qhess.circuit(wires=2)
  def clean(x):
    qhess.RX(x[0], wires=0)
    qhess.CRY(x[1], wires=(0, 1))
    return qhess.expval(qhess.Z(0) @ qhess.Z(1))

  noisy = qhess.with_noise(clean, {
      "RX": lambda op: qhess.DepolarizingChannel(0.1, wires=op.wires[0]),
      "CRY": lambda op: [qhess.AmplitudeDamping(0.2, wires=op.wires[1])]})
  t_noisy, t_seed = noisy.tape(_X_SEED), seed.tape(_X_SEED)
  assert t_noisy.structure == t_seed.structure  # same operations, same kernel
  chex.assert_trees_all_close(t_noisy.consts, t_seed.consts, rtol=0, atol=0)
  chex.assert_trees_all_close(noisy(_X_SEED), seed(_X_SEED), rtol=0, atol=1e-14)
  assert clean.tape(_X_SEED).structure != t_seed.structure  # the original is unchanged
  # A function rule and nesting: channels after every gate, then readout on top.
  every = qhess.with_noise(clean, lambda op: [qhess.PhaseFlip(0.1, wires=w) for w in op.wires])
  twice = qhess.with_noise(every, readout={1: 0.1})
  names = [op.name for op in twice.tape(_X_SEED).operations]
  assert names == ["RX", "PhaseFlip", "CRY", "PhaseFlip", "PhaseFlip", "ReadoutError"]
  assert "Depol" in noisy.tape(_X_SEED).draw()


def test_with_noise_bad_input():
  with pytest.raises(TypeError, match="`circuit` must be a qhess.Circuit"):
    qhess.with_noise(lambda x: x)
  with pytest.raises(TypeError, match="`after` must be None, a function"):
    qhess.with_noise(seed, after=3)
  with pytest.raises(ValueError, match="`after` keys must be gate names"):
    qhess.with_noise(seed, {"Foo": lambda op: None})
  with pytest.raises(ValueError, match="`after` keys must be gate names"):
    qhess.with_noise(seed, {"BitFlip": lambda op: None})
  with pytest.raises(TypeError, match=r"`after\['RX'\]` must be callable"):
    qhess.with_noise(seed, {"RX": 3})
  with pytest.raises(TypeError, match="`after` must return a channel"):
    qhess.with_noise(seed, lambda op: "noise").tape(_X_SEED)
  with pytest.raises(ValueError, match="outside the circuit's wires 0..1"):
    qhess.with_noise(seed, lambda op: qhess.BitFlip(0.1, wires=5)).tape(_X_SEED)
  with pytest.raises(ValueError, match="one probability per wire"):
    qhess.with_noise(seed, readout=[0.1])
  with pytest.raises(ValueError, match=r"`readout` of wire 1 must be a probability"):
    qhess.with_noise(seed, readout=[0.1, 1.5])
  with pytest.raises(ValueError, match="`readout` wire 2 is outside"):
    qhess.with_noise(seed, readout={2: 0.1})
  with pytest.raises(TypeError, match="`readout` must be a probability"):
    qhess.with_noise(seed, readout="high")


# ----------------------------------------------------------------------- bad channels


@pytest.mark.parametrize("call", [
    lambda: qhess.DepolarizingChannel(1.2, wires=0),
    lambda: qhess.AmplitudeDamping(-0.1, wires=0),
    lambda: qhess.GeneralizedAmplitudeDamping(0.1, 2.0, wires=0),
    lambda: qhess.PhaseDamping(1.01, wires=0),
    lambda: qhess.BitFlip(-1, wires=0),
    lambda: qhess.PhaseFlip(3, wires=0),
    lambda: qhess.PauliError("X", 1.5, wires=0),
])
def test_channel_probability_outside_unit_interval_raises(call):
  with pytest.raises(ValueError, match=r"must be a probability in \[0, 1\]"):
    call()


def test_channel_bad_input_raises():
  with pytest.raises(ValueError, match="must be trace preserving"):
    qhess.QubitChannel([np.eye(2), 0.1 * _X], wires=0)
  with pytest.raises(ValueError, match=r"must be a non-empty list of \(2, 2\) matrices"):
    qhess.QubitChannel([np.eye(4)], wires=0)
  with pytest.raises(ValueError, match="at least one Kraus operator"):
    qhess.QubitChannel([], wires=0)
  with pytest.raises(ValueError, match="must have one shape"):
    qhess.QubitChannel([np.eye(2), np.eye(4)], wires=0)
  with pytest.raises(ValueError, match="non-empty string over 'IXYZ'"):
    qhess.PauliError("XA", 0.1, wires=(0, 1))
  with pytest.raises(ValueError, match="has 2 letter.*`wires` has 1"):
    qhess.PauliError("XY", 0.1, wires=0)
  with pytest.raises(ValueError, match=r"DepolarizingChannel acts on 1 wire\(s\)"):
    qhess.DepolarizingChannel(0.1, wires=(0, 1))

  @qhess.circuit(wires=2)
  def outside(x):
    qhess.RX(x, wires=0)
    qhess.BitFlip(0.1, wires=2)
    return qhess.expval(qhess.Z(0))

  with pytest.raises(ValueError, match=r"wire 2 is outside the circuit's wires 0..1"):
    outside(0.1)


# ------------------------------------------------------------------------ readout error

_RO = (0.05, 0.12)


@qhess.circuit(wires=2)
def readout_base(x):
  qhess.RY(x[0], wires=0)
  qhess.CRX(x[1], wires=(0, 1))
  qhess.RX(0.3, wires=1)
  return (qhess.expval(qhess.X(0) @ qhess.Z(1)), qhess.expval(qhess.Y(1)),
          qhess.probs(wires=(1, 0)), qhess.var(qhess.Z(0) + 0.5 * qhess.Z(1)))


def _readout_expected(x):
  """Closed forms from the pure state: parities damped by (1 - 2p) per measured wire,
  probabilities through the per-wire confusion matrices, var from the flipped counts."""
  psi = ref.circuit_state([("RY", (0,), (x[0],)), ("CRX", (0, 1), (x[1],)),
                           ("RX", (1,), (0.3,))], 2)
  d0, d1 = 1 - 2 * _RO[0], 1 - 2 * _RO[1]
  xz = d0 * d1 * ref.ref_expval(psi, ("prod", (("P", "X", 0), ("P", "Z", 1))), 2)
  y1 = d1 * ref.ref_expval(psi, ("P", "Y", 1), 2)
  conf = lambda p: np.array([[1 - p, p], [p, 1 - p]])  # noqa: E731
  probs = np.kron(conf(_RO[1]), conf(_RO[0])) @ ref.ref_probs(psi, (1, 0), 2)
  q = np.kron(conf(_RO[0]), conf(_RO[1])) @ ref.ref_probs(psi, (0, 1), 2)
  values = np.array([1.5, 0.5, -0.5, -1.5])  # z0 + 0.5 z1 on outcomes 00, 01, 10, 11
  var = q @ values**2 - (q @ values) ** 2
  return xz, y1, probs, var


def test_readout_error_exact_values_closed_form():
  x = np.array([0.7, -1.2])
  noisy = qhess.with_noise(readout_base, readout=_RO)
  got = noisy(jnp.asarray(x))
  chex.assert_trees_all_close(tuple(got), _readout_expected(x), rtol=0, atol=1e-12)
  # Readout after channels (a density matrix): a zero-probability channel changes nothing.
  both = qhess.with_noise(noisy, {"RX": lambda op: qhess.BitFlip(0.0, wires=op.wires)})
  chex.assert_trees_all_close(tuple(both(jnp.asarray(x))), _readout_expected(x), rtol=0,
                              atol=1e-12)
  # Hessians: readout maps the outputs linearly (parities times Π(1 - 2p), probabilities
  # through the confusion matrices), so it maps the noiseless Hessians the same way.
  h_noisy = qhess.hessian(noisy)(jnp.asarray(x))
  h_clean = qhess.hessian(readout_base)(jnp.asarray(x))
  d0, d1 = 1 - 2 * _RO[0], 1 - 2 * _RO[1]
  conf = lambda p: np.array([[1 - p, p], [p, 1 - p]])  # noqa: E731
  expected = (d0 * d1 * h_clean[0], d1 * h_clean[1],
              np.einsum("ab,bij->aij", np.kron(conf(_RO[1]), conf(_RO[0])), h_clean[2]))
  chex.assert_trees_all_close(h_noisy[:3], expected, rtol=0, atol=1e-12)


def test_noisy_shots_unbiased_and_stderr_calibrated():
  # Channels and readout error, sampled: 200 keys, the mean within 4 standard errors
  # of the exact Hessian, reported errors within 20% of the spread over keys.
  noisy = qhess.with_noise(seed, readout=(0.03, 0.08))
  keys = jax.random.split(jax.random.key(7), 200)
  fn = qhess.hessian(noisy, shots=1000, return_stderr=True)
  got, err = jax.vmap(lambda k: fn(_X_SEED, key=k))(keys)
  # Exact: the noiseless-readout Hessian damped by (1 - 2p) per measured wire.
  expected = (1 - 2 * 0.03) * (1 - 2 * 0.08) * _seed_oracle()(_X_SEED)[2]
  spread = jnp.std(got, axis=0, ddof=1)
  assert jnp.all(jnp.abs(jnp.mean(got, axis=0) - expected) <= 4 * spread / np.sqrt(200))
  ratio = jnp.mean(err, axis=0) / spread
  assert jnp.all(jnp.abs(ratio - 1) < 0.2), ratio
