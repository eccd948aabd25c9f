"""Regenerate docs/cli.md from the commands' own help: `python docs/gen_cli_reference.py`.

tests/test_docs.py fails when a command or option is missing from docs/cli.md, so run this after changing
the CLI.
"""

from __future__ import annotations

from pathlib import Path

import click

from invkit.cli import COMMAND_MODULES, build_cli

HEADER = """# Command-line reference

Generated from the commands' help by `python docs/gen_cli_reference.py`; `invkit COMMAND --help` shows the
same. Every command prints one line starting with `Error:` and exits with status 1 on bad input (unknown
names, missing or corrupt files, wrong shapes); nothing already written is removed.

Plugins can add commands (see [hooks.md](hooks.md)); those are documented by their plugin.
"""


def builtin_commands(cli: click.Group) -> list[click.Command]:
    modules = {m.rsplit(".", 1)[1] for m in COMMAND_MODULES}
    return [c for c in cli.commands.values() if c.callback.__module__.rsplit(".", 1)[-1] in modules]


def render() -> str:
    cli = build_cli()
    parts = [HEADER]
    for cmd in builtin_commands(cli):
        ctx = click.Context(cmd, info_name=f"invkit {cmd.name}")
        parts.append(f"## invkit {cmd.name}\n\n```text\n{cmd.get_help(ctx)}\n```\n")
        for sub in getattr(cmd, "commands", {}).values():  # a group's commands (invkit study make, ...)
            sub_ctx = click.Context(sub, info_name=f"invkit {cmd.name} {sub.name}")
            parts.append(f"## invkit {cmd.name} {sub.name}\n\n```text\n{sub.get_help(sub_ctx)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    path = Path(__file__).with_name("cli.md")
    path.write_text(render())
    print(f"wrote {path}")
