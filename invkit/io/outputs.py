"""What every command does with its output folder, and what a resumed run may change.

One policy for ``bench``, ``probe``, ``invert``, ``train`` and ``train-classifier`` (see docs/guide.md, "Existing
output folders and resuming"):

- ``claim_output`` creates ``--out`` (one line, not a traceback, when that is impossible: read-only folder, a
  file in the way), proves it is writable, takes an exclusive lock so that two runs never write into one folder
  at once, and removes the temporary files of atomic writes that a killed invkit run left behind (only those:
  invkit's naming, a writer that is gone, not in another run's folder). While it is held, invkit writes over no
  input of the run and no file in the folder that the command did not write (``invkit.io.owned``).
- Each command records the settings its results depend on in the folder and refuses to mix results of other
  settings into it; ``check_resume`` is the one comparison used by the commands that resume.
- ``dataset_fingerprint`` identifies a data set by content, so a relative ``--data`` that means another folder
  when resumed from elsewhere is noticed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InvkitError
from .files import make_dirs, output_error
from .owned import LOCK_NAME, MANIFEST_NAME, check_write, close_claim, may_write, open_claim, remove_stale_temps


@contextlib.contextmanager
def claim_output(
    path: str | os.PathLike,
    command: str,
    flag: str = "--out",
    *,
    inputs: Iterable[str | os.PathLike] = (),
    writes: Iterable[str] = (),
    records: Iterable[str] = (),
) -> Iterator[Path]:
    """Hold ``path`` as this process' output folder for the duration of the ``with`` block.

    Args:
        path: the output folder (created with its parents if missing).
        command: the command using it, named in the message another run gets.
        flag: the option that named the folder, for messages.
        inputs: the run's input files and folders (``input_paths``): never written over.
        writes: the files (relative to the folder) the command always writes, checked before anything is done.
        records: glob patterns of the record an earlier run of the command leaves (``train_config.json``), by
            which a folder written before invkit listed its files is recognised (``invkit.io.owned.open_claim``).

    Yields:
        The folder as a ``Path``.

    Raises:
        OutputError: the folder cannot be created or written (read-only, disk full, a file in the way); one of
            ``writes`` is an input or a file the command did not write (``invkit.io.owned.check_write``).
        InvkitError: another invkit process holds the folder.
    """
    folder = Path(path).expanduser()
    created = not folder.exists()
    make_dirs(folder)
    lock_path = folder / LOCK_NAME
    fd = _lock(folder, lock_path, flag)
    claim = None
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{command} pid {os.getpid()}\n".encode())
        except OSError as exc:
            raise output_error(lock_path, exc) from None
        claim = open_claim(folder, command, inputs, records)
        for name in writes:  # refused now, not after an hour of training
            if not may_write(folder / name):
                check_write(folder / name)
        remove_stale_temps(folder)
        yield folder
    finally:
        if claim is not None:
            close_claim(claim)
        # The lock file goes while the lock is still held, so the folder is left as the run wrote it; a run
        # that opened the old file meanwhile notices (see _lock) and takes a fresh one.
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                if [p.name for p in folder.iterdir()] == [MANIFEST_NAME]:
                    (folder / MANIFEST_NAME).unlink()
                folder.rmdir()


@contextlib.contextmanager
def claim_inputs(command: str, inputs: Iterable[str | os.PathLike]) -> Iterator[None]:
    """For a command that writes no output folder (``convert-weights SRC DST``): while the block runs, no write of
    invkit's goes over one of ``inputs`` (``invkit.io.owned.check_write`` refuses it with one line)."""
    claim = open_claim(None, command, inputs)
    try:
        yield
    finally:
        close_claim(claim)


def input_paths(*specs: str | os.PathLike | None) -> list[Path]:
    """The specs that name existing files or folders (a classifier folder, a --weights file, images, a data
    folder), for ``claim_output(inputs=...)``; registry names, None and data-set names are left out."""
    found = []
    for spec in specs:
        if spec is None or str(spec) == "":
            continue
        p = Path(spec).expanduser()
        if os.path.lexists(p):
            found.append(p)
    return found


def _lock(folder: Path, lock_path: Path, flag: str) -> int:
    """Open and lock ``lock_path`` (exclusive, non-blocking); the file descriptor that holds the lock."""
    import fcntl

    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise output_error(folder, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise output_error(lock_path, exc) from None
            raise InvkitError(
                f"{flag} '{folder}' is in use by another invkit run ({_read_holder(lock_path)}); wait for it to "
                f"finish or use another {flag}."
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file as we locked it: lock the current one instead


def _read_holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def check_resume(
    stored: Mapping[str, Any], given: Mapping[str, Any], may_change: Iterable[str], where: str, flag_prefix: str = "--"
) -> None:
    """Refuse a resume whose settings differ from the run's, except those in ``may_change``.

    Args:
        stored: the settings the run was started with (from its folder).
        given: the settings of this invocation (every key, not only those given on the command line).
        may_change: the keys a resume may change (e.g. the number of steps, logging intervals).
        where: the run folder, for the message.

    Raises:
        InvkitError: one line naming the first changed setting, its old and its new value.
    """
    allowed = set(may_change)
    for key, old in stored.items():
        if key in allowed or key not in given:
            continue
        if given[key] != old:
            raise InvkitError(
                f"--resume: the run in '{where}' was started with {flag_prefix}{key.replace('_', '-')} {old!r}, "
                f"not {given[key]!r}; resume with the same settings (only {', '.join(sorted(allowed))} may change), "
                "or start a new run in another --out."
            )


def dataset_fingerprint(dataset: Any, samples: int = 64) -> str:
    """A short digest of a data set's content: its size, every label and the pixels of ``samples`` images.

    Two folders with the same file names but other images, or the same relative path seen from another working
    folder, get different fingerprints; reading ``samples`` images keeps it fast for large data sets.
    """
    import torch

    n = len(dataset)
    h = hashlib.sha256(f"n={n}".encode())
    labels = dataset.labels() if hasattr(dataset, "labels") else None
    if labels is not None:
        h.update(torch.as_tensor(list(labels), dtype=torch.int64).numpy().tobytes())
    step = max(1, n // samples)
    for i in range(0, n, step)[:samples]:
        image = dataset[i][0]
        h.update((image.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: Any) -> dict[str, Any]:
    """The machine a run uses, for the records that say which machine made a result or checkpoint.

    Args:
        device: the ``torch.device`` (or its name) the run computes on.

    Returns:
        JSON-ready fields: ``cpu`` (model name), ``cpu_count``, ``cpu_capability`` (torch's SIMD level, e.g.
        AVX512), ``cpu_bf16`` (oneDNN has native bf16 kernels: AVX512-BF16 or AMX), ``torch_threads``, ``gpu``
        (CUDA device name, for a CUDA device), ``device``, ``torch``, ``python`` and ``platform``. No host or
        user names.
    """
    import platform

    import torch

    device = torch.device(device)
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
