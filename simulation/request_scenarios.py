"""Generated request traces where consumers drive the load: what Tier 2 is for.

``consumer_jobs`` writes a request trace (CSV and ``*.schema.yaml``, the input contract) of one
GPU pool serving 36 consumers in three groups:

* **interactive** consumers send short requests (seconds to a few minutes) through the day;
* **batch** consumers submit jobs of 10-60 minutes, mostly in the evening and at night, that
  wait in a front-end queue (up to 20 minutes) before they start, holding 1-4 GPUs;
* **mixed** consumers send both, and from the second week one of their groups moves its mix
  towards long jobs (a change the first week's fit has not seen).

Each request's run time follows its size (a numeric field known at submission), its type and
its consumer's own speed factor, with noise; so the consumer's profile and the request's fields
predict it, and the work already admitted is the most certain part of the next window.

``consumer_jobs_direct`` is the same trace without the queue: every job starts when it is
submitted, so a queue's lead is gone and Tier 2 leads only by the work in flight.
``consumer_jobs_contract`` is the direct trace with another seed, named in the input contract's
keys alone: every job one unit, as a job log that does not say ``units:`` is read.

``cpu_memory_jobs`` is a CPU service whose requests differ in what they hold: interactive
queries hold several cores and little memory for a few minutes, nightly extracts hold one
core and tens of GiB for tens of minutes. Its schema declares both (``resources:``), so Tier 2
learns each request's cores and GiB beside its run time, and the binding resource moves from
CPU by day to memory at night.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """\
target: runtime
target_unit: seconds
categorical: [consumer_id, producer_id, request_type]
numeric: [size]
time: timestamp
wait: queue_s
units: gpus
"""


def consumer_jobs(folder: Path, days: int = 14, seed: int = 0) -> Path:
    """Write ``consumer_jobs.csv`` and its schema under ``folder``; returns the CSV's path."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-05-06")  # a Monday
    groups = {"interactive": 16, "batch": 10, "mixed": 10}
    rows = []
    for group, count in groups.items():
        for k in range(count):
            consumer = f"{group[:3]}-{k:02d}"
            speed = rng.lognormal(0.0, 0.35)  # the consumer's own factor on every run time
            shifts = group == "mixed" and k < count // 2  # this half moves to long jobs
            rows.extend(_requests(rng, consumer, group, speed, shifts, start, days))
    frame = pd.DataFrame(rows).sort_values("timestamp", kind="stable")
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "consumer_jobs.csv"
    frame[["timestamp", "consumer_id", "producer_id", "request_type", "size", "queue_s", "gpus",
           "runtime"]].to_csv(path, index=False)
    path.with_suffix(".schema.yaml").write_text(SCHEMA)
    return path


def _requests(rng, consumer: str, group: str, speed: float, shifts: bool,
              start: pd.Timestamp, days: int) -> list[dict]:
    out = []
    for day in range(days):
        weekend = (start + pd.Timedelta(days=day)).dayofweek >= 5
        long_share = {"interactive": 0.0, "batch": 1.0, "mixed": 0.25}[group]
        if shifts and day >= 7:
            long_share = 0.7
        n = rng.poisson({"interactive": 40, "batch": 5, "mixed": 14}[group]
                        * (0.5 if weekend else 1.0))
        for _ in range(n):
            long = rng.random() < long_share
            # interactive work by day (peak 14:00), long jobs in the evening and at night
            hour = (rng.normal(21.0, 3.0) if long else rng.normal(14.0, 3.0)) % 24
            at = start + pd.Timedelta(days=day, hours=float(hour))
            size = float(rng.integers(10, 120)) if long else float(rng.integers(1, 20))
            if long:
                kind, runtime = "train", size * 25.0  # 250 s per 10 units: 4-50 minutes
                queue, gpus = float(rng.uniform(0, 1200)), int(rng.choice([1, 2, 4]))
            else:
                kind, runtime = "infer", 3.0 + size * 6.0
                queue, gpus = 0.0, 1
            runtime *= speed * rng.lognormal(0.0, 0.2)
            out.append({"timestamp": at, "consumer_id": consumer, "producer_id": "gpu-pool",
                        "request_type": kind, "size": size, "queue_s": round(queue, 1),
                        "gpus": gpus, "runtime": round(float(runtime), 1)})
    return out


def consumer_jobs_direct(folder: Path, days: int = 14, seed: int = 0) -> Path:
    """``consumer_jobs`` without the front-end queue: the same requests, each starting when it is
    submitted (no ``wait`` in the schema), as on a cluster whose jobs are admitted at once. Tier
    2 then leads only by the work in flight and the rate of new work, never by a queue."""
    queued = consumer_jobs(folder, days, seed)
    path = folder / "consumer_jobs_direct.csv"
    pd.read_csv(queued).drop(columns="queue_s").to_csv(path, index=False)
    path.with_suffix(".schema.yaml").write_text(SCHEMA.replace("wait: queue_s\n", ""))
    return path


CONTRACT_SCHEMA = """\
target: duration
target_unit: seconds
categorical: [consumer_id, queue, application]
numeric: [size, gpus]
time: submit_time
"""


def consumer_jobs_contract(folder: Path, days: int = 14, seed: int = 7) -> Path:
    """``consumer_jobs_direct`` as a job trace named in the input contract's keys alone: another
    seed (7) than the scenarios Tier 2's choices were made beside, columns named as a cluster's
    job log names them (a queue per consumer group, an application per request type), no
    ``producer_id``, and each job's GPUs a numeric feature rather than ``units``, so every job
    holds one unit. The shape of the long-running-job trace issue #30 checks Tier 2 on."""
    frame = pd.read_csv(consumer_jobs_direct(folder, days, seed))
    groups = {"int": "vc-dev", "bat": "vc-prod", "mix": "vc-research"}
    jobs = pd.DataFrame({
        "submit_time": frame["timestamp"], "consumer_id": frame["consumer_id"],
        "queue": frame["consumer_id"].str[:3].map(groups),
        "application": frame["request_type"].map({"train": "pytorch-train",
                                                  "infer": "notebook"}),
        "gpus": frame["gpus"], "size": frame["size"], "duration": frame["runtime"]})
    path = folder / "consumer_jobs_contract.csv"
    jobs.to_csv(path, index=False)
    path.with_suffix(".schema.yaml").write_text(CONTRACT_SCHEMA)
    return path


RESOURCES_SCHEMA = """\
target: runtime
target_unit: seconds
categorical: [consumer_id, producer_id, request_type]
numeric: [size]
time: timestamp
resources:
  cpu: {column: cpu_cores, unit: cores}
  memory: {column: memory_gib, unit: GiB}
"""


def cpu_memory_jobs(folder: Path, days: int = 14, seed: int = 3) -> Path:
    """Write ``cpu_memory_jobs.csv`` and its schema (module docstring): 24 consumers of one
    service, ``api`` (queries through the day, peak 13:00) or ``etl`` (extracts at night, peak
    02:00) or both; a query's cores grow with its size, an extract's GiB with its size and its
    consumer's data (a factor of its own), each with noise. Returns the CSV's path."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-05-06")  # a Monday
    rows = []
    for group, count in {"api": 10, "etl": 6, "both": 8}.items():
        for k in range(count):
            consumer, data = f"{group}-{k:02d}", rng.lognormal(0.0, 0.4)
            for day in range(days):
                weekend = (start + pd.Timedelta(days=day)).dayofweek >= 5
                queries = rng.poisson({"api": 50, "etl": 0, "both": 25}[group]
                                      * (0.4 if weekend else 1.0))
                extracts = rng.poisson({"api": 0, "etl": 8, "both": 4}[group])
                for kind, n in (("query", queries), ("extract", extracts)):
                    for _ in range(n):
                        hour = (rng.normal(13.0, 3.0) if kind == "query"
                                else rng.normal(2.0, 1.5)) % 24
                        noise = rng.lognormal(0.0, 0.15)
                        if kind == "query":
                            size = float(rng.integers(1, 9))
                            runtime = (60.0 + 60.0 * size) * rng.lognormal(0.0, 0.2)
                            cores, gib = size * noise, 0.5 * noise
                        else:
                            size = float(rng.integers(10, 60))
                            runtime = 30.0 * size * rng.lognormal(0.0, 0.2)
                            cores, gib = 1.0, 0.6 * size * data * noise
                        rows.append({"timestamp": start + pd.Timedelta(days=day, hours=hour),
                                     "consumer_id": consumer, "producer_id": "reports",
                                     "request_type": kind, "size": size,
                                     "cpu_cores": round(float(cores), 2),
                                     "memory_gib": round(float(gib), 2),
                                     "runtime": round(float(runtime), 1)})
    frame = pd.DataFrame(rows).sort_values("timestamp", kind="stable")
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cpu_memory_jobs.csv"
    frame.to_csv(path, index=False)
    path.with_suffix(".schema.yaml").write_text(RESOURCES_SCHEMA)
    return path


REQUEST_SCENARIOS = {"consumer_jobs": consumer_jobs, "consumer_jobs_direct": consumer_jobs_direct,
                     "consumer_jobs_contract": consumer_jobs_contract,
                     "cpu_memory_jobs": cpu_memory_jobs}
