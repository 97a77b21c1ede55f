"""``leadtime bench anomaly``: window-based scoring of streaming detectors on an anomaly set.

Protocol (identical for every detector, one fixed configuration for every series):

* each series is streamed once; a detector scores each sample before learning it;
* the first ``probation`` share (NAB's probationary period, 15 %) is never scored; the alert
  threshold of the series is calibrated on the scores of its later part (after a warm-up of a
  third of it): the maximum score seen there (:func:`monitoring.detectors.calibrate_threshold`).
  Labels are never read to calibrate;
* an *alarm* is a sample whose score exceeds the threshold; alarms closer than ``cooldown`` to a
  previous alarm belong to the same episode;
* a labelled window (clipped to the scored part) is *detected* when it holds at least one alarm;
  its detection delay is the time from the window's start to that first alarm;
* a *false alarm* is an alarm episode that starts outside every window;
* precision = detected windows / (detected windows + false alarms), recall = detected windows /
  windows, F1 their harmonic mean; all summed over the set (micro average).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.detectors import calibrate_threshold, make_detector, season_for

PROBATION = 0.15
COOLDOWN = pd.Timedelta("1h")
DETECTOR_NAMES = ("leadtime", "zscore", "hst")


@dataclass(frozen=True)
class SeriesScore:
    windows: int
    detected: int
    false_alarms: int
    delays_min: list[float]
    scored_days: float
    threshold: float


def stream_scores(name: str, series: pd.Series, **kwargs) -> tuple[np.ndarray, float]:
    """Scores of a fresh detector streamed over the series, and the detector's threshold floor."""
    step = series.index.to_series().diff().median().total_seconds()
    if name == "leadtime":
        kwargs.setdefault("season", season_for(step))
    detector = make_detector(name, **kwargs)
    scores = np.array([detector.score_learn(float(v)) for v in series.to_numpy()])
    return scores, float(getattr(detector, "min_threshold", 0.0))


def score_series(
    series: pd.Series,
    scores: np.ndarray,
    windows: list[tuple[pd.Timestamp, pd.Timestamp]],
    probation: float = PROBATION,
    cooldown: pd.Timedelta = COOLDOWN,
    floor: float = 0.0,
) -> SeriesScore:
    """Window-based counts of one series (see the module docstring)."""
    n = len(series)
    n_prob = max(int(n * probation), 3)
    threshold = max(floor, calibrate_threshold(scores[n_prob // 3 : n_prob]))
    index = series.index
    scored_start = index[n_prob]
    alarm_idx = np.flatnonzero(scores[n_prob:] > threshold) + n_prob
    alarm_times = index[alarm_idx]
    episodes: list[pd.Timestamp] = []
    last: pd.Timestamp | None = None
    for t in alarm_times:
        if last is None or t - last > cooldown:
            episodes.append(t)
        last = t
    spans = [(max(s, scored_start), e) for s, e in windows if e >= scored_start]
    detected, delays = 0, []
    for start, end in spans:
        inside = alarm_times[(alarm_times >= start) & (alarm_times <= end)]
        if len(inside):
            detected += 1
            delays.append((inside[0] - start).total_seconds() / 60.0)
    false = sum(1 for t in episodes if not any(s <= t <= e for s, e in spans))
    days = (index[-1] - scored_start).total_seconds() / 86400.0
    return SeriesScore(len(spans), detected, false, delays, days, threshold)


def summarise(parts: list[SeriesScore]) -> dict[str, float | None]:
    windows = sum(p.windows for p in parts)
    detected = sum(p.detected for p in parts)
    false = sum(p.false_alarms for p in parts)
    days = sum(p.scored_days for p in parts)
    delays = [d for p in parts for d in p.delays_min]
    precision = detected / (detected + false) if detected + false else 0.0
    recall = detected / windows if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "delay_minutes": round(float(np.mean(delays)), 1) if delays else None,
        "false_alarms_per_day": round(false / days, 4) if days else None,
        "windows": windows,
        "detected": detected,
        "false_alarms": false,
    }


def run_anomaly_bench(root: str | Path, detectors: tuple[str, ...] = DETECTOR_NAMES) -> dict:
    """The benchmark document: per detector, the set's window-based figures."""
    from leadtime.data import read_anomaly_set

    anomaly_set = read_anomaly_set(root)
    parts: dict[str, list[SeriesScore]] = {d: [] for d in detectors}
    per_series: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {d: 0.0 for d in detectors}
    for key, series in anomaly_set.series.items():
        per_series[key] = {}
        for name in detectors:
            began = time.perf_counter()
            scores, floor = stream_scores(name, series)
            seconds[name] += time.perf_counter() - began
            part = score_series(series, scores, anomaly_set.windows[key], floor=floor)
            parts[name].append(part)
            per_series[key][name] = summarise([part])["f1"]
    samples = sum(len(s) for s in anomaly_set.series.values())
    return {
        "set": str(Path(root)),
        "series": len(anomaly_set.series),
        "samples": samples,
        "protocol": {
            "probation": PROBATION,
            "threshold": "max score over the probationary period after a warm-up of a third of it",
            "cooldown_minutes": COOLDOWN.total_seconds() / 60,
            "precision": "detected windows / (detected windows + alarm episodes outside windows)",
        },
        "detectors": {
            name: {**summarise(parts[name]), "us_per_sample": round(1e6 * seconds[name] / samples, 1)}
            for name in detectors
        },
        "per_series_f1": per_series,
    }


def format_table(document: dict) -> str:
    """The figures as a plain-text table."""
    head = f"{'detector':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'delay_min':>9} {'fa/day':>7} {'windows':>8}"
    lines = [f"anomaly set {document['set']}: {document['series']} series, {document['samples']} samples",
             head, "-" * len(head)]
    for name, m in document["detectors"].items():
        delay = "-" if m["delay_minutes"] is None else f"{m['delay_minutes']:.0f}"
        lines.append(
            f"{name:<10} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {delay:>9} "
            f"{m['false_alarms_per_day']:>7.3f} {m['detected']:>3}/{m['windows']:<4}"
        )
    return "\n".join(lines)
