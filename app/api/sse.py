"""The response every Server-Sent Events route returns: a plain ASGI response that writes the frames
its route's async iterator yields, counted in GET /metrics while it is open.

Starlette's StreamingResponse opens an anyio task group per response (a cancel scope, a second task)
to notice a client leaving. Here one task waits for the disconnect and cancels the stream it belongs
to: a thousand streams woken by one epoch cost one task step each, and an idle one holds less."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.metrics import open_stream

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(Response):
    media_type = "text/event-stream"

    # status_code is a parameter so that FastAPI's OpenAPI document reads the route's status from it.
    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None, status_code: int = 200) -> None:
        self.frames = frames
        self.status_code = status_code
        self.background = None
        self.init_headers({**HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with open_stream(scope):
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            task = asyncio.current_task()
            assert task is not None
            client_gone = False

            def on_disconnect(_: object) -> None:
                nonlocal client_gone
                if streaming:  # the callback runs a loop turn later: the stream may have ended since
                    client_gone = True
                    task.cancel()

            streaming = True
            listener = asyncio.ensure_future(_disconnect(receive))
            listener.add_done_callback(on_disconnect)
            try:
                async for chunk in self.frames:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                # The client left: the stream is over, not the server. Any other cancellation goes on.
                if not client_gone or task.uncancel() > 0:
                    raise
            finally:
                streaming = False
                listener.cancel()
                if isinstance(self.frames, AsyncGenerator):  # its cleanup (unsubscribing) runs now, not at GC
                    await self.frames.aclose()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
