"""``leadtime bench suite`` and ``leadtime bench ablation``: every policy on every scenario.

**The suite** replays every policy of :mod:`simulation.bench` on each scenario of
:mod:`simulation.scenarios` and on each producer of the visible real traces (NASA, every NAB
CloudWatch producer) that are present, with one default configuration for all. Per trace it
reports each policy's SLO violations and instance-hours (as a multiple of the HPA's), and the
fair comparison at equal cost: the reactive policies' violations *at leadtime's instance-hours*,
interpolated along their own frontier (target utilisation 0.5 to 0.9,
:func:`simulation.bench.violations_at_cost`). A trace is a **loss** for leadtime when another
policy (hpa, forecast_scale_out, crane_ehpa, knative_kpa) has fewer violations at no more
instance-hours, or when the HPA's frontier has fewer violations at leadtime's cost.

**The ablation** replays leadtime alone on one trace with parts of it switched off: Tier 1 only,
Tier 3 only, Tier 1 + 3 at fixed weights, Tier 1 + 3 recalibrated (the default), and, on a
request trace, Tier 2 in addition. Each variant is the same decision loop with other weights
(a tier with weight 0 neither scores nor sizes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadtime.config import EngineSpec
from simulation.bench import (
    COLOURS,
    FRONTIER_TARGETS,
    HISTORY_S,
    bench_producer,
    engine_spec,
    replay_setup,
    violations_at_cost,
)
from simulation.config import derive_config, short_duration
from simulation.metrics import score
from simulation.policies import HPA, ForecastScaleOut, Leadtime
from simulation.scenarios import SCENARIOS, scenario
from simulation.simulator import simulate

Progress = Callable[[str], None]
COMPARED = ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime", "oracle")
REACTIVE = ("hpa", "forecast_scale_out")
REAL_TRACES = ("load/nasa_http_1995.csv", "load/nab_aws_cloudwatch.csv")


def reactive_frontier(series: pd.Series, cfg, tier1, targets=FRONTIER_TARGETS) -> list[dict]:
    """The HPA's and predictive scale-out's points across their target utilisation."""
    demand, _lead, switch, scored, need = replay_setup(series, cfg)
    rows = []
    for target in targets:
        run_cfg = replace(cfg, target_utilisation=target)
        hpa = HPA(run_cfg)
        fso = ForecastScaleOut(run_cfg, tier1.hourly_point)
        for name, policy, warm in (("hpa", hpa, hpa), ("forecast_scale_out", fso, fso.hpa)):
            m = score(simulate(demand, run_cfg, policy, warm, switch), run_cfg, scored, need)
            rows.append({"policy": name, "value": target, "slo_violation_pct":
                         m["slo_violation_pct"], "instance_hours": m["instance_hours"]})
    return rows


def trace_row(name: str, source: str, series: pd.Series, engine: EngineSpec,
              history_s: float = HISTORY_S) -> dict[str, Any]:
    """One trace of the suite: every policy at its default, the reactive frontiers, a verdict
    (Tier 1 refit daily on the ``history_s`` seconds before each day)."""
    cfg = derive_config(series, pd.Timedelta(series.index.freq).total_seconds())
    result = bench_producer(series, cfg, history_s=history_s, engine=engine)
    hpa_hours = result.metrics["hpa"]["instance_hours"]
    policies = {p: {"slo_violation_pct": result.metrics[p]["slo_violation_pct"],
                    "cost_vs_hpa": result.metrics[p]["instance_hours"] / hpa_hours}
                for p in COMPARED}
    points = reactive_frontier(series, cfg, result.tier1)
    for r in points:
        r["cost_vs_oracle"] = r["instance_hours"] / hpa_hours  # the x axis: cost vs the HPA
    mine = policies["leadtime"]
    at_cost = {p: violations_at_cost(points, p, mine["cost_vs_hpa"]) for p in REACTIVE}
    beaten_by = [p for p in COMPARED[:4]
                 if policies[p]["slo_violation_pct"] < mine["slo_violation_pct"] - 1e-9
                 and policies[p]["cost_vs_hpa"] <= mine["cost_vs_hpa"] + 1e-9]
    beaten_by += [f"{p} frontier" for p, v in at_cost.items()
                  if v is not None and v < mine["slo_violation_pct"] - 1e-9]
    return {"trace": name, "source": source, "interval": str(pd.Timedelta(series.index.freq)),
            "tier1_model": result.tier1.model, "policies": policies,
            "reactive_at_leadtime_cost": at_cost, "leadtime_loses_to": beaten_by}


def suite_traces(data_dir: Path | None, scenarios: tuple[str, ...] = tuple(SCENARIOS),
                 real: bool = True, also_at_s: tuple[float, ...] = (),
                 ) -> tuple[list[tuple[str, str, pd.Series]], list[str]]:
    """The suite's traces: the scenarios, then the real traces present under ``data_dir``;
    then, for each of ``also_at_s``, every one of them sampled more finely again at that
    interval (:func:`coarsened`)."""
    from simulation.traces import read_demand

    traces = [(name, "scenario", scenario(name)) for name in scenarios]
    notes = []
    if real and data_dir is not None:
        for relative in REAL_TRACES:
            path = Path(data_dir) / relative
            if not path.is_file():
                notes.append(f"{path} absent: skipped")
                continue
            for producer, series in read_demand(path).series.items():
                label = producer if producer != path.stem else path.stem
                traces.append((label, path.name, series))
    traces += [t for interval_s in also_at_s for t in coarsened(traces, interval_s)]
    return traces, notes


def coarsened(traces: list[tuple[str, str, pd.Series]],
              interval_s: float) -> list[tuple[str, str, pd.Series]]:
    """Each trace sampled more finely than ``interval_s``, again at ``interval_s`` (the mean
    load of each interval), named ``<trace> @<interval>``: the suite at a coarser sampling.

    >>> index = pd.date_range("2024-01-01", periods=4, freq="30min")
    >>> [(n, s.tolist()) for n, _, s in coarsened([("t", "x", pd.Series([1.0, 3, 5, 7], index))],
    ...                                           3600.0)]
    [('t @1h', [2.0, 6.0])]
    """
    step = pd.Timedelta(seconds=interval_s)
    out = []
    for name, source, series in traces:
        if pd.Timedelta(series.index.freq) >= step:
            continue
        coarse = series.resample(step).mean().asfreq(step)
        coarse.name = series.name
        out.append((f"{name} @{short_duration(step)}", source, coarse))
    return out


def run_suite(data_dir: Path | None, engine: EngineSpec | None = None,
              scenarios: tuple[str, ...] = tuple(SCENARIOS), real: bool = True,
              progress: Progress | None = None,
              on_total: Callable[[int], None] | None = None,
              also_at_s: tuple[float, ...] = ()) -> dict[str, Any]:
    """Every trace of the suite (see the module docstring), and with ``also_at_s`` each
    again at coarser sampling; one JSON-ready document, with the totals per sampling interval."""
    began = time.perf_counter()
    engine = engine or engine_spec()
    traces, notes = suite_traces(data_dir, scenarios, real, also_at_s)
    if on_total:
        on_total(len(traces))
    rows = []
    for name, source, series in traces:
        rows.append(trace_row(name, source, series, engine))
        if progress:
            progress(name)
    intervals = sorted({r["interval"] for r in rows}, key=pd.Timedelta)
    by_interval = {}
    for interval in intervals:
        these = [r for r in rows if r["interval"] == interval]
        by_interval[short_duration(pd.Timedelta(interval))] = {
            "traces": len(these), "totals": suite_totals(these)}
    return {"engine": engine.model_dump(), "traces": rows, "totals": suite_totals(rows),
            "by_interval": by_interval,
            "losses": [r["trace"] for r in rows if r["leadtime_loses_to"]], "notes": notes,
            "wall_time_s": round(time.perf_counter() - began, 1)}


def suite_totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per policy: mean violations and mean cost versus the HPA over the traces, and the
    traces where it has at most leadtime's violations at no more cost."""
    out: dict[str, dict[str, float]] = {}
    for policy in COMPARED:
        viol = [r["policies"][policy]["slo_violation_pct"] for r in rows]
        cost = [r["policies"][policy]["cost_vs_hpa"] for r in rows]
        out[policy] = {"mean_slo_violation_pct": float(np.mean(viol)) if viol else 0.0,
                       "mean_cost_vs_hpa": float(np.mean(cost)) if cost else 0.0}
    return out


# --- the ablation ------------------------------------------------------------------------

ABLATION = {
    "tier1 only": ({"tier1": 1.0}, False),
    "tier3 only": ({"tier3": 1.0}, False),
    "tier1+3 fixed weights": ({"tier1": 0.4, "tier3": 0.3}, False),
    "tier1+3 recalibrated (default)": ({"tier1": 0.4, "tier3": 0.3}, True),
}
#: The variants a request trace adds: Tier 2 alone and with the others.
WITH_TIER2 = {
    "tier2 only": ({"tier2": 1.0}, False),
    "tier1+2+3 fixed weights": ({"tier1": 0.4, "tier2": 0.3, "tier3": 0.3}, False),
    "tier1+2+3 recalibrated": ({"tier1": 0.4, "tier2": 0.3, "tier3": 0.3}, True),
}
PEERS = ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa")


def ablation(series: pd.Series, engine: EngineSpec | None = None,
             history_s: float = HISTORY_S,
             progress: Progress | None = None,
             requests: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """leadtime with parts switched off, on one load series (same fits, simulator, scoring),
    and the peers beside it (Tier 1 refit daily on the ``history_s`` seconds before each day).
    With ``requests`` (the trace's requests with Tier 2's predicted run times,
    :func:`simulation.intent_replay.predict_requests`) the Tier 2 variants too."""
    engine = engine or engine_spec()
    cfg = derive_config(series, pd.Timedelta(series.index.freq).total_seconds())
    demand, _, switch, scored, need = replay_setup(series, cfg)
    result = bench_producer(series, cfg, engine=engine, history_s=history_s)
    peers, tier1 = result.metrics, result.tier1  # the same daily Tier 1 fits for every variant
    base = peers["hpa"]

    def row(name: str, kind: str, m: dict[str, float], tiers: list[str]) -> dict[str, Any]:
        return {"name": name, "kind": kind, "tiers": tiers,
                "slo_violation_pct": m["slo_violation_pct"],
                "instance_hours": m["instance_hours"],
                "cost_vs_hpa": m["instance_hours"] / base["instance_hours"]}

    rows = [row(p, "peer", peers[p], []) for p in PEERS]
    start = pd.DatetimeIndex(series.index)[0]
    variants = {**ABLATION, **(WITH_TIER2 if requests is not None else {})}
    for variant, (weights, recalibrate) in variants.items():
        spec = engine.model_copy(update={"weights": EngineSpec.model_validate(
            {"weights": weights}).weights})
        policy = Leadtime(cfg, tier1, str(series.name), start, spec, recalibrate=recalibrate,
                          requests=requests if "tier2" in weights else None)
        m = score(simulate(demand, cfg, policy, HPA(cfg), switch), cfg, scored, need)
        rows.append({**row(variant, "leadtime", m, sorted(weights)),
                     "sizing_sources": dict(policy.sizing_sources)})
        if progress:
            progress(variant)
    return rows


def plot_ablation(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Each variant and peer of :func:`ablation` as one point: SLO violations (y) against
    instance-hours over the HPA's (x), so what a tier buys and what it costs read together.
    Variants with Tier 2 in blue, those without in cyan, the peers as squares in their
    colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5))
    markers = iter("ov^DPX*<>h")  # the variants lie close together: one marker and entry each
    for r in rows:
        x, y = r["cost_vs_hpa"], r["slo_violation_pct"]
        if r["kind"] == "peer":
            ax.plot(x, y, "s", color=COLOURS.get(r["name"], "tab:gray"), label=r["name"])
        else:
            ax.plot(x, y, next(markers, "o"), markersize=7, fillstyle="none", mew=1.5,
                    color="tab:blue" if "tier2" in r["tiers"] else "tab:cyan",
                    label=f"leadtime: {r['name']}")
    ax.set_xlabel("instance-hours / HPA's")
    ax.set_ylabel("SLO violations (% of demand)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
