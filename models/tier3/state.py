"""Tier 3's online state: expected experience per (consumer, producer), similarity, risk, load.

* **Expected experience** — River's ``BiasedMF`` learns ``log(latency_ms)`` per (consumer,
  producer): global mean + consumer bias + producer bias + ``u_c · v_p``. Each event is scored
  against the expectation *before* it is learnt; learning uses the residual clipped at three
  running mean absolute residuals (a Huber-like step), and a pair that is degraded is not learnt
  for ``freeze_s`` (then the model adapts: a lasting change becomes the new normal), so an
  incident does not become the new normal within minutes.
* **Degradation** — per pair, an exponentially weighted residual (errors count as
  ``error_penalty``); the consumer is *hit* on the producer when it exceeds ``log(hit_ratio)``
  over at least ``min_events`` events, and recovers below half of that.
* **Similarity** — cosine of the consumers' latent vectors ``u_c`` (consumers with fewer than
  ``min_history`` events are not trusted yet). Consumers whose latent vectors align experience
  producers alike: same region, same request profile.
* **Risk of producer P** — when hit consumers on P that are similar to each other started
  together more tightly than independent blips at the observed base rate explain (a Poisson
  coincidence test, ``coincidence``, level ``coincidence_alpha``: a coherent group, not two
  unrelated blips that overlap), the consumers of P not yet hit but similar to a hit
  one are *at risk*; ``risk`` is their share of P's recent demand. A load-metric alert from the
  streaming detectors (``monitoring``) adds its score too.
* **Prediction** (``leadtime.engine.TierPrediction``) — P's load for the window one lead time
  ahead raised by the risk times the excess latency the hit consumers see (upper bound: every
  at-risk consumer hit alike, and at least the anomalous load value). The base is the load
  nowcast of :mod:`models.tier3.nowcast` once P's ``load`` metric has taught it enough; before
  that, the latest ``load`` sample (else the demand rate of P's events over ``load_window_s``),
  with the current load less its recent spread as the lower bound.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import numpy as np

from leadtime.config import ENGINE_DEFAULTS, PRODUCER_DEFAULTS
from models.tier3.events import MetricSample, PerformanceEvent

# the metrics a producer may report (MetricSample.metric): a producer's states are looked up by
# name, never found by scanning every producer's (which made each pass quadratic in the fleet)
METRIC_NAMES: tuple[str, ...] = get_args(MetricSample.model_fields["metric"].annotation)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECENT_STAMPS = 64  # the samples a series remembers for telling a resent one from a late one


def _seconds(ts: datetime) -> float:
    return (ts - EPOCH).total_seconds()


@dataclass(frozen=True)
class Tier3Config:
    """Knobs of the online state (one set for every producer)."""

    n_factors: int = 8
    lr: float = 0.05
    seed: int = 42
    hit_alpha: float = 0.25  # EW smoothing of a pair's residual (one error alone is no hit)
    hit_ratio: float = 1.8  # hit when latency runs 80 % above expectation
    min_events: int = 10  # events of a pair before it can be judged hit
    freeze_s: float = 1800.0  # a hit pair is not learnt for this long, then the model adapts
    error_penalty: float = math.log(5.0)
    similarity: float = 0.6  # cosine above which two consumers are "alike"
    min_history: int = 15  # events before a consumer's latent vector is trusted
    load_window_s: float = 300.0
    lead_s: float = PRODUCER_DEFAULTS.spinup_lead_time_s  # the load nowcast answers for it
    stale_s: float = 300.0  # a pair event older than its pair's newest by this much: learn only
    dedup_capacity: int = 500_000  # performance events' keys (metric samples dedup per series)
    # common-cause test (see ``Tier3State.coincidence``): hit onsets of similar consumers that are
    # closer in time than independent blips at the observed base rate explain, at level alpha
    coincidence_alpha: float = 0.05
    base_rate_prior_per_day: float = 1.0  # hit episodes per pair per day before any is seen
    # a metric's detector (``monitoring.detectors``: KNN-CAD) takes its windows from the series'
    # own sampling interval, read from its first two samples; its first day of scores sets its
    # alert threshold (never below the detector's own floor)
    calibration_s: float = 86400.0


@dataclass
class PairState:
    ewma: float = 0.0
    n: int = 0
    hit: bool = False
    hit_since: float | None = None
    last_s: float = -math.inf
    first_s: float = math.inf
    onset_s: float | None = None  # first event of the current run of elevated residuals


@dataclass
class MetricState:
    detector: Any
    last_s: float = -math.inf
    # the stamps of its last samples: a resent one is a duplicate, an older unseen one late
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_STAMPS))
    calibration: list[float] = field(default_factory=list)
    threshold: float | None = None
    last_value: float = math.nan
    first: tuple[float, float] | None = None  # (at, value) until the interval is known
    calibration_samples: int = 0
    alert: dict[str, Any] | None = None


@dataclass(frozen=True)
class IngestResult:
    accepted_events: int = 0
    accepted_metrics: int = 0
    duplicates: int = 0
    late: int = 0  # accepted out of order (learnt; a stale pair event does not move hit state)
    late_metrics_skipped: int = 0  # metric samples older than the newest of their series

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Assessment:
    """Tier 3's answer for one producer: the prediction (engine currency), risk and evidence."""

    producer_id: str
    prediction: Any  # leadtime.engine.TierPrediction | None
    risk: float
    flagged: bool
    evidence: dict[str, Any]


class ExperienceModel:
    """River ``BiasedMF`` on ``log(latency_ms)`` with consumer-similarity from its latent vectors."""

    def __init__(self, n_factors: int = 8, lr: float = 0.05, seed: int = 42) -> None:
        from river import optim, reco

        self.mf = reco.BiasedMF(
            n_factors=n_factors, bias_optimizer=optim.SGD(lr), latent_optimizer=optim.SGD(lr),
            seed=seed,
        )
        self.abs_residual = 1.0  # running mean |residual|, scale of the learning clip
        self.counts: dict[str, int] = defaultdict(int)

    def expected(self, consumer: str, producer: str) -> float:
        return float(self.mf.predict_one(consumer, producer))

    def learn(self, consumer: str, producer: str, y: float, expected: float | None = None) -> None:
        expected = self.expected(consumer, producer) if expected is None else expected
        residual = y - expected
        clip = 3.0 * self.abs_residual
        self.mf.learn_one(consumer, producer, expected + max(-clip, min(clip, residual)))
        self.abs_residual += 0.01 * (min(abs(residual), clip) - self.abs_residual)
        self.counts[consumer] += 1

    def vector(self, consumer: str) -> np.ndarray | None:
        if consumer not in self.mf.u_latents:
            return None
        u = np.asarray(self.mf.u_latents[consumer], float)
        norm = float(np.linalg.norm(u))
        return u / norm if norm > 0 else None

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.vector(a), self.vector(b)
        return float(va @ vb) if va is not None and vb is not None else 0.0


def log_latency(latency_ms: float) -> float:
    return math.log(max(latency_ms, 0.0) + 1.0)


class Tier3State:
    """Everything Tier 3 knows, updated one observation at a time; picklable for checkpoints."""

    hit_episodes = 0  # class defaults: checkpoints pickled before these counters existed load
    exposure_s = 0.0
    nowcasts: dict | None = None
    leads: dict | None = None  # producer → (lead time s, level) its nowcast answers for

    def __init__(self, config: Tier3Config | None = None) -> None:
        self.config = config or Tier3Config()
        c = self.config
        self.experience = ExperienceModel(c.n_factors, c.lr, c.seed)
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.producer_consumers: dict[str, dict[str, float]] = defaultdict(dict)  # demand share
        self.demand_buckets: dict[str, dict[int, float]] = defaultdict(dict)  # producer → minute → sum
        self.metrics: dict[tuple[str, str], MetricState] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.events_applied = 0
        self.metrics_applied = 0
        self.watermark_s = -math.inf
        self.hit_episodes = 0  # pairs turning hit: with the exposure, the base rate of hits
        self.exposure_s = 0.0  # sum over pairs of their observed span (pair-seconds)
        self.nowcasts = {}  # producer → LoadNowcast fed by its ``load`` metric
        self.leads = {}  # producer → the lead time its nowcast answers for

    # ----------------------------------------------------------------- ingestion
    def ingest(
        self, events: Iterable[PerformanceEvent] = (), metrics: Iterable[MetricSample] = ()
    ) -> IngestResult:
        """Apply a batch (any order); duplicates are ignored, late events handled."""
        accepted = accepted_m = dup = late = skipped = 0
        for event in sorted(events, key=lambda e: e.timestamp):
            if self._seen(event.key()):
                dup += 1
                continue
            late += self._apply_event(event)
            accepted += 1
        for sample in sorted(metrics, key=lambda m: m.timestamp):  # deduplicated per series
            outcome = self._apply_metric(sample)
            if outcome == "applied":
                accepted_m += 1
            elif outcome == "duplicate":
                dup += 1
            else:
                skipped += 1
        return IngestResult(accepted, accepted_m, dup, late, skipped)

    def _seen(self, key: str) -> bool:
        if key in self.seen:
            return True
        self.seen[key] = None
        if len(self.seen) > self.config.dedup_capacity:
            self.seen.popitem(last=False)
        return False

    def _apply_event(self, event: PerformanceEvent) -> int:
        """Score the event against expectation, update the pair and learn. Returns 1 if late."""
        c = self.config
        t = _seconds(event.timestamp)
        is_late = int(t < self.watermark_s)
        self.watermark_s = max(self.watermark_s, t)
        consumer, producer = event.consumer_id, event.producer_id
        y = log_latency(event.latency_ms)
        expected = self.experience.expected(consumer, producer)
        residual = max(y - expected, c.error_penalty) if event.error else y - expected
        pair = self.pairs.setdefault((consumer, producer), PairState())
        if t >= pair.last_s - c.stale_s:
            pair.ewma = residual if pair.n == 0 else pair.ewma + c.hit_alpha * (residual - pair.ewma)
            pair.n += 1
            if pair.n > 1 and t > pair.last_s:
                self.exposure_s += t - pair.last_s
            pair.first_s = min(pair.first_s, t)
            pair.last_s = max(pair.last_s, t)
            threshold = math.log(c.hit_ratio)
            if not pair.hit:  # onset: the first event of the run of elevated residuals
                if residual > threshold / 2:
                    pair.onset_s = t if pair.onset_s is None else min(pair.onset_s, t)
                else:
                    pair.onset_s = None
            if not pair.hit and pair.n >= c.min_events and pair.ewma > threshold:
                pair.hit, pair.hit_since = True, t
                pair.onset_s = t if pair.onset_s is None else pair.onset_s
                self.hit_episodes += 1
            elif pair.hit and pair.ewma < threshold / 2:
                pair.hit, pair.hit_since, pair.onset_s = False, None, None
        frozen = pair.hit and pair.hit_since is not None and t - pair.hit_since < c.freeze_s
        if not frozen and not event.error:
            self.experience.learn(consumer, producer, y, expected)
        minute = int(t // 60)
        buckets = self.demand_buckets[producer]
        buckets[minute] = buckets.get(minute, 0.0) + event.demand
        horizon = int((self.watermark_s - 2 * c.load_window_s) // 60)
        if len(buckets) > 4 * c.load_window_s / 60:
            for old in [m for m in buckets if m < horizon]:
                del buckets[old]
        shares = self.producer_consumers[producer]
        shares[consumer] = 0.99 * shares.get(consumer, 0.0) + max(event.demand, 1e-6)
        self.events_applied += 1
        return is_late

    def _apply_metric(self, sample: MetricSample) -> str:
        """Score the sample with its series' detector: ``"applied"``; a sample not newer than
        the series' newest is ``"duplicate"`` when its stamp is among the last
        :data:`RECENT_STAMPS` applied, else ``"late"``, and skipped. A series keeps its own
        stamps rather than a key per sample in the events' dedup cache, where a fleet's samples
        would crowd the events out.

        The detector is built at the series' second sample, when its sampling interval is known
        (every window it keeps is a duration over that interval); the first sample is then
        replayed into it.
        """
        from monitoring.detectors import make_detector, samples_in

        c = self.config
        t = _seconds(sample.timestamp)
        key = (sample.producer_id, sample.metric)
        state = self.metrics.get(key)
        if state is None:
            state = self.metrics[key] = MetricState(detector=None)
        recent = getattr(state, "recent", None)  # a checkpoint of an earlier version has none
        if recent is None:
            recent = state.recent = deque(maxlen=RECENT_STAMPS)
        if t <= state.last_s:
            return "duplicate" if t in recent else "late"
        state.last_s = t
        recent.append(t)
        value = float(sample.value)
        if state.detector is None:
            if state.first is None:
                state.first = (t, value)
            else:
                interval = t - state.first[0]
                state.detector = make_detector("leadtime", interval_s=interval)
                # a checkpoint of an earlier version has a config without calibration_s
                calibration_s = getattr(c, "calibration_s", Tier3Config.calibration_s)
                state.calibration_samples = samples_in(calibration_s, interval)
                state.detector.score_learn(state.first[1])
                state.first = None
        score = state.detector.score_learn(value) if state.detector is not None else None
        state.last_value = value
        if sample.metric == "load":
            self.nowcast(sample.producer_id).update(t, value)
        if score is None:  # the series' first sample: nothing to score it against yet
            self.metrics_applied += 1
            return "applied"
        if state.threshold is None:
            state.calibration.append(score)
            # a checkpoint of an earlier version has no count: its detector's day at 5 minutes
            if len(state.calibration) >= getattr(state, "calibration_samples", 288):
                tail = state.calibration[len(state.calibration) // 3:]
                state.threshold = max(state.detector.min_threshold, max(tail))
                state.calibration = []
        elif score <= state.threshold:
            state.alert = None  # alerts are live: they clear when the series calms down
        else:
            state.alert = {"metric": sample.metric, "score": round(score, 4),
                           "threshold": round(state.threshold, 4), "value": sample.value,
                           "at": sample.timestamp.isoformat()}
        self.metrics_applied += 1
        return "applied"

    # ----------------------------------------------------------------- risk and prediction
    def hit_consumers(self, producer: str) -> list[str]:
        return [c for c in self.producer_consumers.get(producer, {})
                if self.pairs.get((c, producer), PairState()).hit]

    def trusted(self, consumer: str) -> bool:
        return self.experience.counts.get(consumer, 0) >= self.config.min_history

    def assess(self, producer: str) -> Assessment:
        """Risk, flag, prediction and evidence for one producer, from the current state."""
        c = self.config
        shares = self.producer_consumers.get(producer, {})
        hit = [h for h in self.hit_consumers(producer) if self.trusted(h)]
        vectors = {k: self.experience.vector(k) for k in shares if self.trusted(k)}
        test = self.coincidence(producer, hit, vectors)
        coherent: list[str] = test["group"] if test and test["p_value"] < c.coincidence_alpha else []
        at_risk: list[dict[str, Any]] = []
        if coherent:
            for k, v in vectors.items():
                if k in hit or v is None:
                    continue
                sims = [(float(v @ vectors[h]), h) for h in coherent if vectors.get(h) is not None]
                best, nearest = max(sims) if sims else (0.0, None)
                if best >= c.similarity:
                    at_risk.append({"consumer_id": k, "similarity": round(best, 3),
                                    "like": nearest})
        total = sum(shares.values()) or 1.0
        risk = sum(shares[a["consumer_id"]] for a in at_risk) / total
        excess = [math.exp(self.pairs[(h, producer)].ewma) for h in hit]
        multiplier = float(np.mean(excess)) if excess else 1.0
        alert = self._load_alert(producer)
        mine = [state for metric in METRIC_NAMES
                if (state := self.metrics.get((producer, metric))) is not None]
        anomaly_score = max(((m.alert or {}).get("score", 0.0) for m in mine), default=0.0)
        flagged = bool(coherent and at_risk)
        evidence = {
            "hit": [{"consumer_id": h, "latency_vs_expected": round(math.exp(self.pairs[(h, producer)].ewma), 2),
                     "since": _iso(self.pairs[(h, producer)].hit_since)} for h in hit],
            "coherent_group": coherent,
            "coincidence": test,
            "at_risk": sorted(at_risk, key=lambda a: -a["similarity"]),
            "at_risk_demand_share": round(risk, 4),
            "anomalies": [m.alert for m in mine if m.alert],
        }
        return Assessment(producer, self._predict(producer, risk, multiplier, alert),
                          round(min(1.0, risk + (1 - risk) * anomaly_score * 0.5), 4), flagged,
                          evidence)

    def phase_samples(self, producer: str) -> tuple:
        """The load nowcast's phase samples (window peaks at this phase in past cycles, one
        array per period): a sizing candidate the loop reads at its grid quantiles
        (``loop.sizing``); empty for a producer without a load metric."""
        nowcast = (self.nowcasts or {}).get(producer)
        return nowcast.phase_samples() if nowcast is not None else ()

    def base_rate(self) -> float:
        """Hit episodes per pair-second so far, shrunk towards the prior (one pair-day of it)."""
        prior = self.config.base_rate_prior_per_day
        return (self.hit_episodes + prior) / (self.exposure_s + 86_400.0)

    def coincidence(self, producer: str, hit: list[str],
                    vectors: dict[str, np.ndarray | None]) -> dict[str, Any] | None:
        """The most significant cluster of hit onsets among similar consumers of ``producer``.

        Null hypothesis: hits are independent blips, each pair turning hit at the observed base
        rate ``λ`` (``base_rate``). For an anchor hit consumer ``a`` with ``n`` trusted similar
        consumers on the producer, the onsets of ``k`` similar hit consumers within a span ``w``
        (floored at the pairs' mean inter-event interval: onsets are not resolved finer) have, given
        ``a``'s, probability ``P(Poisson(n·λ·w) ≥ k − 1)``. A shared cause (the producer degrading
        for a group) starts them together; unrelated blips that merely overlap do not. Returns the
        smallest such p-value with its group, or None with fewer than two similar hit consumers.
        """
        rate = self.base_rate()
        best: dict[str, Any] | None = None
        for a in hit:
            va = vectors.get(a)
            if va is None:
                continue
            alike = [k for k, v in vectors.items()
                     if k != a and v is not None and float(va @ v) >= self.config.similarity]
            members = sorted([a] + [b for b in alike if b in hit],
                             key=lambda x: self._onset(x, producer))
            if len(members) < 2:
                continue
            onsets = [self._onset(x, producer) for x in members]
            for i in range(len(members)):
                for j in range(i + 1, len(members)):
                    group = members[i:j + 1]
                    if a not in group:
                        continue
                    resolution = max(self._interval(x, producer) for x in group)
                    span = max(onsets[j] - onsets[i], resolution)
                    p = _poisson_sf(len(group) - 1, len(alike) * rate * span)
                    if best is None or p < best["p_value"]:
                        best = {"group": group, "span_s": round(onsets[j] - onsets[i], 1),
                                "similar_consumers": len(alike),
                                "base_rate_per_day": round(rate * 86_400, 3),
                                "p_value": float(p)}
        return best

    def _onset(self, consumer: str, producer: str) -> float:
        pair = self.pairs[(consumer, producer)]
        return pair.onset_s if pair.onset_s is not None else (pair.hit_since or pair.last_s)

    def _interval(self, consumer: str, producer: str) -> float:
        pair = self.pairs[(consumer, producer)]
        return (pair.last_s - pair.first_s) / (pair.n - 1) if pair.n > 1 else 60.0

    def _load_alert(self, producer: str) -> dict[str, Any] | None:
        state = self.metrics.get((producer, "load"))
        return state.alert if state is not None else None

    def current_load(self, producer: str) -> tuple[float, float] | None:
        """(load, spread): latest ``load`` sample, else the event demand rate per second."""
        c = self.config
        state = self.metrics.get((producer, "load"))
        if state is not None and math.isfinite(state.last_value):
            return state.last_value, 0.0
        buckets = self.demand_buckets.get(producer)
        if not buckets:
            return None
        end = int(self.watermark_s // 60)
        minutes = max(1, int(c.load_window_s // 60))
        rates = np.array([buckets.get(m, 0.0) / 60.0 for m in range(end - minutes + 1, end + 1)])
        return float(rates.mean()), float(rates.std())

    def configure_producer(self, producer: str, lead_s: float,
                           level: int = ENGINE_DEFAULTS.level) -> None:
        """Answer for ``producer``'s own spin-up lead time and interval level (the decision
        loop sets them from ``leadtime.yaml``). A nowcast built for another lead starts again:
        its ratios were peaks of windows of another length."""
        if self.leads is None:
            self.leads = {}
        wanted = (float(lead_s), int(level))
        if self.leads.get(producer) == wanted:
            return
        self.leads[producer] = wanted
        current = (self.nowcasts or {}).get(producer)
        if current is not None and (current.config.lead_s, current.config.level) != wanted:
            del self.nowcasts[producer]

    def nowcast(self, producer: str):
        """The producer's :class:`models.tier3.nowcast.LoadNowcast` (created on first use)."""
        from models.tier3.nowcast import LoadNowcast, NowcastConfig

        if self.nowcasts is None:  # a checkpoint from before the nowcast existed
            self.nowcasts = {}
        if producer not in self.nowcasts:
            lead, level = (self.leads or {}).get(producer,
                                                (self.config.lead_s, ENGINE_DEFAULTS.level))
            self.nowcasts[producer] = LoadNowcast(NowcastConfig(lead_s=lead, level=level))
        return self.nowcasts[producer]

    def _predict(self, producer: str, risk: float, multiplier: float, alert: dict | None):
        from leadtime.engine import TierPrediction

        uplift = max(multiplier - 1.0, 0.0)
        nowcast = (self.nowcasts or {}).get(producer)  # only producers with a load metric
        base = nowcast.predict() if nowcast is not None else None
        if base is not None:  # the load nowcast for the window one lead time ahead, raised by risk
            point = base.point * (1.0 + risk * uplift)
            upper = base.upper * (1.0 + min(1.0, 2 * risk) * uplift)
            if alert is not None and alert.get("value") is not None:
                upper = max(upper, float(alert["value"]))
                point = max(point, base.point + alert["score"] * max(float(alert["value"]) - base.point, 0.0))
            return TierPrediction(point=point, lower=min(base.lower, point), upper=max(upper, point))
        current = self.current_load(producer)
        if current is None:
            return None
        load, spread = current
        point = load * (1.0 + risk * uplift)
        upper = load * (1.0 + min(1.0, 2 * risk) * uplift) + spread
        if alert is not None and alert.get("value") is not None:
            upper = max(upper, float(alert["value"]))
            point = max(point, load + alert["score"] * max(float(alert["value"]) - load, 0.0))
        lower = max(0.0, min(load, point) - spread)
        return TierPrediction(point=point, lower=lower, upper=max(upper, point))

    def producers(self) -> list[str]:
        return sorted(set(self.producer_consumers) | {p for p, _ in self.metrics})


def _poisson_sf(m: int, mu: float) -> float:
    """P(X ≥ m) for X ~ Poisson(mu), summed from the tail side (exact for small mu)."""
    if m <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    term = math.exp(-mu + m * math.log(mu) - math.lgamma(m + 1))
    total, i = 0.0, m
    while term > 1e-300 and i < m + 200:
        total += term
        i += 1
        term *= mu / i
        if term < total * 1e-12:
            break
    return min(1.0, total)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
