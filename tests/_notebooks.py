"""Runs the notebooks under notebooks/ top to bottom; any cell error fails the test.

Shared by two test files, each running half of the notebooks (`half`), so that
``pytest -n 2 --dist loadfile`` can give them to both workers.

The kernel is this interpreter (a kernelspec written to a temporary folder, so neither a
missing nor a stale user-level "python3" kernelspec matters), with the repository root on
its path, the notebook's folder as working directory and matplotlib's Agg backend.
``QHESS_FAST_NOTEBOOKS=1`` asks the notebooks for their fast mode (one shot level instead
of four in shots.ipynb: each is a compilation; fewer shots in hardware.ipynb), and the
kernel inherits conftest.py's
``JAX_DISABLE_MOST_OPTIMIZATIONS``.
"""

import os
import pathlib

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("**/*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
KERNEL = "python3"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
  """Kernelspecs holding only "python3", running ``sys.executable``."""
  folder = tmp_path_factory.mktemp("kernels")
  write_kernel_spec(folder / KERNEL)
  return KernelSpecManager(kernel_dirs=[str(folder)])


def _kernel_env() -> dict[str, str]:
  env = dict(os.environ, MPLBACKEND="Agg", QHESS_FAST_NOTEBOOKS="1")
  path = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
  env["PYTHONPATH"] = os.pathsep.join(path)
  return env


def half(k: int) -> list[pathlib.Path]:
  """Notebooks ``k``, ``k + 2``, ...: the two halves cover every notebook once."""
  return NOTEBOOKS[k::2]


def run_notebook(path: pathlib.Path, kernel_specs: KernelSpecManager) -> None:
  nb = nbformat.read(path, as_version=4)
  km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
  client = NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=300,
                          resources={"metadata": {"path": str(path.parent)}})
  client.execute(cleanup_kc=True, env=_kernel_env())  # raises CellExecutionError
