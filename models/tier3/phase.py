"""Phase-conditioned window peaks: what this phase of each period did, cycle after cycle.

A job that *may* start at fixed minutes (a cron that skips when there is no work, a batch that
fires every second or third slot) peaks at only some of its slots. The median of past peaks at a
slot is then the base level, and no summary that keeps one number per phase rises before the
burst. Sizing at a high quantile needs the whole conditional distribution of the window peak at
this phase: how often the phase peaked, and how high.

For a period ``P`` and a decision at ``t`` the sample is, for each past cycle ``k = 1..K``:

    peak_k  = max(load covering [t - kP - J, t - kP + lead + step + J])
    level_k = median(load stamped in (t - kP - level_window, t - kP])
    sample_k = peak_k x clip(level(t) / level_k, 1/2, 2)

the peak of the window a decision at ``t - kP`` answered for (its lead time and one interval;
the samples whose intervals overlap it: ``loop.sizing``'s rule), with a phase tolerance ``J``
(5 % of the period, at most one sample: a cron's minute does not wander; a phase that drifts
is the echo's, :mod:`.nowcast`),
scaled by how the level moved since that cycle (at most halved or doubled, so that a cycle
whose level was near zero does not explode), so that a diurnal rise or a level shift carries
over. Its ``q`` quantile is how high this phase peaks in a share ``1 - q`` of cycles: a slot that
fires in a third of them shows at any ``q`` above 0.67 and is ignored below.

A slot at minute 30 of every hour that fires one hour in three, seen at minute 27 (its window
holds the slot) after nine hours at one sample a minute:

    >>> times = [60.0 * i for i in range(1, 568)]
    >>> values = [400.0 if i % 60 == 30 and (i // 60) % 3 == 0 else 100.0 for i in range(1, 568)]
    >>> sample = phase_sample(times, values, now=567 * 60.0, lead_s=300, step_s=60,
    ...                       period_s=3600, cycles=9, level_window_s=1800)
    >>> sample.tolist()
    [100.0, 100.0, 400.0, 100.0, 100.0, 400.0, 100.0, 100.0, 400.0]
    >>> float(np.median(sample)), float(np.quantile(sample, 0.9))
    (100.0, 400.0)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from statistics import median

import numpy as np


def phase_sample(times: Sequence[float], values: Sequence[float], now: float, lead_s: float,
                 step_s: float, period_s: float, cycles: int,
                 level_window_s: float) -> np.ndarray:
    """The window peaks at ``now``'s phase in up to ``cycles`` past cycles, each relative to its
    cycle's level and scaled to the level now (see the module docstring); empty when the stream
    holds no past cycle."""
    level_now = _median(times, values, now - level_window_s, now)
    if not math.isfinite(level_now):
        return np.empty(0)
    slack = min(0.05 * period_s, step_s)
    out = []
    for k in range(1, cycles + 1):
        t0 = now - k * period_s
        if t0 - slack < times[0]:
            break
        lo = bisect_right(times, t0 - slack)  # stamped after the window opens ...
        hi = bisect_left(times, t0 + lead_s + step_s + slack) + 1  # ... to the first at its end
        level = _median(times, values, t0 - level_window_s, t0)
        if hi > lo and math.isfinite(level):
            scale = min(max(level_now / level, 0.5), 2.0) if level > 0 else 1.0
            out.append(max(values[lo:hi]) * scale)
    return np.asarray(out, dtype=float)


def _median(times: Sequence[float], values: Sequence[float], after: float,
            until: float) -> float:
    """The level: the median of the samples in ``(after, until]`` (a burst inside does not move
    it), or the latest sample before them."""
    lo, hi = bisect_right(times, after), bisect_right(times, until)
    if hi <= lo:
        return float(values[hi - 1]) if hi > 0 else math.nan
    return float(median(values[lo:hi]))  # the standard library's: fast on short windows
