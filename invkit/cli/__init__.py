"""The ``invkit`` command line. Core modules compute; this package talks (rich output, one-line errors).

Commands live one per module in this package; plugins add more through the ``register_commands`` hook.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from .. import __version__
from ..errors import InvkitError

# Each module defines ``command``, a click command. Listed here in help order.
COMMAND_MODULES = (
    "invkit.cli.list_cmd",
    "invkit.cli.plugins_cmd",
    "invkit.cli.convert_weights",
    "invkit.cli.train_classifier",
    "invkit.cli.train",
    "invkit.cli.standing_stats",
    "invkit.cli.invert",
    "invkit.cli.bench",
    "invkit.cli.probe",
)


class InvkitGroup(click.Group):
    """Turns every ``InvkitError`` (bad names, files, shapes, data) into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvkitError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; checkpoints already written are kept.", err=True)
            sys.exit(130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # keep the declared order


@click.group(cls=InvkitGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="invkit")
def cli() -> None:
    """invkit: invert image classifiers and study what their logits keep."""


def _add_builtin_commands() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            cli.add_command(importlib.import_module(name).command)


def build_cli() -> click.Group:
    """The ``invkit`` group with the built-in commands and those of every loaded plugin."""
    from ..plugins import get_plugin_manager

    _add_builtin_commands()
    get_plugin_manager().hook.register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> Any:
    return build_cli().main(args=argv, prog_name="invkit")
