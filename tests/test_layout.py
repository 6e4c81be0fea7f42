"""The package's layout: stages as subpackages, imports pointing down, no circles.

Reads the ``import`` statements of every module under ``qhess/`` (also those inside
functions: an import deferred to dodge a circle is still a circle) and fails on an import
cycle between modules or on an import of a higher stage by a lower one. The stages, from
the bottom (see ``docs/architecture.md``):

    circuits < shift < simulate < derivatives < interop < optimize < qhess (the API)

Also checks the size limits the layout promises: no module over 600 lines, no function
body (docstring aside) over 60 lines unless a ``# long:`` comment on the line of its
``def`` says why.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "qhess"
STAGES = ["circuits", "shift", "simulate", "derivatives", "interop", "optimize"]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _module_name(path: pathlib.Path) -> str:
  parts = ("qhess",) + path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(path: pathlib.Path, modules) -> set[str]:
  """The qhess modules a file imports (``from qhess.a import b`` counts ``qhess.a.b``
  when that is a module, else ``qhess.a``)."""
  name = _module_name(path)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                 for a in node.names]
    else:
      continue
    out |= {t for t in targets if t in modules and t != name}
  return out


def _stage(module: str) -> int:
  parts = module.split(".")
  if len(parts) == 1 or parts[1] in ("__main__",):
    return len(STAGES)  # the package's API sits on top
  return STAGES.index(parts[1])


def _graph():
  modules = _modules()
  return {m: _imports(p, modules) for m, p in modules.items()}


def test_every_module_belongs_to_a_stage():
  for module in _modules():
    parts = module.split(".")
    assert len(parts) == 1 or parts[1] in STAGES + ["__main__"], (
        f"{module} is outside the stages {STAGES}")


def test_imports_point_down():
  upward = []
  for module, targets in _graph().items():
    for target in targets:
      if target == "qhess":
        if module.count(".") > 0 and module != "qhess.__main__":
          upward.append(f"{module} -> qhess (the API)")
      elif _stage(target) > _stage(module):
        upward.append(f"{module} -> {target}")
  assert not upward, "imports of a higher stage:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
  graph = _graph()
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(m):
    state[m] = 1
    stack.append(m)
    for t in sorted(graph.get(m, ())):
      if state.get(t) == 1:
        cycle = stack[stack.index(t):] + [t]
        pytest.fail("import cycle: " + " -> ".join(cycle))
      if t not in state:
        visit(t)
    stack.pop()
    state[m] = 2

  for m in sorted(graph):
    if m not in state:
      visit(m)


def test_the_checks_see_cycles_and_upward_imports(tmp_path, monkeypatch):
  # The checks themselves: a made-up package with a circle and an upward import fails.
  pkg = tmp_path / "qhess"
  (pkg / "circuits").mkdir(parents=True)
  (pkg / "simulate").mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "circuits" / "__init__.py").write_text("")
  (pkg / "simulate" / "__init__.py").write_text("")
  (pkg / "circuits" / "a.py").write_text("def f():\n  from qhess.simulate import b\n")
  (pkg / "simulate" / "b.py").write_text("from qhess.circuits import a\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
  with pytest.raises(AssertionError, match="circuits.a -> qhess.simulate.b"):
    test_imports_point_down()
  with pytest.raises(pytest.fail.Exception, match="import cycle"):
    test_no_import_cycles()


def test_module_and_function_sizes():
  too_long = []
  for module, path in _modules().items():
    text = path.read_text()
    lines = text.splitlines()
    if len(lines) > MAX_MODULE_LINES:
      too_long.append(f"{module}: {len(lines)} lines")
    for node in ast.walk(ast.parse(text)):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      body = node.body
      has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                 and isinstance(body[0].value.value, str))
      start = body[0].end_lineno + 1 if has_doc and len(body) > 1 else body[0].lineno
      n = node.end_lineno - start + 1
      if n > MAX_FUNCTION_LINES and "# long:" not in lines[node.lineno - 1]:
        too_long.append(f"{module}.{node.name}: a body of {n} lines")
  assert not too_long, "over the size limits:\n" + "\n".join(too_long)
