"""``invkit report``: draw a training run's curves.png and report.html from its folder.

``invkit train`` redraws both whenever it writes a sample grid; this command is for a run folder copied from
another machine, one made before invkit wrote them, or a look between two sample grids. It only reads the run's
files and writes those two, atomically, so it is safe while the run goes on.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvkitError
from ._ui import console


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--samples", type=click.IntRange(min=0), default=8, show_default=True, help="Newest sample grids to embed."
)
def command(runs: tuple[Path, ...], samples: int) -> None:
    """Write curves.png and report.html into each training run folder RUNS (an `invkit train --out`)."""
    from ..training.report import write_train_report

    for run in runs:  # every folder is checked before anything is written
        if not run.is_dir():
            raise InvkitError(f"'{run}' is not a folder; give the --out folder of an `invkit train` run.")
        if not (run / "log.jsonl").is_file() and not (run / "train_config.json").is_file():
            raise InvkitError(
                f"'{run}' holds no log.jsonl or train_config.json, so it is not an `invkit train` run folder "
                "(bench and probe folders write their own report.html)."
            )
    for run in runs:
        page = write_train_report(run, embed_samples=samples)
        curves = f" (and {run / 'curves.png'})" if (run / "curves.png").is_file() else ""
        console.print(f"report: {page}{curves}", soft_wrap=True)
