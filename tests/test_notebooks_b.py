"""Runs half 1 of the notebooks (see `_notebooks.py`)."""

import pytest

from _notebooks import ROOT, half, kernel_specs, run_notebook  # noqa: F401 (fixture)


@pytest.mark.parametrize("path", half(1), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_runs(path, kernel_specs):  # noqa: F811
  run_notebook(path, kernel_specs)
