"""One read at a time per key, shared by everyone who asks meanwhile.

When a popular cache entry expires or is invalidated, every waiting request would otherwise go to
the database at once, fill the threadpool and starve the requests behind them."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class SingleFlight:
    def __init__(self) -> None:
        self._reading: dict[Hashable, asyncio.Future[Any]] = {}

    async def __call__(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        """`read()`, or the result of the same read already under way."""
        pending = self._reading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self._reading[key] = pending
            pending.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: one caller giving up (a client gone) must not cancel the read for the others.
        return await asyncio.shield(pending)
