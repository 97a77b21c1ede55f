"""``leadtime bench loop``: whole passes of the served decision loop at fleet size.

``bench engine`` times the engine alone. A pass of the loop also asks every tier source, runs
each producer's sizing calibration and HPA twin, writes the decision log and feeds the
``/metrics`` export. This benchmark builds that loop for ``N`` producers with every live part
and times its passes:

* **the fleet**: ``N`` producers dealt into ``pools`` pools (``evaluation.api_bench``'s
  generated ``leadtime.yaml``), each with its own synthetic load: a daily wave at its own level
  and phase, with noise;
* **Tier 1**: the cheapest recipe, seasonal naive, fitted per producer on two days of that load
  and asked through :class:`loop.sources.Tier1Champion`, the source serving uses, from the
  bundle in memory (what serving holds once the champion is loaded; the registry round-trip is
  not part of a pass);
* **Tier 2**: not wired (a load trace announces no requests), as the decisions say;
* **Tier 3**: a :class:`models.tier3.state.Tier3State` fed every producer's load each minute,
  warm enough that its load nowcast answers;
* **sizing**: each producer's calibrator and HPA twin, warmed by real passes until sizing is
  calibrated (two hours of windows), or for ``warm_s`` (``--warm-hours``): a pass costs more as
  the records fill, for days (the sizing's two days of windows, Tier 3's phase cycles);
* **the decision log** on disk (SQLite, WAL), and the Prometheus metrics updated in the pass as
  ``leadtime serve`` updates them; the export is rendered after each pass, as a scrape would.
  Serving renders it on the scrape's own request, not in the pass, so it is timed apart.

The loop runs one pass every ``decision_interval_s`` of its replay clock, and each minute of
that clock every producer's load reaches Tier 3 and the loop's state, as the API's
``/v1/observations`` and ``/v1/producers/state`` would bring it. Timed: each pass
(:meth:`DecisionLoop.step`, with the metrics' update), each minute's reports, and the export's
rendering; measured: peak memory of the
process and the decision log's bytes written per pass.
"""

from __future__ import annotations

import math
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.api_bench import fleet_document

Progress = Callable[[str], None]
STEP_S = 60.0  # the load reaches Tier 3 and the loop every minute
HISTORY_S = 2 * 86400.0  # Tier 1's fit
START = pd.Timestamp("2026-01-05 00:00:00")  # a Monday; the loop's clock starts here


def synthetic_loads(producers: int, steps: int, step_s: float, seed: int = 7) -> np.ndarray:
    """``(producers, steps)`` loads: a daily wave per producer at its own level and phase, with
    10 % noise; levels between 50 and 400 load units.

    >>> synthetic_loads(3, 4, 60.0).shape
    (3, 4)
    """
    rng = np.random.default_rng(seed)
    level = rng.uniform(50.0, 400.0, producers)[:, None]
    phase = rng.uniform(0.0, 2 * math.pi, producers)[:, None]
    t = np.arange(steps)[None, :] * step_s
    wave = 1.0 + 0.5 * np.sin(2 * math.pi * t / 86400.0 + phase)
    return np.maximum(0.0, level * wave * (1.0 + 0.1 * rng.standard_normal((producers, steps))))


class InMemoryChampion:
    """The registered Tier 1 pyfunc over a bundle in memory: its ``predict`` is the bundle's
    :meth:`~models.tier1.registry.BaselineBundle.serve`, as ``models/tier1/pyfunc.py``'s is."""

    def __init__(self, bundle: Any) -> None:
        self.predict = bundle.serve


def _tier1(ids: list[str], history: np.ndarray, step_s: float) -> Any:
    from models.tier1.forecasters import make_forecaster
    from models.tier1.registry import BaselineBundle

    index = pd.date_range(START - pd.Timedelta(seconds=step_s * history.shape[1]),
                          periods=history.shape[1], freq=pd.Timedelta(seconds=step_s))
    fitted, last = {}, str(index[-1])
    for pid, row in zip(ids, history):
        fitted[pid] = make_forecaster("seasonal_naive").fit(pd.Series(row, index=index, name=pid))
    step = str(pd.Timedelta(seconds=step_s))
    return BaselineBundle(fitted, dict.fromkeys(ids, "seasonal_naive"), dict.fromkeys(ids, last),
                          dict.fromkeys(ids, step))


def _disk(path: Path) -> int:
    """The decision log's bytes on disk (the database, its WAL and shared memory)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _written() -> int:
    """Bytes this process has asked the kernel to write so far (``wchar``; 0 off Linux)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_loop(producers: int, pools: int = 100, passes: int = 10,
             decision_interval_s: float = 300.0, progress: Progress | None = None,
             home: Path | None = None, warm_s: float | None = None,
             trace_state: bool = False) -> dict[str, Any]:
    """Build the loop for ``producers`` (module docstring), warm it (at least ``warm_s`` of its
    clock when given), time ``passes`` passes; ``trace_state``: also the bytes the fleet's
    state holds at the end, by part (:func:`state_bytes`)."""
    import gc
    import tracemalloc

    from prometheus_client import generate_latest

    from leadtime.config import parse_config
    from loop.clock import ReplayClock
    from loop.collector import FleetCollector
    from loop.decision_log import DecisionLog
    from loop.decision_loop import DecisionLoop, Report
    from loop.sources import Tier1Champion, Tier3Assess, Unavailable
    from models.tier3.events import MetricSample
    from models.tier3.state import Tier3State
    from monitoring.metrics import Metrics

    def say(message: str) -> None:
        if progress:
            progress(message)

    began = time.perf_counter()
    document = fleet_document(producers, pools)
    document["engine"]["decision_interval_s"] = decision_interval_s
    config = parse_config(document, "generated leadtime.yaml")
    ids = sorted(config.producers())
    per_pass = round(decision_interval_s / STEP_S)
    warm_steps = math.ceil(150 * 60 / STEP_S)  # Tier 3's nowcast answers after ~100 windows
    engine = config.engine  # sizing calibrates once its windows span and number enough, closed
    # (lead time and one interval later) and refitted (hourly)
    need_s = (max(engine.sizing_min_history_s, engine.sizing_min_windows * decision_interval_s)
              + 300.0 + 2 * decision_interval_s + 3600.0)
    warm_passes = math.ceil(need_s / decision_interval_s) + 1
    live = max(warm_steps, warm_passes * per_pass, math.ceil((warm_s or 0.0) / STEP_S))
    live += passes * per_pass
    history_steps = int(HISTORY_S / STEP_S)
    loads = synthetic_loads(len(ids), history_steps + live, STEP_S)
    if trace_state:
        tracemalloc.start(12)  # deep enough to reach a runtime frame from the libraries'
    say(f"{producers:,} producers: fitting Tier 1 (seasonal naive)")
    t1 = time.perf_counter()
    tier1 = Tier1Champion(InMemoryChampion(_tier1(ids, loads[:, :history_steps], STEP_S)))
    fit_s = time.perf_counter() - t1
    say(f"{producers:,} producers: building the champion's forecast tables, as a reload does")
    t1 = time.perf_counter()
    tier1.answer(config.resource_configs(), START.timestamp(), engine.level)
    tables_s = time.perf_counter() - t1
    tier3 = Tier3State()
    workdir = Path(home or tempfile.mkdtemp(prefix="leadtime-bench-loop-"))
    log_path = workdir / "decisions.db"
    decision_log = DecisionLog(log_path)
    metrics = Metrics()
    export: list[tuple[float, int]] = []
    collector = FleetCollector()

    def on_pass(result: Any) -> None:  # what ``leadtime serve`` does after each pass
        metrics.observe_pass(result.fleet, result.seconds, result.degraded, tiers=result.tiers,
                             loads={p: r.current_load for p, r in loop.states.items()},
                             decided_at=result.decided_at)
        collector.after_pass()

    def render_export() -> None:
        """A scrape of ``/metrics`` after the pass: rendered on the scrape's own request in
        serving, not in the pass, so timed apart."""
        t = time.perf_counter()
        body = generate_latest(metrics.registry)
        export.append((time.perf_counter() - t, len(body)))

    clock = ReplayClock(START.timestamp())
    loop = DecisionLoop(config, [tier1, Unavailable("tier2", "a load trace announces no "
                                                    "requests"), Tier3Assess(lambda: tier3)],
                        clock, decision_log=decision_log, recalibrate=True, on_pass=on_pass)
    instances = {pid: 4 for pid in ids}
    timed: list[float] = []
    reports_s: list[float] = []
    written: list[int] = []
    calibrated = tier3_answered = 0
    column = history_steps
    first_timed = live - passes * per_pass
    for k in range(live):
        now = START.timestamp() + (k + 1) * STEP_S
        clock.set(now)
        stamp = pd.Timestamp(now, unit="s", tz="UTC").to_pydatetime()
        values = loads[:, column + k]
        t = time.perf_counter()
        tier3.ingest(metrics=[MetricSample(
            timestamp=stamp, producer_id=pid, metric="load", value=float(v))
            for pid, v in zip(ids, values)])
        loop.report([Report(pid, instances[pid], float(v)) for pid, v in zip(ids, values)])
        reports_s.append(time.perf_counter() - t)
        if (k + 1) % per_pass:
            continue
        before = _written()
        t = time.perf_counter()
        result = loop.step()
        elapsed = time.perf_counter() - t
        wrote = _written() - before
        render_export()
        instances = {pid: d.target_instances for pid, d in result.fleet.decisions.items()}
        if k >= first_timed:
            timed.append(elapsed)
            written.append(wrote)
            calibrated = sum(d.sizing is not None for d in result.fleet.decisions.values())
            tier3_answered = sum(t.get("tier3") is not None for t in result.tiers.values())
        else:
            say(f"{producers:,} producers: warm-up pass {len(export)} of "
                f"{first_timed // per_pass} ({elapsed:.2f} s)")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    collector.release()  # the next fleet's run starts from a collector that scans everything
    held = None
    if trace_state:
        gc.collect()  # what is only garbage is not state
        held = state_bytes(tracemalloc.take_snapshot())
        tracemalloc.stop()
    timed_sorted = sorted(timed)
    scrape = export[-len(timed):]
    return {
        "producers": producers, "pools": min(pools, producers),
        "decision_interval_s": decision_interval_s, "passes_timed": len(timed),
        "warm_up_passes": len(export) - len(timed),
        "warmed_s": first_timed * STEP_S,
        "pass_median_s": round(statistics.median(timed), 4),
        "pass_p99_s": round(timed_sorted[min(len(timed) - 1, math.ceil(0.99 * len(timed)) - 1)],
                            4),
        "pass_max_s": round(max(timed), 4),
        "per_producer_ms": round(1000 * statistics.median(timed) / producers, 4),
        "reports_per_minute_median_s": round(statistics.median(reports_s[-len(timed) * per_pass:]),
                                             4),
        "export_median_s": round(statistics.median(s for s, _ in scrape), 4),
        "export_bytes": scrape[-1][1],
        "bytes_written_per_pass": int(statistics.median(written)),
        "log_disk_bytes_per_producer_day": round(
            _disk(log_path) / producers / (len(export) * decision_interval_s / 86400)),
        "peak_rss_mib": round(peak_mib, 1),
        "sizing_calibrated": calibrated, "tier3_answered": tier3_answered,
        "tier1_fit_s": round(fit_s, 2), "tier1_tables_s": round(tables_s, 2),
        "wall_time_s": round(time.perf_counter() - began, 1),
        "tier1_recipe": "seasonal_naive",
        **({"state_bytes": held, "state_after_s": live * STEP_S} if held is not None else {}),
    }


#: Where the state a producer holds is allocated: the innermost frame of the project's runtime
#: (the benchmark's own arrays, the libraries' caches and imports are left out).
STATE_PARTS = (("tier3 detector (KNN-CAD)", "monitoring/knncad.py"),
               ("tier3 state and nowcast", "models/tier3/"),
               ("sizing record", "loop/sizing.py"), ("HPA twin", "loop/hpa_twin.py"),
               ("tier1 champion", "models/tier1/"), ("loop and sources", "loop/"))


def state_bytes(snapshot: Any) -> dict[str, int]:
    """Bytes still allocated in ``snapshot``, per part of :data:`STATE_PARTS`: each allocation
    goes to the innermost runtime frame of its traceback (pandas' arrays under a Tier 1
    forecaster count as the champion's)."""
    parts = dict.fromkeys((name for name, _ in STATE_PARTS), 0)
    for stat in snapshot.statistics("traceback"):
        for frame in reversed(stat.traceback):  # innermost first
            where = frame.filename.replace("\\", "/")
            part = next((name for name, path in STATE_PARTS if f"/{path}" in where), None)
            if part is not None:
                parts[part] += stat.size
                break
            if "/evaluation/" in where:
                break
    return parts


def steady_state(interval_days: float = 3.0, decision_interval_s: float = 300.0,
                 progress: Progress | None = None) -> dict[str, Any]:
    """One producer's state after ``interval_days`` of the loop, in bytes per part: what a
    fleet holds per producer once it has run for days, where the timed runs, warmed for hours,
    hold less. At 3 days Tier 3's two-day detector reference and the sizing's two days of
    windows are full; the week-long spans (the nowcast's ratios, recalibration's record) are
    not."""
    if progress:
        progress(f"one producer's state after {interval_days:g} days (traced: a few minutes)")
    # a short run first, untraced: the modules the loop imports on first use, and what they
    # build once per process, are not a producer's state (run first in a fresh process, as
    # when no timed run came before, they counted about 0.5 MiB more)
    run_loop(1, 1, 1, decision_interval_s, None)
    row = run_loop(1, 1, 1, decision_interval_s, None, warm_s=interval_days * 86400.0,
                   trace_state=True)
    return {"after_days": interval_days, "load_every_s": STEP_S,
            "bytes": row["state_bytes"], "total_bytes": sum(row["state_bytes"].values())}


def run_loop_bench(sizes: list[int], pools: int = 100, passes: int = 10,
                   decision_interval_s: float = 300.0, progress: Progress | None = None,
                   steady_days: float = 3.0, warm_s: float = 0.0) -> dict[str, Any]:
    """:func:`run_loop` at each fleet size, smallest first (each warmed at least ``warm_s`` of
    its clock), and one producer's :func:`steady_state` after ``steady_days`` (0: not
    measured)."""
    rows = [run_loop(n, pools, passes, decision_interval_s, progress, warm_s=warm_s)
            for n in sorted(sizes)]
    document: dict[str, Any] = {"runs": rows}
    if steady_days > 0:
        document["steady_state"] = steady_state(steady_days, decision_interval_s, progress)
    return document


def format_table(document: dict[str, Any]) -> str:
    """The runs side by side, one line per fleet size."""
    head = (f"{'producers':>10} {'median s':>9} {'p99 s':>8} {'ms/producer':>12} "
            f"{'reports s':>10} {'export s':>9} {'written/pass':>13} {'disk/prod-day':>14} "
            f"{'peak MiB':>9} {'calibrated':>11}")
    lines = [head]
    for r in document["runs"]:
        lines.append(
            f"{r['producers']:>10,} {r['pass_median_s']:>9.3f} {r['pass_p99_s']:>8.3f} "
            f"{r['per_producer_ms']:>12.3f} {r['reports_per_minute_median_s']:>10.3f} "
            f"{r['export_median_s']:>9.3f} {r['bytes_written_per_pass']:>13,} "
            f"{r['log_disk_bytes_per_producer_day']:>14,} {r['peak_rss_mib']:>9,.0f} "
            f"{r['sizing_calibrated']:>5,}/{r['producers']:<5,}")
    if document["runs"]:
        r = document["runs"][0]
        lines.append(f"one pass every {r['decision_interval_s']:g} s of the replay clock, "
                     f"{r['passes_timed']} timed after {r['warm_up_passes']} warm-up passes "
                     f"({r['warmed_s'] / 3600:g} h of its clock); "
                     f"Tier 1 {r['tier1_recipe']} (its forecast tables built before the "
                     f"first pass, as a reload builds them: {r['tier1_tables_s']:g} s), "
                     f"Tier 2 not wired, Tier 3 answered for "
                     f"{r['tier3_answered']:,}; written: bytes the pass asked the kernel to "
                     "write (the decision log); disk: the log's size per producer-day; peak "
                     "memory is the process's")
    steady = document.get("steady_state")
    if steady:
        parts = ", ".join(f"{name} {size / 1024:,.0f} KiB"
                          for name, size in steady["bytes"].items() if size)
        lines.append(f"one producer after {steady['after_days']:g} days (its load every "
                     f"{steady['load_every_s']:g} s) holds {steady['total_bytes'] / 2**20:.1f} "
                     f"MiB of state: {parts}; runs warmed for hours hold less")
    return "\n".join(lines)
