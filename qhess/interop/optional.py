"""The optional dependencies of interop: imported on demand, named with their extra.

Qiskit (``pip install "qhess[qiskit]"``), PennyLane (``pip install
"qhess[pennylane]"``) and the error-mitigation libraries mthree and mitiq (``pip install
"qhess[mitigation]"``) are imported by these helpers, called inside the functions that
need them, so ``import qhess`` loads none of them; a missing one is an ImportError naming
the extra that installs it.
"""

from __future__ import annotations

import importlib
import sys

QISKIT_EXTRA = 'pip install "qhess[qiskit]"'
MITIGATION_EXTRA = 'pip install "qhess[mitigation]"'


def require_qiskit(module: str, fname: str):
  """``module`` (Qiskit or a module of the qiskit extra) imported, or an ImportError
  naming the extra that installs it."""
  try:
    return importlib.import_module(module)
  except ImportError as err:
    raise ImportError(
        f"{fname} needs the optional dependency {module.split('.')[0]!r}, which is not "
        f"installed: {QISKIT_EXTRA} (the qiskit extra: qiskit, qiskit-aer, "
        "qiskit-qasm3-import, qiskit-ibm-runtime, sympy).") from err


def require_mitigation(module: str, fname: str):
  """``module`` (mthree, mitiq or a module of theirs) imported, or an ImportError naming
  the mitigation extra."""
  try:
    return importlib.import_module(module)
  except ImportError as err:
    raise ImportError(
        f"{fname} needs the optional dependency {module.split('.')[0]!r}, which is not "
        f"installed: {MITIGATION_EXTRA} (the mitigation extra: mthree for readout "
        "mitigation, mitiq for zero-noise extrapolation).") from err


def is_primitive_result(obj) -> bool:
  """Whether ``obj`` is a Qiskit ``PrimitiveResult``, without importing Qiskit (an
  object cannot be one unless ``qiskit.primitives`` is loaded)."""
  prim = sys.modules.get("qiskit.primitives")
  return prim is not None and isinstance(obj, prim.PrimitiveResult)


def import_pennylane(fname: str):
  """PennyLane (``qml``), or an ImportError naming the extra; ``fname`` without
  ``qhess.``."""
  try:
    import pennylane as qml  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    raise ImportError(
        f"qhess.{fname} needs PennyLane, an optional dependency of qhess: install it with "
        '`pip install "qhess[pennylane]"`.') from err
  return qml
