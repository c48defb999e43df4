"""Which queues some live worker consumes, for telling a queued job that nobody will take it.

Job reads are the hot path, so this is one small query at most every REFRESH_S per API process,
shared by every reader meanwhile, and never on a read of a job that is not queued."""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.api.single_flight import SingleFlight
from app.db import session_scope
from app.models import utcnow
from app.repositories import workers as workers_repo

log = logging.getLogger("epochly.api")
REFRESH_S = 1.0


class ServedQueues:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        heartbeat_timeout_s: float,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`executor` runs the read (None: asyncio's default)."""
        self._session_factory = session_factory
        self._executor = executor
        self._timeout = timedelta(seconds=heartbeat_timeout_s)
        self._clock = clock
        self._once = SingleFlight()
        self._queues: frozenset[str] | None = None
        self._expires = float("-inf")

    async def get(self) -> frozenset[str] | None:
        """The served queues as of at most REFRESH_S ago; None while unknown (the database is away)."""
        if self._expires <= self._clock():
            await self._once("served", self._refresh)
        return self._queues

    async def _refresh(self) -> None:
        try:
            self._queues = frozenset(await asyncio.get_running_loop().run_in_executor(self._executor, self._read))
        except Exception as exc:  # unknown is not "nobody": say nothing rather than something false
            log.warning("could not read the live workers' queues: %s", exc)
            self._queues = None
        self._expires = self._clock() + REFRESH_S

    def _read(self) -> set[str]:
        with session_scope(self._session_factory) as session:
            return workers_repo.live_queues(session, utcnow() - self._timeout)
