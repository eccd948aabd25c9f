"""Terminal output for the CLI: the rich console, progress bars and tables. Only ``invkit.cli`` imports rich."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..progress import Progress as ProgressEvent
from ..progress import ProgressCallback

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def progress_bars(transient: bool = False) -> Iterator[ProgressCallback]:
    """A rich progress display; yields the callback that core functions report to (one bar per task)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=err_console, transient=transient) as bars:
        tasks: dict[str, int] = {}

        def callback(event: ProgressEvent) -> None:
            info = "  ".join(f"{k} {_fmt(v)}" for k, v in event.fields.items())
            if event.task not in tasks:
                tasks[event.task] = bars.add_task(event.task, total=event.total, info=info)
            bars.update(tasks[event.task], completed=event.completed, total=event.total, info=info)

        yield callback


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
