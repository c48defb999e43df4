"""GET /metrics: Prometheus' scrape target (app/api/metrics.py says what it holds). Open like /health
unless METRICS_TOKEN is set; left out of the OpenAPI document, as it is for operators' tools, not
API clients (docs/operations.md describes it)."""

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from app.api.deps import bearer
from app.api.metrics import MEDIA_TYPE, REUSE_S, exposition, read_database_metrics
from app.errors import Unauthorized

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    state = request.app.state
    token = state.settings.metrics_token
    if token and (credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode())):
        raise Unauthorized("GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`")
    cached = state.metrics
    if cached is None or cached[0] <= time.monotonic():
        families = await state.single_flight(
            "metrics", lambda: run_in_threadpool(read_database_metrics, state.session_factory, state.celery, state.settings)
        )
        cached = state.metrics = (time.monotonic() + REUSE_S, families)
    return Response(exposition(cached[1]), media_type=MEDIA_TYPE)
