"""/health: is the database reachable, is the broker reachable."""
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import CeleryDep, SessionDep
from app.api.schemas import HealthRead
from app.queue import broker_reachable

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthRead, responses={503: {"model": HealthRead, "description": "A dependency is down"}})
def health(session: SessionDep, celery: CeleryDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "down"
    broker = "ok" if broker_reachable(celery) else "down"
    healthy = database == "ok" and broker == "ok"
    body = HealthRead(status="ok" if healthy else "degraded", database=database, broker=broker)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
