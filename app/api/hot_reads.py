"""The polls that dashboards and scripts send thousands of times a second (GET /v1/jobs/{id}, its
/metrics, a plain job list) and a job's event stream, answered at the application's front door:
before FastAPI's own stack (its error middleware, body-size limit, routing and dependency solving),
which costs more than a poll's answer (bench/poll_profile.py) and which an event stream would hold
for its whole life, ten thousand times over. Only the middleware every response needs wraps them:
the request metrics with the rate-limit headers, and with JSON logs the job's log context.

Nothing is answered differently: the request is authenticated by the same `authenticate`, and the
same route function builds the response. Only the simple shapes take this path (a well-formed job
id; query parameters that are plain digits within the declared bounds); anything else, a bad value
included, goes through FastAPI, which validates it and answers the 422. Errors are rendered by the
app's own exception handlers."""

import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import authenticate, bearer
from app.api.metrics import RequestMetrics
from app.api.middleware import JobLogContext
from app.api.routes import events, jobs
from app.models import Owner
from app.specs import MAX_EPOCHS

Handler = Callable[[Request, Owner], Awaitable[Response]]
JOB_ID = r"job_[0-9a-f]{32}"
JOB = re.compile(rf"/v1/jobs/({JOB_ID})")
METRICS = re.compile(rf"/v1/jobs/({JOB_ID})/metrics")
EVENTS = re.compile(rf"/v1/jobs/({JOB_ID})/events")
LIST_LIMIT_MAX = 200
# Where the front door leaves the matched handler for the request's answer, past the middleware.
HANDLER = "epochly.hot_read"


def _route(name: str) -> APIRoute:
    return next(r for r in (*jobs.router.routes, *events.router.routes) if isinstance(r, APIRoute) and r.name == name)


def _digits(query: dict[str, str], name: str, low: int, high: int, default: int) -> int | None:
    """The parameter when it is plain digits within [low, high]; None sends the request to FastAPI."""
    value = query.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        return None
    return int(value)


def _query(scope: Scope, allowed: frozenset[str]) -> dict[str, str] | None:
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs) or not query.keys() <= allowed:
        return None
    return query


class HotReads:
    """The front door's two halves: `match` picks the requests it answers, `app` answers them."""

    def __init__(self, json_logs: bool) -> None:
        self._routes = {name: _route(name) for name in ("get_job", "get_job_metrics", "list_jobs", "stream_job_events")}
        self.app: ASGIApp = RequestMetrics(JobLogContext(_answer) if json_logs else _answer)

    def match(self, scope: Scope) -> tuple[APIRoute, Handler] | None:
        """The route and its handler when the request is one of the simple shapes served here."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path = scope["path"]
        if path == "/v1/jobs":
            query = _query(scope, frozenset({"limit"}))
            limit = None if query is None else _digits(query, "limit", 1, LIST_LIMIT_MAX, 50)
            if limit is None:
                return None
            return self._routes["list_jobs"], lambda request, owner: jobs.list_jobs(owner, request, limit=limit)
        if match := JOB.fullmatch(path):
            if scope["query_string"]:
                return None
            job_id = match[1]
            return self._routes["get_job"], lambda request, owner: jobs.get_job(job_id, owner, request)
        if match := METRICS.fullmatch(path):
            query = _query(scope, frozenset({"after", "limit"}))
            if query is None:
                return None
            after = _digits(query, "after", 0, MAX_EPOCHS, 0)
            limit = _digits(query, "limit", 1, jobs.MAX_METRICS_PAGE, jobs.METRICS_PAGE)
            if after is None or limit is None:
                return None
            job_id = match[1]
            return self._routes["get_job_metrics"], lambda request, owner: jobs.get_job_metrics(
                job_id, owner, request, after=after, limit=limit
            )
        if match := EVENTS.fullmatch(path):
            query = _query(scope, frozenset({"after"}))
            if query is None:
                return None
            return self._routes["stream_job_events"], partial(_stream, match[1], query.get("after"))
        return None


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    # Built in a call of its own: a stream's response runs for hours, and what built it (the
    # request, the handler and its arguments) is gone by then.
    response = await _response(scope, receive)
    await response(scope, receive, send)


async def _response(scope: Scope, receive: Receive) -> Response:
    handler = scope.pop(HANDLER)
    request = Request(scope, receive)
    try:
        key = await authenticate(request, await bearer(request))
        return await handler(request, key.owner)
    except Exception as exc:
        exception_handler = _exception_handler(scope["app"], exc)
        if exception_handler is None:
            raise
        return await exception_handler(request, exc)


class EpochlyAPI(FastAPI):
    """FastAPI, with the hot reads answered at its front door."""

    hot_reads: HotReads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot_reads.match(scope)
        if hot is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        # The route as FastAPI's routing would have set it (the request metrics label by it).
        scope["route"], scope[HANDLER] = hot
        await self.hot_reads.app(scope, receive, send)


async def _stream(job_id: str, after: str | None, request: Request, owner: Owner) -> Response:
    # The route's own 404 check reads the database; the job as this process serves it says the same.
    await jobs.job_entry(request.app.state, job_id, owner.id)
    return await events.stream_job_events(job_id, owner, request, request.headers.get("last-event-id"), after)


def _exception_handler(app: Any, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The handler the app's ExceptionMiddleware would pick: the nearest class in the exception's MRO."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
