"""GET /v1/sweeps/{id}/events: a sweep as Server-Sent Events.

The stream opens with the whole sweep (`sweep`, as GET /v1/sweeps/{id} returns it), then follows
its trials: `trial_queued`, `trial_started`, `epoch`, `pruned`, `finished`, `best` when the
leaderboard's head changes, and `end` once the sweep is over. Trial events come from comparing the
sweep as read from the database before and after each status change of the owner's jobs (and every
few seconds regardless), so a missed pub/sub message delays an event but never loses it. It does
not replay: a reconnecting client gets a fresh `sweep` first.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, SessionDep
from app.api.problems import problems
from app.api.routes.events import CATCH_UP_S, KEEPALIVE, RETRY_MS, EventStream
from app.api.routes.sweeps import sweep_read
from app.api.schemas import SweepRead, TrialRead
from app.api.sse import event_stream_content
from app.db import session_scope
from app.events.hub import REVOKED
from app.lifecycle import TERMINAL, JobStatus, StopReason
from app.sweeps import service as sweep_service

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


def existing_sweep_id(sweep_id: str, owner: OwnerDep, session: SessionDep) -> str:
    """Before the stream starts, so an unknown sweep is a plain 404."""
    return sweep_service.get_sweep(session, sweep_id, owner_id=owner.id).id


@router.get(
    "/{sweep_id}/events",
    response_class=EventStream,
    responses={
        **problems(404),
        200: {
            "description": "`sweep` first, then `trial_queued`, `trial_started`, `epoch`, `pruned`, `finished`, `best` "
            "and a final `end`; comments keep idle streams alive.",
            "content": event_stream_content(
                ["sweep", "trial_queued", "trial_started", "epoch", "pruned", "finished", "best", "end"],
                'event: epoch\ndata: {"sweep_id": "swp_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "job_id": '
                '"job_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "trial": 3, "epoch": 4, "logs": {"loss": 0.51, '
                '"val_accuracy": 0.83}, "objective": 0.83}\n\n',
            ),
        },
    },
    summary="Stream a sweep's trials as Server-Sent Events: started, epochs, pruned, finished, a new best",
)
async def stream_sweep_events(
    sweep_id: Annotated[str, Depends(existing_sweep_id, scope="function")], owner: OwnerDep, request: Request
) -> EventStream:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStream(_events(request.app.state, owner.id, sweep_id, request.state.key.key_id), headers=headers)


def _frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json.dumps(data, default=str).encode() + b"\n\n"


async def _events(state: Any, owner_id: str, sweep_id: str, key_id: str) -> AsyncIterator[bytes]:
    # Subscribe before the first read, so nothing that happens in between is missed.
    queue = state.hub.subscribe_owner(owner_id)
    state.hub.track_key(key_id, queue)  # a revoked key's stream is closed
    try:
        sweep = await _read(state, owner_id, sweep_id)
        yield f"retry: {RETRY_MS}\n".encode() + _frame("sweep", sweep.model_dump(mode="json"))
        trials = {t.job_id: t for t in sweep.leaderboard}
        metric = sweep.objective.metric
        while sweep.status not in TERMINAL:
            try:
                message = await asyncio.wait_for(queue.get(), timeout=CATCH_UP_S)
            except TimeoutError:
                yield KEEPALIVE
                message = {"type": "status", "job_id": None}
            kind, job_id = message["type"], message.get("job_id")
            if kind == REVOKED:
                return
            if kind == "epoch" and job_id in trials:
                value = message["logs"].get(metric)
                data = {"sweep_id": sweep_id, "job_id": job_id, "trial": trials[job_id].trial, "epoch": message["epoch"]}
                yield _frame("epoch", {**data, "logs": message["logs"], "objective": value})
            elif kind == "status" and (job_id is None or job_id in trials or message.get("status") == JobStatus.QUEUED):
                latest = await _read(state, owner_id, sweep_id)
                for event, data in _changes(sweep, latest):
                    yield _frame(event, data)
                sweep, trials = latest, {t.job_id: t for t in latest.leaderboard}
        yield _frame("end", {"sweep_id": sweep_id, "status": sweep.status})
    finally:
        state.hub.unsubscribe_owner(owner_id, queue)
        state.hub.untrack_key(key_id, queue)


async def _read(state: Any, owner_id: str, sweep_id: str) -> SweepRead:
    def read() -> SweepRead:
        with session_scope(state.session_factory) as session:
            return sweep_read(sweep_service.view(session, sweep_id, owner_id=owner_id))

    return await run_in_threadpool(read)


def _changes(before: SweepRead, after: SweepRead) -> list[tuple[str, Any]]:
    """The trial events between two reads of a sweep, in trial order, and a new best last."""
    seen = {t.job_id: t for t in before.leaderboard}
    events: list[tuple[str, Any]] = []
    for trial in sorted(after.leaderboard, key=lambda t: t.trial):
        old = seen.get(trial.job_id)
        if old is not None and old.status == trial.status:
            continue
        data = {"sweep_id": after.id, **trial.model_dump(mode="json")}
        if old is None:
            events.append(("trial_queued", data))
        if trial.status != JobStatus.QUEUED and (old is None or old.status == JobStatus.QUEUED):
            events.append(("trial_started", data))
        if trial.status in TERMINAL:
            events.append(("pruned" if trial.stop_reason == StopReason.PRUNED else "finished", data))
    if after.best is not None and _key(after.best) != _key(before.best):
        events.append(("best", {"sweep_id": after.id, **after.best.model_dump(mode="json")}))
    return events


def _key(trial: TrialRead | None) -> tuple[str, float | None] | None:
    return (trial.job_id, trial.objective) if trial is not None else None
