"""Publish job events (synchronous; used by the worker and by the API's own status changes)."""

import contextlib
import logging
import socket
import threading
import time
from typing import Any, Protocol

import redis

from app.events.transport import CONTROL_CHANNEL, channel, encode, socket_dir, uses_redis
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
    """Sends each message to every API process of this machine: one datagram socket each, found
    in socket_dir (looked up again every RESCAN_S, so an API process started later hears within
    a second). A socket nobody listens on any more (an API process gone) is forgotten."""

    RESCAN_S = 1.0

    def __init__(self, settings: Settings) -> None:
        self._dir = socket_dir(settings)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._targets: list[str] = []
        self._scanned = 0.0
        self._lock = threading.Lock()

    def publish(self, message: dict[str, Any]) -> None:
        data = encode(message)
        for target in self._current_targets():
            try:
                self._socket.sendto(data, target)
            except (ConnectionRefusedError, FileNotFoundError):
                with self._lock, contextlib.suppress(ValueError):
                    self._targets.remove(target)
            except OSError:  # its buffer is full: that process's streams catch up from the database
                pass

    def publish_control(self, message: dict[str, Any]) -> None:
        self.publish({**message, "control": True})

    def _current_targets(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            if now - self._scanned >= self.RESCAN_S:
                self._scanned = now
                with contextlib.suppress(FileNotFoundError):
                    self._targets = [str(path) for path in self._dir.glob("api-*.sock")]
            return list(self._targets)


def make_publisher(settings: Settings) -> Publisher:
    if uses_redis(settings):
        return RedisPublisher(settings.resolved_broker_url)
    return DatagramPublisher(settings)
