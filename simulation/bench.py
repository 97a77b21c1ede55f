"""``leadtime bench autoscale``: every policy on the same trace and simulator, side by side."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadtime.config import ENGINE_DEFAULTS, EngineSpec
from simulation.config import SimConfig, derive_config, short_duration
from simulation.crane_ehpa import CraneEHPA
from simulation.forecast import (
    HISTORY_S,
    ForecasterFactory,
    Tier1Schedule,
    daily_tier1,
    default_factory,
)
from simulation.knative_kpa import KnativeKPA
from simulation.metrics import add_cost_vs_oracle, score, totals
from simulation.policies import (
    HPA,
    POLICIES,
    ForecastScaleOut,
    Leadtime,
    Oracle,
    Policy,
    StaticPeak,
)
from simulation.simulator import Run, simulate, slo_need
from simulation.traces import read_demand

Progress = Callable[[str], None]


@dataclass
class ProducerResult:
    producer: str
    config: SimConfig
    index: pd.DatetimeIndex
    scored: np.ndarray
    tier1: Tier1Schedule
    runs: dict[str, Run]
    metrics: dict[str, dict[str, float]]

    @property
    def forecast_coverage_pct(self) -> float:
        """Share of scored intervals whose decision had a usable Tier 1 forecast."""
        usable = np.isfinite(self.tier1.window[2])
        return 100.0 * float(usable[self.scored].mean()) if self.scored.any() else 0.0


@dataclass
class BenchResult:
    trace: Path
    producer: str | None
    model: str
    level: int
    threshold: float
    producers: dict[str, ProducerResult]
    policies: dict[str, dict[str, float]]
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """Shared settings, plus the derived per-producer ones when there is one producer."""
        first = next(iter(self.producers.values()))
        out: dict[str, Any] = {
            "model": self.model,
            "interval_level_pct": self.level,
            "threshold": self.threshold,
            "refit": "daily, on data before the simulated day only",
            "producers_simulated": len(self.producers),
            "scored_from": str(first.index[int(np.argmax(first.scored))]),
        }
        if len(self.producers) == 1:
            out.update(first.config.describe())
            out["forecast_coverage_pct"] = round(first.forecast_coverage_pct, 2)
        else:
            shared = first.config.describe()
            for key in ("capacity_per_instance", "max_instances", "interval"):
                shared.pop(key, None)
            out.update(shared)
        out["fits"] = sum(p.tier1.fits for p in self.producers.values())
        out["fit_seconds"] = round(sum(p.tier1.fit_seconds for p in self.producers.values()), 2)
        return out

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "trace": str(self.trace),
            "producer": self.producer if self.producer else _only(self.producers),
            "settings": self.settings(),
            "policies": _clean(self.policies),
            "wall_time_s": round(self.wall_s, 2),
        }
        if len(self.producers) > 1:
            doc["per_producer"] = {
                name: {
                    "capacity_per_instance": r.config.capacity_per_instance,
                    "interval": short_duration(r.config.interval),
                    "forecast_coverage_pct": round(r.forecast_coverage_pct, 2),
                    "policies": _clean(r.metrics),
                }
                for name, r in self.producers.items()
            }
        if self.notes:
            doc["notes"] = self.notes
        return doc


def _only(producers: dict[str, ProducerResult]) -> str | None:
    return next(iter(producers)) if len(producers) == 1 else None


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, floats are rounded for reading."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


def count_days(index: pd.DatetimeIndex, first_step: int) -> int:
    """Daily fits needed for decisions from ``first_step`` on (for the progress bar)."""
    if first_step >= len(index):
        return 0
    return len(pd.date_range(index[first_step].normalize(), index[-1].normalize(), freq="D"))


HANDOVER_S = 3600.0  # one hour


def handover_step(warm_steps: int, lead: int, cfg: SimConfig) -> int:
    """Step at which policies take over from the warm-up HPA: one hour plus one lead time before
    scoring, so neither queued work nor the fleet the warm-up left behind is scored."""
    settle = math.ceil(HANDOVER_S / cfg.interval_s)
    return max(0, warm_steps - lead - settle)


def replay_setup(
    series: pd.Series, cfg: SimConfig
) -> tuple[np.ndarray, int, int, np.ndarray, np.ndarray]:
    """What every replay of ``series`` shares: demand, lead steps, hand-over step, scored mask
    (after the warm-up, known load) and the SLO need the oracle holds."""
    index = pd.DatetimeIndex(series.index)
    demand = series.to_numpy(dtype=float)
    lead = cfg.spinup_steps
    warm_steps = int(np.searchsorted(index, index[0] + pd.Timedelta(seconds=cfg.warmup_s)))
    switch = handover_step(warm_steps, lead, cfg)
    scored = (np.arange(len(index)) >= warm_steps) & np.isfinite(demand)
    return demand, lead, switch, scored, slo_need(demand, cfg)


def engine_spec(level: int | None = None, threshold: float | None = None,
                base: EngineSpec | None = None, **changes: Any) -> EngineSpec:
    """The engine settings of a replay: ``base`` (a ``leadtime.yaml``'s engine section; the
    defaults when None), with the bench's flags (validated as ``leadtime.yaml`` would be)."""
    given = {"level": level, "threshold": threshold, **changes}
    return EngineSpec.model_validate(
        (base or ENGINE_DEFAULTS).model_dump() | {k: v for k, v in given.items() if v is not None})


def bench_producer(
    series: pd.Series,
    cfg: SimConfig,
    model: str = "champion",
    level: int | None = None,
    history_s: float = HISTORY_S,
    factory: ForecasterFactory = default_factory,
    progress: Progress | None = None,
    workers: int = 1,
    threshold: float | None = None,
    engine: EngineSpec | None = None,
) -> ProducerResult:
    """Replay one producer under every policy; score them on the same intervals (Tier 1 refit
    daily on the ``history_s`` seconds before each day)."""
    index = pd.DatetimeIndex(series.index)
    demand, lead, switch, scored, need = replay_setup(series, cfg)
    engine = engine or engine_spec(level, threshold)

    def fitted() -> None:
        if progress:
            progress(f"{series.name}: daily Tier 1 fit")

    tier1 = daily_tier1(
        series, lead, switch, model, engine.level, history_s, factory, on_fit=fitted,
        workers=workers, watch_step=cfg.dry_run_from(switch)
    )
    hpa = HPA(cfg)
    fso = ForecastScaleOut(cfg, tier1.hourly_point)
    policies: dict[str, tuple[Policy, Policy]] = {
        "static_peak": (StaticPeak(cfg, float(np.nanmax(demand))), HPA(cfg)),
        "hpa": (hpa, hpa),
        "forecast_scale_out": (fso, fso.hpa),
        "crane_ehpa": (CraneEHPA(cfg, series), HPA(cfg)),
        "knative_kpa": (KnativeKPA(cfg), HPA(cfg)),
        "leadtime": (Leadtime(cfg, tier1, str(series.name), index[0], engine), HPA(cfg)),
        "oracle": (Oracle(cfg, need), HPA(cfg)),
    }
    runs: dict[str, Run] = {}
    metrics: dict[str, dict[str, float]] = {}
    for name in POLICIES:
        policy, warm = policies[name]
        runs[name] = simulate(demand, cfg, policy, warm, switch)
        metrics[name] = score(runs[name], cfg, scored, need)
        if progress:
            progress(f"{series.name}: {name}")
    add_cost_vs_oracle(metrics)
    return ProducerResult(str(series.name), cfg, index, scored, tier1, runs, metrics)


def run_bench(
    path: str | Path,
    producer: str | None = None,
    spinup_s: float | None = None,
    model: str = "champion",
    level: int | None = None,
    threshold: float | None = None,
    interval_s: float | None = None,
    history_s: float | None = None,
    overrides: dict[str, Any] | None = None,
    factory: ForecasterFactory = default_factory,
    on_total: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    engine: EngineSpec | None = None,
    reading: str | None = None,
) -> BenchResult:
    """Read the trace, derive the settings and replay every producer (or the chosen one);
    ``interval_s`` samples a request trace and ``reading`` is how it becomes load
    (:func:`simulation.traces.read_demand`); each daily Tier 1 fit sees ``history_s`` seconds
    (default: the settings' ``tier1.history_s``)."""
    began = time.perf_counter()
    demand = read_demand(path, producer, interval_s, reading)
    if history_s is None:
        from leadtime.settings import get_settings

        history_s = get_settings().tier1.history_s
    configs: dict[str, SimConfig] = {}
    work = 0
    for name, series in demand.series.items():
        step_s = pd.Timedelta(series.index.freq).total_seconds()
        cfg = derive_config(series, step_s, spinup_s=spinup_s, **(overrides or {}))
        configs[name] = cfg
        warm_steps = int(np.searchsorted(series.index,
                                         series.index[0] + pd.Timedelta(seconds=cfg.warmup_s)))
        switch = handover_step(warm_steps, cfg.spinup_steps, cfg)
        work += count_days(series.index, switch) + len(POLICIES)
    if on_total:
        on_total(work)
    results = _bench_producers(demand.series, configs, model, level, history_s, factory, progress,
                               workers, threshold, engine)
    if len(results) == 1:
        policies = next(iter(results.values())).metrics
    else:
        policies = totals({name: r.metrics for name, r in results.items()})
    engine = engine or engine_spec(level, threshold)
    chosen = sorted({r.tier1.model for r in results.values()})
    return BenchResult(
        Path(path),
        producer,
        model if model != "champion" else f"champion recipe ({', '.join(chosen)})",
        engine.level,
        engine.threshold,
        results,
        policies,
        time.perf_counter() - began,
        [
            n
            for n in demand.notes
            if producer is None or "producer '" not in n or f"'{producer}'" in n
        ],
    )


def _bench_producers(series: dict[str, pd.Series], configs: dict[str, SimConfig], model: str,
                     level: int | None, history_s: float, factory: ForecasterFactory,
                     progress: Progress | None, workers: int, threshold: float | None,
                     engine: EngineSpec | None) -> dict[str, ProducerResult]:
    """Every producer's replay: one after another (its daily fits in ``workers`` processes),
    or, with several producers and ``workers > 1``, whole producers in ``workers`` processes,
    which keeps both cores busy through the replays as well as the fits. Results keep the
    trace's order; progress advances as each producer finishes."""
    names = list(series)
    if workers <= 1 or len(names) < 2 or factory is not default_factory:
        return {name: bench_producer(series[name], configs[name], model, level, history_s,
                                     factory, progress, workers, threshold, engine)
                for name in names}
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[str, ProducerResult] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(names))) as pool:
        futures = {pool.submit(_bench_shipped, series[name], configs[name], model, level,
                               history_s, factory, None, 1, threshold, engine): name
                   for name in names}
        for future in as_completed(futures):
            name = futures[future]
            result = done[name] = future.result()
            if progress:
                for _ in range(result.tier1.fits + len(POLICIES)):
                    progress(f"{name}: done")
    return {name: done[name] for name in names}


def _bench_shipped(*args: Any) -> ProducerResult:
    """:func:`bench_producer` in a worker process, its result without the daily Tier 1 bundles:
    the replay has asked them already, and a day's fitted models would be pickled back to the
    parent only to be dropped (a 28-day Prophet producer's 22 fits)."""
    result = bench_producer(*args)
    return replace(result, tier1=replace(result.tier1, published=()))


#: On a request trace, leadtime without Tier 2 (the ablation's Tier 1+3 recalibrated) is swept
#: too, so Tier 2's worth reads at equal instance-hours rather than at one budget.
WITHOUT_TIER2 = "leadtime_without_tier2"

COLOURS = {
    "static_peak": "tab:gray",
    "hpa": "tab:orange",
    "forecast_scale_out": "tab:purple",
    "crane_ehpa": "tab:brown",
    "knative_kpa": "tab:pink",
    "leadtime": "tab:blue",
    WITHOUT_TIER2: "tab:cyan",
    "oracle": "tab:green",
}


def plot_bench(result: BenchResult, path: Path, max_producers: int = 6) -> Path:
    """Load, ready capacity per policy and SLO-violating intervals over the scored period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(result.producers.values())[:max_producers]
    fig, axes = plt.subplots(
        2 * len(shown),
        1,
        figsize=(14, 4.2 * len(shown)),
        gridspec_kw={"height_ratios": [4, 1] * len(shown)},
        squeeze=False,
    )
    for k, res in enumerate(shown):
        load_ax, viol_ax = axes[2 * k, 0], axes[2 * k + 1, 0]
        start = int(np.argmax(res.scored))
        idx = res.index[start:]
        demand = pd.Series(res.runs["oracle"].demand[start:], index=idx)
        rule = _plot_rule(res.config.interval, len(idx))
        load_ax.plot(demand.resample(rule).mean(), color="black", lw=0.8, label="load")
        for name, run in res.runs.items():
            capacity = pd.Series(run.ready[start:] * res.config.usable_capacity, index=idx)
            load_ax.plot(
                capacity.resample(rule).mean(),
                color=COLOURS[name],
                lw=0.9,
                label=f"{name} capacity",
            )
        load_ax.set_title(
            f"{res.producer}: load and ready capacity at {res.config.max_utilisation:.0%} "
            f"utilisation (means per {rule})"
        )
        load_ax.set_ylabel(f"load per {_fmt(res.config.interval)}")
        load_ax.legend(loc="upper left", fontsize=7, ncol=3)
        draw_misses(viol_ax, idx, {name: (run.violated & res.scored)[start:]
                                   for name, run in res.runs.items()}, COLOURS)
        viol_ax.set_xlim(idx[0], idx[-1])
    return save_figure(fig, path)


def draw_misses(ax, index: pd.DatetimeIndex, missed: dict[str, np.ndarray],
                colours: dict[str, str]) -> None:
    """One row of ticks per policy, at the intervals where it missed the SLO."""
    for row, (name, mask) in enumerate(missed.items()):
        hits = index[mask]
        ax.plot(hits, np.full(len(hits), row), "|", color=colours[name], ms=8)
    ax.set_yticks(range(len(missed)), list(missed), fontsize=7)
    ax.set_ylim(-0.5, len(missed) - 0.5)
    ax.set_title("intervals that missed the SLO", fontsize=8)


def save_figure(fig, path: Path) -> Path:
    """Lay the figure out, write it as a PNG at ``path`` and release it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(interval: pd.Timedelta) -> str:
    minutes = interval.total_seconds() / 60
    return f"{minutes:g} min" if minutes >= 1 else f"{interval.total_seconds():g} s"


def _plot_rule(interval: pd.Timedelta, steps: int) -> str:
    """Resample so the plot holds at most ~4,000 points per line."""
    factor = max(1, math.ceil(steps / 4000))
    minutes = max(1, int(interval.total_seconds() * factor // 60))
    return f"{minutes}min"


# --- the risk/cost frontier: every policy at several settings of its own risk knob ----------

FRONTIER_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)  # the peers: target utilisation
FRONTIER_BUDGETS = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5)  # leadtime: its spend over the HPA twin's


def frontier(
    series: pd.Series,
    cfg: SimConfig,
    model: str = "champion",
    history_s: float = HISTORY_S,
    targets: tuple[float, ...] = FRONTIER_TARGETS,
    budgets: tuple[float, ...] = FRONTIER_BUDGETS,
    factory: ForecasterFactory = default_factory,
    progress: Progress | None = None,
    engine: EngineSpec | None = None,
    requests: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """SLO violations against instance-hours for each policy across its risk knob (leadtime's
    from ``engine``, the defaults when None, its own budget swept beside ``budgets``; with
    ``requests``, a request trace's requests with Tier 2's predicted run times
    (:func:`simulation.intent_replay.predict_requests`), leadtime hears them through Tier 2 as
    the ablation's full loop does, and :data:`WITHOUT_TIER2`, the same loop on Tier 1 and 3
    alone, is swept at the same knobs).

    One operating point per policy says little: a reactive policy can buy fewer violations with
    a lower target utilisation, leadtime with a larger budget (its spend against the HPA twin's,
    ``engine.sizing_budget``), and in the price mode (no budget) at the default price. Comparing
    the curves (same trace, simulator, scored intervals and oracle) shows which policy gets
    fewer violations for the same instance-hours.
    """
    from dataclasses import replace

    demand, lead, switch, scored, need = replay_setup(series, cfg)
    oracle = score(simulate(demand, cfg, Oracle(cfg, need), HPA(cfg), switch), cfg, scored, need)
    # one set of daily fits: the published bundles answer every pass of every setting
    base = engine or engine_spec()
    fitted = daily_tier1(series, lead, switch, model, base.level, history_s, factory,
                         watch_step=cfg.dry_run_from(switch))
    rows: list[dict[str, Any]] = []

    def add(policy: str, knob: str, value: float, run_cfg: SimConfig, chosen: Policy, warm: Policy):
        m = score(simulate(demand, run_cfg, chosen, warm, switch), run_cfg, scored, need)
        rows.append({"policy": policy, "knob": knob, "value": value,
                     "slo_violation_pct": m["slo_violation_pct"],
                     "instance_hours": m["instance_hours"],
                     "cost_vs_oracle": m["instance_hours"] / oracle["instance_hours"]})
        if progress:
            progress(f"{policy} {knob}={value}")

    for target in targets:
        run_cfg = replace(cfg, target_utilisation=target)
        hpa = HPA(run_cfg)
        add("hpa", "target_utilisation", target, run_cfg, hpa, hpa)
        fso = ForecastScaleOut(run_cfg, fitted.hourly_point)
        add("forecast_scale_out", "target_utilisation", target, run_cfg, fso, fso.hpa)
        add("crane_ehpa", "target_utilisation", target, run_cfg, CraneEHPA(run_cfg, series),
            HPA(run_cfg))
        add("knative_kpa", "target_utilisation", target, run_cfg, KnativeKPA(run_cfg),
            HPA(run_cfg))
    start = pd.DatetimeIndex(series.index)[0]
    swept = sorted({*budgets, *([base.sizing_budget] if base.sizing_budget else [])})
    curves = [("leadtime", base, requests)]
    without = {tier: w for tier, w in base.weights.items() if tier != "tier2" and w > 0}
    if requests is not None and without:  # (a loop on Tier 2 alone has nothing to compare)
        curves.append((WITHOUT_TIER2, base.model_copy(update={
            "weights": EngineSpec.model_validate({"weights": without}).weights}), None))
    for name, spec, heard in curves:
        for budget in swept:
            chosen = Leadtime(cfg, fitted, str(series.name), start,
                              spec.model_copy(update={"sizing_budget": budget}), requests=heard)
            add(name, "sizing_budget", budget, cfg, chosen, HPA(cfg))
        chosen = Leadtime(cfg, fitted, str(series.name), start,
                          spec.model_copy(update={"sizing_budget": None}), requests=heard)
        add(name, "violation_cost", base.violation_cost, cfg, chosen, HPA(cfg))
    return rows


def violations_at_cost(rows: list[dict[str, Any]], policy: str, cost: float,
                       front: bool = False) -> float | None:
    """``policy``'s SLO violations at ``cost`` (x oracle), interpolated along its frontier;
    None outside the range measured. ``front``: along its Pareto front only, the settings
    that no cheaper setting of the policy beats, so the answer is the fewest violations the
    policy gets at no more than ``cost`` (a knob whose larger setting can cost less, as a
    budget the loop cannot reach, otherwise reads worse than its own cheaper point); None
    only below its cheapest setting.

    >>> rows = [{"policy": "p", "cost_vs_oracle": c, "slo_violation_pct": v}
    ...         for c, v in ((1.0, 20.0), (0.9, 15.0), (1.1, 5.0))]
    >>> violations_at_cost(rows, "p", 1.0), round(violations_at_cost(rows, "p", 1.0, front=True), 6)
    (20.0, 10.0)
    >>> violations_at_cost(rows, "p", 2.0), violations_at_cost(rows, "p", 2.0, front=True)
    (None, 5.0)
    """
    points = sorted((r["cost_vs_oracle"], r["slo_violation_pct"]) for r in rows
                    if r["policy"] == policy)
    if front:
        kept: list[tuple[float, float]] = []
        for point in points:
            if not kept or point[1] < kept[-1][1]:
                kept.append(point)
        if not kept or cost < kept[0][0]:
            return None
        return float(np.interp(cost, *zip(*kept)))  # beyond its costliest: that one's
    if len(points) < 2 or not points[0][0] <= cost <= points[-1][0]:
        return None
    costs, violations = zip(*points)
    return float(np.interp(cost, costs, violations))


def plot_frontier(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """SLO violations (y) against cost versus the oracle (x), one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for policy in ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime",
                   WITHOUT_TIER2):
        mine = sorted((r for r in rows if r["policy"] == policy), key=lambda r: r["cost_vs_oracle"])
        if not mine:
            continue
        xs = [r["cost_vs_oracle"] for r in mine]
        ys = [r["slo_violation_pct"] for r in mine]
        ax.plot(xs, ys, "o-", color=COLOURS[policy], label=policy)
        for r in mine:
            label = {"target_utilisation": f"{r['value']:g}",
                     "sizing_budget": f"budget {r['value']:g}",
                     "violation_cost": f"price {r['value']:g}"}[r["knob"]]
            ax.annotate(label, (r["cost_vs_oracle"], r["slo_violation_pct"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("instance-hours / oracle")
    ax.set_ylabel("SLO violations (% of demand)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
