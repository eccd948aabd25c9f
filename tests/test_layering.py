"""The package's layering: core computes and the CLI talks, lower layers never import higher ones, no circles.

* No module of the library imports ``invkit.cli``, click or rich.
* The subpackages form the layers of ``LAYERS`` (docs/architecture.md): a module imports its own layer or lower
  ones, the module graph has no import circle, and no module passes 500 lines without saying why.
* Every module path and public name of invkit 0.1 (tests/data/api-0.1.json) still imports.

Imports are read from the source with ``ast`` (relative ones resolved against the module's package), so
an import hidden inside a function counts too; only ``if TYPE_CHECKING:`` blocks are exempt.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import warnings
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
    assert {"invkit", "invkit.evaluation.bench", "invkit.training.loop", "invkit.core.resolve"} <= names
    assert not any(n.startswith("invkit.cli") for n in names)


# ------------------------------------------------------------------------------------------------ the layers
# Lowest first. A module may import modules of its own layer or of lower ones, never of a higher one, and the
# module graph has no circles. docs/architecture.md draws the same table; a new module must find its place here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("invkit._version", "invkit.errors", "invkit.hookspecs")),
    ("utils", ("invkit.utils",)),
    ("io", ("invkit.io",)),
    ("data", ("invkit.data",)),
    ("core", ("invkit.core",)),
    ("training", ("invkit.training",)),
    ("evaluation", ("invkit.evaluation",)),
    ("api", ("invkit", "invkit._compat", "invkit.testing", "invkit.demo", "invkit.assets", "invkit.cli")),
]
PACKAGE_PREFIXES = {"invkit.utils", "invkit.io", "invkit.data", "invkit.core", "invkit.training", "invkit.evaluation"}
PACKAGE_PREFIXES |= {"invkit.assets", "invkit.cli"}
MODULES = {_module_name(p): p for p in (ROOT / "invkit").rglob("*.py")}
MAX_LINES = 500


def layer_of(module: str) -> int | None:
    """The rank of a module's layer (0 lowest), by the longest entry that is the module or a package above it."""
    best: tuple[int, int] | None = None
    for rank, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            exact_only = entry not in PACKAGE_PREFIXES  # 'invkit' is the package __init__, not everything below it
            if module == entry or (not exact_only and module.startswith(entry + ".")):
                if best is None or len(entry) > best[1]:
                    best = (rank, len(entry))
    return None if best is None else best[0]


def import_edges(path: Path, root: Path = ROOT, modules: dict | None = None) -> list[tuple[int, str]]:
    """The invkit modules ``path`` depends on, with the line: ``from a.b import c`` is an edge to module ``a.b.c``
    when that is a module, else to ``a.b`` (a name defined in, or re-exported by, ``a.b``); ``import a.b.c`` to
    the longest prefix that is a module. Imports under ``if TYPE_CHECKING:`` are not dependencies at run time."""
    modules = MODULES if modules is None else modules
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def longest(name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in modules:
                return ".".join(parts[:i])
        return None

    edges = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            edges += [(node.lineno, t) for a in node.names if (t := longest(a.name))]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                t = sub if sub in modules else longest(target)
                if t:
                    edges.append((node.lineno, t))
    return edges


def _graph() -> dict[str, set[str]]:
    return {m: {t for _, t in import_edges(p) if t != m} for m, p in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_checks_find_a_circle_and_an_upward_import(tmp_path):
    """The checkers themselves, on a tree that has a circle through a package __init__ and an upward import."""
    pkg = tmp_path / "invkit"
    (pkg / "core").mkdir(parents=True)
    (pkg / "io").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("from .a import A\n")
    (pkg / "core" / "a.py").write_text("from . import b\nA = 1\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from . import A\n")  # b -> the package -> a -> b
    (pkg / "io" / "__init__.py").write_text("")
    (pkg / "io" / "files.py").write_text("from ..core.b import f\nfrom . import sibling_name\n")
    mods = {_module_name(p, tmp_path): p for p in pkg.rglob("*.py")}
    graph = {m: {t for _, t in import_edges(p, tmp_path, mods) if t != m} for m, p in mods.items()}
    assert graph["invkit.core.a"] == {"invkit.core.b"}  # 'from . import b' is the module b, not the package
    assert graph["invkit.io.files"] == {"invkit.core.b", "invkit.io"}
    cycle = find_cycle(graph)
    assert cycle and cycle[0] == cycle[-1] and {"invkit.core", "invkit.core.a", "invkit.core.b"} <= set(cycle)
    assert layer_of("invkit.io.files") < layer_of("invkit.core.b")  # the upward import the layer test refuses
    assert layer_of("invkit") == layer_of("invkit.cli.bench") and layer_of("invkit.unplaced") is None


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"modules in no layer: {unplaced}; add them to LAYERS here and to docs/architecture.md"


def test_no_import_circles():
    cycle = find_cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_lower_layers_never_import_higher_ones():
    upward = []
    for module, path in MODULES.items():
        for line, target in import_edges(path):
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} ({LAYERS[layer_of(module)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "lower layer imports a higher one:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_above_500_lines_without_a_reason(path):
    lines = len(path.read_text().splitlines())
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or f"over {MAX_LINES} lines" in doc.lower(), (
        f"{path.relative_to(ROOT)} has {lines} lines; split it, or say in its docstring why it is over {MAX_LINES} "
        "lines"
    )


# ------------------------------------------------------------------------------------------------ old paths
API_01 = json.loads((Path(__file__).parent / "data" / "api-0.1.json").read_text())
# names that left their 0.1 module for a better home and are not re-exported there (none of them was documented)
MOVED_NAMES = {
    "invkit.bench.classifier_identity": "invkit.core.provenance",
    "invkit.bench.recorded_classifier": "invkit.core.provenance",
}


@pytest.mark.parametrize("old", sorted(k for k in API_01 if not k.startswith("_")))
def test_every_0_1_module_path_and_name_still_imports(old):
    """invkit 0.1 had its modules in invkit/; code written against those paths keeps working (with a warning)."""
    from invkit._compat import MOVED

    if old in MOVED:
        sys.modules.pop(old, None)  # imported by an earlier test: import it afresh, to see the warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    if old in MOVED:
        assert module is importlib.import_module(MOVED[old]), f"{old} is not the module it moved to"
        assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)
    for name in API_01[old]:
        where = MOVED_NAMES.get(f"{old}.{name}")
        assert hasattr(importlib.import_module(where) if where else module, name), f"{old}.{name} is gone"


def test_moved_modules_are_one_object_under_both_names():
    import invkit.io.checkpoint as new

    sys.modules.pop("invkit.checkpoint", None)
    with pytest.warns(DeprecationWarning, match="invkit.checkpoint moved to invkit.io"):
        old = importlib.import_module("invkit.checkpoint")
    assert sys.modules["invkit.checkpoint"] is old
    assert old.save_checkpoint is importlib.import_module("invkit.io").save_checkpoint
    assert new.save_checkpoint is old.save_checkpoint


def test_architecture_page_names_every_folder_and_top_level_module():
    """docs/architecture.md is where a newcomer looks: a folder or top-level module it does not name is unexplained."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    folders = sorted(p.parent.name for p in (ROOT / "invkit").glob("*/__init__.py") if p.parent.name != "assets")
    top = sorted(p.name for p in (ROOT / "invkit").glob("*.py"))
    missing = [f"{f}/" for f in folders if f"{f}/" not in page] + [m for m in top if m not in page]
    assert not missing, f"docs/architecture.md does not name {missing}"
    for name, _ in LAYERS:
        assert f"| {name} |" in page or f"| {name} (" in page, f"docs/architecture.md has no row for layer {name}"


def test_every_subpackage_is_in_the_distribution():
    """pyproject.toml lists packages by hand: a new subpackage missing there is absent from the built wheel, though
    the editable install used for development still finds it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    here = {_module_name(p) for p in (ROOT / "invkit").rglob("__init__.py")}
    here |= {"invkit_plugins." + p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")} | {"invkit_plugins"}
    assert here <= listed, f"pyproject.toml [tool.setuptools] packages lacks {sorted(here - listed)}"
