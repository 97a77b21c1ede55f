"""The leadtime HTTP API: an app factory that mounts one router per concern.

Run it with ``uvicorn --factory serving.app:create_app`` (binds 127.0.0.1 unless told
otherwise). Heavy state (models, Feast stores) is loaded once per process, at start-up, and
the routes only read it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from leadtime.settings import Settings, get_settings
from loop.clock import Clock
from models.tier2.announced import AnnouncedDemand
from models.tier2.inflight import AnnouncedWork, InFlight
from models.tier2.online_calibration import OnlineCalibration


class State:
    """Per-process state shared by the routers (loaded once, read by every request)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.intent: Any = None
        self.intent_error: str | None = None
        self.announced = AnnouncedDemand()  # Tier 2 for the engine, fed by /v1/requests/predict
        # each interval's width follows what the finished requests of its calibration key
        # said (models.tier2.online_calibration), across champions: a drift the last one's
        # calibration missed is likely missed by the next, and 500 outcomes on it is the new
        # champion's own
        self.intervals = OnlineCalibration()
        self.inflight = InFlight(calibration=self.intervals)  # tracked by id, predict to finish
        self.work = AnnouncedWork(self.announced, self.inflight)  # what the loop's Tier 2 reads

    def load_intent(self) -> None:
        """Load the Tier 2 champion and swap it in; on failure keep the last one, and say so."""
        from serving.intent import load_runtime

        try:
            runtime = load_runtime(self.settings)
            runtime.calibration = self.intervals
            self.intent = runtime
            self.intent_error = None
        except Exception as exc:  # no champion, no Feast repo, registry unreachable
            kept = (f"; serving last loaded version {self.intent.version}"
                    if self.intent is not None else "")
            message = str(exc) if isinstance(exc, LookupError) else f"{type(exc).__name__}: {exc}"
            self.intent_error = message + kept

    def intent_status(self) -> dict[str, Any]:
        intent = self.intent
        return {"version": intent.version if intent is not None else None,
                "loaded": intent is not None, "error": self.intent_error}

    def get_intent(self):
        if self.intent is None:
            raise LookupError(self.intent_error or "the intent model is not loaded")
        return self.intent


def create_app(settings: Settings | None = None, *, load: bool = True,
               clock: Clock | None = None) -> FastAPI:
    """Build the API. ``load=False`` skips loading models at start-up (tests of routing);
    ``clock`` is the decision loop's clock (default: the wall clock)."""
    state = State(settings or get_settings())
    from serving.decisions import loop_clock

    clock = loop_clock(state.settings, clock)  # the wall clock, or --as-of's

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if load:
            state.load_intent()
        state.decisions.load(models=load)  # leadtime.yaml always; champions unless load=False
        state.decisions.start()  # the decision loop's first pass, then its schedule
        keda = None
        if state.settings.keda_port is not None:  # KEDA's external scaler, same decisions
            from serving.keda_scaler import KedaServer

            keda = KedaServer(state.decisions, state.settings.keda_host,
                              state.settings.keda_port).start()
            app.state.keda = keda
        try:
            yield
        finally:
            if keda is not None:
                keda.stop()
            state.decisions.stop()

    app = FastAPI(title="leadtime", version="0.1.0", lifespan=lifespan,
                  description="Capacity decided ahead of the load: decisions for allocators, "
                              "Tier 2 request predictions, Tier 3 observations. Every error "
                              "answer is an `ErrorBody`; writes and admin need the bearer token.")
    app.state.leadtime = state
    from serving.limits import RequestLimits

    # the token and the body's size, before any route reads the body (inside /metrics' counter)
    app.add_middleware(RequestLimits, settings=state.settings)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:  # on the event loop: never queued behind workers
        intent = state.intent
        return {
            "status": "ok",
            "intent": intent.model_info if intent is not None else {"error": state.intent_error},
        }

    from serving.intent import router as intent_router

    # the configured producers (the only ones Tier 2 records), as the decision runtime knows them
    app.include_router(intent_router(state.get_intent, state.announced, clock,
                                     settings=state.settings,
                                     producers=lambda: state.decisions.known_producers(),
                                     inflight=state.inflight,
                                     resource_keys=lambda: state.decisions.resource_keys()))
    from serving.observations import router as observations_router

    tier3_routes = observations_router(state.settings, clock)
    app.include_router(tier3_routes)
    from serving.decisions import mount as mount_decisions

    state.decisions = mount_decisions(app, state.settings, tier3=tier3_routes.tier3_service,
                                      tier2=state.work, clock=clock)
    from serving.intent import InFlightCollector

    state.decisions.metrics.registry.register(InFlightCollector(state.inflight))
    # POST /v1/admin/reload re-reads the Tier 2 champion too; /readyz reports it
    state.decisions.reload_hooks.append(state.load_intent)
    state.decisions.champion_status["leadtime-intent"] = state.intent_status  # models.tier2.registry.MODEL_NAME
    _contract(app, state)
    return app


def _contract(app: FastAPI, state: State) -> None:
    """The OpenAPI document's body schemas (the predict one follows the loaded Tier 2 champion,
    so the document is rebuilt when it changes) and 405 answers naming the right methods."""
    from serving import intent, observations
    from serving.contract import install_allow_header, install_schemas, install_validation_answer

    def schemas() -> dict[str, Any]:
        return {**observations.schemas(), **intent.schemas(state.get_intent),
                **intent.progress_schemas()}

    install_schemas(app, schemas, key=lambda: (id(state.intent), getattr(state.intent, "version", None)))
    install_allow_header(app)
    install_validation_answer(app)
