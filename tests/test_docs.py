"""The API reference (docs/reference/*.md) documents every public name.

Each public name has one ``::: qhess.<name>`` block (mkdocstrings renders it from the
docstring). The names are read from ``__all__`` at test time, so whoever adds a public
name adds its block too; ``mkdocs build --strict`` (CI) then checks that it renders.
"""

import pathlib
import re

import qhess
import qhess.optimize

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_REFERENCE = _ROOT / "docs" / "reference"
_BLOCK = re.compile(r"^:::\s+(qhess(?:\.\w+)*)\s*$", re.MULTILINE)


def _documented() -> dict[str, str]:
  """Identifier of every ``:::`` block in the reference pages -> its page."""
  found = {}
  for page in sorted(_REFERENCE.glob("*.md")):
    for ident in _BLOCK.findall(page.read_text(encoding="utf-8")):
      found[ident] = page.name
  return found


def test_reference_pages_exist():
  assert _documented(), f"no '::: qhess.<name>' blocks under {_REFERENCE}"


def test_every_public_name_is_in_the_reference():
  documented = _documented()
  wanted = [f"qhess.{name}" for name in qhess.__all__]
  wanted += [f"qhess.optimize.{name}" for name in qhess.optimize.__all__]
  missing = [ident for ident in wanted if ident not in documented]
  assert not missing, (
      "public names without an API reference entry: add a '::: <name>' block to a page "
      f"of docs/reference/ (e.g. gates.md for a gate): {missing}")


def test_every_reference_block_names_a_public_object():
  # A removed or renamed name leaves no stale block behind (mkdocs would fail on it too,
  # but only in CI's docs step).
  stale = []
  for ident in _documented():
    parts = ident.split(".")[1:]
    obj = qhess
    for part in parts:
      public = getattr(obj, "__all__", None)
      if (public is not None and part not in public) or not hasattr(obj, part):
        stale.append(ident)
        break
      obj = getattr(obj, part)
  assert not stale, f"reference blocks of names that are not public: {stale}"


def test_every_reference_page_is_in_the_nav():
  nav = (_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
  pages = [f"reference/{page.name}" for page in sorted(_REFERENCE.glob("*.md"))]
  assert [page for page in pages if page not in nav] == []
