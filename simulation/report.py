"""The autoscale benchmark as one self-contained, interactive HTML page.

``leadtime bench autoscale --report PATH`` (and ``leadtime demo``) write it: Plotly charts with
plotly.js inline, so the file opens with no network. Per producer shown, the page draws the load,
every policy's ready capacity, the Tier 1 forecast band leadtime decided with (the peak of
``[t, t + lead]``, point and interval), a marker for each leadtime decision that changed the
fleet (its hover gives the engine's reasons, the load score and the tier weights) and the
intervals that missed the SLO; the score table comes first.

The decision reasons: the bench keeps each policy's fleet, not the loop's passes, so
:func:`leadtime_decisions` replays the leadtime policy once more on the same fitted Tier 1
schedule and keeps a bounded record of the passes that scale (:class:`DecisionRecord`). The
replay is deterministic; it is checked against the scored run and the page says so if they
differ.

Size: plotly.js itself is about 4.8 MB. Lines are means over bins (at most ``max_points`` per
line, sent as typed arrays on a regular grid), markers and violation spans are thinned to fixed
caps, so the data adds a few hundred kB at most, whatever the trace length.
"""

from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from leadtime.config import EngineSpec
    from simulation.bench import BenchResult, ProducerResult
    from simulation.policies import Leadtime, Observation

MAX_POINTS = 2000  # per line, for one producer (fewer each when several are shown)
MAX_MARKERS = 250  # leadtime decisions drawn per producer
MAX_SPANS = 250  # violation spans drawn per policy and producer
RECORD_LIMIT = 50_000  # decisions kept in memory during the replay, before thinning

# matplotlib's tab10, the colours of simulation.bench.COLOURS (the PNG plots)
TAB = {"tab:blue": "#1f77b4", "tab:orange": "#ff7f0e", "tab:green": "#2ca02c",
       "tab:red": "#d62728", "tab:purple": "#9467bd", "tab:brown": "#8c564b",
       "tab:pink": "#e377c2", "tab:gray": "#7f7f7f", "tab:olive": "#bcbd22",
       "tab:cyan": "#17becf"}

# capacity lines that would hide one another (predictive scale-out often equals the HPA)
DASHES = {"forecast_scale_out": "dash", "crane_ehpa": "dot", "knative_kpa": "dashdot",
          "static_peak": "longdash", "oracle": "longdashdot"}

# the columns of ``leadtime bench autoscale``'s table
COLUMNS = (
    ("slo_violation_pct", "SLO viol %", "{:.3f}"),
    ("underprovisioned_pct", "short %", "{:.2f}"),
    ("instance_hours", "inst-hours", "{:,.1f}"),
    ("cost_vs_oracle", "vs oracle", "{:.2f}"),
    ("p99_latency_ms", "p99 ms", "{:,.0f}"),
    ("scaling_actions", "actions", "{:,}"),
    ("slo_misses", "misses", "{:,}"),
    ("slo_miss_minutes", "miss min", "{:,.0f}"),
)


@dataclass(frozen=True)
class Mark:
    """One leadtime decision that changed the fleet, with what the engine said about it."""

    step: int
    action: str
    current: int
    target: int
    load_score: float | None
    weights: dict[str, float]
    reasons: tuple[str, ...]


class DecisionRecord:
    """The leadtime policy, recording each pass whose decision scales (bounded).

    A drop-in for :class:`simulation.policies.Leadtime` in :func:`simulation.simulator.simulate`:
    it decides through the wrapped policy and keeps, from the loop's latest pass, the decisions
    that are not ``hold`` (at most ``limit``; ``seen`` counts them all).
    """

    name = "leadtime"

    def __init__(self, policy: Leadtime, limit: int = RECORD_LIMIT) -> None:
        self.policy = policy
        self.limit = limit
        self.marks: list[Mark] = []
        self.seen = 0

    def observe(self, obs: Observation) -> None:
        self.policy.observe(obs)  # the warm-up's dry-run passes: not recorded

    def decide(self, obs: Observation) -> int:
        target = self.policy.decide(obs)
        latest = self.policy.loop.latest
        decision = latest.fleet.decisions.get(self.policy.producer_id) if latest else None
        if decision is not None and decision.action != "hold":
            self.seen += 1
            if len(self.marks) < self.limit:
                weights = dict(decision.prediction.weights) if decision.prediction else {}
                self.marks.append(Mark(obs.step, decision.action, decision.current_instances,
                                       decision.target_instances, decision.load_score, weights,
                                       tuple(decision.reasons)))
        return target


@dataclass(frozen=True)
class Replayed:
    marks: list[Mark]
    seen: int
    mismatched_steps: int  # intervals where the replay's fleet differs from the scored run


def leadtime_decisions(res: ProducerResult, engine: EngineSpec) -> Replayed:
    """Replay the leadtime policy of ``res`` on its fitted Tier 1 schedule, recording decisions."""
    from simulation.bench import replay_setup
    from simulation.policies import HPA, Leadtime
    from simulation.simulator import simulate

    demand = res.runs["leadtime"].demand
    _, _, switch, _, _ = replay_setup(pd.Series(demand, index=res.index), res.config)
    record = DecisionRecord(Leadtime(res.config, res.tier1, res.producer, res.index[0], engine))
    run = simulate(demand, res.config, record, HPA(res.config), switch)
    mismatched = int(np.count_nonzero(run.ready != res.runs["leadtime"].ready))
    return Replayed(record.marks, record.seen, mismatched)


# --- downsampling -----------------------------------------------------------------------------


def bin_means(values: np.ndarray, size: int) -> np.ndarray:
    """Means over consecutive bins of ``size`` (NaN-aware; an all-NaN bin stays NaN)."""
    values = np.asarray(values, dtype=float)
    if size <= 1:
        return values.astype(np.float32)
    pad = (-len(values)) % size
    padded = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, size)
    counts = np.isfinite(padded).sum(axis=1)
    sums = np.nansum(padded, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)


def spans(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in ``flags``."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def coarse_spans(flags: np.ndarray, limit: int = MAX_SPANS) -> tuple[list[tuple[int, int]], int]:
    """Spans of ``flags`` in steps, merged on a coarser grid until at most ``limit``; (spans,
    the grid size in steps: 1 when exact)."""
    flags = np.asarray(flags, dtype=bool)
    size = 1
    while True:
        pad = (-len(flags)) % size
        grid = np.concatenate([flags, np.zeros(pad, bool)]).reshape(-1, size).any(axis=1)
        found = spans(grid)
        if len(found) <= limit or size >= len(flags):
            return [(a * size, min(b * size, len(flags))) for a, b in found], size
        size *= 2


def thin(items: list, limit: int) -> list:
    """At most ``limit`` items, evenly spread over the list."""
    if len(items) <= limit:
        return items
    keep = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
    return [items[k] for k in keep]


# --- the figure ------------------------------------------------------------------------------


def _ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Milliseconds since the epoch: what a Plotly date axis reads from numbers."""
    return (index.asi8 // 1_000_000).astype(np.float64)


def _minutes(interval: pd.Timedelta) -> str:
    minutes = interval.total_seconds() / 60
    return f"{minutes:g} min" if minutes >= 1 else f"{interval.total_seconds():g} s"


def _hover(mark: Mark, at: pd.Timestamp, usable: float) -> str:
    score = "n/a" if mark.load_score is None or not math.isfinite(mark.load_score) else (
        f"{mark.load_score:.2f}")
    weights = ", ".join(f"{t}={w:.2f}" for t, w in mark.weights.items()) or "none (reactive)"
    lines = [f"<b>{at:%Y-%m-%d %H:%M}: {mark.action} {mark.current} → {mark.target} instances</b>",
             f"capacity {mark.target * usable:,.0f}; load score {score}; weights {weights}"]
    for reason in mark.reasons:
        wrapped = textwrap.wrap(reason, 90) or [""]
        lines.append("• " + "<br>  ".join(html.escape(w) for w in wrapped))
    return "<br>".join(lines)


def producer_figure(res: ProducerResult, replayed: Replayed | None, max_points: int = MAX_POINTS):
    """Load, capacities, forecast band, decision markers (top) and SLO misses (bottom)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from simulation.bench import COLOURS

    cfg = res.config
    start = int(np.argmax(res.scored))
    idx = res.index[start:]
    steps = len(idx)
    size = max(1, math.ceil(steps / max_points))
    dx_ms = cfg.interval.total_seconds() * 1000 * size
    x0 = idx[0].isoformat()
    bin_label = _minutes(cfg.interval * size)
    usable = cfg.usable_capacity
    names = list(res.runs)

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2],
                        vertical_spacing=0.05)

    def line(y: np.ndarray, **kw) -> go.Scatter:
        return go.Scatter(x0=x0, dx=dx_ms, y=bin_means(y, size), mode="lines", **kw)

    window = res.tier1.window[:, start:]
    band = {"line": {"width": 0}, "legendgroup": "band", "hoverinfo": "skip"}
    fig.add_trace(line(window[1], name="Tier 1 lower", showlegend=False, **band), 1, 1)
    fig.add_trace(line(window[2], name="Tier 1 band (80%)" if res.tier1.level == 80
                       else f"Tier 1 band ({res.tier1.level}%)", fill="tonexty",
                       fillcolor="rgba(31,119,180,0.15)", **band), 1, 1)
    fig.add_trace(line(window[0], name="Tier 1 point", legendgroup="band",
                       line={"color": TAB["tab:blue"], "width": 1, "dash": "dot"}), 1, 1)
    demand = res.runs["oracle"].demand[start:]
    fig.add_trace(line(demand, name="load", line={"color": "black", "width": 1.2}), 1, 1)
    for name in sorted(names, key=lambda n: n == "leadtime"):  # leadtime's line on top
        run = res.runs[name]
        fig.add_trace(line(run.ready[start:] * usable, name=f"{name} capacity",
                           line={"color": TAB[COLOURS[name]], "width": 2.2 if name == "leadtime"
                                 else 1.1, "dash": DASHES.get(name, "solid")}), 1, 1)

    if replayed is not None and replayed.marks:
        shown = thin([m for m in replayed.marks if m.step >= start], MAX_MARKERS)
        for action, symbol, colour in (("scale_out", "triangle-up", TAB["tab:green"]),
                                       ("scale_in", "triangle-down", TAB["tab:red"])):
            mine = [m for m in shown if m.action == action]
            if not mine:
                continue
            at = res.index[[m.step for m in mine]]
            fig.add_trace(go.Scatter(
                x=_ms(at), y=np.array([m.target * usable for m in mine], dtype=np.float32),
                mode="markers", name=f"leadtime {action.replace('_', '-')}",
                marker={"symbol": symbol, "size": 8, "color": colour,
                        "line": {"width": 0.5, "color": "black"}},
                text=[_hover(m, t, usable) for m, t in zip(mine, at)],
                hovertemplate="%{text}<extra></extra>"), 1, 1)

    scored = res.scored[start:]
    ticks = []
    ms = _ms(idx)
    step_ms = cfg.interval.total_seconds() * 1000
    for row, name in enumerate(names):
        found, grid = coarse_spans(res.runs[name].violated[start:] & scored)
        scores = res.metrics[name]  # the table's counts (simulation.metrics.score)
        label = f"{name}: {scores['slo_misses']:,} misses, {scores['slo_miss_minutes']:,.0f} min"
        ticks.append(label + (f" ({_minutes(cfg.interval * grid)} grid)" if grid > 1 else ""))
        colour = TAB[COLOURS[name]]
        starts = np.array([ms[a] for a, _ in found])
        ends = np.array([ms[b - 1] + step_ms for _, b in found])
        xs = np.full(3 * len(found), np.nan)
        xs[0::3], xs[1::3] = starts, ends
        ys = np.where(np.isnan(xs), np.nan, row).astype(np.float32)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{name} SLO miss spans",
                                 line={"color": colour, "width": 7},
                                 showlegend=False, hoverinfo="skip"), 2, 1)
        # a tick per miss, a few pixels wide at any zoom: a one-interval miss in a month of
        # data is narrower than a pixel as a span
        lasted = (ends - starts) / 60000.0
        fig.add_trace(go.Scatter(
            x=(starts + ends) / 2, y=np.full(len(found), row, dtype=np.float32), mode="markers",
            name=f"{name} SLO misses", showlegend=False,
            marker={"symbol": "line-ns", "size": 14, "line": {"width": 3, "color": colour}},
            text=[f"{name}: missed {pd.Timestamp(a, unit='ms'):%Y-%m-%d %H:%M} for "
                  f"{m:g} min" for a, m in zip(starts, lasted)],
            hovertemplate="%{text}<extra></extra>"), 2, 1)
    fig.update_xaxes(type="date", row=1, col=1)
    fig.update_xaxes(type="date", row=2, col=1)
    fig.update_yaxes(title_text=f"load per {_minutes(cfg.interval)}", row=1, col=1)
    fig.update_yaxes(tickvals=list(range(len(names))), ticktext=ticks, automargin=True,
                     range=[len(names) - 0.5, -0.5], row=2, col=1)
    misses = ("every SLO miss, a tick each (more than "
              f"{MAX_SPANS} in a row: merged on the grid its label names)")
    fig.update_layout(
        title={"text": f"{html.escape(res.producer)}: load and ready capacity at "
                       f"{cfg.max_utilisation:.0%} utilisation (means per {bin_label}); "
                       f"bottom: {misses}", "font": {"size": 13}},
        height=680, margin={"l": 70, "r": 20, "t": 60, "b": 40}, hovermode="closest",
        legend={"orientation": "h", "y": -0.08}, template="plotly_white")
    return fig


# --- the page --------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.leadtime td { font-weight: bold; }
p.small, li { font-size: 13px; color: #444; }
code { background: #f4f4f4; padding: 1px 4px; }
"""


def table_html(doc: dict[str, Any], order: tuple[str, ...]) -> str:
    """The score table of ``bench autoscale``, as HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS)
    rows = []
    for policy in order:
        row = doc["policies"].get(policy)
        if row is None:
            continue
        cells = "".join(f"<td>{'-' if row.get(k) is None else f.format(row[k])}</td>"
                        for k, _, f in COLUMNS)
        rows.append(f'<tr class="{policy}"><td>{html.escape(policy)}</td>{cells}</tr>')
    return f"<table><tr><th>policy</th>{head}</tr>{''.join(rows)}</table>"


def write_report(
    result: BenchResult,
    path: Path,
    *,
    command: str | None = None,
    engine: EngineSpec | None = None,
    max_producers: int = 6,
    wall_time_s: float | None = None,
) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path`` and return it."""
    from simulation.bench import engine_spec
    from simulation.policies import POLICIES

    engine = engine or engine_spec(result.level, result.threshold)
    doc = result.to_json()
    s = doc["settings"]
    shown = list(result.producers.values())[:max_producers]
    who = doc["producer"] or f"all {s['producers_simulated']} producers (totals)"
    title = f"autoscale on {result.trace.name}: {who}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>leadtime: {html.escape(title)}</h1>",
        f"<p class='small'>Every policy replayed on the same trace and simulator, scored from "
        f"{html.escape(s['scored_from'])} (the warm-up, {html.escape(str(s['warmup']))}, is "
        f"reactive and not scored). Cells: share of demand that missed the SLO, share short of "
        f"capacity, instance-hours and their ratio to the oracle's, p99 latency, scaling "
        f"actions.</p>",
        table_html(doc, tuple(POLICIES)),
        f"<p class='small'>model {html.escape(str(s['model']))} (upper {s['interval_level_pct']}%, "
        f"gate {s['threshold']}) refit daily ({s['fits']} fits, {s['fit_seconds']} s), spin-up "
        f"{html.escape(str(s['spinup']))}, SLO p99 &le; {s['slo_ms']} ms, target "
        f"{s['target_utilisation']}, max {s['max_utilisation']} utilisation"
        + (f"; wall time {wall_time_s:.1f} s" if wall_time_s is not None else "") + ".</p>",
    ]
    if command:
        parts.append(f"<p class='small'>Made by <code>{html.escape(command)}</code>.</p>")
    notes = list(doc.get("notes", []))
    if len(result.producers) > len(shown):
        notes.append(f"charts for the first {len(shown)} of {len(result.producers)} producers")
    figures = []
    per_line = max(500, MAX_POINTS // len(shown)) if shown else MAX_POINTS
    for k, res in enumerate(shown):
        replayed = leadtime_decisions(res, engine) if "leadtime" in res.runs else None
        if replayed is not None:
            start = int(np.argmax(res.scored))
            scored = sum(m.step >= start for m in replayed.marks)
            notes.append(f"{res.producer}: {scored:,} leadtime decisions scaled the fleet in the "
                         f"scored period; {min(MAX_MARKERS, scored):,} drawn (hover a triangle "
                         "for the engine's reasons)")
            if replayed.mismatched_steps:
                notes.append(f"{res.producer}: the replay that recorded the reasons differs from "
                             f"the scored run at {replayed.mismatched_steps:,} intervals")
        fig = producer_figure(res, replayed, per_line)
        figures.append(f"<h2>{html.escape(res.producer)}</h2>" + fig.to_html(
            full_html=False, include_plotlyjs=(k == 0), config={"displaylogo": False,
                                                                "responsive": True}))
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.extend(figures)
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path
