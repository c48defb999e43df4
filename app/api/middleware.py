"""ASGI middleware of our own."""

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs

# A job's own routes; ids are the service's (job_ + hex), so nothing else a client sends lands in a log field.
JOB_PATH = re.compile(r"/v1/jobs/(job_[0-9a-f]{1,64})(?:/|$)")


class RateLimitHeaders:
    """ASGI middleware: adds the RateLimit-* headers that auth left in the request's state (errors
    included: a 404 or a 429 tells the client where it stands too). Plain ASGI, so it costs next to nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                verdict = scope.get("state", {}).get("ratelimit")
                if verdict is not None:
                    message["headers"] = [*message.get("headers", []), *verdict.headers()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class JobLogContext:
    """ASGI middleware (LOG_FORMAT=json only): a request on one job (/v1/jobs/{job_id}…) logs with its
    job_id, the access line included. Read from the path before routing, so the route's own lines get it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (match := JOB_PATH.match(scope["path"])):
            with logs.job_context(match[1]):
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)
