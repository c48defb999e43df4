"""The response every Server-Sent Events route returns: a plain ASGI response that writes the frames
its route's async iterator yields, counted in GET /metrics while it is open.

Starlette's StreamingResponse opens an anyio task group per response (a cancel scope, a second task)
to notice a client leaving. Here one task waits for the disconnect and cancels the stream it belongs
to: a thousand streams woken by one epoch cost one task step each, and an idle one holds less."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.metrics import open_streams

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_stream_content(events: list[str], example: str) -> dict[str, Any]:
    """A stream route's `text/event-stream` entry in the OpenAPI document. OpenAPI 3.1 has no
    per-event schema (3.2's `itemSchema` fails a 3.1 validator), and tools read `schema` either way:
    as the whole stream, a string (openapi-python-client), or as each event, its fields parsed
    (schemathesis). This one says both: a string, or an object with an event's fields."""
    schema = {
        "type": ["string", "object"],
        "description": "The stream as text; read as one event, the fields an SSE parser gives (`data` is JSON)",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": events},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "id": {"type": "string", "description": "Send it back as Last-Event-ID to resume after it"},
            "retry": {"type": "integer", "minimum": 0, "description": "Milliseconds to wait before reconnecting"},
        },
    }
    return {"text/event-stream": {"schema": schema, "example": example}}


class EventStream(Response):
    media_type = "text/event-stream"

    # status_code is a parameter so that FastAPI's OpenAPI document reads the route's status from it.
    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None, status_code: int = 200) -> None:
        self.frames = frames
        self.status_code = status_code
        self.background = None
        self.init_headers({**HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        open_now = open_streams(scope)
        open_now.inc()
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            # What the disconnect callback needs lives on the response, not in a closure: one idle
            # stream among ten thousand holds a bound method, not a function and its cells.
            task = asyncio.current_task()
            assert task is not None
            self._task = task
            self._client_gone = False
            self._streaming = True
            listener = asyncio.ensure_future(_disconnect(receive))
            listener.add_done_callback(self._on_disconnect)
            try:
                async for chunk in self.frames:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                # The client left: the stream is over, not the server. Any other cancellation goes on.
                if not self._client_gone or self._task.uncancel() > 0:
                    raise
            finally:
                self._streaming = False
                listener.cancel()
                if isinstance(self.frames, AsyncGenerator):  # its cleanup (unsubscribing) runs now, not at GC
                    await self.frames.aclose()
        finally:
            open_now.dec()

    def _on_disconnect(self, _: object) -> None:
        if self._streaming:  # the callback runs a loop turn later: the stream may have ended since
            self._client_gone = True
            self._task.cancel()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
