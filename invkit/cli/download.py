"""``invkit download``: fetch the published weights invkit's metrics use (LPIPS backbones, FID's Inception-V3).

The only command that downloads without ``--download`` or ``INVKIT_DOWNLOAD=1``: naming a file is the permission.
The files, their URLs, digests and cache paths are ``invkit.io.download.KNOWN_FILES`` (docs/bench.md).
"""

from __future__ import annotations

import click
from rich.table import Table

from ..io.download import KNOWN_FILES, fetch, weights_status
from ._ui import console


@click.command("download")
@click.argument("names", nargs=-1, type=click.Choice([*KNOWN_FILES, "all"]), metavar="[NAME|all]...")
@click.option("--quiet", is_flag=True, help="No progress bar while downloading.")
def command(names: tuple[str, ...], quiet: bool) -> None:
    """Download published weights into the torch hub cache where their library looks, each checked against its
    published SHA-256: lpips-alex, lpips-vgg (LPIPS backbones), inception (standard FID/KID), or all. A file
    already there and whole is kept. With no NAME: show each file, whether it is there, its URL and its path."""
    wanted = list(KNOWN_FILES) if "all" in names else list(dict.fromkeys(names))
    for name in wanted:
        path = fetch(name, allowed=True, progress=not quiet)
        console.print(f"{name}: {path} (SHA-256 checked)", soft_wrap=True)
    if wanted:
        return
    table = Table(title="published weights (invkit download NAME)", title_justify="left", show_edge=False)
    for column in ("name", "present", "used by", "url", "path"):
        table.add_column(column, overflow="fold")
    for name, known in KNOWN_FILES.items():
        present, _ = weights_status(name)
        table.add_row(name, "yes" if present else "no", known.used_by, known.url, str(known.path()))
    console.print(table)
