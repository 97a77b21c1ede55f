"""Rows of floats that arrive in time order and age out from the front, in one array.

A record kept for days per producer (the nowcast's ratios, the loop's tier points and observed
loads) as tuples of Python floats costs about a hundred bytes a row; here a row is its floats.

>>> rows = FloatRows(2, [(0.0, 1.0), (60.0, 2.0)])
>>> rows.append((120.0, 3.0))
>>> rows.popleft()
>>> len(rows), rows.first(), rows.last(), rows.rows().tolist()
(2, 60.0, 120.0, [[60.0, 2.0], [120.0, 3.0]])
>>> rows.set_last((120.0, 4.0)); rows.rows()[-1].tolist()
[120.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def room_for(live: int, size: int) -> int:
    """The rows a full array of ``size`` rows, ``live`` of them live, moves into: a quarter
    more when more than seven eighths are live, else the same. A record that has stopped
    growing then holds between 8/7 and 10/7 of its live rows (with half as many again, before,
    it held up to twice them), and moves (one copy of its live rows) at most once every eighth
    of the array's length of appends.

    >>> room_for(120, 128), room_for(100, 128)
    (160, 128)
    """
    return size + size // 4 if live > size * 7 // 8 else size


class FloatRows:
    """Rows of ``width`` floats, oldest first: appended at the back, dropped from the front.

    The live rows move to the front when the array is full, into :func:`room_for` rows.
    """

    def __init__(self, width: int, rows: Iterable[Sequence[float]] = ()) -> None:
        self.data = np.empty((64, width))
        self.start = self.end = 0
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, row: Sequence[float]) -> None:
        if self.end == len(self.data):
            live, size = len(self), room_for(len(self), len(self.data))
            data = np.empty((size, self.data.shape[1]))
            data[:live] = self.data[self.start:self.end]
            self.data, self.start, self.end = data, 0, live
        self.data[self.end] = row
        self.end += 1

    def popleft(self) -> None:
        self.start += 1

    def first(self, column: int = 0) -> float:
        return float(self.data[self.start, column])

    def last(self, column: int = 0) -> float:
        return float(self.data[self.end - 1, column])

    def set_last(self, row: Sequence[float]) -> None:
        self.data[self.end - 1] = row

    def rows(self) -> np.ndarray:
        """The live rows, oldest first (a view: read, do not keep across appends)."""
        return self.data[self.start:self.end]
