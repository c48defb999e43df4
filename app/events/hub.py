"""Per-API-process fan-out: one subscription to all job events, one queue per open stream, for one
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


class EventHub:
    def __init__(self, owner_of: Callable[[str], str | None] | None = None) -> None:
        """owner_of(job_id) reads a job's owner (a blocking database read, run in a thread); without it
        owner streams receive nothing."""
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._owner_subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
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
        self._key_streams: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def track_key(self, key_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._key_streams[key_id].add(queue)

    def untrack_key(self, key_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._key_streams.get(key_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._key_streams[key_id]

    def close_key_streams(self, key_id: str) -> None:
        """Every open stream of the key gets a `revoked` message and ends."""
        for queue in self._key_streams.pop(key_id, ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait({"type": REVOKED})

    def dispatch_control(self, message: dict[str, Any]) -> None:
        for handler in self.control_handlers:
            try:
                handler(message)
            except Exception:
                log.exception("control message handler failed")

    def subscribe(self, job_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(STREAM_QUEUE_SIZE)
        self._subscribers[job_id].add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subscribers = self._subscribers.get(job_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[job_id]

    def subscribe_owner(self, owner_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(STREAM_QUEUE_SIZE)
        self._owner_subscribers[owner_id].add(queue)
        return queue

    def unsubscribe_owner(self, owner_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subscribers = self._owner_subscribers.get(owner_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._owner_subscribers[owner_id]

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


def _offer(queues: Iterable[asyncio.Queue[dict[str, Any]]], message: dict[str, Any]) -> None:
    for queue in queues:
        # A full queue is a slow client: its stream re-reads the database when it next looks.
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(message)
