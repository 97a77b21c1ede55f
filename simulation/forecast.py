"""Tier 1 forecasts as production would have them: the champion recipe, refit daily on the past.

**The recipe** (``model="champion"``, the default): the model ``baseline-daily`` would choose for
this producer, by the same backtest (``models.tier1.backtest``: rolling origin, best mean WIS,
its conformal offsets), run on the history before the first simulated day only. Production
re-runs that choice every day; the replay makes it once (a simplification: the daily backtest
would cost 15 fits a day).

For every calendar day ``D`` the simulated policies act in, a fresh forecaster of the recipe is
fitted on the ``history_s`` before ``D`` (strictly earlier timestamps; a :class:`LeakGuard`
enforces it) and published at ``D`` as a :class:`models.tier1.registry.BaselineBundle`, as the
daily flow registers it. The decision loop asks that bundle its one question
(``BaselineBundle.window_peak``: the peak of ``[t, t + L]``), exactly as serving asks the
registered champion. ``point``/``lower``/``upper`` (the forecast of step ``t + L``),
``hourly_point`` (forecast_scale_out's hourly plan) and ``window`` (the peaks, for plots and
coverage) come from the same fits.

Resolution: the series is handed over at its own interval; the Tier 1 models choose their
modelling step themselves (``models.tier1.forecasters``: Prophet and MSTL on 15-minute means, bounds
calibrated on native-resolution residuals), so a step's bounds already include the spread of
individual intervals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadtime.config import TIER1_DEFAULTS
from models.tier1.backtest import BacktestConfig
from models.tier1.forecasters import LEVELS, Forecaster

HISTORY_S = TIER1_DEFAULTS.history_s  # default history of a fit (leadtime.yaml's tier1.history_s)
# the warm-up's first fit: as long a past as the backtest's first cut-off has (two days: two
# daily seasons, as MSTL needs)
WATCH_MIN_HISTORY_S = BacktestConfig.min_history_s

ForecasterFactory = Callable[[str], Forecaster]


class LeakageError(AssertionError):
    """A policy's model saw data from on or after the day it is deciding for."""


class LeakGuard:
    """Wraps a forecaster fitted for the day starting at ``cutoff``: any history timestamp at or
    after ``cutoff`` (even a NaN row: the index itself is knowledge) raises :class:`LeakageError`.
    """

    def __init__(self, inner: Forecaster, cutoff: pd.Timestamp) -> None:
        self.inner = inner
        self.cutoff = cutoff

    def fit(self, history: pd.Series) -> LeakGuard:
        if len(history) and history.index.max() >= self.cutoff:
            raise LeakageError(
                f"fit for the day starting {self.cutoff} was given data up to "
                f"{history.index.max()}: only data before the simulated day may be used"
            )
        self.inner.fit(history)
        return self

    def predict(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        return self.inner.predict(index)


def default_factory(name: str) -> Forecaster:
    from models.tier1.forecasters import make_forecaster

    return make_forecaster(name)


def past_only(series: pd.Series, day: pd.Timestamp, history_s: float) -> pd.Series:
    """The history a fit for ``day`` may see: ``[day - history_s, day)``.

    >>> series = pd.Series(range(4), pd.date_range("2024-01-01", periods=4, freq="D"))
    >>> past_only(series, pd.Timestamp("2024-01-04"), 2 * 86400.0).tolist()
    [1, 2]
    """
    start = day - pd.Timedelta(seconds=history_s)
    return series[(series.index >= start) & (series.index < day)]


@dataclass(frozen=True)
class Tier1Schedule:
    """Tier 1 forecast per decision step ``t``: the forecast of step ``t + L`` (NaN if none)."""

    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    hourly_point: np.ndarray  # mean point forecast of the clock hour holding t + L (AWS style)
    window: np.ndarray  # (point, lower, upper) x steps: maxima over [t, t + L], same fit
    model: str
    level: int
    fits: int
    fit_seconds: float
    published: tuple = ()  # (day, BaselineBundle) per fit: what the decision loop asks
    recipe_note: str = ""


@dataclass(frozen=True)
class Recipe:
    """The model baseline-daily's backtest chooses for a producer, and its conformal offsets."""

    model: str
    offsets: dict
    note: str


def choose_recipe(history: pd.Series, history_s: float) -> Recipe:
    """``baseline-daily``'s choice on ``history`` (the past only): best mean WIS over the
    backtest's cut-offs, with that model's conformal offsets; seasonal naive when the history
    is too short for a backtest."""
    from models.tier1.backtest import BacktestConfig, backtest_producer, final_choice
    from models.tier1.registry import final_offsets

    config = BacktestConfig(history_s=history_s)
    frame = backtest_producer(history, config)
    if frame.empty:
        return Recipe("seasonal_naive", {}, "history too short for a backtest: seasonal_naive")
    producer = str(history.name)
    model = final_choice(frame).get(producer, "seasonal_naive")
    cutoffs = frame["cutoff"].nunique()
    return Recipe(model, final_offsets(frame, producer, model),
                  f"{model}, chosen by backtest WIS on {cutoffs} cut-offs before the first day")


def daily_tier1(
    demand: pd.Series,
    lead_steps: int,
    first_step: int,
    model: str = "champion",
    level: int = 80,
    history_s: float = HISTORY_S,
    factory: ForecasterFactory = default_factory,
    history_of: Callable[[pd.Series, pd.Timestamp, float], pd.Series] = past_only,
    on_fit: Callable[[], None] | None = None,
    workers: int = 1,
    watch_step: int | None = None,
) -> Tier1Schedule:
    """Refit daily (past data only) and read the forecast for every decision step ``>= first_step``.

    ``model="champion"`` fits the recipe :func:`choose_recipe` picks on the data before the first
    decision day; a model name fits that model. Each day's fit sees the ``history_s`` seconds
    before the day; ``history_of`` chooses that data (the leakage tests pass a wrong one);
    ``workers > 1`` runs the independent daily fits in that many processes. Fits are also
    published for the days from ``watch_step``'s to the first decision day (the warm-up, which
    the replayed loop watches in dry run, :mod:`simulation.simulator`), from the first day with
    :data:`WATCH_MIN_HISTORY_S` of past; ``None``: none.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}")
    index = demand.index
    step = pd.Timedelta(index.freq) if index.freq is not None else index[1] - index[0]
    size = len(index)
    point = np.full(size, np.nan)
    lower = np.full(size, np.nan)
    upper = np.full(size, np.nan)
    hourly = np.full(size, np.nan)
    window = np.full((3, size), np.nan)
    lead = step * lead_steps
    fits, spent = 0, 0.0
    if first_step >= size:
        return Tier1Schedule(point, lower, upper, hourly, window, model, level, 0, 0.0)
    first_day = index[first_step].normalize()
    watched = first_step if watch_step is None else min(watch_step, first_step)
    # a warm-up day is fitted once its past is as long as the backtest's first cut-off's
    earliest = index[0].normalize() + pd.Timedelta(seconds=WATCH_MIN_HISTORY_S)
    days = pd.date_range(min(max(index[watched].normalize(), earliest), first_day),
                         index[-1].normalize(), freq="D")
    offsets: dict = {}
    note = f"{model}, fixed"
    if model == "champion" and factory is not default_factory:
        model, note = "custom", "the factory's forecaster (no recipe to choose)"
    elif model == "champion":
        recipe = choose_recipe(history_of(demand, first_day, history_s), history_s)
        model, offsets, note = recipe.model, recipe.offsets, recipe.note
    jobs: list[tuple[np.ndarray, tuple]] = []
    for day in days:
        decide = np.flatnonzero((index >= day) & (index < day + pd.Timedelta(days=1)))
        decide = decide[decide >= watched]
        if decide.size == 0:
            continue
        past = history_of(demand, day, history_s)
        if past.notna().sum() < 2:
            continue
        jobs.append((decide, (past, day, step, lead, model, level, factory, offsets)))
    from models.tier1.registry import BaselineBundle

    published = []
    for (decide, args), (frame, fitted, seconds) in zip(
        jobs, _run_fits([args for _, args in jobs], workers)
    ):
        past, day = args[0], args[1]
        name = str(demand.name)
        published.append((day, BaselineBundle({name: fitted}, {name: model},
                                               {name: str(past.index[-1])}, {name: str(step)})))
        spent += seconds
        fits += 1
        if on_fit is not None:
            on_fit()
        decide = decide[decide >= first_step]  # the warm-up's days only publish their fit
        targets = index[decide] + lead
        got = frame.reindex(targets)
        point[decide] = got["point"].to_numpy()
        lower[decide] = got["lower"].to_numpy()
        upper[decide] = got["upper"].to_numpy()
        hours = frame["point"].groupby(frame.index.floor("h")).transform("mean")
        hourly[decide] = hours.reindex(targets).to_numpy()
        # max over [t, t + L]: a fleet shrunk now must still carry every interval before the
        # instances it could request now would be ready
        peak = frame.rolling(lead_steps + 1, min_periods=1).max().reindex(targets)
        window[:, decide] = peak[["point", "lower", "upper"]].to_numpy().T
    return Tier1Schedule(point, lower, upper, hourly, window, model, level, fits, spent,
                         tuple(published), note)


def _run_fits(jobs: list[tuple], workers: int) -> Iterator[tuple[pd.DataFrame, object, float]]:
    """Each day's fit, in order; in a process pool when ``workers > 1`` and there is work."""
    if workers <= 1 or len(jobs) < 2:
        yield from (_timed_forecast(*args) for args in jobs)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        yield from pool.map(_timed_forecast, *zip(*jobs))


def _timed_forecast(*args) -> tuple[pd.DataFrame, object, float]:
    began = time.perf_counter()
    frame, fitted = _forecast_day(*args)
    return frame, fitted, time.perf_counter() - began


def _forecast_day(
    past: pd.Series,
    day: pd.Timestamp,
    step: pd.Timedelta,
    lead: pd.Timedelta,
    model: str,
    level: int,
    factory: ForecasterFactory,
    offsets: dict | None = None,
) -> tuple[pd.DataFrame, object]:
    """One day's fit (with the recipe's conformal offsets, as ``fit_champion`` sets them) and
    its forecast on the step grid from ``day`` to ``day + 1 day + lead + 1 hour``."""
    end = day + pd.Timedelta(days=1) + lead + pd.Timedelta(hours=1)
    # the producer's own grid (its timestamps need not be aligned to midnight)
    anchor = past.index[-1] + step * math.ceil((day - past.index[-1]) / step)
    grid = pd.date_range(anchor, end, freq=step, inclusive="left")
    guard = LeakGuard(factory(model), day).fit(past)
    calibrator = getattr(guard.inner, "calibrator", None)
    if offsets and calibrator is not None:
        calibrator.offsets = dict(offsets)
    out = guard.predict(grid)
    frame = pd.DataFrame(
        {
            "point": out["point"].to_numpy(dtype=float),
            "lower": out[f"lower_{level}"].to_numpy(dtype=float),
            "upper": out[f"upper_{level}"].to_numpy(dtype=float),
        },
        index=grid,
    )
    return frame.clip(lower=0.0), guard.inner
