"""GET /v1/events: one Server-Sent Events stream of all the caller's jobs, for lists and dashboards.

It carries the live `status`, `epoch` and `progress` events of every job the caller owns, each with
its `job_id`. It does not replay: a client lists its jobs once the stream is open (a `ready` event
says when), and again after a reconnect. One job's full, resumable history is on
/v1/jobs/{id}/events.
"""

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import OwnerDep
from app.api.routes.events import KEEPALIVE, RETRY_MS
from app.api.sse import EventStream, event_stream_content
from app.events.hub import REVOKED, Subscription, owner_encoded_data

router = APIRouter(prefix="/v1", tags=["jobs"])

# An idle owner stream gets a keep-alive comment this often, so proxies don't cut it.
KEEPALIVE_S = 15.0
EVENT_TYPES = frozenset({"status", "epoch", "progress"})


@router.get(
    "/events",
    response_class=EventStream,
    responses={
        200: {
            "description": "A `ready` event once subscribed, then `status`, `epoch` and `progress` events of all the "
            "caller's jobs, each with `job_id`; comments keep idle streams alive.",
            "content": event_stream_content(
                ["ready", "status", "epoch", "progress"],
                'event: epoch\ndata: {"job_id": "job_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "epoch": 3, '
                '"logs": {"loss": 0.5748, "accuracy": 0.701}, "duration_s": 0.4, "finished_at": "2026-11-25T12:00:03Z"}\n\n',
            ),
        },
    },
    summary="Stream the status changes, epochs and progress of all your jobs as Server-Sent Events",
)
async def stream_owner_events(owner: OwnerDep, request: Request) -> EventStream:
    return EventStream(_events(request.app.state, owner.id, request.state.key.key_id))


def owner_frame(message: dict[str, Any]) -> bytes:
    """The same bytes for every stream of the owner: built once per message."""
    built = message.get("_owner_frame")
    if built is None:
        built = message["_owner_frame"] = (
            b"event: " + message["type"].encode() + b"\ndata: " + owner_encoded_data(message) + b"\n\n"
        )
    return built


async def _events(state: Any, owner_id: str, key_id: str) -> AsyncIterator[bytes]:
    inbox: Subscription = state.hub.subscribe_owner(owner_id)
    state.hub.track_key(key_id, inbox)  # a revoked key's stream is closed
    try:
        yield f"retry: {RETRY_MS}\nevent: ready\ndata: {{}}\n\n".encode()
        while True:
            if not await inbox.wait(KEEPALIVE_S):
                yield KEEPALIVE
                continue
            # Whatever arrived meanwhile goes out in one write.
            frames: list[bytes] = []
            for message in inbox.take():
                if message["type"] == REVOKED:
                    return
                if message["type"] in EVENT_TYPES:
                    frames.append(owner_frame(message))
            if frames:
                yield b"".join(frames)
    finally:
        state.hub.unsubscribe_owner(owner_id, inbox)
        state.hub.untrack_key(key_id, inbox)
