"""GET /v1/jobs/{id}/events: Server-Sent Events for one job, resumable with Last-Event-ID.

An event id is "<last status seq>.<last epoch>" (progress adds ".<batch>"): everything a client
has seen, so a reconnect replays exactly what it missed from the database, then goes live.

Events are written as bytes straight to the response: one job's event goes to every client
watching it, so its frame is built once (streams at the same status seq send the same bytes) and
each stream only writes it.
"""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, SessionDep
from app.api.problems import problems
from app.api.routes.jobs import job_entry
from app.api.sse import EventStream, event_stream_content
from app.db import session_scope
from app.events.hub import REVOKED, Subscription, encoded_data
from app.events.messages import epoch_message, status_message
from app.lifecycle import TERMINAL
from app.services import jobs as job_service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


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


def live_frame(event: str, message: dict[str, Any], cursor: Cursor, batch: int | None = None) -> bytes:
    """The frame of a live message for a stream at `cursor`. Its id differs between streams only by
    their status seq, so the frame is built once per message for all streams at the same seq."""
    cached = message.get("_frame")
    if cached is not None and cached[0] == cursor.seq:
        return cached[1]
    built = frame(event, cursor.id(batch), encoded_data(message))
    message["_frame"] = (cursor.seq, built)
    return built


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
            "content": event_stream_content(
                ["status", "epoch", "progress", "end"],
                'event: epoch\nid: 2.3\ndata: {"epoch": 3, "logs": {"loss": 0.5748, "accuracy": 0.701}, '
                '"duration_s": 0.4, "finished_at": "2026-11-25T12:00:03Z"}\n\n',
            ),
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
    key_id = request.state.key.key_id
    return EventStream(_events(request.app.state, owner.id, job_id, Cursor(last_event_id or after), key_id))


async def _events(state: Any, owner_id: str, job_id: str, cursor: Cursor, key_id: str) -> AsyncIterator[bytes]:
    # Subscribe before reading the backlog, so nothing published in between is missed.
    inbox: Subscription = state.hub.subscribe(job_id)
    state.hub.track_key(key_id, inbox)  # a revoked key's stream is closed
    try:
        read_database = True
        while True:
            if read_database:
                status, backlog, complete = await _backlog(state, owner_id, job_id, cursor)
                if backlog:
                    yield backlog
                if not complete:  # a long history: the next page, before anything live
                    continue
                if status in TERMINAL:
                    yield frame("end", cursor.id(), json.dumps({"status": status}).encode(), RETRY_MS)
                    return
                read_database = False
            if not await inbox.wait(CATCH_UP_S):
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
            for message in inbox.take():
                kind, epoch = message["type"], message.get("epoch", 0)
                if kind == REVOKED:
                    return
                if kind == "progress" and epoch == cursor.epoch + 1:
                    progress = live_frame("progress", message, cursor, message["batch"])
                elif kind == "epoch" and epoch == cursor.epoch + 1:
                    cursor.epoch = epoch
                    frames.append(live_frame("epoch", message, cursor))
                    progress = None  # a finished epoch makes the position within it stale
                elif kind == "status" or (kind == "epoch" and epoch > cursor.epoch):
                    # A status change or a gap: the database has the order and the rows, so read it.
                    read_database = True
            if progress is not None:
                frames.append(progress)
            if frames:
                yield b"".join(frames)
    finally:
        state.hub.unsubscribe(job_id, inbox)
        state.hub.untrack_key(key_id, inbox)


async def _backlog(state: Any, owner_id: str, job_id: str, cursor: Cursor) -> tuple[str, bytes, bool]:
    """The next page of what the client has not seen (BACKLOG_PAGE epochs at most, so a replay of a
    long finished job never holds its whole history), framed, and whether it reached the end.

    A status change wakes every stream of the job at once, all at the same position: they share one
    read and its frames, and so do streams opening meanwhile. A read is shared only until the hub
    dispatches another message (the hub's count is in the key): a stream that subscribed after the
    read began can then miss nothing, since what the read did not see was dispatched after it
    subscribed."""
    start = Cursor(cursor.id())

    def read() -> tuple[str, bytes, Cursor, bool]:
        with session_scope(state.session_factory) as session:
            status, events, epochs, complete = job_service.stream_backlog(
                session, job_id, owner_id=owner_id, after_seq=start.seq, after_epoch=start.epoch, limit=BACKLOG_PAGE
            )
            merged = [(e.at, status_message(e)) for e in events] + [(r.finished_at, epoch_message(r)) for r in epochs]
        frames = []
        for _, message in sorted(merged, key=lambda pair: pair[0]):
            if message["type"] == "status":
                start.seq = message["seq"]
            else:
                start.epoch = message["epoch"]
            frames.append(frame(message["type"], start.id(), encoded_data(message)))
        return status, b"".join(frames), start, complete

    key = ("backlog", job_id, owner_id, cursor.seq, cursor.epoch, state.hub.dispatched)
    status, frames, reached, complete = await state.single_flight(key, lambda: run_in_threadpool(read))
    cursor.seq, cursor.epoch = reached.seq, reached.epoch
    return status, frames, complete
