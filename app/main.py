"""The FastAPI application factory. Nothing imported from here loads TensorFlow."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from app import logs
from app.api import docs, problems
from app.api.deps import SESSION_SLOTS, THREADS, VIEW_READ_THREADS
from app.api.hot_reads import EpochlyAPI, HotReads
from app.api.metrics import RequestMetrics
from app.api.middleware import JobLogContext
from app.api.routes import audit, datasets, events, health, inference, jobs, keys, metrics, owner_events, sweep_events, sweeps, ui
from app.api.served_queues import ServedQueues
from app.api.single_flight import SingleFlight
from app.api.views import JobViews, ReadYourWrites
from app.db import make_engine, make_session_factory, session_scope
from app.events.hub import EventHub
from app.events.publisher import make_publisher
from app.inference.pool import Predictor
from app.migrate import upgrade_to_head
from app.queue import CeleryDoorbell, make_celery
from app.services import owners as owner_service
from app.services.jobs import job_owner_lookup
from app.services.owners import KeyCache, RefusalCounter
from app.services.ratelimit import make_rate_limiter
from app.services.spec_check import spec_checker
from app.settings import Settings, get_settings

log = logging.getLogger("epochly.api")
# Refused calls (401, 403, 429) are counted in memory and added to key_refusal this often.
REFUSALS_SAVE_S = 10.0
DESCRIPTION = """Train Keras models over HTTP. Upload a dataset, submit a job, and poll its
per-epoch metrics, or stream them live, while a Celery worker runs `model.fit`. Errors are RFC 9457 `application/problem+json`.
Every call except `/health` needs an API key: `Authorization: Bearer ek_…`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.prepare_data_dir()
    if settings.log_format == "json":  # after uvicorn set up its loggers, so theirs are replaced too
        logs.use_json(settings.log_level)
    engine = make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        app.state.view_reads = ThreadPoolExecutor(VIEW_READ_THREADS, thread_name_prefix="epochly-views")
        app.state.served_queues = ServedQueues(app.state.session_factory, settings.job_heartbeat_timeout_s, app.state.view_reads)
        publisher.bind(asyncio.get_running_loop())
        upgrade_to_head(settings.resolved_database_url)
        spec_checker.start()
        hub = asyncio.create_task(app.state.hub.run(settings))
        refusals = asyncio.create_task(_save_refusals_every(REFUSALS_SAVE_S))
        # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, the app: some 150,000 objects) lives
        # as long as the process. Left to the collector, each full collection walks them all (60 ms),
        # and a poll that meets one waits: most of the p99 of a busy API. Frozen, they are never walked.
        gc.collect()
        gc.freeze()
        yield
        for task in (hub, refusals):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(_save_refusals)
        app.state.predictor.shutdown()
        app.state.view_reads.shutdown()
        spec_checker.shutdown()
        engine.dispose()

    def _save_refusals() -> None:
        counts = app.state.refusals.drain()
        if counts:
            try:
                with session_scope(app.state.session_factory) as session:
                    owner_service.save_refusals(session, counts)
            except Exception as exc:  # the database is away: these counts are lost, not the service
                log.warning("refused-call counts not saved (%s)", exc)

    async def _save_refusals_every(interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(_save_refusals)

    def _on_control(message: dict[str, Any]) -> None:
        if message.get("type") == owner_service.KEY_REVOKED and isinstance(key_id := message.get("key_id"), str):
            app.state.key_cache.drop(key_id)
            app.state.hub.close_key_streams(key_id)
        elif message.get("type") == "resync":
            app.state.key_cache.clear()
            app.state.job_views.clear()

    app = EpochlyAPI(
        title="Epochly",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry: Epochly exports none, and asking on every request whether
        # a provider is configured cost about 90 µs, a fifth of a poll.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
        # Any request may be too large or meet a database outage; 401 and 422 go where they apply (problems.py).
        responses=problems.problems(413, 503),
        # Operation ids are the route functions' names (get_job), so generated clients read well.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.job_views = JobViews()
    publisher = ReadYourWrites(make_publisher(settings), app.state.job_views)
    app.state.session_factory = make_session_factory(engine, publisher=publisher, doorbell=CeleryDoorbell(app.state.celery))
    app.state.hub = EventHub(owner_of=job_owner_lookup(app.state.session_factory))
    app.state.key_cache = KeyCache()
    app.state.session_slots = asyncio.Semaphore(SESSION_SLOTS)
    app.state.health = None  # (reuse until, HealthRead): see app/api/routes/health.py
    app.state.metrics = None  # (reuse until, the database's metric families): see app/api/routes/metrics.py
    app.state.single_flight = SingleFlight()
    app.state.hub.listeners.append(app.state.job_views.on_event)
    # The warm Keras process for evaluate / predict, spawned on first use (most API processes never need it).
    app.state.predictor = Predictor(settings.predict_cache_bytes, settings.predict_timeout_s)
    app.state.refusals = RefusalCounter()
    app.state.rate_limiter = make_rate_limiter(settings.resolved_broker_url, settings.rate_limit_per_min)
    app.state.hub.control_handlers.append(_on_control)
    if settings.log_format == "json":
        app.add_middleware(JobLogContext)
    app.add_middleware(RequestMetrics)  # the outermost: it times everything inside
    app.hot_reads = HotReads(json_logs=settings.log_format == "json")
    problems.install(app)
    docs.install(app)
    # JSON bodies (job specs) are small; the upload routes set their own, larger ceiling. Set per
    # router, not on the app: an app-wide limit wraps every request in four more layers, held for the
    # whole life of an event stream (app/api/hot_reads.py takes streams past the routers' layers).
    routers = (health, metrics, datasets, jobs, inference, events, owner_events, keys, audit, sweeps, sweep_events)
    for module in routers:
        app.include_router(module.router, max_body_size=settings.max_request_bytes)
    ui.install(app)
    return app
