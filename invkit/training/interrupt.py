"""Ctrl-C and SIGTERM during training: end the step that runs, save a resumable checkpoint, then stop.

A training run killed between checkpoints loses every step since the last one (``--save-every``): an hour of a CPU
run, or a preempted cluster job's time. The training loops (``invkit.training.loop.train_inverter``,
``invkit.training.classifier.train_classifier``) ask ``stop_requests`` instead: the first SIGINT or SIGTERM is turned
into a request that the loop honours once the current step is done, by saving a checkpoint and raising
``TrainingInterrupted``. A second Ctrl-C acts at once, as the signal would have without invkit (KeyboardInterrupt).
SIGTERMs that come within ``SIGTERM_REPEAT_S`` seconds of the first request are part of it: under a launcher the
scheduler's SIGTERM reaches every worker and ``torchrun`` passes on another one milliseconds later, and that one
must not kill the worker before its checkpoint is written; a SIGTERM after that acts at once. Resuming from that
checkpoint with ``--resume`` is exact, as from any other.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import TrainingInterrupted

__all__ = ["SIGTERM_REPEAT_S", "StopRequest", "interrupted_error", "stop_requests"]

# SIGTERMs this many seconds or less after the first stop request are the same request (torchrun passes the
# scheduler's SIGTERM on to workers that got it already, ~50 ms later); a later one stops at once.
SIGTERM_REPEAT_S = 5.0


class StopRequest:
    """Whether a stop was asked for; true once a handled signal arrived.

    Attributes:
        signal_name: ``SIGINT`` or ``SIGTERM``, or None while no signal came.
        repeats: SIGTERMs that came after the first signal and counted as the same request.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.repeats = 0
        self.since: float | None = None  # time.monotonic() of the first signal

    def __bool__(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def stop_requests(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM), repeat_s: float = SIGTERM_REPEAT_S
) -> Iterator[StopRequest]:
    """Turn the first of ``signals`` into a ``StopRequest`` for as long as the block runs.

    After the first signal, a second SIGINT (Ctrl-C) acts at once, as it would without invkit; a SIGTERM within
    ``repeat_s`` seconds of the first signal is counted (``StopRequest.repeats``) and otherwise ignored, a later one
    acts at once. The handlers that were installed before are back after the block. Outside the main thread, where
    Python cannot install signal handlers, the request never becomes true and the signals act as they would anyway.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def put_back(s: signal.Signals) -> Any:
        handler = previous[s] if previous[s] is not None else signal.SIG_DFL
        signal.signal(s, handler)
        return handler

    def handle(signum: int, frame: Any) -> None:
        s = signal.Signals(signum)
        if request.signal_name is None:
            request.signal_name, request.since = s.name, time.monotonic()
            for other in previous:
                if other != signal.SIGTERM:
                    put_back(other)  # a second Ctrl-C acts at once
            return
        if s == signal.SIGTERM and time.monotonic() - (request.since or 0.0) <= repeat_s:
            request.repeats += 1  # the same stop, passed on once more (torchrun): the step still gets saved
            return
        handler = put_back(s)  # what this signal would have done without invkit, now
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)

    for s in signals:
        signal.signal(s, handle)
    try:
        yield request
    finally:
        for s in previous:
            put_back(s)


def interrupted_error(
    signal_name: str | None, step: int, checkpoint: object, how_to_continue: str, saved: str | None = None
) -> TrainingInterrupted:
    """The error a training loop raises once it saved ``step`` after a stop request.

    Args:
        signal_name: the signal that asked for the stop; None on a rank that got none and follows rank 0's decision
            (counted as SIGTERM, what torchrun passes on).
        step: the step that was saved.
        checkpoint: where it was saved (``TrainingInterrupted.checkpoint``).
        how_to_continue: the end of the message: how to resume.
        saved: what the message says was saved; ``checkpoint`` when None.
    """
    name = signal_name or "SIGTERM"
    what = saved if saved is not None else checkpoint
    if what is None:  # never "saved None"
        what = f"step {step} (rank 0 writes the checkpoints)"
    return TrainingInterrupted(f"{name} at step {step}: saved {what}; {how_to_continue}", name, checkpoint)
