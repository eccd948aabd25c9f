"""Ctrl-C and SIGTERM during training: end the step that runs, save a resumable checkpoint, then stop.

A training run killed between checkpoints loses every step since the last one (``--save-every``): an hour of a CPU
run, or a preempted cluster job's time. The training loops (``invkit.training.loop.train_inverter``,
``invkit.training.classifier.train_classifier``) ask ``stop_requests`` instead: the first SIGINT or SIGTERM is turned
into a request that the loop honours once the current step is done, by saving a checkpoint and raising
``TrainingInterrupted``; a second one acts at once, as the signal would have without invkit (KeyboardInterrupt,
or the process ends). Resuming from that checkpoint with ``--resume`` is exact, as from any other.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from ..errors import TrainingInterrupted

__all__ = ["StopRequest", "interrupted_error", "stop_requests"]


class StopRequest:
    """Whether a stop was asked for; true once a handled signal arrived.

    Attributes:
        signal_name: ``SIGINT`` or ``SIGTERM``, or None while no signal came.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def stop_requests(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[StopRequest]:
    """Turn the first of ``signals`` into a ``StopRequest`` for as long as the block runs.

    The handlers that were installed before are back after the block, and after the first signal (so a second
    one acts at once). Outside the main thread, where Python cannot install signal handlers, the request never
    becomes true and the signals act as they would anyway.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def handle(signum: int, frame: object) -> None:
        request.signal_name = signal.Signals(signum).name
        restore()

    for s in signals:
        signal.signal(s, handle)
    try:
        yield request
    finally:
        restore()


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
    return TrainingInterrupted(f"{name} at step {step}: saved {what}; {how_to_continue}", name, checkpoint)
