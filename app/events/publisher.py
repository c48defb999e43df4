"""Publish job events (synchronous; used by the worker and by the API's own status changes)."""

import contextlib
import logging
import socket
from typing import Any, Protocol

import redis

from app.events.transport import CONTROL_CHANNEL, channel, encode, socket_path, uses_redis
from app.settings import Settings

log = logging.getLogger("epochly.events")


class Publisher(Protocol):
    def publish(self, message: dict[str, Any]) -> None: ...

    def publish_control(self, message: dict[str, Any]) -> None: ...


class RedisPublisher:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def publish(self, message: dict[str, Any]) -> None:
        try:
            self._redis.publish(channel(message["job_id"]), encode(message))
        except redis.RedisError as exc:  # live delivery is best effort; the database has the row
            log.debug("event not published: %s", exc)

    def publish_control(self, message: dict[str, Any]) -> None:
        try:
            self._redis.publish(CONTROL_CHANNEL, encode({**message, "control": True}))
        except redis.RedisError as exc:  # the API processes' caches expire on their own (KeyCache's TTL)
            log.warning("control message not published: %s", exc)


class DatagramPublisher:
    def __init__(self, settings: Settings) -> None:
        self._path = str(socket_path(settings))
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def publish(self, message: dict[str, Any]) -> None:
        # OSError: no API listening, or its buffer is full; streams catch up from the database.
        with contextlib.suppress(OSError):
            self._socket.sendto(encode(message), self._path)

    def publish_control(self, message: dict[str, Any]) -> None:
        self.publish({**message, "control": True})


def make_publisher(settings: Settings) -> Publisher:
    if uses_redis(settings):
        return RedisPublisher(settings.resolved_broker_url)
    return DatagramPublisher(settings)
