"""/health: is the database reachable, is the broker reachable, does a scheduler lead."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import CeleryDep, SessionDep
from app.api.schemas import HealthRead
from app.queue import broker_reachable
from app.repositories import leases

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "The database or the broker is down: this API process cannot serve"}},
    summary="Health of the database, the broker and the scheduler",
    description="503 when the database or the broker is down. A missing scheduler leaves the API serving "
    "(200) but `degraded`: jobs of lost workers are not recovered and forgotten messages not re-sent until one runs.",
)
def health(session: SessionDep, celery: CeleryDep) -> JSONResponse:
    try:
        lease = leases.current(session)
        database = "ok"
    except SQLAlchemyError:
        lease, database = None, "down"
    broker = "ok" if broker_reachable(celery) else "down"
    scheduler = "ok" if leases.is_held(lease) else "down"
    serving = database == "ok" and broker == "ok"
    body = HealthRead(
        status="ok" if serving and scheduler == "ok" else "degraded",
        database=database,
        broker=broker,
        scheduler=scheduler,
        scheduler_leader=lease.holder if lease is not None and scheduler == "ok" else None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if serving else 503)
