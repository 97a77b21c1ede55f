"""``leadtime bench similarity``: Tier 3's collaborative filtering side by side with baselines.

(a) **Online demand per (consumer, producer)** on a request trace: every request's demand is
    predicted *before* it is learnt (prequential), by River's ``BiasedMF`` on ``log1p(demand)``
    and by running global, consumer and producer means (falling back to the global mean); MAE.
(b) **Degradation scenario** (``models.tier3.degradation``): the events are streamed through
    :class:`Tier3State` in 30-second batches; after each batch every producer is assessed.
    Flaggers: ``leadtime`` (similar consumers were hit together, more tightly in time than
    independent blips at the observed base rate explain, and similar consumers are not yet), ``two_hit`` (any two consumers hit, similarity ignored) and ``producer_mean``
    (the producer's mean latency-vs-expected over all its consumers above ``1.3×``, the usual
    producer-level alarm). Per incident: minutes from the flag to the first onset in the rest of
    the group (positive = early warning) and to the median onset; false flags are flag episodes
    that start outside every incident on that producer. Flags in the first half of the scenario's
    warm-up (models still learning, no disturbance yet) are not scored, for every flagger.
    ``degradation_seeds`` (``--seeds``) runs (b) over several scenario seeds: per seed and the
    mean/median per flagger.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

TICK = timedelta(seconds=30)


def demand_bench(path: str | Path, n_factors: int = 10, lr: float = 0.05, seed: int = 1) -> dict:
    """Prequential MAE of the demand of each request: BiasedMF vs running means."""
    from river import optim, reco

    from leadtime.data import read_request_trace

    trace = read_request_trace(path)
    frame = trace.frame
    target = trace.schema.target
    if "consumer_id" not in frame.columns:
        raise ValueError(f"{Path(path).name}: no consumer_id column")
    mf = reco.BiasedMF(n_factors=n_factors, bias_optimizer=optim.SGD(lr),
                       latent_optimizer=optim.SGD(lr), seed=seed)
    g_sum = g_n = 0.0
    c_stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    p_stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    errors = {"leadtime": 0.0, "global_mean": 0.0, "consumer_mean": 0.0, "producer_mean": 0.0}
    began = time.perf_counter()
    rows = zip(frame["consumer_id"].astype(str), frame["producer_id"].astype(str),
               frame[target].astype(float))
    for c, p, y in rows:
        glob = g_sum / g_n if g_n else 0.0
        cs, ps = c_stats[c], p_stats[p]
        errors["global_mean"] += abs(y - glob)
        errors["consumer_mean"] += abs(y - (cs[0] / cs[1] if cs[1] else glob))
        errors["producer_mean"] += abs(y - (ps[0] / ps[1] if ps[1] else glob))
        errors["leadtime"] += abs(y - max(math.expm1(mf.predict_one(c, p)), 0.0))
        mf.learn_one(c, p, math.log1p(y))
        g_sum += y
        g_n += 1
        cs[0] += y
        cs[1] += 1
        ps[0] += y
        ps[1] += 1
    count = len(frame)
    return {
        "trace": Path(path).name, "requests": count,
        "consumers": int(frame["consumer_id"].nunique()),
        "producers": int(frame["producer_id"].nunique()), "unit": trace.schema.target_unit,
        "mae": {k: round(v / count, 4) for k, v in errors.items()},
        "model": {"kind": "river.reco.BiasedMF on log1p(demand)", "n_factors": n_factors,
                  "sgd_lr": lr, "seed": seed},
        "seconds": round(time.perf_counter() - began, 1),
    }


def degradation_bench(params=None, config=None) -> dict:
    """Stream the generated scenario through Tier 3 and score the flaggers."""
    from models.tier3.degradation import ScenarioParams, generate
    from models.tier3.events import PerformanceEvent
    from models.tier3.state import Tier3State

    params = params or ScenarioParams()
    scenario = generate(params)
    state = Tier3State(config)
    producers = sorted({e["producer_id"] for e in scenario.events})
    flags: dict[str, dict[str, list]] = {m: defaultdict(list) for m in
                                         ("leadtime", "two_hit", "producer_mean")}
    began = time.perf_counter()
    events = scenario.events
    i, tick_end = 0, events[0]["timestamp"] + TICK
    while i < len(events):
        batch = []
        while i < len(events) and events[i]["timestamp"] < tick_end:
            batch.append(PerformanceEvent(**events[i]))
            i += 1
        state.ingest(batch)
        for p in producers:
            assessment = state.assess(p)
            consumers = state.producer_consumers.get(p, {})
            ewmas = [state.pairs[(c, p)].ewma for c in consumers if (c, p) in state.pairs]
            flags["leadtime"][p].append((tick_end, assessment.flagged))
            flags["two_hit"][p].append((tick_end, len(state.hit_consumers(p)) >= 2))
            flags["producer_mean"][p].append(
                (tick_end, bool(ewmas) and float(np.mean(ewmas)) > math.log(1.3)))
        tick_end += TICK
    seconds = time.perf_counter() - began
    scored_from = events[0]["timestamp"] + timedelta(hours=params.warmup_hours / 2)
    days = (params.hours - params.warmup_hours / 2) / 24.0
    methods = {name: _score_flags(per_p, scenario.incidents, days, scored_from)
               for name, per_p in flags.items()}
    return {
        "scenario": "models.tier3.degradation", "params": params.as_dict(),
        "events": len(events), "incidents": len(scenario.incidents),
        "consumers": len(scenario.groups), "methods": methods,
        "seconds": round(seconds, 1), "events_per_second": round(len(events) / seconds),
    }


def _score_flags(per_producer: dict[str, list], incidents, days: float, scored_from) -> dict:
    warnings, warnings_median, detected, early, false = [], [], 0, 0, 0
    episodes: dict[str, list] = {}
    for p, ticks in per_producer.items():
        starts, previous = [], False
        for t, on in ticks:
            if on and not previous and t >= scored_from:
                starts.append(t)
            previous = on
        episodes[p] = starts
    for p, starts in episodes.items():
        windows = [(inc.t0, inc.end) for inc in incidents if inc.producer_id == p]
        false += sum(1 for t in starts if not any(a <= t <= b for a, b in windows))
    for inc in incidents:
        ticks = per_producer.get(inc.producer_id, [])
        first = next((t for t, on in ticks if on and inc.t0 <= t <= inc.end), None)
        if first is None:
            continue
        detected += 1
        lead = (inc.rest_first_onset - first).total_seconds() / 60.0
        warnings.append(lead)
        warnings_median.append((inc.rest_median_onset - first).total_seconds() / 60.0)
        early += int(lead > 0)
    return {
        "detected": detected, "flagged_before_rest_hit": early,
        "warning_minutes_median": round(float(np.median(warnings)), 1) if warnings else None,
        "warning_minutes_vs_rest_median": (round(float(np.median(warnings_median)), 1)
                                           if warnings_median else None),
        "false_flags": false, "false_flags_per_day": round(false / days, 2),
    }


def run_similarity_bench(requests: str | Path | None, params=None) -> dict:
    """Both parts; (a) is skipped (with the reason) when the trace is missing."""
    document: dict = {}
    if requests is not None and Path(requests).is_file():
        document["demand"] = demand_bench(requests)
    else:
        document["demand"] = {"skipped": f"request trace not found: {requests}"}
    document["degradation"] = degradation_bench(params)
    return document


def degradation_seeds(seeds: list[int], params=None, config=None, workers: int = 1) -> dict:
    """Part (b) on several scenario seeds: per seed, and the mean/median per flagger."""
    from dataclasses import replace

    from models.tier3.degradation import ScenarioParams

    base = params or ScenarioParams()
    runs = [(replace(base, seed=s), config) for s in seeds]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            documents = list(pool.map(_degradation_star, runs))
    else:
        documents = [degradation_bench(p, c) for p, c in runs]
    per_seed = {str(s): d["methods"] for s, d in zip(seeds, documents)}
    summary: dict[str, dict] = {}
    for name in documents[0]["methods"]:
        rows = [d["methods"][name] for d in documents]
        summary[name] = {}
        for key in ("detected", "flagged_before_rest_hit", "warning_minutes_median",
                    "false_flags", "false_flags_per_day"):
            values = [r[key] for r in rows if r[key] is not None]
            summary[name][key] = {"mean": round(float(np.mean(values)), 2) if values else None,
                                  "median": round(float(np.median(values)), 2) if values else None,
                                  "total": round(float(np.sum(values)), 2) if values else None}
    return {"seeds": seeds, "incidents_per_seed": documents[0]["incidents"],
            "params": {k: v for k, v in base.as_dict().items() if k != "seed"},
            "per_seed": per_seed, "summary": summary}


def _degradation_star(args) -> dict:
    return degradation_bench(*args)


def format_seeds_table(document: dict) -> str:
    lines = [f"(b) degradation scenario over seeds {document['seeds']} "
             f"({document['incidents_per_seed']} incidents each): mean (median) per seed"]
    lines.append(f"    {'flagger':<14} {'detected':>12} {'early':>12} {'warn_min':>12} "
                 f"{'false':>12} {'false/day':>12}")
    for name, m in document["summary"].items():
        cells = [f"{m[k]['mean']} ({m[k]['median']})" for k in
                 ("detected", "flagged_before_rest_hit", "warning_minutes_median", "false_flags",
                  "false_flags_per_day")]
        lines.append(f"    {name:<14} " + " ".join(f"{c:>12}" for c in cells))
    lines.append("    per seed (leadtime): " + ", ".join(
        f"{s}: {m['leadtime']['detected']}/{m['leadtime']['flagged_before_rest_hit']} early/"
        f"{m['leadtime']['false_flags']} false" for s, m in document["per_seed"].items()))
    return "\n".join(lines)


def format_table(document: dict) -> str:
    lines = []
    demand = document["demand"]
    if "mae" in demand:
        lines.append(f"(a) online demand per (consumer, producer) on {demand['trace']}: "
                     f"{demand['requests']} requests, MAE in {demand['unit'] or 'target units'}")
        for name, mae in demand["mae"].items():
            lines.append(f"    {name:<15} {mae:8.3f}")
    else:
        lines.append(f"(a) skipped: {demand['skipped']}")
    deg = document["degradation"]
    lines.append(f"(b) degradation scenario: {deg['events']} events, {deg['incidents']} incidents, "
                 f"{deg['consumers']} consumers, params {deg['params']}")
    head = (f"    {'flagger':<14} {'detected':>8} {'early':>6} {'warn_min':>9} "
            f"{'vs_median':>9} {'false':>6} {'false/day':>9}")
    lines.append(head)
    for name, m in deg["methods"].items():
        warn = "-" if m["warning_minutes_median"] is None else f"{m['warning_minutes_median']:.1f}"
        med = "-" if m["warning_minutes_vs_rest_median"] is None else \
            f"{m['warning_minutes_vs_rest_median']:.1f}"
        lines.append(f"    {name:<14} {m['detected']:>4}/{deg['incidents']:<3} "
                     f"{m['flagged_before_rest_hit']:>6} {warn:>9} {med:>9} {m['false_flags']:>6} "
                     f"{m['false_flags_per_day']:>9.2f}")
    return "\n".join(lines)
