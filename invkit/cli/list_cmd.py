"""``invkit list``: registered classifiers, inverters and probes."""

from __future__ import annotations

import click
from rich.table import Table

from ..plugins import get_registry
from ._ui import console

KINDS = {"classifiers": "classifier", "inverters": "inverter", "probes": "probe"}


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(["all", *KINDS]), default="all")
@click.argument("pattern", required=False, default="*")
def command(kind: str, pattern: str) -> None:
    """List registered names, optionally of one KIND and matching a wildcard PATTERN (e.g. 'resnet*')."""
    kinds = list(KINDS) if kind == "all" else [kind]
    found = {k: get_registry(KINDS[k]).entries(pattern) for k in kinds}
    if pattern != "*" and not any(found.values()):
        raise click.ClickException(f"no {' or '.join(kinds)} match '{pattern}'; run `invkit list` to see every name.")
    for k, entries in found.items():
        if not entries and pattern != "*":
            continue
        table = Table(title=k, title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        table.add_column("plugin")
        table.add_column("description")
        for e in entries:
            table.add_row(e.name, e.plugin, e.description)
        console.print(table)
