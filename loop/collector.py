"""The cyclic garbage collector at fleet size: scan what a pass made, not the fleet's state.

CPython's cyclic collector scans every object it tracks in a full collection, and starts one
once the objects that survived two younger collections since the last full one exceed a
quarter of the long-lived ones. Each pass of the loop leaves a fleet's worth of results alive
until the next (decisions, their reasons, the tiers' answers), and the reports between passes
leave theirs, so at fleet size full collections come every pass or two and re-scan every
producer's state, which has not changed: at 10,000 producers about 0.7 s each, 108 of them
in the 56 passes of ``bench loop`` (73 s of its 597).

:class:`FleetCollector` freezes what is alive after each pass (:func:`gc.freeze`: moved to a
permanent generation that collections skip; reference counting still frees what is dropped),
so later collections scan only what was made since, and once every ``full_every_s`` of wall
time it unfreezes and collects in full, so garbage held in reference cycles is still
reclaimed. The process that owns the loop (``leadtime serve``, ``bench loop``) runs it after
each pass; the replay of a single producer does not need it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class FleetCollector:
    """Freeze after each pass; unfreeze and collect in full every ``full_every_s`` seconds.

    >>> ticks = iter([0.0, 10.0, 7200.0])
    >>> collector = FleetCollector(full_every_s=3600.0, clock=lambda: next(ticks))
    >>> collector.after_pass()  # the first pass collects in full, then freezes
    >>> gc.get_freeze_count() > 0, collector.full_collections
    (True, 1)
    >>> collector.after_pass()  # 10 s later: frozen again, no full collection
    >>> collector.after_pass()  # two hours later: a full collection
    >>> collector.full_collections
    2
    >>> gc.unfreeze()
    """

    def __init__(self, full_every_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self.last_full: float | None = None
        self.full_collections = 0

    def after_pass(self) -> None:
        now = self.clock()
        if self.last_full is None or now - self.last_full >= self.full_every_s:
            gc.unfreeze()
            gc.collect()
            self.last_full = now
            self.full_collections += 1
        gc.freeze()

    def release(self) -> None:
        """Unfreeze (the loop stopped): what it held is collected as usual again."""
        gc.unfreeze()
