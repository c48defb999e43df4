"""The FastAPI application factory. Nothing imported from here loads TensorFlow."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import docs, problems
from app.api.routes import datasets, events, health, jobs, owner_events, ui
from app.db import make_engine, make_session_factory
from app.events.hub import EventHub
from app.events.publisher import make_publisher
from app.migrate import upgrade_to_head
from app.queue import CeleryDoorbell, make_celery
from app.services.jobs import job_owner_lookup
from app.services.owners import KeyCache
from app.services.spec_check import spec_checker
from app.settings import Settings, get_settings

DESCRIPTION = """Train Keras models over HTTP. Upload a dataset, submit a job, and poll its
per-epoch metrics, or stream them live, while a Celery worker runs `model.fit`. Errors are RFC 9457 `application/problem+json`.
Every call except `/health` needs an API key: `Authorization: Bearer ek_…`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.prepare_data_dir()
    engine = make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        upgrade_to_head(settings.resolved_database_url)
        spec_checker.start()
        hub = asyncio.create_task(app.state.hub.run(settings))
        yield
        hub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub
        engine.dispose()

    app = FastAPI(
        title="Epochly",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Any request may be too large or meet a database outage; 401 and 422 go where they apply (problems.py).
        responses=problems.problems(413, 503),
        # Operation ids are the route functions' names (get_job), so generated clients read well.
        generate_unique_id_function=lambda route: route.name,
        # JSON bodies (job specs) are small; the upload route sets its own, larger ceiling.
        max_body_size=settings.max_request_bytes,
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.session_factory = make_session_factory(
        engine, publisher=make_publisher(settings), doorbell=CeleryDoorbell(app.state.celery)
    )
    app.state.hub = EventHub(owner_of=job_owner_lookup(app.state.session_factory))
    app.state.key_cache = KeyCache()
    problems.install(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(owner_events.router)
    ui.install(app)
    return app
