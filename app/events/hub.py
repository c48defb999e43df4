"""Per-API-process fan-out: one subscription to all job events, one inbox per open stream, for one
job's stream or for an owner's stream of all their jobs."""

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from app.events.transport import CHANNEL_PREFIX, CONTROL_CHANNEL, decode, decode_control, socket_dir, uses_redis
from app.settings import Settings

log = logging.getLogger("epochly.events")
# Messages an inbox holds for a stream that has not looked yet; past that it is a slow client.
STREAM_QUEUE_SIZE = 256
# Routing fields of a bus message that clients do not see.
PRIVATE_FIELDS = frozenset({"type", "job_id", "seq"})
# The message type that ends a stream whose key was revoked.
REVOKED = "_revoked"
# Jobs whose owner is remembered: a job's owner never changes, so the cache is only ever trimmed.
OWNER_CACHE_SIZE = 10_000


def encoded_data(message: dict[str, Any]) -> bytes:
    """The JSON a client sees for a message, encoded once however many streams carry it (the
    hub hands the same dict to every subscriber)."""
    data = message.get("_encoded")
    if data is None:
        data = json.dumps({k: v for k, v in message.items() if k not in PRIVATE_FIELDS and not k.startswith("_")}).encode()
        message["_encoded"] = data
    return data


def owner_encoded_data(message: dict[str, Any]) -> bytes:
    """As encoded_data, plus the job id: an owner's stream carries many jobs."""
    data = message.get("_owner_encoded")
    if data is None:
        data = b'{"job_id": ' + json.dumps(message["job_id"]).encode() + b", " + encoded_data(message)[1:]
        message["_owner_encoded"] = data
    return data


class Subscription:
    """One open stream's inbox: what the hub offered since the stream last looked, and while the
    stream waits, the one future that wakes it. An asyncio.Queue holds three deques and an Event
    per stream; ten thousand idle streams make that count."""

    __slots__ = ("_messages", "_waiter")

    def __init__(self) -> None:
        self._messages: list[dict[str, Any]] = []
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, message: dict[str, Any]) -> None:
        # A full inbox is a slow client: its stream re-reads the database when it next looks.
        if len(self._messages) < STREAM_QUEUE_SIZE:
            self._messages.append(message)
            self._wake()

    def close(self) -> None:
        """Ends the stream: a `revoked` message, delivered however full the inbox is."""
        self._messages.append({"type": REVOKED})
        self._wake()

    def take(self) -> list[dict[str, Any]]:
        """Everything offered since the last look, oldest first."""
        messages, self._messages = self._messages, []
        return messages

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Until something is offered (True) or `timeout_s` passes (False)."""
        if not self._messages:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout_s, _resolve, waiter) if timeout_s is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return bool(self._messages)

    async def get(self) -> dict[str, Any]:
        """The oldest message, as asyncio.Queue.get gives it, for streams that take one at a time."""
        while not self._messages:
            await self.wait()
        return self._messages.pop(0)

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventHub:
    def __init__(self, owner_of: Callable[[str], str | None] | None = None) -> None:
        """owner_of(job_id) reads a job's owner (a blocking database read, run in a thread); without it
        owner streams receive nothing."""
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._owner_subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._owner_of = owner_of
        self._job_owner: OrderedDict[str, str] = OrderedDict()
        # Messages of jobs whose owner is being looked up, kept in order until it is known.
        self._awaiting_owner: dict[str, list[dict[str, Any]]] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        # The latest in-epoch progress of each running job, for GET /v1/jobs/{id}.
        self.progress: dict[str, dict[str, Any]] = {}
        # Control messages (a revoked key) go to these, and so does "resync" when the subscription
        # was interrupted and messages may have been missed.
        self.control_handlers: list[Callable[[dict[str, Any]], None]] = []
        # Called with every job message before any stream sees it (the API's in-memory views).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        # Open streams by the key that opened them, so a revoked key's streams can be closed.
        self._key_streams: dict[str, set[Subscription]] = defaultdict(set)
        # Job messages dispatched so far. A database read begun at count n holds everything dispatched
        # before it; a stream subscribed while the count is still n gets everything after it live.
        # So the read can serve that stream too: ten thousand streams opening on a quiet job share a
        # few reads, not one each.
        self.dispatched = 0

    def track_key(self, key_id: str, inbox: Subscription) -> None:
        self._key_streams[key_id].add(inbox)

    def untrack_key(self, key_id: str, inbox: Subscription) -> None:
        _discard(self._key_streams, key_id, inbox)

    def close_key_streams(self, key_id: str) -> None:
        """Every open stream of the key gets a `revoked` message and ends."""
        for inbox in self._key_streams.pop(key_id, ()):
            inbox.close()

    def dispatch_control(self, message: dict[str, Any]) -> None:
        for handler in self.control_handlers:
            try:
                handler(message)
            except Exception:
                log.exception("control message handler failed")

    def subscribe(self, job_id: str) -> Subscription:
        inbox = Subscription()
        self._subscribers[job_id].add(inbox)
        return inbox

    def unsubscribe(self, job_id: str, inbox: Subscription) -> None:
        _discard(self._subscribers, job_id, inbox)

    def subscribe_owner(self, owner_id: str) -> Subscription:
        inbox = Subscription()
        self._owner_subscribers[owner_id].add(inbox)
        return inbox

    def unsubscribe_owner(self, owner_id: str, inbox: Subscription) -> None:
        _discard(self._owner_subscribers, owner_id, inbox)

    def _dispatch_to_owner(self, message: dict[str, Any]) -> None:
        if not self._owner_subscribers or self._owner_of is None:
            return
        job_id = message["job_id"]
        owner_id = self._job_owner.get(job_id)
        if owner_id is not None:
            _offer(self._owner_subscribers.get(owner_id, ()), message)
        elif (waiting := self._awaiting_owner.get(job_id)) is not None:
            waiting.append(message)
        else:
            self._awaiting_owner[job_id] = [message]
            task = asyncio.get_running_loop().create_task(self._look_up_owner(job_id))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _look_up_owner(self, job_id: str) -> None:
        assert self._owner_of is not None
        owner_id = None
        try:
            owner_id = await asyncio.to_thread(self._owner_of, job_id)
        except Exception as exc:  # the database is away: these messages are lost, owner streams catch up by re-listing
            log.warning("could not look up the owner of %s (%s)", job_id, exc)
        messages = self._awaiting_owner.pop(job_id, [])
        if owner_id is None:
            return
        self._job_owner[job_id] = owner_id
        if len(self._job_owner) > OWNER_CACHE_SIZE:
            self._job_owner.popitem(last=False)
        for message in messages:
            _offer(self._owner_subscribers.get(owner_id, ()), message)

    def dispatch(self, message: dict[str, Any]) -> None:
        job_id = message["job_id"]
        self.dispatched += 1
        for listener in self.listeners:
            listener(message)
        if message.get("type") == "progress":
            self.progress[job_id] = {"batch": message.get("batch"), "batches_per_epoch": message.get("batches")}
        elif message.get("type") in ("status", "epoch"):
            # A new epoch or status makes the last in-epoch position stale.
            self.progress.pop(job_id, None)
        _offer(self._subscribers.get(job_id, ()), message)
        self._dispatch_to_owner(message)

    async def run(self, settings: Settings) -> None:
        if uses_redis(settings):
            await self._run_redis(settings.resolved_broker_url)
        else:
            await self._run_datagram(settings)

    async def _run_redis(self, url: str) -> None:
        while True:
            client = aioredis.Redis.from_url(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                    await pubsub.subscribe(CONTROL_CHANNEL)
                    # Whatever was published while not subscribed is lost: caches start afresh.
                    self.dispatch_control({"type": "resync"})
                    async for item in pubsub.listen():
                        if item.get("type") == "pmessage" and (message := decode(item["data"])):
                            self.dispatch(message)
                        elif item.get("type") == "message" and (control := decode_control(item["data"])):
                            self.dispatch_control(control)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: resubscribe; streams catch up from the database
                log.warning("event subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def _run_datagram(self, settings: Settings) -> None:
        directory = socket_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"api-{os.getpid()}.sock"
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = await loop.sock_recv(sock, 65536)
                if control := decode_control(raw):
                    self.dispatch_control(control)
                elif message := decode(raw):
                    self.dispatch(message)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                path.unlink()


def _offer(inboxes: Iterable[Subscription], message: dict[str, Any]) -> None:
    for inbox in inboxes:
        inbox.offer(message)


def _discard(subscribers: dict[str, set[Subscription]], topic: str, inbox: Subscription) -> None:
    inboxes = subscribers.get(topic)
    if inboxes is not None:
        inboxes.discard(inbox)
        if not inboxes:
            del subscribers[topic]
