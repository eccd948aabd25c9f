"""The ``invkit`` command line. Core modules compute; this package talks (rich output, one-line errors).

Commands live one per module in this package; plugins add more through the ``register_commands`` hook.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import sys
import warnings
from typing import Any

import click

from .._version import __version__
from ..errors import InvkitError, TrainingInterrupted

# Each module defines ``command``, a click command (or ``commands``, several). Listed here in help order.
COMMAND_MODULES = (
    "invkit.cli.list_cmd",
    "invkit.cli.plugins_cmd",
    "invkit.cli.convert_weights",
    "invkit.cli.train_classifier",
    "invkit.cli.train",
    "invkit.cli.standing_stats",
    "invkit.cli.report_cmd",
    "invkit.cli.invert",
    "invkit.cli.bench",
    "invkit.cli.leakage",
    "invkit.cli.study",
    "invkit.cli.probe",
    "invkit.cli.export",
    "invkit.cli.download",
)


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Warnings from the core (a cache that cannot be written, a plugin skipped) as one line, without the source
    line Python would add. A category with a ``label`` (``NewestCheckpointNote``: "note") is printed with it."""
    click.echo(f"{getattr(category, 'label', 'warning')}: {message}", err=True)


class InvkitGroup(click.Group):
    """Turns every ``InvkitError`` (bad names, files, shapes, data) into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except TrainingInterrupted as exc:  # a checkpoint was saved: say where, exit as the signal would
            click.echo(f"interrupted: {exc}", err=True)
            sys.exit(exc.exit_status)
        except InvkitError as exc:
            raise click.ClickException(str(exc)) from None
        except click.BadParameter as exc:  # a bad option value: one line naming the option and what it takes
            raise click.ClickException(exc.format_message()) from None
        except OSError as exc:  # a write outside the atomic-write helpers (log lines, folders) that cannot be done
            if exc.errno not in _WRITE_ERRNOS:
                raise
            if exc.errno in (errno.EACCES, errno.EPERM):  # reading or writing: say which file, not which way
                raise click.ClickException(
                    f"permission denied for '{exc.filename or '?'}'; check its permissions or use another folder."
                ) from None
            from ..io.files import output_error

            raise click.ClickException(str(output_error(exc.filename or "the output folder", exc))) from None
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
            module = importlib.import_module(name)
            for cmd in getattr(module, "commands", None) or (module.command,):
                cli.add_command(cmd)


def build_cli() -> click.Group:
    """The ``invkit`` group with the built-in commands and those of every loaded plugin."""
    from ..core.plugins import call_hook_per_plugin

    _add_builtin_commands()
    call_hook_per_plugin("register_commands", cli=cli)
    return cli


def main(argv: list[str] | None = None) -> Any:
    warnings.showwarning = _one_line_warning  # also for warnings before a command runs (plugins loading)
    return build_cli().main(args=argv, prog_name="invkit")
