"""The tier sources of the decision loop: each answers one question for every producer.

The question (``docs/design.md``, "One currency for the tiers"): *what is the peak load of the
window ``[now, now + window)``*, the window being the producer's spin-up lead time plus one
decision interval (:attr:`leadtime.engine.ProducerConfig.window_s`: the capacity decided now
carries the load until the next decision's arrives), as a point with the central ``level`` %
interval, in the producer's own load unit. Tier 1 is asked for exactly that window; Tier 2
projects the demand announced over the last lead time over the next one; Tier 3's windows run
to the first load sample after the lead time, the same window when a pass follows each sample.

* :class:`Tier1Champion`: the registered ``leadtime-baseline`` champion (an MLflow pyfunc), asked
  with ``params={"window_s": window, "level": level}``; the pyfunc answers with
  :meth:`models.tier1.registry.BaselineBundle.window_peak`.
* :class:`Tier1Bundles`: the same :meth:`~models.tier1.registry.BaselineBundle.window_peak`, on
  bundles held in memory (the replay's daily refits, published at each midnight).
* :class:`Tier2Announced`: the demand announced through ``POST /v1/requests/predict``.
* :class:`Tier3Assess`: Tier 3's load nowcast and risk (``Tier3Service`` in serving, the bare
  ``Tier3State`` in the replay: the same class, fed the same observations).

A source that cannot answer says why in ``Answers.error``; the engine renormalises the weights
over the tiers that answered, and the reason reaches ``/readyz`` and the decision.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from leadtime.engine import ProducerConfig, TierPrediction

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from models.tier1.registry import BaselineBundle
    from models.tier2.announced import AnnouncedDemand


@dataclass(frozen=True)
class Answers:
    """One tier's answers for the producers it could answer for, and why not for the others."""

    predictions: dict[str, TierPrediction | None] = field(default_factory=dict)
    error: str | None = None
    # per producer, sizing candidates besides the tier's upper bound: name -> samples of
    # plausible window peaks (one array per condition), read at the sizing quantile in force
    candidates: dict[str, dict[str, tuple]] = field(default_factory=dict)


class TierSource(Protocol):
    tier: str

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers: ...


def _timestamp(now_s: float) -> pd.Timestamp:
    """Unix seconds as the naive timestamps of the load-trace contract (UTC wall time)."""
    return pd.Timestamp(now_s, unit="s")


def _usable(point: float, lower: float, upper: float) -> TierPrediction | None:
    t = TierPrediction(float(point), float(lower), float(upper))
    return t if t.usable() else None


class Tier1Champion:
    """Tier 1 from the registered champion pyfunc (``models:/leadtime-baseline@champion``)."""

    tier = "tier1"

    def __init__(self, model: PyFuncModel) -> None:
        self.model = model

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers:
        start = _timestamp(now_s)
        by_window: dict[float, list[str]] = {}
        for pid, config in producers.items():
            by_window.setdefault(config.window_s, []).append(pid)
        out: dict[str, TierPrediction | None] = {}
        stale: list[str] = []
        for window, ids in by_window.items():
            frame = self.model.predict(
                pd.DataFrame({"producer_id": ids, "timestamp": [start] * len(ids)}),
                params={"level": level, "window_s": float(window)})
            for pid, point, lower, upper, model in zip(ids, frame["point"], frame["lower"],
                                                       frame["upper"], frame["model"]):
                out[pid] = _usable(point, lower, upper)
                if model == "stale":
                    stale.append(pid)
        error = None
        if stale:
            error = (f"champion too stale for now for {', '.join(stale[:5])}: refit it "
                     "(baseline-daily) on recent load")
        return Answers(out, error)


class Tier1Bundles:
    """Tier 1 from in-memory bundles, each published at a moment (the replay's daily refits).

    At ``now`` the newest bundle published at or before ``now`` answers, as the registry's
    champion would: the daily flow publishes a fresh fit each midnight.
    """

    tier = "tier1"

    def __init__(self) -> None:
        self.published_s: list[float] = []
        self.bundles: list[BaselineBundle] = []

    def publish(self, at_s: float, bundle: BaselineBundle) -> None:
        index = bisect.bisect_right(self.published_s, at_s)
        self.published_s.insert(index, at_s)
        self.bundles.insert(index, bundle)

    def at(self, now_s: float) -> BaselineBundle | None:
        index = bisect.bisect_right(self.published_s, now_s) - 1
        return self.bundles[index] if index >= 0 else None

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers:
        bundle = self.at(now_s)
        if bundle is None:
            return Answers({}, "no Tier 1 fit published yet")
        start = _timestamp(now_s)
        out: dict[str, TierPrediction | None] = {}
        missing = []
        for pid, config in producers.items():
            peak = bundle.window_peak(pid, start, config.window_s, level)
            if isinstance(peak, str):
                out[pid] = None
                missing.append(f"{pid} ({peak})")
            else:
                out[pid] = _usable(*peak)
        return Answers(out, f"no Tier 1 answer for {', '.join(missing[:5])}" if missing else None)


class Tier2Announced:
    """Tier 2: the demand announced per producer over its last lead time, times its factor. A
    declared resource answers from what was announced under its own key (a champion that
    predicts each resource: :func:`serving.intent.resource_shares`), else from its producer's
    announced demand times the resource's own factor."""

    tier = "tier2"

    def __init__(self, announced: AnnouncedDemand,
                 scales: Callable[[], Mapping[str, float]],
                 owners: Callable[[], Mapping[str, str]] = dict) -> None:
        self.announced = announced
        self.scales = scales  # () -> tier2_load_per_demand per producer, from the configuration
        self.owners = owners  # () -> the producer of each declared resource's key

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers:
        scales = {p: s for p, s in self.scales().items() if p in producers}
        if not scales:
            return Answers({}, "no producer sets tier2_load_per_demand in the config: announced "
                               "demand is not turned into load")
        owners = self.owners()
        resources = {key: s for key, s in scales.items() if key in owners}
        scales = {p: s for p, s in scales.items() if p not in owners}
        windows = {p: producers[p].spinup_lead_time_s for p in scales}
        answered = self.announced.predict(windows, scales, now_s)
        if resources:
            # a champion that predicts each resource announces under the resource's own key
            answered = dict(answered)
            answered.update(self.announced.predict(
                {k: producers[k].spinup_lead_time_s for k in resources}, resources, now_s))
            # else announced per producer: each resource's share by its own factor
            shared = {k: s for k, s in resources.items() if k not in answered}
            per = self.announced.predict(
                {owners[k]: producers[k].spinup_lead_time_s for k in shared},
                {owners[k]: 1.0 for k in shared}, now_s)
            for key, scale in shared.items():
                if (base := per.get(owners[key])) is not None:
                    answered[key] = TierPrediction(base.point * scale, base.lower * scale,
                                                   base.upper * scale)
            scales.update(resources)
        silent = [p for p in scales if p not in answered]
        error = (f"nothing announced yet through /v1/requests/predict for {', '.join(silent[:5])}"
                 if silent else None)
        return Answers(dict(answered), error)


PHASE = "tier3_phase"  # Tier 3's phase-conditioned window peaks, a sizing candidate


class Tier3Assess:
    """Tier 3: the load nowcast raised by the risk similar consumers and anomalies signal.

    ``target()`` returns anything with ``assess(producer)``, ``phase_samples(producer)`` (its
    sizing candidate) and ``configure_producer(producer, lead_s, level)``: the ``Tier3Service``
    in serving (restored lazily on first use), a ``Tier3State`` in the replay.
    """

    tier = "tier3"

    def __init__(self, target: Callable[[], Any]) -> None:
        self.target = target
        self._configured: dict[str, tuple[float, int]] = {}

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers:
        target = self.target()
        out: dict[str, TierPrediction | None] = {}
        candidates: dict[str, dict[str, tuple]] = {}
        for pid, config in producers.items():
            wanted = (config.spinup_lead_time_s, level)
            if self._configured.get(pid) != wanted:
                target.configure_producer(pid, *wanted)
                self._configured[pid] = wanted
            out[pid] = target.assess(pid).prediction
            phase = target.phase_samples(pid)
            if phase:
                candidates[pid] = {PHASE: phase}
        silent = [pid for pid, p in out.items() if p is None]
        error = (f"no Tier 3 answer yet for {', '.join(silent[:5])}"
                 f"{f' and {len(silent) - 5} more' if len(silent) > 5 else ''} (too few "
                 "observations of their load through POST /v1/observations)" if silent else None)
        return Answers(out, error, candidates=candidates)


@dataclass(frozen=True)
class Unavailable:
    """A source that never answers (a tier not wired, or whose model failed to load)."""

    tier: str
    why: str

    def answer(self, producers: Mapping[str, ProducerConfig], now_s: float,
               level: int) -> Answers:
        return Answers({}, self.why)
