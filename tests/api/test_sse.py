"""EventStream at the ASGI level: a client that leaves ends its stream and frees its subscription at
once; a revoked key ends an owner stream; a cancellation that is not the client's goes on. And the
job stream's backlog: streams at the same position share one read."""

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from app.api.routes import events
from app.api.routes.owner_events import _events as owner_events
from app.api.sse import EventStream
from app.db import session_scope
from app.events.hub import EventHub
from app.services import jobs as job_service
from tests.api.test_jobs import tutorial_job

SCOPE = {"type": "http", "method": "GET", "path": "/v1/events", "headers": []}


class Client:
    """The server side of one connection: what was sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.body_read = False

    async def receive(self) -> dict[str, Any]:
        if not self.body_read:
            self.body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    @property
    def finished(self) -> bool:
        return any(m["type"] == "http.response.body" and not m["more_body"] for m in self.sent)


async def until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met")


def test_a_client_that_leaves_ends_its_stream_and_frees_its_subscription():
    hub = EventHub(owner_of=lambda job_id: "alice")

    async def scenario() -> tuple[Client, list[dict[str, Any]]]:
        client = Client()
        stream = EventStream(owner_events(SimpleNamespace(hub=hub), "alice", "key_1"))
        served = asyncio.ensure_future(stream(dict(SCOPE), client.receive, client.send))
        await until(lambda: b"event: ready" in client.body)
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 1, "logs": {"loss": 0.5}})
        await until(lambda: b"event: epoch" in client.body)
        client.gone.set()
        await asyncio.wait_for(served, 1)  # returns, not cancelled: the server's task goes on
        probe = hub.subscribe_owner("alice")  # the only inbox left: a message reaches it and no other
        hub.dispatch({"type": "epoch", "job_id": "job_a", "epoch": 2, "logs": {}})
        return client, probe.take()

    client, probe = asyncio.run(scenario())
    assert client.sent[0] == {"type": "http.response.start", "status": 200, "headers": client.sent[0]["headers"]}
    assert (b"content-type", b"text/event-stream; charset=utf-8") in client.sent[0]["headers"]
    assert b'event: epoch\ndata: {"job_id": "job_a", "epoch": 1, "logs": {"loss": 0.5}}\n\n' in client.body
    assert not client.finished  # nobody is there to read an end
    assert [m["epoch"] for m in probe] == [2]


def test_a_revoked_key_ends_its_streams_and_the_response_completes():
    hub = EventHub(owner_of=lambda job_id: "alice")

    async def scenario() -> Client:
        client = Client()
        stream = EventStream(owner_events(SimpleNamespace(hub=hub), "alice", "key_1"))
        served = asyncio.ensure_future(stream(dict(SCOPE), client.receive, client.send))
        await until(lambda: b"event: ready" in client.body)
        hub.close_key_streams("key_1")
        await asyncio.wait_for(served, 1)
        return client

    client = asyncio.run(scenario())
    assert client.finished


def test_a_cancellation_that_is_not_the_clients_goes_on():
    closed: list[bool] = []

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": ping\n\n"
            await asyncio.sleep(30)
        finally:
            closed.append(True)

    async def scenario() -> None:
        client = Client()
        served = asyncio.ensure_future(EventStream(frames())(dict(SCOPE), client.receive, client.send))
        await until(lambda: client.body)
        served.cancel()
        await served

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
    assert closed == [True]


def test_streams_at_the_same_position_share_one_backlog_read_until_the_hub_dispatches_again(
    client, example_dataset, monkeypatch
):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    state = client.app.state
    with session_scope(state.session_factory) as session:
        owner_id = job_service.get_any_job(session, job_id).owner_id
    reads: list[int] = []
    stream_backlog = job_service.stream_backlog

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["after_seq"])
        return stream_backlog(*args, **kwargs)

    monkeypatch.setattr(events.job_service, "stream_backlog", counted)

    async def scenario() -> list[tuple[str, bytes, bool]]:
        cursors = [events.Cursor(None) for _ in range(4)]
        opened = []
        for cursor in cursors[:2]:
            state.hub.subscribe(job_id)
            opened.append(asyncio.ensure_future(events._backlog(state, owner_id, job_id, cursor)))
        await asyncio.sleep(0)  # both have asked: one read is under way
        # Subscribed after that read began, but nothing was dispatched since: the read serves it too.
        state.hub.subscribe(job_id)
        opened.append(asyncio.ensure_future(events._backlog(state, owner_id, job_id, cursors[2])))
        await asyncio.sleep(0)
        # A message dispatched while the read runs may be one the read missed and a stream that
        # subscribes now never receives: that stream reads for itself.
        state.hub.dispatch({"type": "progress", "job_id": "job_" + "0" * 32, "epoch": 1, "batch": 1, "batches": 2})
        state.hub.subscribe(job_id)
        opened.append(asyncio.ensure_future(events._backlog(state, owner_id, job_id, cursors[3])))
        results = await asyncio.gather(*opened)
        assert len({c.id() for c in cursors}) == 1
        return results

    results = client.portal.call(scenario)
    assert len(reads) == 2
    assert results[0] == results[1] == results[2] == results[3]
    assert results[0][1].startswith(b"event: status\nid: ") and results[0][0] == "queued"


def test_a_live_frame_is_built_once_for_streams_at_the_same_status_seq_and_anew_for_another():
    message = {"type": "epoch", "job_id": "job_a", "epoch": 3, "logs": {"loss": 0.5}}
    at_seq_2, also_at_seq_2, at_seq_5 = events.Cursor("2.3"), events.Cursor("2.3"), events.Cursor("5.3")
    first = events.live_frame("epoch", message, at_seq_2)
    assert events.live_frame("epoch", message, also_at_seq_2) is first
    assert first == b'event: epoch\nid: 2.3\ndata: {"epoch": 3, "logs": {"loss": 0.5}}\n\n'
    assert events.live_frame("epoch", message, at_seq_5).startswith(b"event: epoch\nid: 5.3\n")
