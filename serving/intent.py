"""``POST /v1/requests/predict``: a request's predicted demand with bounds (Tier 2).

The champion ``leadtime-intent`` model and its trace's Feast store are loaded once per process
(:class:`IntentRuntime`). Consumer, consumer-type, producer and population features come from
the Feast online store; a consumer without history gets the population's features and the
answer says so. The body is one request object or a list of them; a malformed one gets a 422
whose ``loc`` names the field.

The body is validated strictly (a numeric field takes a JSON number, never a string) before any
model is consulted: against the champion's request schema when one is loaded, else against the
generic request contract (:class:`GenericRequest`), so a malformed body is a 422 even when there
is no champion and a valid one is then a 503. The OpenAPI document publishes the same schema
(:func:`schemas`): the champion's request fields, every one optional, or the generic contract.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from features.store import ENTITY_KEYS
from leadtime.data import SECONDS_UNITS
from models.tier2.online_calibration import widen

MAX_BATCH = 1000
#: The largest magnitude a numeric request field may have (no request size is near it).
MAX_QUANTITY = 1e12
#: Component names of the predict body in the OpenAPI document.
REQUEST, BODY = "IntentRequest", "IntentPredictBody"

_KEYS = {
    "consumer_id": "Optional. The consumer's features come from the online store; absent or "
                   "unknown, the population's are used (the answer says which).",
    "producer_id": "Optional. When given, the predicted demand is announced to the decision "
                   "engine as this producer's Tier 2 demand.",
    "request_type": "Optional. The kind of request (a category of the trace).",
    "request_id": "Optional. With a producer_id and the token, the request is tracked in flight "
                  "(when the champion predicts a run time): it holds capacity from now for its "
                  "predicted run time until POST /v1/requests/progress reports it finished.",
}
_QUEUED = ("Optional, with a tracked request_id. true: a queue holds the request and its start "
           "is unknown; it holds capacity from the earliest moment asked until POST "
           "/v1/requests/progress reports it started (absent or false: it starts now).")


def _key_fields() -> dict[str, Any]:
    return {**{name: (str | None, Field(default=None, max_length=200, description=text))
               for name, text in _KEYS.items()},
            "queued": (bool | None, Field(default=None, description=_QUEUED))}


class GenericRequest(BaseModel):
    """One request, when no intent champion is loaded: the entity keys and the trace's own
    request fields (a category as a string, a quantity as a number), every one optional. The
    loaded champion publishes its exact fields instead."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, Annotated[str, Field(max_length=200)] | float | None]

    consumer_id: str | None = Field(default=None, max_length=200, description=_KEYS["consumer_id"])
    producer_id: str | None = Field(default=None, max_length=200, description=_KEYS["producer_id"])
    request_type: str | None = Field(default=None, max_length=200,
                                     description=_KEYS["request_type"])
    request_id: str | None = Field(default=None, max_length=200, description=_KEYS["request_id"])
    queued: bool | None = Field(default=None, description=_QUEUED)


def body_adapter(one: type[BaseModel]) -> TypeAdapter:
    """The predict body: one request, or a list of at most ``MAX_BATCH`` of them."""
    return TypeAdapter(one | Annotated[list[one], Field(max_length=MAX_BATCH)])


GENERIC = body_adapter(GenericRequest)


@dataclass
class IntentRuntime:
    """Everything one prediction needs, loaded once per process."""

    model: Any  # models.tier2.intent.IntentModel
    store: Any  # feast.FeatureStore
    name: str
    version: str
    trace: str
    adapter: TypeAdapter  # validates one request or a list of them
    reader: Any = None  # features.online.OnlineFeatureReader over ``store``
    # online recalibration (models.tier2.online_calibration): each interval widened by what the
    # finished requests of its calibration key said; None: served as calibrated
    calibration: Any = None

    def __post_init__(self) -> None:
        if self.reader is None:
            from features.online import OnlineFeatureReader

            self.reader = OnlineFeatureReader(self.store)
        self._used = None

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Online features (cached) + the model's fast path; no pandas on the way."""
        features = self.reader.read(rows)
        if self._used is None:
            names = set(self.reader.names) | {"consumer_known"}
            self._used = [f for f in self.model.features if f in names]
        joined = [{**row, **feats} for row, feats in zip(rows, features, strict=True)]
        preds = self.model.predict_rows(joined)
        keys = self.model.row_keys(joined)
        resources = self.model.predict_resources(joined) if self.model.resources else {}
        units = {name: model.unit for name, model in self.model.resources.items()}
        unit = self.model.unit
        calibration = self.calibration
        out = []
        for i, (row, feats, key, bounds) in enumerate(zip(rows, features, keys, preds,
                                                           strict=True)):
            known = feats["consumer_known"] > 0
            point, lower, upper = (bounds if calibration is None
                                   else widen(*bounds, calibration.delta(key)))
            each = ({"resources": {name: dict(zip(("demand", "lower", "upper"), answers[i],
                                                  strict=True), unit=units[name])
                                   for name, answers in resources.items()}}
                    if resources else {})
            out.append({
                "consumer_id": row.get("consumer_id"),
                "demand": point,
                "lower": lower,
                "upper": upper,
                "unit": unit,
                "interval": 0.8,
                "calibration_key": key,
                "consumer_known": known,
                "feature_source": "consumer" if known else "population",
                "features": {f: _plain(feats[f]) for f in self._used},
                **each,
            })
        return out

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "trace": self.trace}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def request_model(model) -> type[BaseModel]:
    """The pydantic model of one request: entity keys + the trace's own request fields.

    The request fields are the trace schema's (kept in the model's metadata), so a request is
    validated the same way whichever feature set the intent model was chosen with.
    """
    fields: dict[str, Any] = _key_fields()
    from features.definitions import feature_refs

    history = {ref.split(":", 1)[1] for ref in feature_refs()} | {"consumer_known"}
    categorical = set(model.categorical) | set(model.meta.get("request_categorical", []))
    ranges = {k: tuple(v) for k, v in model.meta.get("request_ranges", {}).items()}
    names = [*model.meta.get("request_categorical", []), *model.meta.get("request_numeric", []),
             *model.features]
    for name in names:
        if name in fields or name in history or name == model.group_column:
            continue
        if name in categorical:
            fields[name] = (str | None, Field(default=None, max_length=200, description=(
                "Optional (a category as a string); absent: unknown to the model.")))
        else:
            low = -MAX_QUANTITY if ranges.get(name, (-1.0,))[0] < 0 else 0.0
            fields[name] = (float | None, Field(default=None, ge=low, le=MAX_QUANTITY,
                                                description=(
                "Optional (a number); absent: missing to the model. Never negative when the "
                "champion's training data never was.")))
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    doc = (f"One request to {model.meta.get('trace') or 'the trace'}'s producers: the fields of "
           "the loaded intent champion's signature; every one is optional and no other is "
           "accepted.")
    return create_model(REQUEST, __config__=config, __doc__=doc, **fields)


def schemas(get_runtime) -> dict[str, Any]:
    """The OpenAPI components of the predict body: the champion's, else the generic contract."""
    from serving.contract import component_schemas

    try:
        adapter = get_runtime().adapter
    except LookupError:
        adapter = GENERIC
    out = component_schemas(BODY, adapter)
    out[BODY]["description"] = f"One request or a list of at most {MAX_BATCH} of them."
    return out


def load_runtime(settings, name: str | None = None) -> IntentRuntime:
    """Load the champion intent model and open its trace's Feast store."""
    from features.store import open_store, repo_dir
    from models.registry import champion_version, model_uri
    from models.tier2.registry import MODEL_NAME, load_pyfunc_model

    settings.prepare()
    name = name or MODEL_NAME
    champion = champion_version(name)
    if champion is None:
        raise LookupError(f"no champion version of {name!r}; run `leadtime intent retrain`")
    model = load_pyfunc_model(model_uri(name))
    trace = champion.tags.get("trace") or model.meta.get("trace", "")
    repo = repo_dir(settings, trace)
    if not (repo / "feature_store.yaml").is_file():
        raise LookupError(f"no Feast repo for {trace!r} at {repo}; run features-materialize")
    store = open_store(repo)
    one = request_model(model)
    return IntentRuntime(model, store, name, str(champion.version), trace, body_adapter(one))


class RequestProgress(BaseModel):
    """One tracked request's progress: which, and when (Unix seconds; default: now)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    producer_id: str = Field(min_length=1, max_length=200)
    request_id: str = Field(min_length=1, max_length=200)
    at_s: float | None = Field(default=None, ge=0, le=1e11)


class ProgressBatch(BaseModel):
    """The body of ``POST /v1/requests/progress``: requests that started (a queue held them
    until then) and requests that finished (they leave the in-flight ledger)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    started: list[RequestProgress] = Field(default_factory=list, max_length=10_000)
    finished: list[RequestProgress] = Field(default_factory=list, max_length=10_000)


class InFlightCollector:
    """``/metrics``: requests tracked in flight, the queue waits recorded, progress reports for
    requests the ledger does not hold (late, or never announced), and requests dropped
    unfinished."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ledger = self.ledger
        producers = ledger.owners()  # a request once, not once per resource it holds
        held = sum(ledger.in_flight(p) for p in producers)
        yield GaugeMetricFamily("leadtime_tier2_in_flight_requests",
                                "Requests Tier 2 tracks as running or queued.", value=held)
        yield GaugeMetricFamily("leadtime_tier2_queued_requests",
                                "Tracked requests announced as queued, not yet reported started.",
                                value=sum(ledger.queued(p) for p in producers))
        waits = [ledger.waits_recorded(p) for p in producers]
        yield GaugeMetricFamily("leadtime_tier2_queue_waits_recorded",
                                "Queue waits Tier 2 has recorded (announced as queued to reported "
                                "started), over every producer.", value=sum(waits))
        yield GaugeMetricFamily("leadtime_tier2_queue_learnt_producers",
                                "Producers whose queued requests start when their recorded waits "
                                "say they may (enough waits recorded); the others' start at once.",
                                value=sum(n >= ledger.min_recorded for n in waits))
        yield GaugeMetricFamily("leadtime_tier2_run_times_recorded",
                                "Run times Tier 2 has recorded (reported started to reported "
                                "finished, over the prediction), over every producer: a running "
                                "request ends where the longer ones say it may.",
                                value=sum(ledger.runs_recorded(p) for p in producers))
        yield CounterMetricFamily("leadtime_tier2_unknown_progress",
                                  "Progress reports for a request the ledger does not hold "
                                  "(late, unknown producer, or never announced).",
                                  value=ledger.late)
        yield CounterMetricFamily("leadtime_tier2_dropped_requests",
                                  "Tracked requests dropped without a finish report.",
                                  value=ledger.dropped)
        calibration = ledger.calibration
        if calibration is not None:
            outcomes = calibration.outcomes()
            scored = CounterMetricFamily(
                "leadtime_tier2_interval_outcomes", "Finished tracked requests scored against "
                "their 80 % interval, per calibration key.", labels=["key"])
            covered = GaugeMetricFamily(
                "leadtime_tier2_interval_coverage", "Share of those whose run time fell inside "
                "the interval they were served (the target is 0.8).", labels=["key"])
            widening = GaugeMetricFamily(
                "leadtime_tier2_interval_widening", "How far online recalibration widens the "
                "calibrated interval now, each side, in log1p units (negative: narrows).",
                labels=["key"])
            for key, entry in outcomes.items():
                scored.add_metric([key], entry["outcomes"])
                covered.add_metric([key], entry["coverage"])
                widening.add_metric([key], entry["delta"])
            yield scored
            yield covered
            yield widening


def router(get_runtime, announced=None, clock=None, *, settings=None,
           producers=None, inflight=None, resource_keys=None) -> APIRouter:
    """The intent routes; ``get_runtime()`` returns the process's runtime (or raises).

    Predicting is a read and needs no token. Announcing is a write: predictions for requests
    naming a ``producer_id`` of ``producers()`` (the configured fleet) are recorded in
    ``announced`` (:class:`models.tier2.announced.AnnouncedDemand`) at the decision loop's
    ``clock`` time, the demand Tier 2 feeds the engine, only when the request carries the
    bearer token (``settings.api_token``). The answer says how many were announced and, when
    some were not, why. A champion that predicts each declared resource (its schema's
    ``resources:``) announces, for a producer sized on the same resources (``resource_keys()``:
    :meth:`leadtime.config.LeadtimeConfig.resource_keys`), each resource's own demand under
    its key (:func:`resource_shares`), so the binding resource is sized from what the requests
    will hold of it.

    The route is ``async`` and reads the raw body (orjson, then pydantic). Predicting is CPU
    work of well under a millisecond once features are cached, so it runs on the event loop
    (a thread hop would cost more than it saves); when a feature read has to go to the online
    store (a cache miss: SQLite file or Redis round trip), the whole prediction is moved to the
    thread pool so the event loop never waits on I/O.
    """
    api = APIRouter(tags=["intent"])

    from serving.auth import refusal
    from serving.contract import raw_body, read_json, responses, unprocessable

    def announce(request: Request, rows, predictions) -> dict[str, Any]:
        """Record the predictions of requests naming a producer as Tier 2's demand (and, with a
        ``request_id`` and a run-time champion, in the in-flight ledger); say what was not."""
        named = [(row, p) for row, p in zip(rows, predictions, strict=True)
                 if row.get("producer_id")]
        if not named or announced is None:
            return {"announced": 0}
        refused = refusal(settings, request.headers.get("authorization")) if settings else None
        if refused is not None:
            return {"announced": 0, "not_announced": (
                f"{len(named)} request(s) name a producer but were not announced to the engine: "
                f"announcing needs the bearer token ({refused[1]})")}
        fleet = producers() if producers is not None else None
        known = [(row, p) for row, p in named if fleet is None or row["producer_id"] in fleet]
        now = clock.now() if clock is not None else time.time()
        count = announced.add(now, ((row["producer_id"], p["demand"], p["lower"], p["upper"])
                                    for row, p in known))
        out: dict[str, Any] = {"announced": count}
        unit = str(predictions[0]["unit"])
        run_time = unit.strip().lower() in SECONDS_UNITS
        keys = resource_keys() if resource_keys is not None and predictions[0].get(
            "resources") else {}
        shares = [(row, p, resource_shares(p, keys.get(row["producer_id"], {}), run_time))
                  for row, p in known]
        resourced = [(key, *demand) for _, _, each in shares for key, (demand, _) in
                     each.items()]
        if resourced:
            out["announced_resources"] = announced.add(now, resourced)
        tracked = [(row, p, each) for row, p, each in shares if row.get("request_id")]
        if tracked and inflight is not None:
            if run_time:  # a run time: how long it holds
                for row, p, each in tracked:
                    pid, job, queued = row["producer_id"], row["request_id"], bool(
                        row.get("queued"))
                    duration = (p["demand"], p["lower"], p["upper"])
                    inflight.announce(pid, now, duration, job=job, queued=queued,
                                      key=p.get("calibration_key"))
                    for key, (_, units) in each.items():  # its share of each resource
                        inflight.announce(key, now, duration, units=units, job=job,
                                          queued=queued, owner=pid)
                out["in_flight"] = len(tracked)
            else:
                out["not_in_flight"] = (f"the champion predicts {unit!r}, not a run time in "
                                        "seconds: requests are not tracked in flight")
        if count < len(named):
            unknown = sorted({row["producer_id"] for row, _ in named}
                             - {row["producer_id"] for row, _ in known})[:5]
            out["not_announced"] = (f"{len(named) - count} request(s) name a producer that is "
                                    f"not in leadtime.yaml (e.g. {', '.join(map(repr, unknown))})"
                                    if unknown else f"{len(named) - count} request(s) were not "
                                    "announced: the announced-demand record is full")
        return out

    @api.post("/v1/requests/predict", responses=responses(413, 422, 503),
              openapi_extra=raw_body(BODY, "One request or a list of them: the loaded "
                                           "champion's `IntentRequest`, else `GenericRequest`."))
    async def predict(request: Request) -> Response:
        """Predicted demand of each request, with its 80 % interval and the features used;
        with the bearer token, requests naming a configured producer are announced to the
        engine as its Tier 2 demand."""
        payload, refused = await read_json(request)
        if refused is not None:
            return refused
        if isinstance(payload, list) and len(payload) > MAX_BATCH:
            return unprocessable([{"loc": ["body"], "msg": f"at most {MAX_BATCH} requests per "
                                   "batch", "type": "too_long"}])
        try:
            runtime, missing = get_runtime(), None
        except LookupError as exc:
            runtime, missing = None, str(exc)
        try:  # the body first: a malformed one is a 422 whether or not a champion is loaded
            parsed = (runtime.adapter if runtime is not None else GENERIC).validate_python(payload)
        except ValidationError as exc:
            return unprocessable(_errors(exc, payload))
        if runtime is None:
            raise HTTPException(status_code=503, detail=missing)
        batch = isinstance(parsed, list)
        rows = [item.model_dump() for item in (parsed if batch else [parsed])]
        if not rows:
            return _json(200, {"model": runtime.model_info, "predictions": [], "announced": 0})
        if runtime.reader.cached(rows):
            predictions = runtime.predict(rows)
        else:
            predictions = await run_in_threadpool(runtime.predict, rows)
        told = announce(request, rows, predictions)
        if batch:
            return _json(200, {"model": runtime.model_info, "predictions": predictions, **told})
        return _json(200, {"model": runtime.model_info, **predictions[0], **told})

    from fastapi import Depends

    from serving.auth import token_guard
    from serving.contract import GUARDED, validate_json

    @api.post("/v1/requests/progress", responses=responses(422, *GUARDED),
              dependencies=[Depends(token_guard(settings))] if settings is not None else [],
              openapi_extra=raw_body("ProgressBatch", "Tracked requests that started or "
                                                      "finished (at most 10,000 of each)."))
    async def progress(request: Request) -> Response:
        """Tracked requests that started (a queue held them) or finished (they leave Tier 2's
        in-flight ledger); a report for a request it does not hold is counted, not an error."""
        batch, refused = await validate_json(request, ProgressBatch)
        if refused is not None:
            return refused
        now = clock.now() if clock is not None else time.time()
        ledger = inflight
        if ledger is None:
            raise HTTPException(503, "no in-flight ledger is wired in this process")
        started = sum(ledger.started(e.producer_id, e.request_id,
                                     e.at_s if e.at_s is not None else now)
                      for e in batch.started)
        finished = sum(ledger.finished(e.producer_id, e.request_id,
                                       e.at_s if e.at_s is not None else now)
                       for e in batch.finished)
        unknown = len(batch.started) + len(batch.finished) - started - finished
        return _json(200, {"started": started, "finished": finished, "unknown": unknown})

    return api


def resource_shares(prediction: dict[str, Any], keys: dict[str, str], run_time: bool
                    ) -> dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """Per resource key of the producer whose resource the champion predicts: the request's
    announced demand of it ``(point, lower, upper)`` and the units it holds while it runs,
    with their interval ``(point, lower, upper)``. A
    run-time champion's request holds ``units`` of the resource for its run time, so its
    demand is the product (resource-seconds; the bounds the bounds' products); any other
    champion's resource prediction is that resource's demand itself.

    >>> p = {"demand": 10.0, "lower": 5.0, "upper": 20.0,
    ...      "resources": {"cpu": {"demand": 2.0, "lower": 1.0, "upper": 3.0, "unit": "cores"}}}
    >>> resource_shares(p, {"cpu": "db/cpu", "memory": "db/memory"}, run_time=True)
    {'db/cpu': ((20.0, 5.0, 60.0), (2.0, 1.0, 3.0))}
    """
    out = {}
    for name, r in (prediction.get("resources") or {}).items():
        key = keys.get(name)
        if key is None:
            continue
        point, lower, upper = r["demand"], r["lower"], r["upper"]
        if run_time:
            point, lower, upper = (point * prediction["demand"], lower * prediction["lower"],
                                   upper * prediction["upper"])
        out[key] = ((point, lower, upper), (r["demand"], r["lower"], r["upper"]))
    return out


def progress_schemas() -> dict[str, Any]:
    """The OpenAPI components of ``POST /v1/requests/progress``'s body."""
    from serving.contract import component_schemas

    return component_schemas("ProgressBatch", TypeAdapter(ProgressBatch))


def _json(status: int, content: Any) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status, media_type="application/json")


def _errors(exc: ValidationError, payload: Any) -> list[dict[str, Any]]:
    """Pydantic errors of the branch that matches the body's shape, ``loc`` from ``body``."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = list(err["loc"])
        branch = loc[0] if loc else None
        if isinstance(payload, list) and not str(branch).startswith("list"):
            continue
        if not isinstance(payload, list) and str(branch).startswith("list"):
            continue
        out.append({"loc": ["body", *loc[1:]], "msg": err["msg"], "type": err["type"]})
    return out or [{"loc": ["body"], "msg": "expected a request object or a list of them",
                    "type": "model_type"}]


__all__ = ["ENTITY_KEYS", "GenericRequest", "IntentRuntime", "load_runtime", "request_model",
           "router", "schemas"]
