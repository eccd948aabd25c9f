"""Terminal output for the CLI: the rich console, progress bars and tables. Only ``invkit.cli`` imports rich.

On a terminal, progress is drawn as rich bars. Where stderr is not a terminal (``nohup invkit train ... > log``, a
CI log, a pipe) rich would draw nothing until the command ends, so long runs write a plain line per task instead:
the first after ``INVKIT_PROGRESS_INTERVAL`` seconds (default 30), then one every as many seconds, and one when
the task ends.

Output that is not a terminal (sbatch logs, CI, ``| tee``) is meant to be read and copied: there the consoles
(``LogConsole``) never wrap a line (rich would cut every line at 80 columns, a long path in two) and lay tables
out ``NOT_A_TERMINAL_WIDTH`` wide, so a table row stays one line. On a terminal they behave as rich does.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..utils.progress import Progress as ProgressEvent
from ..utils.progress import ProgressCallback

NOT_A_TERMINAL_WIDTH = 1000  # columns tables may take where output goes to a file or a pipe: rows stay whole


class LogConsole(Console):
    """A rich ``Console`` that, when its output is not a terminal, never wraps: ``print`` keeps every line whole
    (``soft_wrap``) and tables are laid out ``NOT_A_TERMINAL_WIDTH`` columns wide (or ``COLUMNS``, if wider), so a
    path or a table row is one line in a log. Where it goes is looked up at each print (a test's captured output, a
    redirected stream), as rich does. On a terminal it is a plain ``Console``."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._fixed_width = kwargs.get("width") is not None  # a width the code asked for (not COLUMNS): kept
        super().__init__(*args, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self._fixed_width and not self.is_terminal:  # COLUMNS=80 of a CI runner cuts log lines too
            return ConsoleDimensions(max(size.width, NOT_A_TERMINAL_WIDTH), size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    @property
    def soft_wrap(self) -> bool:  # read by print(soft_wrap=None)
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


console = LogConsole(highlight=False)
err_console = LogConsole(stderr=True, highlight=False)


@contextlib.contextmanager
def progress_bars(transient: bool = False) -> Iterator[ProgressCallback]:
    """A rich progress display; yields the callback that core functions report to (one bar per task).

    Where stderr is not a terminal, plain lines instead (``plain_progress``); ``transient`` then drops the line a
    task writes when it ends, as the bars would vanish.
    """
    if not err_console.is_terminal:
        yield plain_progress(err_console, final_lines=not transient)
        return
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


DEFAULT_INTERVAL_S = 30.0


def progress_interval() -> float:
    """Seconds between plain progress lines: ``INVKIT_PROGRESS_INTERVAL``, else 30 (a bad value falls back to 30)."""
    try:
        value = float(os.environ.get("INVKIT_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value >= 0 else DEFAULT_INTERVAL_S


def plain_progress(
    out: Console,
    interval: float | None = None,
    final_lines: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressCallback:
    """A progress callback for logs: ``task 120/9000 (1%)  elapsed 0:02:00  left 2:28:00  g_loss 0.45`` lines.

    Args:
        out: where the lines go.
        interval: seconds between two lines of one task (``progress_interval()`` when None); the first line comes
            ``interval`` seconds after the task's first event, so quick tasks write nothing until they end.
        final_lines: write a line when a task reaches its total.
        clock: monotonic seconds (tests pass a fake one).
    """
    every = progress_interval() if interval is None else interval
    first: dict[str, tuple[float, int]] = {}  # task -> (time, completed) of its first event
    last: dict[str, float] = {}
    ended: set[str] = set()

    def callback(event: ProgressEvent) -> None:
        now = clock()
        done = event.total is not None and event.completed >= event.total
        if event.task in ended:
            if done:
                return
            ended.discard(event.task)  # the task runs again (an evaluation each epoch): timed afresh
            first.pop(event.task, None)
            last.pop(event.task, None)
        t0, c0 = first.setdefault(event.task, (now, event.completed))
        if done:
            ended.add(event.task)
            if not final_lines:
                return
        elif now - last.get(event.task, t0) < every:
            return
        last[event.task] = now
        parts = [event.task, f"{event.completed}/{event.total}" if event.total else str(event.completed)]
        if event.total:
            parts[-1] += f" ({100 * event.completed / event.total:.0f}%)"
        parts.append(f"elapsed {_hms(now - t0)}")
        rate = (event.completed - c0) / (now - t0) if now > t0 else 0.0
        if event.total and not done and rate > 0:
            parts.append(f"left {_hms((event.total - event.completed) / rate)}")
        parts += [f"{k} {_fmt(v)}" for k, v in event.fields.items()]
        out.print("  ".join(parts), markup=False, highlight=False, soft_wrap=True)

    return callback


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))
