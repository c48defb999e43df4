"""The per-process hub's owner streams: every job's events reach its owner's streams, in order."""

import asyncio
import json
import threading

from app.events.hub import EventHub, owner_encoded_data
from app.lifecycle import JobStatus


def test_owner_streams_get_their_own_jobs_events_in_order_with_the_owner_looked_up_once():
    lookups: list[str] = []
    release = threading.Event()

    def owner_of(job_id: str) -> str | None:
        lookups.append(job_id)
        release.wait(5)  # a slow database: messages arriving meanwhile must wait, in order
        return {"job_a": "alice", "job_b": "bob"}.get(job_id)

    async def scenario() -> tuple[list[dict], list[dict]]:
        hub = EventHub(owner_of=owner_of)
        alice, bob = hub.subscribe_owner("alice"), hub.subscribe_owner("bob")
        for epoch in (1, 2):
            hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": epoch, "logs": {"loss": 0.5}})
        hub.dispatch({"type": "status", "job_id": "job_gone", "seq": 3, "status": JobStatus.RUNNING})
        await asyncio.sleep(0.05)
        release.set()
        hub.dispatch({"type": "progress", "job_id": "job_a", "epoch": 3, "batch": 1, "batches": 10})
        await asyncio.sleep(0.2)
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 3, "logs": {"loss": 0.4}})
        hub.unsubscribe_owner("bob", bob)
        return [alice.get_nowait() for _ in range(alice.qsize())], [bob.get_nowait() for _ in range(bob.qsize())]

    alice, bob = asyncio.run(scenario())
    assert [(m["type"], m["epoch"]) for m in alice] == [("epoch", 1), ("epoch", 2), ("progress", 3), ("epoch", 3)]
    assert bob == []
    assert lookups == ["job_a", "job_gone"]
    assert json.loads(owner_encoded_data(alice[0])) == {"job_id": "job_a", "epoch": 1, "logs": {"loss": 0.5}}


def test_without_owner_streams_the_hub_looks_nothing_up():
    hub = EventHub(owner_of=lambda job_id: (_ for _ in ()).throw(AssertionError("looked up")))

    async def scenario() -> None:
        queue = hub.subscribe("job_a")
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 1, "logs": {}})
        assert queue.qsize() == 1

    asyncio.run(scenario())
