"""Tier 3's load answer: a base the stream itself gives, scaled by what such a base did next.

Tier 3 predicts "the current load adjusted by risk" (``docs/design.md``). The current load alone is a
poor answer for the window one spin-up lead time ahead: single samples are noisy, the window
holds several of them, and a burst that recurs on a period is due before it shows. Two bases are
kept, online and from the past only:

* **level** at time ``t``: the mean of the load samples in ``(t - level_window_s, t]``;
* **echo** at time ``t``: what the same window did one, two and three periods ago, where the
  period is the dominant one of the producer's own recent stream (:mod:`.period`, re-detected
  every ``refit_every_s`` from the last ``echo_history_s``, between two lead times and a day):
  the median over ``k = 1..3`` of ``max(load in [t - kP - J, t - kP + lead + J])``, with a
  phase tolerance ``J`` of 5 % of the period (at least one sample). None without a period.

The window is the lead time's: from a decision at ``t0`` until the instances it requests serve,
through the first load they serve, i.e. the samples (:mod:`leadtime.window_peak`'s rule) up to
the first stamped *after* ``t0 + lead``. At one sample a minute and a 5-minute lead that is the
sizing's window of the lead and one decision interval; at 30 or 60 minutes it is the one sample
that covers the lead, where the sizing's window also reaches into the next sample (chosen by
leave-one-trace-out: ``docs/results.md``, "One window-peak calibrator"). For each base and each
past decision time ``t0`` the **ratio** ``peak / base(t0)`` is known once the window has passed.
The **answer** is ``base(t) x`` the median and the central ``level`` interval quantiles of the
ratios of the last ``history_s`` recorded at a *similar base*: the sizing's own calibration
(:func:`leadtime.window_peak.ratio_table`), per quintile of past bases, because relative noise
shrinks as load grows.

**Which base answers** is measured, not assumed: at each refit both bases' upper bounds are
scored on the known windows by the pinball loss at the upper quantile, and the echo answers only
while it scores lower than the level. A stream that does not repeat keeps the level: the nowcast
steps aside to "the current load, with its measured headroom".

The quantile tables are refreshed every ``refit_every_s``; until ``min_ratios`` ratios are known
there is no answer (the engine renormalises over the other tiers and says so). A sample is stamped
when its value is known (the end of its metric interval). Samples are expected roughly regularly
(the period is detected in samples of the median spacing); the windows are in seconds.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass
from statistics import median

import numpy as np

from leadtime.config import ENGINE_DEFAULTS, PRODUCER_DEFAULTS
from leadtime.engine import TierPrediction
from leadtime.rows import FloatRows
from leadtime.window_peak import OpenWindows, RatioTable, ratio_table
from monitoring.accuracy import pinball


@dataclass(frozen=True)
class NowcastConfig:
    """Knobs of the load nowcast (one set for every producer and trace)."""

    lead_s: float = PRODUCER_DEFAULTS.spinup_lead_time_s  # the lead time the answer is for
    level_window_s: float = 1800.0  # trailing window of the current level
    history_s: float = 7 * 86400.0  # ratios older than this are forgotten
    refit_every_s: float = 3600.0  # how often the quantile tables (and the period) are refitted
    level: int = ENGINE_DEFAULTS.level  # central interval, in percent
    buckets: int = 5  # base quantiles (quintiles) the ratios are conditioned on
    min_ratios: int = 100  # fewer known ratios: no answer
    min_per_bucket: int = 30  # a thinner bucket uses all ratios
    echo_history_s: float = 3 * 86400.0  # the stream the period is detected on
    echo_max_period_s: float = 86400.0  # longer periods are Tier 1's (daily, weekly models)
    echo_min_acf: float = 0.3  # a weaker autocorrelation peak is no period
    phase_history_s: float = 7 * 86400.0  # the stream the phase samples read (a week of days)
    phase_max_cycles: int = 12  # past cycles per period in a phase sample
    phase_period_s: float = 86400.0  # a period always conditioned on, besides the detected one

    def __post_init__(self) -> None:
        if not 0 < self.level < 100:
            raise ValueError("level must be in (0, 100)")
        if self.lead_s < 0 or self.level_window_s <= 0 or self.history_s <= 0:
            raise ValueError("lead_s must be >= 0, windows positive")

    @property
    def quantiles(self) -> tuple[float, float, float]:
        tail = (1 - self.level / 100) / 2
        return tail, 0.5, 1 - tail


BASES = ("level", "echo")


class LoadNowcast:
    """One producer's online level, echo, ratio history and quantile tables."""

    step_s: float = math.inf  # the median sample spacing, measured at each refit
    period_s: float | None = None  # class defaults: checkpoints from before the echo load
    base: str = "level"
    losses: dict | None = None

    def __setstate__(self, state: dict) -> None:
        """Nowcasts pickled with their stream in lists, their ratios in a deque of tuples, their
        open windows in deques and their tables as ``(edges, table)`` (Tier 3 checkpoints) load
        into the arrays, windows and tables holding the same values."""
        state = dict(state)
        if "ratios" in state and not isinstance(state["ratios"], FloatRows):
            state["ratios"] = FloatRows(4, state["ratios"])
        for key in ("times", "values"):
            if isinstance(state.get(key), list):
                state[key] = array("d", state[key])
        if "open" in state:  # windows (t0, level, echo) and the samples they need
            pending = OpenWindows(state["config"].lead_s, past_end=True)
            pending.loads.extend(state.pop("recent", ()))
            pending.pending.extend((t0, (t0, level, echo)) for t0, level, echo in state.pop("open"))
            state["pending"] = pending
        state["tables"] = {base: table if isinstance(table, RatioTable) else RatioTable(
            np.asarray(table[0], dtype=float)[None, :], np.full(3, np.nan),  # overall: not kept
            np.asarray(table[1], dtype=float).T) for base, table in state.get("tables", {}).items()}
        self.__dict__.update(state)

    def __init__(self, config: NowcastConfig | None = None) -> None:
        self.config = config or NowcastConfig()
        self.samples: deque[tuple[float, float]] = deque()  # (t, value) within the level window
        self.level_sum = 0.0
        # the windows not closed yet, each carrying (t0, level(t0), echo(t0))
        self.pending: OpenWindows[tuple[float, float, float]] = OpenWindows(
            self.config.lead_s, past_end=True)  # through the first load the instances serve
        self.ratios = FloatRows(4)  # (t0, level, echo, peak) of the windows known (a week of
        # them is 10,080 rows at one sample a minute)
        self.times = array("d")  # the stream the echo reads (echo_history_s and a period)
        self.values = array("d")
        self.tables: dict[str, RatioTable] = {}  # base: its ratios' quantiles per quintile
        self.fitted_at = -math.inf
        self.last_t = -math.inf
        self.period_s = None
        self.base = "level"
        self.losses = {}

    # ------------------------------------------------------------------ learning
    def update(self, t: float, value: float) -> bool:
        """Add the load sample at ``t`` (seconds); older-than-newest or non-finite: skipped."""
        if not math.isfinite(value) or t <= self.last_t:
            return False
        c = self.config
        self.last_t = t
        value = max(0.0, float(value))
        self.times.append(t)
        self.values.append(value)
        for (t0, level0, echo0), peak in self.pending.observe(t, value):  # windows it closes
            self.ratios.append((t0, level0, echo0, peak))
        while len(self.ratios) and self.ratios.first() < t - c.history_s:
            self.ratios.popleft()
        self.samples.append((t, value))
        self.level_sum += value
        while self.samples and self.samples[0][0] <= t - c.level_window_s:
            self.level_sum -= self.samples.popleft()[1]
        # a decision taken now: its window starts with the next sample
        self.pending.open(t, (t, self.level(), self.echo(t)))
        if t - self.fitted_at >= c.refit_every_s:
            self.refit(t)
        return True

    def level(self) -> float:
        return self.level_sum / len(self.samples) if self.samples else math.nan

    def echo(self, t: float) -> float:
        """The echo base at ``t`` (see the module docstring); NaN without a period."""
        period = self.period_s
        if period is None:
            return math.nan
        slack = max(self.step_s, 0.05 * period)
        peaks = []
        for k in (1, 2, 3):
            lo = bisect_left(self.times, t - k * period - slack)
            hi = bisect_right(self.times, t - k * period + self.config.lead_s + slack)
            if hi > lo:
                peaks.append(max(self.values[lo:hi]))
        return float(median(peaks)) if len(peaks) >= 2 else math.nan  # the standard library's: fast on 2 or 3

    def _spacing(self) -> float:
        n = len(self.times)
        if n < 2:
            return math.inf
        tail = self.times[-min(n, 50):]
        return float(np.median(np.diff(tail))) if len(tail) > 1 else math.inf

    def _detect_period(self, now: float) -> None:
        c = self.config
        keep = now - max(c.echo_history_s, 3.2 * c.echo_max_period_s, c.phase_history_s) - c.lead_s
        cut = bisect_left(self.times, keep)
        if cut:
            del self.times[:cut], self.values[:cut]
        start = bisect_left(self.times, now - c.echo_history_s)
        values = np.asarray(self.values[start:], dtype=float)
        step = self.step_s = self._spacing()
        if values.size < 20 or not math.isfinite(step) or step <= 0:
            self.period_s = None
            return
        from models.tier3.period import dominant_period

        lag = dominant_period(values, min_lag=math.ceil(2 * max(c.lead_s, step) / step),
                              max_lag=int(c.echo_max_period_s / step), min_acf=c.echo_min_acf,
                              min_cycles=3.0)
        self.period_s = None if lag is None else lag * step

    def refit(self, now: float) -> None:
        """Re-detect the period; recompute each base's per-bucket ratio quantiles from the
        windows known at ``now``, and choose the base whose upper bound scores better."""
        c = self.config
        self.fitted_at = now
        self._detect_period(now)
        self.tables = {}
        self.losses = {}
        self.base = "level"
        if len(self.ratios) < c.min_ratios:
            return
        data = self.ratios.rows()
        peaks = data[:, 3]
        quantiles = np.asarray(c.quantiles, dtype=float)
        q_high = c.quantiles[2]
        for column, base in ((1, "level"), (2, "echo")):
            values = data[:, column]
            ok = np.isfinite(values) & (values > 0)
            if ok.sum() < c.min_ratios:
                continue
            table, answers = ratio_table(values[ok], peaks[ok], quantiles, c.buckets,
                                         c.min_per_bucket)
            self.tables[base] = table
            self.losses[base] = (pinball(peaks[ok], answers[:, 2], q_high)
                                 / max(peaks[ok].mean(), 1e-12))
        if "echo" in self.losses and self.losses["echo"] < self.losses.get("level", math.inf):
            self.base = "echo"

    # ------------------------------------------------------------------ answering
    def predict(self) -> TierPrediction | None:
        """The peak load of the window one lead time ahead, or None while too little is known."""
        base = self.base
        value = self.level() if base == "level" else self.echo(self.last_t)
        if base == "echo" and not (math.isfinite(value) and value > 0):
            base, value = "level", self.level()
        if base not in self.tables or not math.isfinite(value):
            return None
        low, mid, high = (value * self.tables[base].factor(value)).tolist()
        return TierPrediction(point=mid, lower=low, upper=high)

    def phase_samples(self) -> tuple[np.ndarray, ...]:
        """Per period (the detected one and ``phase_period_s``), the window peaks at the
        newest sample's phase in past cycles (:func:`models.tier3.phase.phase_sample`): the
        conditional distribution a sizing quantile is read from. Empty before any cycle."""
        from models.tier3.phase import phase_sample

        c = self.config
        if not self.times or not math.isfinite(self.step_s):
            return ()
        periods = {p for p in (self.period_s, c.phase_period_s) if p}
        out = []
        for period in sorted(periods):
            cycles = min(c.phase_max_cycles, int(c.phase_history_s // period))
            sample = phase_sample(self.times, self.values, self.last_t, c.lead_s, self.step_s,
                                  period, cycles, c.level_window_s)
            if sample.size:
                out.append(sample)
        return tuple(out)

    @property
    def known_ratios(self) -> int:
        return len(self.ratios)
