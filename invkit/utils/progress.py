"""Progress events. The core reports progress through a callback; only ``invkit.cli`` draws bars (rich)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """One progress update.

    Attributes:
        task: what is running (``train``, ``bench biggan_proj x smallcnn``, ``probe fgsm``).
        completed: units done so far (steps, images).
        total: units in all, if known.
        fields: numbers to show beside the bar (losses, img/s).
    """

    task: str
    completed: int
    total: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """The default callback: report nothing."""
