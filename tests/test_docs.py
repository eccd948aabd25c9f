"""Every hook and every CLI command (with each of its options) is documented in docs/, and every name the docs and
the example plugin use imports from where they say."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import warnings
from pathlib import Path

import pytest

from invkit.hookspecs import HOOK_NAMES

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))
from gen_cli_reference import builtin_commands  # noqa: E402

from invkit.cli import build_cli  # noqa: E402


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented(hook):
    assert f"## `{hook}(" in (DOCS / "hooks.md").read_text()


def _commands():
    return [(c.name, c) for c in builtin_commands(build_cli())]


@pytest.mark.parametrize("name, command", _commands(), ids=[n for n, _ in _commands()])
def test_every_command_and_option_is_documented(name, command):
    text = (DOCS / "cli.md").read_text()
    match = re.search(rf"^## invkit {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/cli.md has no section for `invkit {name}`; run python docs/gen_cli_reference.py"
    section = match.group(1)
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("-"):
                assert opt in section, f"`invkit {name} {opt}` is not in docs/cli.md"


def test_docs_links_resolve():
    """Relative links in every Markdown page of the repository (docs, README, benchmark results) point at files."""
    root = DOCS.parent  # named folders only: a virtual environment inside the checkout holds others' Markdown
    pages = [root / "README.md", *DOCS.glob("*.md"), *(root / "benchmarks").rglob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# ------------------------------------------------------------------------------------------------ documented names
DOC_PAGES = [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]
EXAMPLE_SOURCES = sorted((DOCS / "example_plugin").rglob("*.py"))


def documented_names() -> list[tuple[str, str]]:
    """(where, dotted name) for every ``invkit.x.y`` the docs name in backticks or import in a code snippet, and
    every name the example plugin imports from invkit."""
    found: set[tuple[str, str]] = set()
    for page in DOC_PAGES:
        text = page.read_text()
        for ref in re.findall(r"`(invkit(?:\.\w+)+)", text):
            found.add((page.name, ref))
        for module, names in re.findall(r"from (invkit(?:\.\w+)*) import ([\w, ]+?)(?:;|$|\s{2}|\s#)", text, re.M):
            found.update((page.name, f"{module}.{n.split(' as ')[0].strip()}") for n in names.split(",") if n.strip())
    for source in EXAMPLE_SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("invkit"):
                found.update((source.name, f"{node.module}.{a.name}") for a in node.names)
            elif isinstance(node, ast.Import):
                found.update((source.name, a.name) for a in node.names if a.name.startswith("invkit"))
    return sorted(found)


def resolve_name(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and look the rest up as attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("where, name", documented_names(), ids=[f"{w}:{n}" for w, n in documented_names()])
def test_every_documented_name_imports_from_where_the_docs_say(where, name):
    """A name the docs or the example plugin use exists at the path they give, and that path is current: a name
    under one of invkit 0.1.0's module paths (which import only with a DeprecationWarning) fails. The old module
    paths themselves may be named, where a page says what they became."""
    from invkit._compat import MOVED

    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if name in MOVED else "error", DeprecationWarning)
        try:
            resolve_name(name)
        except (ModuleNotFoundError, AttributeError, DeprecationWarning) as exc:
            pytest.fail(f"{where} names {name}, which does not import: {type(exc).__name__}: {exc}")


def test_the_documented_names_include_the_plugin_helpers():
    names = {n for _, n in documented_names()}
    assert {"invkit.io.load_weights_file", "invkit.data.load_dataset", "invkit.testing.check_inverter"} <= names
    assert "invkit.utils.progress.Progress" in names and "invkit.training.TrainConfig" in names
