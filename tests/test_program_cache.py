"""`qhess.enable_compilation_cache`: compiled Hessians stored on disk and read back.

A later process must load the stored program (no trace of the shift evaluation) and
give the same Hessian; a changed circuit, option or shape must never be served a stored
program of another; transformations and unsuitable calls run as without the cache.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qhess
from qhess.derivatives import cache as _cache

jax.config.update("jax_enable_x64", True)

# One process: enable the cache, compute a Hessian, report whether the shift evaluation
# was traced (the pipeline's `_derivatives` runs only while tracing a new program).
_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    import qhess
    from qhess.derivatives import pipeline, hessian as _h
    traces = []
    original = _h._derivatives
    def counting(*a, **k):
        traces.append(1)
        return original(*a, **k)
    _h._derivatives = counting
    qhess.enable_compilation_cache(sys.argv[1])
    A = float(sys.argv[2])

    @qhess.circuit(wires=2)
    def f(x):
        qhess.RX(A * x[0], wires=0)
        qhess.CRY(x[1], wires=(0, 1))
        qhess.RZ(x[0] * x[1], wires=1)
        return qhess.expval(qhess.Z(0) @ qhess.Z(1) + 0.5 * qhess.X(1))

    x = jnp.array([0.3, -0.7])
    h = qhess.hessian(f)(x)
    print(json.dumps({"traces": len(traces), "h": h.tolist(),
                      "ref": jax.hessian(f)(x).tolist()}))
""")


def _run(directory: pathlib.Path, a: float) -> dict:
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, "-c", _SCRIPT, str(directory), repr(a)], env=env,
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_later_process_loads_the_stored_program(tmp_path):
  first = _run(tmp_path, 1.5)
  assert first["traces"] == 1
  stored = list((tmp_path / "programs").glob("*.bin"))
  assert len(stored) == 1
  assert list((tmp_path / "xla").iterdir())  # JAX's executables are kept too
  second = _run(tmp_path, 1.5)
  assert second["traces"] == 0  # loaded: no recording, tracing or lowering
  np.testing.assert_allclose(second["h"], first["h"], rtol=0, atol=1e-13)
  np.testing.assert_allclose(second["h"], second["ref"], rtol=0, atol=1e-10)
  # A global read by the circuit changed: another program, never the stored one.
  third = _run(tmp_path, 2.5)
  assert third["traces"] == 1
  assert len(list((tmp_path / "programs").glob("*.bin"))) == 2
  np.testing.assert_allclose(third["h"], third["ref"], rtol=0, atol=1e-10)
  assert not np.allclose(third["h"], first["h"])


@pytest.fixture
def cache_dir(tmp_path):
  before = (_cache._PROGRAM_DIR[0], jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs,
            jax.config.jax_persistent_cache_min_entry_size_bytes)
  qhess.enable_compilation_cache(tmp_path)
  yield tmp_path / "programs"
  _cache._PROGRAM_DIR[0] = before[0]
  jax.config.update("jax_compilation_cache_dir", before[1])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", before[2])
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", before[3])


@qhess.circuit(wires=2)
def _circuit(params):
  qhess.RY(params["a"], wires=0)
  qhess.CNOT(wires=(0, 1))
  qhess.RX(params["b"][0] * params["b"][1], wires=1)
  return qhess.expval(qhess.Y(1)), qhess.probs(wires=[0])


def test_options_shapes_and_transformations(cache_dir):
  p = {"a": jnp.array(0.4), "b": (jnp.array(0.2), jnp.array(-1.1))}
  ref = jax.hessian(_circuit)(p)
  for h in (qhess.hessian(_circuit)(p), qhess.hessian(_circuit, evaluation="adjoint")(p)):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-10), h, ref)
  assert len(list(cache_dir.glob("*.bin"))) == 2  # one per option set
  # float32 inputs: other avals, another program.
  p32 = jax.tree_util.tree_map(lambda v: v.astype(jnp.float32), p)
  h32 = qhess.hessian(_circuit)(p32)
  assert len(list(cache_dir.glob("*.bin"))) == 3
  jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-5), h32, ref)
  # Under jit and vmap the arguments are tracers: nothing stored; an entry loaded for
  # concrete arguments runs its jitted function when called under jit.
  hj = jax.jit(qhess.hessian(_circuit))(p)
  jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-10), hj, ref)
  batch = {"a": jnp.array([0.4, 0.1]), "b": (jnp.array([0.2, 0.2]), jnp.array([-1.1, 0.5]))}
  hv = jax.vmap(qhess.hessian(_circuit))(batch)
  one = jax.hessian(_circuit)({"a": batch["a"][1], "b": (batch["b"][0][1], batch["b"][1][1])})
  jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u[1], v, atol=1e-10), hv, one)
  assert len(list(cache_dir.glob("*.bin"))) == 3
  # A Python float argument is weakly typed: compiled as without the cache, so the
  # result keeps jax.hessian's weak type.
  @qhess.circuit(wires=1)
  def scalar(a):
    qhess.RX(a, wires=0)
    return qhess.expval(qhess.Z(0))

  h = qhess.hessian(scalar)(0.3)
  assert h.weak_type == jax.hessian(scalar)(0.3).weak_type
  np.testing.assert_allclose(h, -np.cos(0.3), atol=1e-12)
  assert len(list(cache_dir.glob("*.bin"))) == 3


def test_unreadable_program_warns_and_compiles(cache_dir):
  p = {"a": jnp.array(0.9), "b": (jnp.array(0.3), jnp.array(0.8))}
  qhess.hessian(_circuit, off_diagonal_rule="product")(p)
  (stored,) = cache_dir.glob("*.bin")
  stored.write_bytes(b"not a program")
  _cache._JIT_CACHE.clear()  # as in a new process
  with pytest.warns(RuntimeWarning, match="compiling it as usual"):
    h = qhess.hessian(_circuit, off_diagonal_rule="product")(p)
  ref = jax.hessian(_circuit)(p)
  jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-10), h, ref)


def test_bad_paths(tmp_path):
  with pytest.raises(TypeError, match="`path` must be a directory path"):
    qhess.enable_compilation_cache(3)
  file = tmp_path / "f"
  file.write_text("")
  with pytest.raises(ValueError, match="`path` must be a directory; got the file"):
    qhess.enable_compilation_cache(file)
