"""The decision loop's clock: the wall clock in serving, a clock the replay sets.

The loop never calls ``time.time()`` itself: whoever drives it says what time it is. That is
what makes the served loop and the replayed loop one object (``docs/design.md``, "One loop").

>>> clock = ReplayClock(1_000.0)
>>> clock.advance(60)
>>> clock.now()
1060.0
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...


class WallClock:
    """Real time (serving's default)."""

    def now(self) -> float:
        return time.time()


class ReplayClock:
    """A clock the replay (or a test) moves by hand; it never moves on its own."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = float(start_s)

    def now(self) -> float:
        return self._now

    def set(self, now_s: float) -> None:
        self._now = float(now_s)

    def advance(self, seconds: float) -> None:
        self._now += float(seconds)
