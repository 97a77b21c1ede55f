"""The scenario suite: documented load generators with fixed seeds, each after a real pattern.

Each generator returns one producer's load (requests per sample interval, Poisson counts, so
the noise scales like real traffic) over ``days`` days, per minute unless its name says
otherwise. They are what ``leadtime bench suite``
replays next to the visible real traces. What each one tests:

* ``diurnal_weekly``: business-hours hump, quiet nights, lower weekends (web and API traffic).
  The textbook forecastable load: a daily model should beat reacting.
* ``scheduled_bursts``: cron jobs at fixed minutes (a batch every 30 minutes at :00 and :30
  during the day, a nightly job at 02:00), minutes long, several times the base level (reports,
  syncs, scheduled exports).
* ``periodic_drift``: bursts on a period that is not a day (here 100 minutes), whose phase
  drifts by a random walk (feeds polled on a timer that restarts, social-media waves).
* ``flash_crowd``: a diurnal base and a few unannounced surges (a link on a front page): no tier
  can know them in advance; leadtime must be no worse than reacting.
* ``ramp``: steady growth, load more than triples over the trace (a launch, a migration).
* ``level_shift``: the level jumps by 80 % one day and stays (a new client onboarded).
* ``noisy_cpu``: noise-dominated CPU-like series: AR(1) noise around a flat mean with short
  spikes and no seasonality. Nothing repeats; the fallback must hold.
* ``demo``: the demo trace (:func:`simulation.generate.synthetic_load`), one producer.
* ``intermittent_bursts``: jobs that *may* start at fixed minutes and start at only some of them
  (a cron that skips when there is no work): each half-hourly slot fires with probability 0.35.
  The median of past peaks at a slot is the base level; only the slot's distribution sees it.
* ``intermittent_two_grids_5min``: at 5-minute samples, two slot grids at once: every half hour
  (probability 0.3) and every two hours (probability 0.45), bursts of 10 to 20 minutes.
* ``diurnal_weekly_30min``: ``diurnal_weekly`` summed to 30-minute samples (coarser than the
  5-minute spin-up: one sample covers a whole window), four weeks.
* ``weekly_30min``: 30-minute samples with a weekly pattern (electricity-like: morning and
  evening peaks on weekdays, a late flat hump at weekends), six weeks.

Seeds are fixed per scenario, so every run of the suite sees the same series.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

START = "2024-03-04"  # a Monday
MINUTE = pd.Timedelta(minutes=1)


def _index(days: int) -> pd.DatetimeIndex:
    return pd.date_range(START, periods=days * 1440, freq="min")


def _diurnal(index: pd.DatetimeIndex, peak_hour: float = 14.0, width_h: float = 3.5,
             night: float = 0.3, weekend: float = 0.65) -> np.ndarray:
    """A daily hump around ``peak_hour`` over a ``night`` floor, times a weekend factor."""
    hours = (index.hour + index.minute / 60).to_numpy()
    daily = night + (1 - night) * np.exp(-((hours - peak_hour) ** 2) / (2 * width_h**2))
    return daily * np.where(index.dayofweek.to_numpy() >= 5, weekend, 1.0)


def _counts(rate: np.ndarray, index: pd.DatetimeIndex, name: str, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    series = pd.Series(rng.poisson(np.maximum(rate, 0.0)).astype(float), index=index, name=name)
    series.index.freq = "min"
    return series


def diurnal_weekly(days: int = 14, seed: int = 101) -> pd.Series:
    """Daily hump, quiet nights, lower weekends; 5 % day-to-day level noise."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    day_level = np.repeat(rng.normal(1.0, 0.05, days), 1440)
    return _counts(600 * _diurnal(index) * day_level, index, "diurnal_weekly", seed)


def scheduled_bursts(days: int = 14, seed: int = 102) -> pd.Series:
    """Cron bursts at fixed minutes: 6 minutes at 4x every half hour from 08:00 to 20:00, and a
    20-minute job at 6x at 02:00 every night."""
    index = _index(days)
    rate = 200 * _diurnal(index, night=0.4)
    minute_of_day = (index.hour * 60 + index.minute).to_numpy()
    half_hourly = (minute_of_day % 30 < 6) & (minute_of_day >= 8 * 60) & (minute_of_day < 20 * 60)
    nightly = (minute_of_day >= 120) & (minute_of_day < 140)
    boost = np.where(half_hourly, 4.0, 1.0) * np.where(nightly, 6.0, 1.0)
    return _counts(rate * boost, index, "scheduled_bursts", seed)


def periodic_drift(days: int = 14, seed: int = 103, period_min: int = 100) -> pd.Series:
    """Bursts of 6-8 minutes at about 4x, every ``period_min`` minutes; each burst's start moves
    by a random walk (a few minutes per burst), so the phase wanders over days."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    rate = np.full(len(index), 150.0) * (0.85 + 0.15 * _diurnal(index, night=0.5, weekend=0.9))
    start = float(rng.uniform(0, period_min))
    while start < len(index):
        at = round(start)
        length = int(rng.integers(6, 9))
        rate[at:at + length] *= rng.uniform(3.5, 4.5)
        start += period_min + rng.normal(0.0, 3.0)
    return _counts(rate, index, "periodic_drift", seed)


def flash_crowd(days: int = 14, seed: int = 104) -> pd.Series:
    """A diurnal base with four unannounced surges: a 3-minute rise to 3-5x, an hour's decay."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    rate = 400 * _diurnal(index)
    for _ in range(4):
        at = int(rng.integers(len(index) // 3, len(index) - 120))
        height = rng.uniform(2.0, 4.0)
        rise = np.linspace(0, 1, 4)[1:]
        decay = np.exp(-np.arange(60) / 20.0)
        shape = np.concatenate([rise, decay])
        rate[at:at + shape.size] *= 1 + height * shape[: len(rate) - at]
    return _counts(rate, index, "flash_crowd", seed)


def ramp(days: int = 14, seed: int = 105) -> pd.Series:
    """Load growing linearly to 3.5x its first day's level, with the daily cycle on top."""
    index = _index(days)
    growth = 1 + 2.5 * np.arange(len(index)) / len(index)
    return _counts(150 * growth * _diurnal(index), index, "ramp", seed)


def level_shift(days: int = 14, seed: int = 106) -> pd.Series:
    """The daily cycle, with the level 1.8x higher from day 9 on."""
    index = _index(days)
    shift = np.where(np.arange(len(index)) >= 9 * 1440, 1.8, 1.0)
    return _counts(300 * shift * _diurnal(index), index, "level_shift", seed)


def noisy_cpu(days: int = 14, seed: int = 107) -> pd.Series:
    """CPU-seconds per minute: AR(1) noise (phi 0.9) around a flat mean, 2-minute spikes at
    random; no daily cycle."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    noise = np.empty(len(index))
    noise[0] = 0.0
    shocks = rng.normal(0.0, 0.12, len(index))
    for t in range(1, len(index)):
        noise[t] = 0.9 * noise[t - 1] + shocks[t]
    rate = 120 * np.exp(noise)
    for at in rng.integers(0, len(index) - 2, size=days * 3):
        rate[at:at + 2] *= rng.uniform(1.5, 2.5)
    return _counts(rate, index, "noisy_cpu", seed)


def _slot_bursts(rate: np.ndarray, index: pd.DatetimeIndex, rng: np.random.Generator,
                 every_min: int, offset_min: int, probability: float, minutes: tuple[int, int],
                 height: tuple[float, float]) -> np.ndarray:
    """``rate`` with bursts at the slots ``offset + k * every`` minutes of the day, each slot
    firing with ``probability``, lasting ``minutes`` and ``height`` times the rate (both drawn
    uniformly between their bounds)."""
    minute = (index - index[0]).total_seconds().to_numpy() // 60
    slots = np.flatnonzero(minute % every_min == offset_min % every_min)
    out = rate.copy()
    for at in slots[rng.random(slots.size) < probability]:
        length = int(rng.integers(minutes[0], minutes[1] + 1))
        out[at:at + length] *= rng.uniform(*height)
    return out


def _sampled(series: pd.Series, every: str) -> pd.Series:
    """Per-minute counts summed to coarser samples (what a coarser exporter reports)."""
    out = series.resample(every).sum().rename(series.name)
    out.index.freq = every
    return out


def intermittent_bursts(days: int = 14, seed: int = 108) -> pd.Series:
    """A diurnal base; each slot at :00 and :30 fires with probability 0.35: 5-8 minutes at
    3.5-4.5x the base."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    rate = _slot_bursts(200 * _diurnal(index, night=0.4), index, rng, 30, 0, 0.35, (5, 8),
                        (3.5, 4.5))
    return _counts(rate, index, "intermittent_bursts", seed)


def intermittent_two_grids_5min(days: int = 14, seed: int = 109) -> pd.Series:
    """Two slot grids at 5-minute samples: every half hour at :10 and :40 (probability 0.3,
    10-15 minutes at 3x) and every two hours on the hour (probability 0.45, 15-20 minutes at
    4x)."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    rate = 300 * _diurnal(index, night=0.5, weekend=0.8)
    rate = _slot_bursts(rate, index, rng, 30, 10, 0.3, (10, 15), (2.7, 3.3))
    rate = _slot_bursts(rate, index, rng, 120, 0, 0.45, (15, 20), (3.5, 4.5))
    return _sampled(_counts(rate, index, "intermittent_two_grids_5min", seed), "5min")


def diurnal_weekly_30min(days: int = 28, seed: int = 110) -> pd.Series:
    """``diurnal_weekly``'s pattern summed to 30-minute samples, over four weeks."""
    series = diurnal_weekly(days=days, seed=seed).rename("diurnal_weekly_30min")
    return _sampled(series, "30min")


def weekly_30min(days: int = 42, seed: int = 111) -> pd.Series:
    """30-minute samples of a weekly pattern: weekdays peak at 08:00 and 19:00, weekends have
    one flat hump around 13:00 at 70 %; 4 % week-to-week level noise."""
    index = _index(days)
    rng = np.random.default_rng(seed)
    weekday = (0.35 + 0.65 * _diurnal(index, peak_hour=8.0, width_h=1.5, night=0.0, weekend=1.0)
               + 0.8 * _diurnal(index, peak_hour=19.0, width_h=2.0, night=0.0, weekend=1.0))
    weekend = 0.35 + 0.7 * _diurnal(index, peak_hour=13.0, width_h=4.0, night=0.0, weekend=1.0)
    shape = np.where(index.dayofweek.to_numpy() >= 5, weekend, weekday)
    week_level = np.repeat(rng.normal(1.0, 0.04, days // 7 + 1), 7 * 1440)[: len(index)]
    series = _counts(40 * shape * week_level, index, "weekly_30min", seed)
    return _sampled(series, "30min")


def demo(days: int = 14, seed: int = 7) -> pd.Series:
    """The demo trace's first producer (5-minute requests, see :mod:`simulation.generate`)."""
    from simulation.generate import synthetic_load

    frame = synthetic_load(producers=1, days=days, seed=seed)
    series = frame.set_index("timestamp")["value"].rename("demo")
    series.index.freq = "5min"
    return series


SCENARIOS: dict[str, Callable[..., pd.Series]] = {
    "diurnal_weekly": diurnal_weekly,
    "scheduled_bursts": scheduled_bursts,
    "periodic_drift": periodic_drift,
    "flash_crowd": flash_crowd,
    "ramp": ramp,
    "level_shift": level_shift,
    "noisy_cpu": noisy_cpu,
    "demo": demo,
    "intermittent_bursts": intermittent_bursts,
    "intermittent_two_grids_5min": intermittent_two_grids_5min,
    "diurnal_weekly_30min": diurnal_weekly_30min,
    "weekly_30min": weekly_30min,
}
BURSTS = ("scheduled_bursts", "periodic_drift")  # where leadtime must cut violations to 1/3
INTERMITTENT = ("intermittent_bursts", "intermittent_two_grids_5min")  # at most half the HPA's


def scenario(name: str, days: int | None = None) -> pd.Series:
    """One scenario's series by name, over its own default span unless ``days`` is given
    (``KeyError`` with the known names otherwise)."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]() if days is None else SCENARIOS[name](days=days)


def write_scenario(name: str, folder: Path) -> Path:
    """One of ``bench suite``'s load scenarios written as a load trace (``<name>.csv`` in
    ``folder``), so a benchmark reads it through the load-trace contract like any file."""
    series = scenario(name)
    path = folder / f"{name}.csv"
    pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%d %H:%M:%S"),
                  "producer_id": name, "value": series.to_numpy()}).to_csv(path, index=False)
    return path
