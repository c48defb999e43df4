"""ASGI middleware of our own."""

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from app import logs

# A job's own routes; ids are the service's (job_ + hex), so nothing else a client sends lands in a log field.
JOB_PATH = re.compile(r"/v1/jobs/(job_[0-9a-f]{1,64})(?:/|$)")


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
