"""Per-API-process fan-out: one subscription to all job events, one queue per open stream."""

import asyncio
import contextlib
import json
import logging
import socket
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis

from app.events.transport import CHANNEL_PREFIX, decode, socket_path, uses_redis
from app.settings import Settings

log = logging.getLogger("epochly.events")
STREAM_QUEUE_SIZE = 256
# Routing fields of a bus message that clients do not see.
PRIVATE_FIELDS = frozenset({"type", "job_id", "seq"})


def encoded_data(message: dict[str, Any]) -> bytes:
    """The JSON a client sees for a message, encoded once however many streams carry it (the
    hub hands the same dict to every subscriber)."""
    data = message.get("_encoded")
    if data is None:
        data = json.dumps({k: v for k, v in message.items() if k not in PRIVATE_FIELDS and not k.startswith("_")}).encode()
        message["_encoded"] = data
    return data


class EventHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        # The latest in-epoch progress of each running job, for GET /v1/jobs/{id}.
        self.progress: dict[str, dict[str, Any]] = {}

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

    def dispatch(self, message: dict[str, Any]) -> None:
        job_id = message["job_id"]
        if message.get("type") == "progress":
            self.progress[job_id] = {"batch": message.get("batch"), "batches_per_epoch": message.get("batches")}
        elif message.get("type") in ("status", "epoch"):
            # A new epoch or status makes the last in-epoch position stale.
            self.progress.pop(job_id, None)
        for queue in self._subscribers.get(job_id, ()):
            # A full queue is a slow client: its stream re-reads the database when it next looks.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

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
                    async for item in pubsub.listen():
                        if item.get("type") == "pmessage" and (message := decode(item["data"])):
                            self.dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: resubscribe; streams catch up from the database
                log.warning("event subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def _run_datagram(self, settings: Settings) -> None:
        path = socket_path(settings)
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = await loop.sock_recv(sock, 65536)
                if message := decode(raw):
                    self.dispatch(message)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                path.unlink()
