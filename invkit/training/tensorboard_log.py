"""TensorBoard event files for a training run: ``RUN/tensorboard/`` beside ``log.jsonl`` (``--tensorboard``).

While ``tensorboard_events(run, step)`` is open, every step line ``invkit.training.report.append_log`` writes for
``run`` also goes to ``RUN/tensorboard/`` as scalars (the losses, ``img_per_s``, the learning rates, under the names
log.jsonl uses), and ``add_image`` adds the sample grids; both trainers (``invkit train``, ``invkit
train-classifier``) log through that path, and only the process that writes log.jsonl (rank 0) opens the events.

Resuming, like ``trim_log`` for log.jsonl, first drops the events a killed run wrote after its last checkpoint
(``trim_events``: each event file rewritten without the records past the resumed step), so every reader of the
folder (TensorBoard's Python ``EventAccumulator`` and its Rust data server alike) sees each step once; the new
writer also passes ``purge_step``, the SummaryWriter's own restart marker, which TensorBoard's Python reader obeys.

Why ``torch.utils.tensorboard.SummaryWriter`` rather than tensorboardX: it ships with torch, which invkit already
depends on, and needs only the ``tensorboard`` package, which a user needs anyway to look at the events; the
optional extra ``invkit[tensorboard]`` installs it. Event files are read and rewritten with tensorboard's own record
reader and writer, not a hand-written TFRecord parser.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InvkitError
from ..io.files import atomic_write_bytes
from ..io.owned import check_write

__all__ = ["TENSORBOARD_DIR", "add_image", "add_scalars", "check_tensorboard", "tensorboard_events", "trim_events"]

TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard/: the event files
EVENT_PREFIX = "events.out.tfevents."  # how the SummaryWriter names its files
INSTALL_HINT = "pip install 'invkit[tensorboard]'"  # (or pip install tensorboard)
FLUSH_SECS = 10  # the writer's flush interval: a run's curves show up in TensorBoard within seconds

_writers: dict[Path, Any] = {}  # resolved run folder -> its open SummaryWriter


def check_tensorboard() -> None:
    """Raise one line saying what to install when the ``tensorboard`` package is missing.

    Raises:
        InvkitError: ``tensorboard`` (or ``torch.utils.tensorboard``) cannot be imported.
    """
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise InvkitError(
            f"--tensorboard needs the tensorboard package, which is not installed; run `{INSTALL_HINT}` (or `pip "
            "install tensorboard`), or drop --tensorboard (log.jsonl and report.html are written either way)."
        ) from None


def _key(run: str | os.PathLike) -> Path:
    return Path(run).expanduser().resolve()


@contextlib.contextmanager
def tensorboard_events(run: str | os.PathLike, step: int, enabled: bool = True) -> Iterator[Path | None]:
    """Write the run's scalars and sample grids to ``RUN/tensorboard/`` while the block runs.

    Args:
        run: the run folder (``log.jsonl`` is in it).
        step: the step the run starts from (0, or the checkpoint a resume continues); events past it, written by
            a run killed after its last checkpoint, are dropped first (``trim_events``).
        enabled: False makes this a no-op (``--tensorboard`` not given, or a rank other than 0).

    Yields:
        The events folder, or None when not enabled.

    Raises:
        InvkitError: ``tensorboard`` is not installed (``check_tensorboard``).
        OutputError: ``RUN/tensorboard`` is a folder the running command did not write
            (``invkit.io.owned.check_write``), or an event file cannot be rewritten.
    """
    if not enabled:
        yield None
        return
    check_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(run) / TENSORBOARD_DIR
    check_write(folder)  # recorded as the command's own (or refused: a folder of the user's)
    trim_events(folder, step)
    # purge_step: TensorBoard's reader hides anything at or past it that an earlier writer left (after trim_events,
    # nothing); the new file is read after the old ones (event file names start with the time)
    writer = SummaryWriter(str(folder), purge_step=step + 1, flush_secs=FLUSH_SECS)
    key = _key(run)
    _writers[key] = writer
    try:
        yield folder
    finally:
        _writers.pop(key, None)
        writer.close()


def add_scalars(run: str | os.PathLike, step: int, values: Mapping[str, Any]) -> None:
    """Add ``values`` (name -> number) at ``step`` to the run's open events; a no-op when none is open."""
    writer = _writers.get(_key(run))
    if writer is None:
        return
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            writer.add_scalar(name, float(value), step)


def add_image(run: str | os.PathLike, tag: str, step: int, png: str | os.PathLike) -> None:
    """Add the PNG file ``png`` (a sample grid) at ``step`` under ``tag`` to the run's open events; a no-op when
    none is open. The events are flushed, so the grid shows up in TensorBoard at once."""
    writer = _writers.get(_key(run))
    if writer is None:
        return
    import numpy as np
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    writer.add_image(tag, pixels, step, dataformats="HWC")
    writer.flush()


def trim_events(folder: str | os.PathLike, step: int) -> list[Path]:
    """Drop the events past ``step`` from every event file in ``folder`` (and records cut short by a kill).

    Each file that holds such events is rewritten atomically with its other records byte for byte; files with
    none are left as they are. This is ``trim_log`` for the TensorBoard events of a resumed run.

    Args:
        folder: ``RUN/tensorboard`` (a missing folder is fine: nothing to trim).
        step: the last step to keep.

    Returns:
        The files rewritten.

    Raises:
        OutputError: a file cannot be rewritten (it keeps its old content).
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder = Path(folder)
    if not folder.is_dir():
        return []
    rewritten = []
    for path in sorted(folder.glob(EVENT_PREFIX + "*")):
        if not path.is_file():
            continue
        size = path.stat().st_size
        kept, dropped, whole = [], False, 0
        for record in RawEventFileLoader(str(path)).Load():
            whole += len(record) + 16  # 8 length + 4 length CRC + data + 4 data CRC
            if event_pb2.Event.FromString(record).step > step:
                dropped = True
            else:
                kept.append(record)
        if not dropped and whole == size:
            continue  # nothing past the step, nothing cut short
        buf = io.BytesIO()
        writer = RecordWriter(buf)
        for record in kept:
            writer.write(record)
        atomic_write_bytes(path, buf.getvalue())
        rewritten.append(path)
    return rewritten
