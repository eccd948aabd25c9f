"""Exceptions raised by invkit.

Every message is one line that says what is wrong and what to do about it; the CLI prints it as is
(``click.ClickException``) and exits non-zero, so no user ever sees a traceback for bad input.
"""

from __future__ import annotations

import re


class InvkitError(Exception):
    """Base class of every error invkit raises on purpose."""


class UnknownNameError(InvkitError, LookupError):
    """A classifier, inverter or probe name that no loaded plugin registered."""

    def __init__(self, kind: str, name: str, suggestions: list[str] | None = None):
        self.kind, self.name, self.suggestions = kind, name, list(suggestions or [])
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Run `invkit list {kind}s` to see every registered name.")

    def __str__(self) -> str:  # LookupError would quote the message otherwise
        return self.args[0]


class AmbiguousNameError(InvkitError, LookupError):
    """A name that two or more plugins registered; it is an error only when used, never for other names."""

    def __init__(self, kind: str, name: str, plugins: list[str]):
        self.kind, self.name, self.plugins = kind, name, list(plugins)
        super().__init__(
            f"{kind} '{name}' is registered by several plugins ({', '.join(self.plugins)}); uninstall all but "
            "one of them (`invkit plugins` shows where each comes from)."
        )

    def __str__(self) -> str:
        return self.args[0]


class WeightsNotFoundError(InvkitError, FileNotFoundError):
    """Pretrained weights are neither in the local caches nor at the path given."""

    def __str__(self) -> str:
        return self.args[0]


class DownloadError(InvkitError):
    """A published weights file could not be fetched (offline, server error) or did not have its published SHA-256;
    nothing was left in the cache (``invkit.io.download``)."""


class CheckpointError(InvkitError):
    """A checkpoint folder or weights file is missing, corrupt, of the wrong format or of the wrong model."""


class UnsafeCheckpointError(CheckpointError):
    """A weights file would need to run code (a pickle with objects) to load; invkit refuses it."""


class InputError(InvkitError, ValueError):
    """A tensor of the wrong shape, size, dtype or value range was passed in."""


class DataError(InvkitError):
    """A data set path that is missing, empty, unreadable or contains a corrupt image."""


class StudyError(InvkitError):
    """A human study's answers or key file that belongs to another study, was edited by hand or is not one at all
    (``invkit study score``, ``invkit.evaluation.study_score``)."""


class TrainingError(InvkitError):
    """Training cannot start or had to stop (NaN losses, collapse, an inverter that cannot be trained)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C or SIGTERM stopped a training run after it saved a resumable checkpoint at the step it was in.

    Attributes:
        signal_name: ``SIGINT`` or ``SIGTERM``.
        checkpoint: the checkpoint folder written at the interruption (None when nothing could be saved).
        exit_status: what the CLI exits with: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
    """

    def __init__(self, message: str, signal_name: str, checkpoint: object = None):
        import signal

        super().__init__(message)
        self.signal_name, self.checkpoint = signal_name, checkpoint
        self.exit_status = 128 + int(getattr(signal, signal_name, signal.SIGINT))


class OutputError(InvkitError, OSError):
    """An output file or folder cannot be written (read-only folder, disk full, a file where a folder should be).

    Files already written are left as they were: every invkit output is written to a temporary name and renamed.
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) otherwise
        return self.args[0] if self.args else ""


# Lines torch (and its C++ core, c10) adds to an exception's message that say where in torch it was raised, not
# what is wrong: the C++ stack trace and the CUDA debugging advice.
_INTERNAL_LINE = re.compile(
    r"^\s*(Exception raised from |C\+\+ CapturedTraceback|frame #\d|#\d+ |CUDA kernel errors might be "
    r"asynchronously|For debugging consider passing|Compile with `TORCH_USE_CUDA_DSA`|Error\(s\) in loading state_dict)"
)
# c10's "[enforce fail at alloc_cpu.cpp:127] err == 0. " before the message
_ENFORCE = re.compile(r"^\[enforce fail at [^\]]*\]\s*(?:[^.:]*\.\s+)?")


def short_message(exc: BaseException | str, limit: int = 200) -> str:
    """The first meaningful line of an exception's message, for an invkit error that passes it on.

    Torch's messages may go on with the C++ source location and stack (``Exception raised from ... at
    .../EmptyTensor.h:8``, ``frame #0``), CUDA debugging advice, or a header line (``Error(s) in loading state_dict
    for ...:``), and start with c10's ``[enforce fail at alloc_cpu.cpp:127] err == 0.``; none of that says what is
    wrong. This keeps the first line that does, without them, cut to ``limit`` characters.

    Args:
        exc: an exception or its message.
        limit: the most characters returned (longer lines end in ``...``).

    Returns:
        One line (no newline); the exception's type name when its message is empty.
    """
    text = str(exc)
    for line in text.splitlines():
        line = _ENFORCE.sub("", line.strip())
        if line and not _INTERNAL_LINE.match(line):
            return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
    return type(exc).__name__ if isinstance(exc, BaseException) else ""
