"""One read at a time per key, shared by everyone who asks meanwhile.

When a popular cache entry expires or is invalidated, every waiting request would otherwise go to
the database at once, fill the threadpool and starve the requests behind them."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

log = logging.getLogger("epochly.api")


class SingleFlight:
    def __init__(self) -> None:
        self._reading: dict[Hashable, asyncio.Future[Any]] = {}

    async def __call__(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        """`read()`, or the result of the same read already under way."""
        # Shielded: one caller giving up (a client gone) must not cancel the read for the others.
        return await asyncio.shield(self.start(key, read))

    def start(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> "asyncio.Future[Any]":
        """The read under way for `key`, started now if there is none; nobody need wait for it."""
        pending = self._reading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self._reading[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        return pending

    def _finished(self, key: Hashable, done: "asyncio.Future[Any]") -> None:
        if self._reading.get(key) is done:
            del self._reading[key]
        if not done.cancelled() and done.exception() is not None:
            # Awaiters get it; a refresh nobody waited for is retried by the next reader.
            log.debug("read %r failed: %s", key, done.exception())
