"""GET /v1/jobs/{id}/events: Server-Sent Events for one job, resumable with Last-Event-ID.

An event id is "<last status seq>.<last epoch>" (progress adds ".<batch>"): everything a client
has seen, so a reconnect replays exactly what it missed from the database, then goes live.

Events are written as bytes straight to the response: one job's event goes to every client
watching it, so the JSON is encoded once (in the hub) and each stream only frames it.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import OwnerDep, SessionDep
from app.api.metrics import open_stream
from app.api.problems import problems
from app.api.routes.jobs import job_entry
from app.db import session_scope
from app.events.hub import REVOKED, encoded_data
from app.events.messages import epoch_message, status_message
from app.lifecycle import TERMINAL
from app.services import jobs as job_service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class EventStream(StreamingResponse):
    """A plain byte stream, not FastAPI's per-item SSE encoder: the frames are built here. Counted in
    GET /metrics while it is open."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with open_stream(scope):
            await super().__call__(scope, receive, send)


# Pub/sub may drop a message (a Redis restart, a full queue): re-read the database this often
# regardless. An idle stream also gets a keep-alive comment then, so proxies don't cut it.
CATCH_UP_S = 10.0
KEEPALIVE = b": ping\n\n"
RETRY_MS = 1000
BACKLOG_PAGE = 1000


# Past any id the service issues, and still a 64-bit integer that both databases compare without overflow.
MAX_CURSOR_PART = 2**62


class Cursor:
    def __init__(self, last_event_id: str | None) -> None:
        self.seq, self.epoch = 0, 0
        parts = (last_event_id or "").split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            self.seq, self.epoch = (min(int(part), MAX_CURSOR_PART) for part in parts[:2])

    def id(self, batch: int | None = None) -> str:
        return f"{self.seq}.{self.epoch}" + (f".{batch}" if batch is not None else "")


def frame(event: str, event_id: str, data: bytes, retry_ms: int | None = None) -> bytes:
    retry = f"retry: {retry_ms}\n".encode() if retry_ms is not None else b""
    return b"event: " + event.encode() + b"\nid: " + event_id.encode() + b"\n" + retry + b"data: " + data + b"\n\n"


def existing_job_id(job_id: str, owner: OwnerDep, session: SessionDep) -> str:
    """Runs before the stream starts, so an unknown job is a plain 404, not a broken stream. The
    session closes when the route returns: the stream itself holds no connection while it waits."""
    return job_service.get_job(session, job_id, owner_id=owner.id).id


@router.get(
    "/{job_id}/events",
    response_class=EventStream,
    responses={
        **problems(404),
        200: {
            "description": "Events `status`, `epoch`, `progress` and a final `end`; comments keep idle streams alive.",
            "content": {
                "text/event-stream": {
                    "example": 'event: epoch\nid: 2.3\ndata: {"epoch": 3, "logs": {"loss": 0.5748, "accuracy": 0.701}, '
                    '"duration_s": 0.4, "finished_at": "2026-11-25T12:00:03Z"}\n\n'
                }
            },
        },
    },
    summary="Stream a job's status changes, epochs and in-epoch progress as Server-Sent Events",
)
async def stream_job_events(
    job_id: Annotated[str, Depends(existing_job_id, scope="function")],
    owner: OwnerDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id")] = None,
    after: Annotated[str | None, Query(description="Same as Last-Event-ID, for clients that cannot set headers")] = None,
) -> EventStream:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    key_id = request.state.key.key_id
    return EventStream(_events(request.app.state, owner.id, job_id, Cursor(last_event_id or after), key_id), headers=headers)


async def _events(state: Any, owner_id: str, job_id: str, cursor: Cursor, key_id: str) -> AsyncIterator[bytes]:
    # Subscribe before reading the backlog, so nothing published in between is missed.
    queue = state.hub.subscribe(job_id)
    state.hub.track_key(key_id, queue)  # a revoked key's stream is closed
    try:
        read_database = True
        while True:
            if read_database:
                status, backlog, complete = await _backlog(state, owner_id, job_id, cursor)
                if backlog:
                    yield b"".join(backlog)
                if not complete:  # a long history: the next page, before anything live
                    continue
                if status in TERMINAL:
                    yield frame("end", cursor.id(), json.dumps({"status": status}).encode(), RETRY_MS)
                    return
                read_database = False
            try:
                first = await asyncio.wait_for(queue.get(), timeout=CATCH_UP_S)
            except TimeoutError:
                yield KEEPALIVE
                # Missed a message? The job as this process serves it says (one read shared by every
                # stream of the job), so ten thousand idle streams do not each read the database.
                entry = await job_entry(state, job_id, owner_id)
                read_database = entry.status != status or entry.epochs_completed != cursor.epoch
                continue
            # Whatever else arrived meanwhile goes out in the same write: a burst of epochs costs
            # each stream one wake-up, not one per epoch. Progress is coalesced to the newest.
            frames: list[bytes] = []
            progress: bytes | None = None
            for message in (first, *_drain(queue)):
                kind, epoch = message["type"], message.get("epoch", 0)
                if kind == REVOKED:
                    return
                if kind == "progress" and epoch == cursor.epoch + 1:
                    progress = frame("progress", cursor.id(message["batch"]), encoded_data(message))
                elif kind == "epoch" and epoch == cursor.epoch + 1:
                    cursor.epoch = epoch
                    frames.append(frame("epoch", cursor.id(), encoded_data(message)))
                    progress = None  # a finished epoch makes the position within it stale
                elif kind == "status" or (kind == "epoch" and epoch > cursor.epoch):
                    # A status change or a gap: the database has the order and the rows, so read it.
                    read_database = True
            if progress is not None:
                frames.append(progress)
            if frames:
                yield b"".join(frames)
    finally:
        state.hub.unsubscribe(job_id, queue)
        state.hub.untrack_key(key_id, queue)


def _drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    messages = []
    while not queue.empty():
        messages.append(queue.get_nowait())
    return messages


async def _backlog(state: Any, owner_id: str, job_id: str, cursor: Cursor) -> tuple[str, list[bytes], bool]:
    """The next page of what the client has not seen (BACKLOG_PAGE epochs at most, so a replay of a
    long finished job never holds its whole history), and whether it reached the end."""

    def read() -> tuple[str, list[dict[str, Any]], bool]:
        with session_scope(state.session_factory) as session:
            status, events, epochs, complete = job_service.stream_backlog(
                session, job_id, owner_id=owner_id, after_seq=cursor.seq, after_epoch=cursor.epoch, limit=BACKLOG_PAGE
            )
            merged = [(e.at, status_message(e)) for e in events] + [(r.finished_at, epoch_message(r)) for r in epochs]
        return status, [m for _, m in sorted(merged, key=lambda pair: pair[0])], complete

    status, messages, complete = await run_in_threadpool(read)
    frames = []
    for message in messages:
        if message["type"] == "status":
            cursor.seq = message["seq"]
        else:
            cursor.epoch = message["epoch"]
        frames.append(frame(message["type"], cursor.id(), encoded_data(message)))
    return status, frames, complete
