"""Every hook and every CLI command (with each of its options) is documented in docs/."""

from __future__ import annotations

import re
import sys
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
