"""A tiny request trace in the standard format, generated in code (for tests and demos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """target: demand
target_unit: seconds
categorical: [consumer_id, producer_id, request_type]
numeric: [steps, images]
time: timestamp
"""


RESOURCES = """resources:
  cpu: {column: cores, unit: cores}
  memory: {column: gib, unit: GiB}
"""


def write_request_trace(folder: Path, n: int = 400, consumers: int = 12, seed: int = 0,
                        name: str = "tiny_requests", resources: bool = False) -> Path:
    """Write ``<name>.csv`` and its schema: demand grows with steps x images and each
    consumer has its own speed factor (what consumer history can learn). ``resources``: each
    request also holds cores (with its steps) and GiB (with its images), declared in the
    schema."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp("2024-03-01 00:00:00")
    gaps = rng.exponential(300, n).round()  # seconds; some requests share a timestamp
    gaps[rng.random(n) < 0.05] = 0
    stamps = start + pd.to_timedelta(np.cumsum(gaps), unit="s")
    consumer = rng.integers(0, consumers, n)
    factor = 0.5 + 1.5 * (np.arange(consumers) % 4) / 3
    steps = rng.choice([20, 30, 50], n)
    images = rng.choice([1, 2, 4], n)
    kind = rng.choice(["TXT_2_IMG", "IMG_2_IMG"], n, p=[0.8, 0.2])
    demand = np.round(0.2 * steps * images * factor[consumer] * rng.lognormal(0, 0.15, n), 1)
    frame = pd.DataFrame({
        "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
        "consumer_id": [f"C{c:03d}" for c in consumer],
        "producer_id": [f"P{p}" for p in rng.integers(0, 3, n)],
        "request_type": kind,
        "steps": steps,
        "images": images,
        "demand": demand,
    })
    if resources:
        frame["cores"] = np.round(steps / 10 * rng.lognormal(0, 0.1, n), 2)
        frame["gib"] = np.round(4.0 * images * rng.lognormal(0, 0.1, n), 2)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    (folder / f"{name}.schema.yaml").write_text(SCHEMA + (RESOURCES if resources else ""))
    return path
