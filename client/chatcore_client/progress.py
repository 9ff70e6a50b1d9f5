"""What transfers share: their progress (bytes done, speed), sizes for people, and the failure
they report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


class TransferFailed(Exception):
    """A transfer could not complete; the message is for the user."""


@dataclass(frozen=True)
class Progress:
    """Bytes done of total and the average speed so far."""

    done: int
    total: int
    rate: float  # bytes per second

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]


def human_size(size: float) -> str:
    """``1.5 MB`` style sizes for people (decimal units, like file managers)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class Meter:
    """Turns byte counts into Progress with a speed measured from the first byte."""

    def __init__(self, total: int, start_at: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.base, self.clock = total, start_at, clock
        self.started = clock()

    def at(self, done: int) -> Progress:
        elapsed = max(self.clock() - self.started, 1e-6)
        return Progress(done, self.total, (done - self.base) / elapsed)
