"""A request trace as the load it puts on its producer: the capacity its requests occupy.

Each request arrives at the front end at its timestamp, starts on its producer after its wait,
and holds ``units`` of capacity for its run time. The producer's load over an interval is the
mean number of units held during it (busy unit-seconds / interval seconds), the same quantity a
utilisation metric reports. Requests running across an interval boundary count in both
intervals, in proportion to the time they ran in each.

The busy unit-seconds up to any time ``t`` are ``Σ units · (min(t, end) − start)`` over the
requests started before ``t``; with the starts and the ends sorted and summed once, every
interval edge is answered by two binary searches.
"""

from __future__ import annotations

import numpy as np


def busy_seconds(starts: np.ndarray, ends: np.ndarray, units: np.ndarray,
                 times: np.ndarray) -> np.ndarray:
    """Unit-seconds held from the beginning of time to each of ``times``.

    >>> busy_seconds(np.array([0.0]), np.array([10.0]), np.array([2.0]),
    ...              np.array([0.0, 5.0, 10.0, 20.0])).tolist()
    [0.0, 10.0, 20.0, 20.0]
    """
    def held(points: np.ndarray, times: np.ndarray) -> np.ndarray:
        order = np.argsort(points, kind="stable")
        sorted_points, sorted_units = points[order], units[order]
        units_before = np.concatenate([[0.0], np.cumsum(sorted_units)])
        moments_before = np.concatenate([[0.0], np.cumsum(sorted_units * sorted_points)])
        k = np.searchsorted(sorted_points, times, side="left")  # strictly before each time
        return times * units_before[k] - moments_before[k]

    times = np.asarray(times, dtype=float)
    return held(np.asarray(starts, float), times) - held(np.asarray(ends, float), times)


def occupancy(arrivals_s: np.ndarray, durations_s: np.ndarray, edges_s: np.ndarray,
              waits_s: np.ndarray | None = None, units: np.ndarray | None = None) -> np.ndarray:
    """Mean units held over each interval ``[edges[i], edges[i + 1])`` (seconds).

    One request of 2 units arriving at 30 s with a 60-s wait, running 90 s (so busy from 90 s
    to 180 s), over two one-minute intervals and a third:

    >>> occupancy(np.array([30.0]), np.array([90.0]), np.array([0.0, 60.0, 120.0, 180.0]),
    ...           waits_s=np.array([60.0]), units=np.array([2.0])).tolist()
    [0.0, 1.0, 2.0]
    """
    arrivals = np.asarray(arrivals_s, dtype=float)
    starts = arrivals + (np.asarray(waits_s, float) if waits_s is not None else 0.0)
    ends = starts + np.asarray(durations_s, dtype=float)
    held = np.asarray(units, float) if units is not None else np.ones_like(arrivals)
    edges = np.asarray(edges_s, dtype=float)
    area = busy_seconds(starts, ends, held, edges)
    return np.diff(area) / np.diff(edges)
