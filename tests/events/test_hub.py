"""The per-process hub: every job's events reach its streams and its owner's streams, in order; a
stream's inbox wakes it, holds a bounded backlog, and a revoked key's close gets through regardless."""

import asyncio
import json
import threading

from app.events.hub import REVOKED, STREAM_QUEUE_SIZE, EventHub, Subscription, owner_encoded_data
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
        return alice.take(), bob.take()

    alice, bob = asyncio.run(scenario())
    assert [(m["type"], m["epoch"]) for m in alice] == [("epoch", 1), ("epoch", 2), ("progress", 3), ("epoch", 3)]
    assert bob == []
    assert lookups == ["job_a", "job_gone"]
    assert json.loads(owner_encoded_data(alice[0])) == {"job_id": "job_a", "epoch": 1, "logs": {"loss": 0.5}}


def test_without_owner_streams_the_hub_looks_nothing_up():
    hub = EventHub(owner_of=lambda job_id: (_ for _ in ()).throw(AssertionError("looked up")))

    async def scenario() -> None:
        inbox = hub.subscribe("job_a")
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 1, "logs": {}})
        assert len(inbox.take()) == 1

    asyncio.run(scenario())


def test_a_waiting_stream_wakes_on_a_message_and_takes_everything_offered_meanwhile():
    async def scenario() -> tuple[bool, list[int], bool]:
        inbox = Subscription()
        waiting = asyncio.ensure_future(inbox.wait(5))
        await asyncio.sleep(0)
        for epoch in (1, 2, 3):
            inbox.offer({"type": "epoch", "epoch": epoch})
        woke = await asyncio.wait_for(waiting, 1)
        taken = [m["epoch"] for m in inbox.take()]
        return woke, taken, await inbox.wait(0.01)

    woke, taken, woke_idle = asyncio.run(scenario())
    assert woke and taken == [1, 2, 3]
    assert not woke_idle  # nothing offered: the timeout says so


def test_a_slow_streams_inbox_is_bounded_but_a_revoked_key_still_closes_it():
    async def scenario() -> list[dict]:
        hub = EventHub()
        inbox = hub.subscribe("job_a")
        hub.track_key("key_1", inbox)
        for epoch in range(STREAM_QUEUE_SIZE + 10):
            hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": epoch + 1, "logs": {}})
        hub.close_key_streams("key_1")
        return inbox.take()

    messages = asyncio.run(scenario())
    assert len(messages) == STREAM_QUEUE_SIZE + 1
    assert messages[-1]["type"] == REVOKED


def test_get_takes_one_message_at_a_time_in_order_and_an_unsubscribed_inbox_gets_nothing():
    async def scenario() -> tuple[list[int], list[dict]]:
        hub = EventHub()
        inbox = hub.subscribe("job_a")
        getter = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        for epoch in (1, 2):
            hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": epoch, "logs": {}})
        got = [(await asyncio.wait_for(getter, 1))["epoch"], (await inbox.get())["epoch"]]
        hub.unsubscribe("job_a", inbox)
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 3, "logs": {}})
        return got, inbox.take()

    got, after = asyncio.run(scenario())
    assert got == [1, 2] and after == []
