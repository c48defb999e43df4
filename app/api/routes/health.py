"""/health: is the database reachable, is the broker reachable, does a scheduler lead, which workers are live
(readiness); /health/live: does this process answer at all (liveness)."""

import time
from datetime import timedelta

from celery import Celery
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.api.schemas import DeviceRead, HealthRead, LivenessRead, WorkerRead
from app.db import session_scope
from app.models import utcnow
from app.queue import broker_reachable
from app.repositories import leases
from app.repositories import workers as workers_repo

router = APIRouter(tags=["health"])
REUSE_S = 1.0


@router.get(
    "/health",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "The database or the broker is down: this API process cannot serve"}},
    summary="Health of the database, the broker and the scheduler; the live workers",
    description="503 when the database or the broker is down. A missing scheduler leaves the API serving "
    "(200) but `degraded`: jobs of lost workers are not recovered and forgotten messages not re-sent until one runs.",
)
async def health(request: Request) -> JSONResponse:
    """Checked once a second at most, however many probes ask: a crowd of probes must not take the
    connections and threads that requests need."""
    state = request.app.state
    cached = state.health
    if cached is None or cached[0] <= time.monotonic():
        body = await state.single_flight(
            "health",
            lambda: run_in_threadpool(_check, state.session_factory, state.celery, state.settings.job_heartbeat_timeout_s),
        )
        cached = state.health = (time.monotonic() + REUSE_S, body)
    body = cached[1]
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.database == "ok" and body.broker == "ok" else 503)


def _check(session_factory: sessionmaker[Session], celery: Celery, heartbeat_timeout_s: float) -> HealthRead:
    workers: list[WorkerRead] = []
    try:
        with session_scope(session_factory) as session:
            lease = leases.current(session)
            now = utcnow()
            workers = [
                WorkerRead(
                    id=worker.id,
                    queues=worker.queues,
                    devices=[DeviceRead.model_validate(device) for device in worker.devices],
                    started_at=worker.started_at,
                    heartbeat_age_s=round((now - worker.heartbeat_at).total_seconds(), 1),
                )
                for worker in workers_repo.live(session, now - timedelta(seconds=heartbeat_timeout_s))
            ]
        database = "ok"
    except SQLAlchemyError:
        lease, database = None, "down"
    broker = "ok" if broker_reachable(celery) else "down"
    scheduler = "ok" if leases.is_held(lease) else "down"
    serving = database == "ok" and broker == "ok"
    return HealthRead(
        status="ok" if serving and scheduler == "ok" else "degraded",
        database=database,
        broker=broker,
        scheduler=scheduler,
        scheduler_leader=lease.holder if lease is not None and scheduler == "ok" else None,
        workers=workers,
    )


@router.get(
    "/health/live",
    response_model=LivenessRead,
    summary="Liveness: this API process answers",
    description="Asks neither the database nor the broker, so an outage of either never gets a live process "
    "restarted; `/health` is the readiness check.",
)
async def live() -> LivenessRead:
    return LivenessRead()
