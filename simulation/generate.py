"""Realistic synthetic load traces, for demos and tests where the shared real traces are absent.

Requests per interval follow a daily cycle (quiet nights, a business-hours hump), lower weekends,
a slow trend and occasional surges, drawn as Poisson counts so the noise scales like real traffic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_load(
    producers: int = 2,
    days: int = 21,
    interval: str = "5min",
    start: str = "2024-03-04",
    seed: int = 7,
) -> pd.DataFrame:
    """A load trace frame (timestamp, producer_id, value) with daily/weekly cycles and surges."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=int(pd.Timedelta(days=days) / pd.Timedelta(interval)),
                          freq=interval)
    hours = (index.hour + index.minute / 60).to_numpy()
    frames = []
    for k in range(producers):
        base = rng.uniform(40, 400)
        daily = 0.35 + 0.65 * np.exp(-((hours - rng.uniform(12, 16)) ** 2) / (2 * 3.5**2))
        weekly = np.where(index.dayofweek.to_numpy() >= 5, rng.uniform(0.45, 0.75), 1.0)
        trend = 1 + rng.uniform(-0.1, 0.25) * np.arange(len(index)) / len(index)
        rate = base * daily * weekly * trend
        for _ in range(max(1, days // 7)):  # a few surges a trace, as real traffic has
            at = rng.integers(0, len(index) - 48)
            rate[at:at + 24] *= rng.uniform(1.5, 2.5)
        frames.append(pd.DataFrame({"timestamp": index, "producer_id": f"svc-{k + 1}",
                                    "value": rng.poisson(rate).astype(float)}))
    return pd.concat(frames, ignore_index=True)


def write_load_trace(path: Path, **options) -> Path:
    """Write :func:`synthetic_load` in the load-trace format and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = synthetic_load(**options)
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(path, index=False)
    return path
