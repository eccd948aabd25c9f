"""``invkit plugins``: each loaded plugin and where it came from."""

from __future__ import annotations

import click
from rich.table import Table

from ..core.plugins import failed_plugins, get_registry, plugin_infos
from ._ui import console


@click.command("plugins")
def command() -> None:
    """Show every loaded plugin, its module, the distribution that installed it and what it registers (its
    hooks, without the ``register_`` prefix)."""
    infos = plugin_infos()
    table = Table(show_edge=False, pad_edge=False)
    # Every value is shown whole, folded onto more lines when the terminal is narrow, never cut with "…".
    for col in ("plugin", "module"):  # kept on one line while the terminal allows it
        table.add_column(col, no_wrap=True, overflow="fold")
    for col in ("distribution", "registers"):  # wrap between words first
        table.add_column(col, overflow="fold")
    for info in infos:
        table.add_row(
            info.name, info.module, info.distribution, ", ".join(h.removeprefix("register_") for h in info.hooks)
        )
    console.print(table)
    for name, err in failed_plugins().items():
        console.print(f"[red]plugin '{name}' is skipped:[/red] {err}", soft_wrap=True)
    for kind in ("classifier", "inverter", "probe"):
        for name, plugins in get_registry(kind).conflicts().items():
            console.print(
                f"[yellow]{kind} '{name}' is registered by {', '.join(plugins)}:[/yellow] using it is an error "
                "until all but one are uninstalled",
                soft_wrap=True,
            )
