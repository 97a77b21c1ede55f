"""Sizing: the window peak to provision for, calibrated on the loop's record, bought at a price.

The load score (the tiers' weighted average over current capacity) gates pre-allocation; how
many instances to hold is a different question (``docs/design.md``, "Sizing"). An instance held
for a pass costs one instance-interval; a window whose peak exceeds the capacity costs the
**price** of a violation. Each pass holds the capacity of least expected cost: over the grid
quantiles ``q`` of the window peak, the fewest instances ``n(q)`` holding it, plus the price times
``1 - q``. Where the peak is narrow a high quantile costs little and is bought; where it is wide
(a burst that may or may not come) it is bought only when the price is worth it. Two modes set
the price:

* **budget** (the default): the highest price, up to ``engine.violation_cost``, whose sizing
  would have spent no more than ``sizing_budget`` times what reacting spent over the last
  ``sizing_budget_window_s``, reacting being the HPA twin run beside the loop (:mod:`loop.hpa_twin`).
  Where the budget lies between what two prices of :data:`PRICES` spend, the higher one holds
  for the share of refit periods that spends it. Price 0 holds the reacting floor and buys
  nothing ahead; it is also what the budget mode holds while no candidate is calibrated, since
  it cannot yet say what buying ahead costs;
* **price**: ``engine.violation_cost``, whatever it costs.

In either mode the loop **steps aside** (``engine.sizing_step_aside``) while the HPA twin has
missed less of the windows' load than the sizing would have, by a margin, over the last week's
windows (:meth:`WindowPeakCalibrator._step_aside`): the decision then holds the twin's count,
and (``engine.sizing_step_aside_headroom``) above it what the sizing buys at the highest price
whose spend, floored window by window at the twin's count, fits the budget.

No tier answers the peak's distribution, so it is calibrated on the loop's own record. For every
pass and every **candidate** (each tier that answered with weight, their ``combined``
prediction, ``reactive``: the current load itself, and samples a tier offers such as Tier 3's
phase samples), the candidate's value at every quantile of :data:`GRID` is kept (a tier's upper
bound is one value for all; a sample is read at each ``q``); when the window
``[t0, t0 + horizon]`` has passed, its observed peak is known. Every ``refit_every_s``, per
candidate and grid quantile, over the last ``sizing_history_s`` of windows (never fewer than
``sizing_history_min_windows``):

* the **factor** ``k`` is the ``q`` quantile of ``peak / value`` (split-conformal on a ratio),
  per quintile of the value;
* the **loss** is the pinball loss at ``q`` of ``k x value`` against the peaks, over the mean
  peak;
* the **spend** at each price: what sizing would have held over the last ``sizing_budget_window_s``
  (the candidate ranked best at that price's quantile in each window), in instance-seconds.

The candidate with the lowest loss at the quantile ``price / (1 + price)`` of the price in force
sizes (``engine.sizing_rank_at: in_force``; ``cost`` ranks at ``engine.violation_cost``'s
whatever price the budget affords): ``k x`` its value at each grid quantile is the window peak's
calibrated quantile now.
``reactive`` is always a candidate, so a producer whose tiers have no skill (a flash crowd, a
noisy series) is sized like a reactive autoscaler with its measured headroom: the tiers step
aside. Until a candidate's windows span ``sizing_min_history_s`` and number at least
``sizing_min_windows``
there is no calibrated sizing, and the engine uses its uncalibrated rule (point under the
target utilisation, upper bound under the maximum).

**The window peak at any sampling interval** is defined in :mod:`leadtime.window_peak`: a pass at
``t0`` answers for ``[t0, t0 + horizon]``, ``horizon`` being the lead time plus the decision
interval, and the window's peak is the largest sample whose interval overlaps it, so
calibration works whether the interval is finer or coarser than the lead. The per-quintile
factors are that module's :func:`~leadtime.window_peak.ratio_table`, the one calibration Tier 3's
nowcast uses too. Every limit is a duration, floored in windows so that the statistics have
samples to stand on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from leadtime.config import ENGINE_DEFAULTS, EngineSpec
from leadtime.engine import Sizing
from leadtime.quantiles import linear_quantiles
from leadtime.rows import room_for
from leadtime.window_peak import OpenWindows, RatioTable, ratio_table

REACTIVE = "reactive"
COMBINED = "combined"
# the quantiles every candidate is calibrated at, and the prices the budget mode moves between
GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
MEDIAN = GRID.index(0.5)
PRICES = (0.25, 0.5, 1.0, 2.0, 4.0, 9.0, 19.0, 49.0, 99.0, 199.0, 499.0, 999.0)


@dataclass(frozen=True)
class SizingConfig:
    """The sizing's settings: the engine's (``leadtime.yaml``, :class:`leadtime.config.EngineSpec`)
    under the same names and defaults, and the statistics' own floors."""

    violation_cost: float = ENGINE_DEFAULTS.violation_cost  # the highest price in force
    sizing_history_s: float = ENGINE_DEFAULTS.sizing_history_s  # older windows forgotten ...
    sizing_history_min_windows: int = 150  # ... unless fewer than this many would be left
    refit_every_s: float = ENGINE_DEFAULTS.sizing_refit_s  # engine.sizing_refit_s
    sizing_min_history_s: float = ENGINE_DEFAULTS.sizing_min_history_s  # a candidate sizes
    sizing_min_windows: int = ENGINE_DEFAULTS.sizing_min_windows  # ... once both are reached
    buckets: int = 5  # factors per quintile of the candidate's value
    min_per_bucket: int = 30  # a thinner quintile uses the candidate's overall factor
    sizing_budget: float | None = None  # spend <= budget x reacting's (None: the price mode)
    sizing_budget_window_s: float = ENGINE_DEFAULTS.sizing_budget_window_s
    sizing_budget_feedback: str = ENGINE_DEFAULTS.sizing_budget_feedback  # what was spent
    violation_unit: str = ENGINE_DEFAULTS.violation_unit  # "window" or "demand"
    sizing_rank_at: str = ENGINE_DEFAULTS.sizing_rank_at  # "cost" or "in_force"
    sizing_budget_scale_floor: float = ENGINE_DEFAULTS.sizing_budget_scale_floor
    sizing_step_aside: bool = ENGINE_DEFAULTS.sizing_step_aside
    sizing_step_aside_memory_s: float = ENGINE_DEFAULTS.sizing_step_aside_memory_s
    sizing_step_aside_margin: float = ENGINE_DEFAULTS.sizing_step_aside_margin
    sizing_step_aside_headroom: bool = ENGINE_DEFAULTS.sizing_step_aside_headroom

    @classmethod
    def from_engine(cls, engine: EngineSpec) -> SizingConfig:
        """The sizing of ``leadtime.yaml``'s engine section, every value under its own name
        (``sizing_refit_s`` as ``refit_every_s``)."""
        return cls(refit_every_s=engine.sizing_refit_s, **{name: getattr(engine, name) for name in (
            "violation_cost", "sizing_history_s", "sizing_min_history_s", "sizing_min_windows",
            "sizing_budget", "sizing_budget_window_s", "sizing_budget_feedback",
            "violation_unit", "sizing_rank_at", "sizing_budget_scale_floor",
            "sizing_step_aside", "sizing_step_aside_memory_s", "sizing_step_aside_margin",
            "sizing_step_aside_headroom")})

    @property
    def quantile(self) -> float:
        """The newsvendor quantile of the price: the quantile candidates are ranked at."""
        return self.violation_cost / (1.0 + self.violation_cost)

    @property
    def prices(self) -> tuple[float, ...]:
        """The prices the budget mode may move between: 0 (hold what reacting holds, buy
        nothing ahead), the grid under the price, and it."""
        return (0.0, *(p for p in PRICES if p < self.violation_cost - 1e-12),
                self.violation_cost)


def sample_quantiles(samples: tuple, grid: tuple[float, ...],
                     min_size: int = 3) -> np.ndarray | None:
    """A candidate offered as samples of plausible window peaks (one array per condition, e.g.
    per period: ``models.tier3.phase``), read at each grid quantile: the highest of the
    samples' quantiles. None when no sample holds ``min_size`` values, or a reading is not
    positive.

    >>> sample_quantiles((np.array([1.0, 1.0, 1.0, 5.0]), np.array([2.0, 2.0, 2.0])), (0.5, 0.9))
    array([2. , 3.8])
    """
    at = np.asarray(grid, dtype=float)
    read = [linear_quantiles(s, at) for s in samples if len(s) >= min_size]
    if not read:
        return None
    value = np.max(read, axis=0)
    return value if value.min() > 0 and value.max() < math.inf else None


def candidate_values(uppers: Mapping[str, float], samples: Mapping[str, tuple],
                     grid: tuple[float, ...]) -> dict[str, float | np.ndarray]:
    """Every candidate's value at each grid quantile: a tier's upper bound, one value for all
    of them, a sample read at each (:func:`sample_quantiles`). Non-finite or non-positive
    values are left out."""
    out: dict[str, float | np.ndarray] = {name: float(v) for name, v in uppers.items()
                                          if math.isfinite(v) and v > 0}
    for name, sample in samples.items():
        value = sample_quantiles(sample, grid)
        if value is not None:
            out[name] = value
    return out


@dataclass(slots=True)
class _Window:
    """One pass's record: its candidates' values, the price in force (its index in the
    prices), what the HPA twin held then and what the loop decided to hold (instances), and,
    once known, the window's peak."""

    t0: float
    values: dict[str, np.ndarray]
    used: int
    reacting: float = math.nan
    floor: float = math.nan  # the reacting floor in force (nan: none)
    held: float = math.nan
    peak: float = math.nan


class _ClosedWindows:
    """The closed windows, oldest first, as columns: appended one at a time as they close and
    dropped from the front as they age, so a refit reads arrays instead of walking windows.
    A candidate's column is NaN in the windows it did not answer.

    A candidate with one value at every grid quantile (a tier's upper bound) keeps one column
    instead of one per grid quantile, and reads as that column, which broadcasts: a producer's
    record is then a fifth of the size. It widens the first time a value differs across the grid.

    >>> closed = _ClosedWindows(2)
    >>> closed.append(_Window(0.0, {"tier1": np.array([1.0, 2.0])}, 0, peak=3.0))
    >>> closed.append(_Window(60.0, {"reactive": np.array([4.0, 4.0])}, 0, peak=5.0))
    >>> closed.popleft()
    >>> len(closed), closed.column("peak"), closed.candidates()["reactive"]
    (1, array([5.]), array([[4.]]))
    """

    SCALARS = ("t0", "peak", "reacting", "floor", "held", "used")

    def __init__(self, grid_size: int, capacity: int = 256) -> None:
        self.grid_size = grid_size
        self.start = self.end = 0
        self.scalars = np.full((len(self.SCALARS), capacity), np.nan)
        self.values: dict[str, np.ndarray] = {}  # name: (capacity, grid)

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, window: _Window) -> None:
        if self.end == self.scalars.shape[1]:
            self._make_room()
        row = self.end
        self.scalars[:, row] = (window.t0, window.peak, window.reacting, window.floor,
                                window.held, window.used)
        for name, value in window.values.items():
            column = self.values.get(name)
            uniform = value.min() == value.max()
            if column is None:
                column = self.values[name] = np.full(
                    (self.scalars.shape[1], 1 if uniform else self.grid_size), np.nan)
            elif column.shape[1] == 1 and not uniform:  # the first value that differs: widen
                column = self.values[name] = np.repeat(column, self.grid_size, axis=1)
            column[row] = value[:1] if column.shape[1] == 1 else value
        self.end += 1

    def popleft(self) -> None:
        self.start += 1

    def first_t0(self) -> float:
        return float(self.scalars[0, self.start])

    def column(self, name: str) -> np.ndarray:
        return self.scalars[self.SCALARS.index(name), self.start:self.end]

    def candidates(self) -> dict[str, np.ndarray]:
        """Each candidate's values over the closed windows, in the order it first answered
        among them (the rows of windows it did not answer are NaN)."""
        live = {name: column[self.start:self.end] for name, column in self.values.items()}
        first = {name: int(np.argmax(~np.isnan(v[:, 0]))) for name, v in live.items()
                 if v.size and not np.isnan(v[:, 0]).all()}
        return {name: live[name] for name in sorted(first, key=first.__getitem__)}

    def _make_room(self) -> None:
        """Move the live rows to the front, into :func:`leadtime.rows.room_for` rows."""
        live, size = len(self), room_for(len(self), self.scalars.shape[1])
        scalars = np.full((len(self.SCALARS), size), np.nan)
        scalars[:, :live] = self.scalars[:, self.start:self.end]
        for name, column in self.values.items():
            moved = np.full((size, column.shape[1]), np.nan)
            moved[:live] = column[self.start:self.end]
            self.values[name] = moved
        self.scalars, self.start, self.end = scalars, 0, live


class WindowPeakCalibrator:
    """One producer's record of candidates' values against observed window peaks.

    A window of 120 s decided at 0: the peak of the loads that cover it (known at 60 and 120 s)
    is 30, three times Tier 1's upper bound of 10, so Tier 1's factor is 3 (one window,
    ``sizing_min_windows=1``, no minimum span):

    >>> config = SizingConfig(violation_cost=9.0, sizing_min_windows=1, sizing_min_history_s=0)
    >>> c = WindowPeakCalibrator(120.0, config)
    >>> c.record(0.0, {"tier1": 10.0})
    >>> for t, load in [(60.0, 30.0), (120.0, 20.0), (180.0, 5.0)]:
    ...     c.observe(t, load)
    >>> c.refit(180.0)
    >>> c.factors["tier1"]
    3.0

    The same window sampled every 30 minutes: the one sample that covers it closes it.

    >>> c = WindowPeakCalibrator(120.0, config)
    >>> c.record(0.0, {"tier1": 10.0})
    >>> c.observe(1800.0, 25.0)
    >>> c.refit(1800.0)
    >>> c.factors["tier1"]
    2.5
    """

    def __init__(self, horizon_s: float, config: SizingConfig,
                 capacity: tuple[float, int, int] = (1.0, 0, 2**31),
                 refit_phase_s: float = 0.0) -> None:
        """``refit_phase_s``: how much earlier than its first refit this producer's refit
        period counts as begun, its place in a fleet's period (the fleet's refits then spread
        over the period instead of landing on one pass)."""
        self.horizon_s = float(horizon_s)  # lead time + decision interval
        self.config = config
        self.capacity = capacity  # (load one instance carries at most, min, max instances)
        self.grid = GRID
        self.quantiles = np.asarray(GRID)
        self._ones = np.ones(len(GRID))  # times one value: that value at every grid quantile
        self.rank_at = int(np.argmin(np.abs(self.quantiles - config.quantile)))
        self.price = config.violation_cost  # in force: the budget mode moves it
        self.pending: OpenWindows[_Window] = OpenWindows(self.horizon_s)  # not closed yet
        self.closed = _ClosedWindows(len(GRID))
        self.factors: dict[str, float] = {}  # at the price's quantile, overall
        self.tables: dict[str, RatioTable] = {}  # per candidate: its factors per quintile
        self.losses: dict[str, np.ndarray] = {}  # per candidate: (grid,)
        self.windows: dict[str, int] = {}
        self.spend = np.zeros(len(config.prices))  # per price, sizing's, last budget window
        self.spend_reacting = 0.0  # what the HPA twin held over the same windows
        self.spend_held = 0.0  # what the loop held over them
        self.spend_in_force = 0.0  # what sizing asked for at those passes
        self.fitted_at = -math.inf
        self.refit_phase_s = refit_phase_s
        self.mean_peak = math.nan  # of the record's windows, at the last refit
        self._chosen: tuple[float, int] = (-math.inf, -1)  # the last pass sized, its quantile
        self._mix = 0.0  # the budget mode's share of refit periods owed the next price up
        self.spend_rows: tuple[np.ndarray, ...] | None = None  # per window (_fit_spend)
        self.aim: float | None = None  # the budget mode's aim at the last refit (price_for)
        # stepping aside: the windows' load sizing would have missed and the twin missed, faded
        self.missed: tuple[float, float] | None = None
        self.aside = False  # the twin has missed less: the loop holds what it holds
        self.pooled: tuple[float, float] | None = None  # what decided it over the producer's
        # resources (pooled_aside): the sums of missed loads over mean peaks, if pooled
        self.aside_price = 0.0  # stepping aside with headroom: the price bought above the twin
        self.spend_aside: np.ndarray | None = None  # per price, sizing floored at the twin's
        self._outcomes: tuple[np.ndarray, ...] | None = None  # per window (_fit_spend)
        self._counted = (-math.inf, -math.inf)  # the newest window in ``missed``, and when

    def _per_quantile(self, value: float | np.ndarray) -> np.ndarray | None:
        """``value`` at each grid quantile (one value is the same at all), or None unless every
        one is finite and positive (a NaN fails both tests)."""
        if isinstance(value, float):  # one value: tested as a number, not an array
            return self._ones * value if 0.0 < value < math.inf else None
        arr = value if isinstance(value, np.ndarray) and value.shape == self.quantiles.shape \
            else np.broadcast_to(np.asarray(value, dtype=float), self.quantiles.shape)
        return arr if arr.min() > 0 and arr.max() < math.inf else None

    def _rank(self, price: float) -> int:
        """The grid index candidates are ranked at for a pass sized at ``price``: the
        violation cost's quantile, or (``sizing_rank_at: in_force``) the price's own."""
        if self.config.sizing_rank_at != "in_force":
            return self.rank_at
        return int(np.argmin(np.abs(self.quantiles - price / (1.0 + price))))

    def record(self, t0: float, values: Mapping[str, float | np.ndarray],
               reacting: float | None = None, floor: int | None = None) -> None:
        """A pass at ``t0``: its candidates' values (one, or one per grid quantile), the
        instances the HPA twin holds then and the reacting floor in force (None: none)."""
        kept = {}
        for name, v in values.items():
            arr = self._per_quantile(v)
            if arr is not None:
                kept[name] = arr
        used = self._chosen[1] if self._chosen[0] == t0 else -1  # the price index, if it sized
        if kept:
            self.pending.open(t0, _Window(t0, kept, used,
                                          math.nan if reacting is None else float(reacting),
                                          math.nan if floor is None else float(floor)))

    def held(self, t0: float, instances: int) -> None:
        """What the loop decided to hold at the pass ``t0`` (after :meth:`record`)."""
        newest = self.pending.newest()
        if newest is not None and newest[0] == t0:
            newest[1].held = float(instances)

    def observe(self, at: float, load: float) -> None:
        """A load known at ``at``; closes the windows it completes."""
        if not math.isfinite(load):
            return
        for window, peak in self.pending.observe(at, float(load)):
            window.peak = peak
            self.closed.append(window)
        horizon = at - self.config.sizing_history_s
        floor = self.config.sizing_history_min_windows
        while len(self.closed) > floor and self.closed.first_t0() < horizon:
            self.closed.popleft()

    def refit(self, now: float) -> None:
        """Each candidate's factors and loss at every grid quantile from the windows known at
        ``now``; in the budget mode, the price in force from here on. The first refit counts
        as made ``refit_phase_s`` earlier, so that later ones keep the producer's place in the
        fleet's period."""
        self.fitted_at = now - self.refit_phase_s if self.fitted_at == -math.inf else now
        c = self.config
        grid = self.quantiles
        self.factors, self.losses, self.windows = {}, {}, {}
        self.tables = {}
        if not len(self.closed):
            return
        closed = self.closed
        t0s, peaks = closed.column("t0"), closed.column("peak")
        self.mean_peak = float(peaks.mean())
        sized: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name: (rows, (n, grid) sized)
        for name, column in closed.candidates().items():
            index = np.flatnonzero(~np.isnan(column[:, 0]))
            if len(index) < c.sizing_min_windows or t0s[index[-1]] - t0s[index[0]] < c.sizing_min_history_s:
                continue
            values = column[index]  # (n, grid)
            pk = peaks[index]
            # a tier's upper bound is one value at every grid quantile: one column answers all
            base = values[:, :1] if (values == values[:, :1]).all() else values
            table, out = ratio_table(base, pk, grid, c.buckets, c.min_per_bucket)
            diff = pk[:, None] - out
            loss = (np.maximum(grid * diff, (grid - 1) * diff).mean(axis=0)
                    / max(float(pk.mean()), 1e-12))  # pinball at each grid quantile
            self.tables[name] = table
            self.losses[name], self.windows[name] = loss, len(index)
            self.factors[name] = float(table.overall[self.rank_at])
            sized[name] = (index, out)
        self._fit_spend(now, sized)
        if c.sizing_budget is not None:
            self.price = self._within_budget(c.sizing_budget)
        if c.sizing_step_aside:
            self._step_aside(now)

    def _step_aside(self, now: float) -> None:
        """Whether the loop steps aside to reacting (``engine.sizing_step_aside``). Each window
        closed since the last refit counts the load of its peak where the peak exceeded what
        was held, as the SLO's share of requests counts it: by the sizing at the highest price
        whose estimate fits the budget (before the feedback on what was really held), and by
        the HPA twin's count. The sums fade by ``exp(-age / sizing_step_aside_memory_s)``; the
        loop steps aside while the twin's is under the sizing's by the margin, buying above the
        twin's count (``sizing_step_aside_headroom``) at ``aside_price``: the highest price whose
        spend floored at the twin's (``spend_aside``) fits the budget."""
        if self._outcomes is None:
            return
        t0s, peaks, instances, twin = self._outcomes
        new = t0s > self._counted[0]
        if not new.any():
            return
        c = self.config
        index = (len(c.prices) - 1 if c.sizing_budget is None
                 else _highest_fitting(self.spend, c.sizing_budget * self.spend_reacting))
        unit = self.capacity[0] * (1 + 1e-9)
        peaks, held, twin = peaks[new], instances[index][new], twin[new]
        missed = (float(peaks[peaks > held * unit].sum()), float(peaks[peaks > twin * unit].sum()))
        if self.missed is not None:
            fade = math.exp(-(now - self._counted[1]) / c.sizing_step_aside_memory_s)
            missed = (self.missed[0] * fade + missed[0], self.missed[1] * fade + missed[1])
        self.missed, self._counted = missed, (float(t0s[new][-1]), now)
        # a producer's resources keep their pooled decision until it is pooled again
        self.set_aside(self.aside if self.pooled is not None
                       else missed[1] < (1.0 - c.sizing_step_aside_margin) * missed[0])

    @property
    def decided_by(self) -> tuple[float, float] | None:
        """The missed loads that decided stepping aside (the sizing's, the twin's): pooled over
        the producer's resources when they were (:func:`pooled_aside`), else this record's."""
        return self.pooled or self.missed

    def set_aside(self, aside: bool) -> None:
        """Step aside or not (:meth:`_step_aside`, or :func:`pooled_aside` for a producer's
        resources); stepping aside with headroom, at the highest price whose spend floored at
        the twin's fits the budget (the price in force in the price mode)."""
        c = self.config
        self.aside = aside
        self.aside_price = 0.0
        if aside and c.sizing_step_aside_headroom and self.spend_aside is not None:
            self.aside_price = (self.price if c.sizing_budget is None else c.prices[
                _highest_fitting(self.spend_aside, c.sizing_budget * self.spend_reacting)])

    def _instances(self, sized: np.ndarray) -> np.ndarray:
        unit, low, high = self.capacity
        return np.clip(np.ceil(sized / unit - 1e-9), low, high)

    def _weight(self, sized: np.ndarray) -> np.ndarray | float:
        """What a violation of each window counts (``violation_unit``): 1, or the demand it is
        expected to carry, its calibrated median peak over the mean peak of the record."""
        if self.config.violation_unit != "demand" or not self.mean_peak > 0:
            return 1.0
        return sized[..., MEDIAN] / self.mean_peak

    def _choose(self, instances: np.ndarray, price: float,
                weight: np.ndarray | float = 1.0) -> np.ndarray:
        """Per row of instances at each grid quantile, the grid index of least expected cost:
        the instances held, plus the price times what a violation of the row counts
        (``weight``) times the chance the window's peak exceeds them (``1 - q``); the highest
        quantile among equals."""
        weight = np.asarray(weight, dtype=float)[..., None]
        cost = instances + price * weight * (1.0 - self.quantiles)
        flipped = cost[..., ::-1]
        return len(self.grid) - 1 - np.argmin(flipped, axis=-1)

    def _fit_spend(self, now: float, sized: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Over the last budget window's passes: what sizing at each price would have held (the
        best-ranked candidate present at each pass), what it asked for at the prices then in
        force, what the loop held and what the HPA twin held, each in instance-seconds."""
        closed = self.closed
        t0s = closed.column("t0")
        ranks = [self._rank(p) for p in self.config.prices]
        # per ranking, the best candidate present at each window; rankings that order the
        # candidates alike choose alike, so each order is filled once
        orders = {rank: tuple(sorted(sized, key=lambda k: self.losses[k][rank]))
                  for rank in {self.rank_at, *ranks}}
        by_order: dict[tuple[str, ...], np.ndarray] = {}
        for order in set(orders.values()):
            chosen = by_order[order] = np.full((len(closed), len(self.grid)), np.nan)
            for name in order:
                index, out = sized[name]
                free = np.isnan(chosen[index, 0])
                chosen[index[free]] = out[free]
        chosen = by_order[orders[self.rank_at]]  # every ranking covers the same windows
        reacting, floors = closed.column("reacting"), closed.column("floor")
        actual, used = closed.column("held"), closed.column("used").astype(int)
        mask = ((t0s >= now - self.config.sizing_budget_window_s) & ~np.isnan(chosen[:, 0])
                & np.isfinite(reacting) & np.isfinite(actual) & (used >= 0))
        spacing = np.diff(t0s, append=now)[mask]
        # never below the reacting floor
        held_by = {order: np.fmax(self._instances(c[mask]), floors[mask][:, None])
                   for order, c in by_order.items()}
        weight_by = {order: self._weight(c[mask]) for order, c in by_order.items()}
        held_at = {rank: held_by[order] for rank, order in orders.items()}
        weight_at = {rank: weight_by[order] for rank, order in orders.items()}
        held = held_at[self.rank_at]
        rows = np.arange(len(held))
        reacting_only = np.where(np.isfinite(floors[mask]), floors[mask], held[:, 0])
        instances_at = np.stack([
            held_at[r][rows, self._choose(held_at[r], p, weight_at[r])] if p > 0
            else reacting_only
            for p, r in zip(self.config.prices, ranks)])  # (prices, windows)
        at_price = instances_at * spacing
        self.spend = at_price.sum(axis=1)
        if self.config.sizing_step_aside_headroom:  # stepping aside: the twin's count a floor
            self.spend_aside = (np.fmax(instances_at, reacting[mask]) * spacing).sum(axis=1)
        self.spend_in_force = float(at_price[used[mask], rows].sum())
        self.spend_reacting = float((reacting[mask] * spacing).sum())
        self.spend_held = float((actual[mask] * spacing).sum())
        # per window, for a producer pooling its resources' records (:func:`pooled_price`)
        self.spend_rows = (t0s[mask], at_price, at_price[used[mask], rows],
                           reacting[mask] * spacing, actual[mask] * spacing)
        # per window, what each price's sizing and the twin held against its peak (_step_aside)
        self._outcomes = (t0s[mask], closed.column("peak")[mask], instances_at, reacting[mask])

    def _within_budget(self, budget: float) -> float:
        """The highest price whose sizing would have held at most ``budget`` times what the HPA
        twin held, each estimate scaled by what the loop really held against what its sizing
        asked (floors, scale-in steps); the price in force while nothing is known."""
        return self.price_for(budget, self.spend, self.spend_reacting, self.spend_held,
                              self.spend_in_force)

    def price_for(self, budget: float, spend: np.ndarray, reacting: float, held: float,
                  in_force: float) -> float:
        """:meth:`_within_budget` on given spends (this record's, or a producer's pooled over
        its resources: :func:`pooled_price`)."""
        if reacting <= 0 or in_force <= 0 or held <= 0:
            return self.price
        feedback = self.config.sizing_budget_feedback
        if feedback == "track" or (feedback == "repay" and held > budget * reacting):
            budget *= min(budget * reacting / held, 1.5)  # the trailing window's misspend
        self.aim = budget
        # what the loop held against what sizing asked; a shortfall raises no allowance
        scale = min(max(held / in_force, self.config.sizing_budget_scale_floor), 1.5)
        low = _highest_fitting(spend * scale, budget * reacting)
        prices = self.config.prices
        if low + 1 < len(prices) and spend[low + 1] > spend[low]:
            # the budget lies between two prices: the higher one for the share of refit periods
            # that spends it exactly, spread evenly (an accumulator, not a coin)
            allowed = budget * reacting / scale
            share = (allowed - spend[low]) / (spend[low + 1] - spend[low])
            self._mix += min(max(share, 0.0), 1.0)
            if self._mix >= 1.0:
                self._mix -= 1.0
                return prices[low + 1]
        return prices[low]

    def sizing(self, now: float, values: Mapping[str, float | np.ndarray],
               floor: int | None = None) -> Sizing | None:
        """The calibrated window peak for a pass at ``now``, or None while uncalibrated: the
        best-ranked candidate's calibrated peak at the grid quantile of least expected cost at
        the price in force; with a ``floor`` (the reacting floor) instances under it cost the
        floor, so the highest quantile it already holds is free."""
        if now - self.fitted_at >= self.config.refit_every_s:
            self.refit(now)
        aside = floor is not None and self.aside
        price = self.aside_price if aside else self.price
        rank = self._rank(price)
        usable = []
        for name, v in values.items():
            arr = self._per_quantile(v) if name in self.losses else None
            if arr is not None:
                usable.append((float(self.losses[name][rank]), name, arr, v))
        budget = self.config.sizing_budget
        if aside and (not usable or price == 0):  # the twin has done better: hold what it holds
            return self._reacting(now, aside=True)
        if budget is not None and floor is not None and (not usable or price == 0):
            # the budget mode buys nothing it cannot measure; without a reacting floor (no
            # load known) there is nothing to hold instead, so the tiers size as in the price mode
            return self._reacting(now)
        if not usable:
            return None
        loss, name, value, given = min(usable, key=lambda u: (u[0], u[1]))
        factors = self.tables[name].factor(given if isinstance(given, float) else value)
        peaks = factors * value
        instances = self._instances(peaks)
        if floor is not None:
            instances = np.maximum(instances, floor)
        g = int(self._choose(instances, price, self._weight(peaks)))
        self._chosen = (now, self.config.prices.index(price))
        return Sizing(value=float(peaks[g]), quantile=self.grid[g], source=name,
                      factor=float(factors[g]), loss=loss, price=price,
                      budget=budget,
                      reacting_spend=self.spend_reacting if budget is not None else None,
                      own_spend=self.spend_held if budget is not None else None,
                      aim=self.aim if budget is not None else None,
                      aside=self.decided_by if aside else None)

    def _reacting(self, now: float, aside: bool = False) -> Sizing:
        """The budget mode's sizing at price 0, and while no candidate is calibrated: nothing
        bought ahead, so the decision holds the reacting floor (what the load needs now).
        Stepping ``aside``, the loop raises that floor to what the HPA twin holds."""
        self._chosen = (now, 0)
        return Sizing(value=0.0, quantile=0.0, source=REACTIVE, factor=0.0, price=0.0,
                      budget=self.config.sizing_budget, reacting_spend=self.spend_reacting,
                      own_spend=self.spend_held, aim=self.aim,
                      aside=self.decided_by if aside else None)


def _highest_fitting(spend: np.ndarray, allowed: float) -> int:
    """The index of the highest price whose spend is at most ``allowed`` (0, reacting, when
    none is)."""
    fits = np.flatnonzero(spend <= allowed)
    return int(fits[-1]) if fits.size else 0


def pooled_price(sizers: Sequence[WindowPeakCalibrator], budget: float) -> float | None:
    """One price for a producer sized on several resources, from its resources' records
    pooled: what the producer holds is the largest count any resource asks for, so at each
    price its spend is, window by window, the largest of its resources' (a resource's headroom
    under another's count costs nothing), against the largest of their HPA twins (the
    multi-metric HPA). None while a record has no spend yet.

    Two resources over two windows: cpu's sizing holds 10 instances at every price, memory's
    1 at price 0 and 5 above; their twins hold 10 and 4. Pooled, every price spends 10 + 10
    against the twins' 10 + 10, so budget 1.0 affords the highest; memory's record alone (5 + 5
    against its twin's 4 + 4) affords only price 0:

    >>> config = SizingConfig(violation_cost=9.0, sizing_budget=1.0)
    >>> a, b = WindowPeakCalibrator(60.0, config), WindowPeakCalibrator(60.0, config)
    >>> t0 = np.array([0.0, 60.0])
    >>> a.spend_rows = (t0, np.array([[10.0, 10.0]] * len(config.prices)), np.array([10.0, 10.0]),
    ...                 np.array([10.0, 10.0]), np.array([10.0, 10.0]))
    >>> b.spend_rows = (t0, np.array([[1.0, 1.0]] + [[5.0, 5.0]] * (len(config.prices) - 1)),
    ...                 np.array([5.0, 5.0]), np.array([4.0, 4.0]), np.array([5.0, 5.0]))
    >>> pooled_price([a, b], 1.0) == config.prices[-1], b.price_for(1.0, b.spend_rows[1].sum(1), 8.0, 10.0, 10.0)
    (True, 0.0)
    """
    rows = [s.spend_rows for s in sizers]
    if any(r is None or not r[0].size for r in rows):
        return None
    common = rows[0][0]
    for r in rows[1:]:
        common = np.intersect1d(common, r[0], assume_unique=True)
    if not common.size:
        return None
    picked = [tuple(part[..., np.searchsorted(r[0], common)] for part in r[1:]) for r in rows]
    spend = np.max([p[0] for p in picked], axis=0).sum(axis=1)
    in_force = float(np.max([p[1] for p in picked], axis=0).sum())
    reacting = float(np.max([p[2] for p in picked], axis=0).sum())
    held = float(np.max([p[3] for p in picked], axis=0).sum())
    return sizers[0].price_for(budget, spend, reacting, held, in_force)


def pooled_aside(sizers: Sequence[WindowPeakCalibrator]) -> bool | None:
    """One step-aside decision for a producer sized on several resources, as a window is
    violated when any of them is short: each resource's faded loads missed (the sizing's and
    the HPA twin's, :meth:`WindowPeakCalibrator._step_aside`) over its record's mean window
    peak, summed over the resources; every resource steps aside while the twin's sum is under
    the sizing's by ``sizing_step_aside_margin``. None, each resource left as it decided, until
    every record has counted a window.

    CPU's twin missed a little less than its sizing, memory's sizing much less than its twin:
    on their own CPU would step aside; together neither does.

    >>> config = SizingConfig(sizing_budget=None)
    >>> cpu, memory = WindowPeakCalibrator(600.0, config), WindowPeakCalibrator(600.0, config)
    >>> cpu.missed, cpu.mean_peak, memory.missed, memory.mean_peak = (10, 9), 5.0, (2, 40), 20.0
    >>> pooled_aside([cpu, memory]), cpu.aside, memory.aside
    (False, False, False)
    """
    if any(s.missed is None or not s.mean_peak > 0 for s in sizers):
        return None
    own = sum(s.missed[0] / s.mean_peak for s in sizers)
    twin = sum(s.missed[1] / s.mean_peak for s in sizers)
    aside = twin < (1.0 - sizers[0].config.sizing_step_aside_margin) * own
    for sizer in sizers:
        sizer.set_aside(aside)
        sizer.pooled = (own, twin)  # the reasons give the sums that decided
    return aside
