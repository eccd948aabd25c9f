"""Core computes, the CLI talks: no module of the library imports ``invkit.cli``, click or rich.

Imports are read from the source with ``ast`` (relative ones resolved against the module's package), so
an import hidden inside a function counts too; only ``if TYPE_CHECKING:`` blocks are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted(p for p in (ROOT / "invkit").rglob("*.py") if "cli" not in p.relative_to(ROOT / "invkit").parts[:1])
FORBIDDEN = ("invkit.cli", "click", "rich")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (``from . import x`` gives ``pkg.x`` and ``pkg``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return found


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_layering_check_sees_relative_and_nested_imports(tmp_path):
    """The checker itself: it must catch the forms a library module would use to reach the CLI."""
    pkg = tmp_path / "invkit"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import click\n"
        "def f():\n    from .cli._common import x\n"
        "from . import cli\n"
        "import rich.table\n"
    )
    names = [n for _, n in imported_modules(pkg / "bad.py", root=tmp_path) if _forbidden(n)]
    assert "invkit.cli._common" in names and "invkit.cli" in names and "rich.table" in names
    assert "click" not in names  # only under TYPE_CHECKING


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_module_imports_nothing_from_the_cli(path):
    bad = [f"line {line}: {name}" for line, name in imported_modules(path) if _forbidden(name)]
    assert not bad, f"{path.relative_to(ROOT)} imports CLI code ({'; '.join(bad)}); move what it needs into the library"


def test_every_library_module_is_checked():
    names = {_module_name(p) for p in LIBRARY}
    assert {"invkit", "invkit.bench", "invkit.train", "invkit.resolve"} <= names
    assert not any(n.startswith("invkit.cli") for n in names)
