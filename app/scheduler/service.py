"""The scheduler process: one leader at a time (a lease row) runs the recovery pass, the dispatcher,
the sweeps' trial top-up and the pruning of long-silent workers' rows.

Several scheduler processes may run (one per machine, say): the others stand by and take over once
the leader's lease expires. The moves they make are conditional updates anyway, so even two leaders
at once would requeue each job once; they could only send a spare doorbell."""

import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import logs, persisted_metrics
from app.db import make_engine, make_session_factory, session_scope
from app.events.publisher import make_publisher
from app.models import utcnow
from app.queue import CeleryDoorbell, make_celery
from app.repositories import leases
from app.repositories import workers as workers_repo
from app.scheduler.dispatch import Dispatcher
from app.scheduler.recovery import recover_stale_jobs
from app.settings import Settings, get_settings
from app.sweeps import service as sweep_service

log = logging.getLogger("epochly.scheduler")
# A leader that misses this many rounds loses the lead to a standby.
LEASE_ROUNDS = 5
# A worker killed without a clean shutdown leaves its row; it stops counting as live after the
# heartbeat timeout, and is forgotten after this long.
SILENT_WORKER_KEPT_S = 3600.0


class Scheduler:
    def __init__(self, settings: Settings, session_factory: sessionmaker[Session] | None = None, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()} (pid {os.getpid()})"
        self.celery = make_celery(settings)
        self.session_factory = session_factory or make_session_factory(
            make_engine(settings.resolved_database_url), publisher=make_publisher(settings), doorbell=CeleryDoorbell(self.celery)
        )
        self.dispatcher = Dispatcher(self.celery)
        self.leading = False
        # Heartbeats cannot land while the database is away, so after an outage (or this process's
        # start) every running job looks silent: give workers one full timeout to beat again first.
        self._judge_after = time.monotonic() + settings.job_heartbeat_timeout_s

    @property
    def lease_ttl_s(self) -> float:
        return LEASE_ROUNDS * self.settings.scheduler_interval_s

    def tick(self) -> None:
        """One round; raises when the database or the broker is unreachable."""
        with session_scope(self.session_factory) as session:
            leading = leases.acquire(session, self.name, self.lease_ttl_s)
        if leading != self.leading:
            log.info("%s %s the scheduler lease", self.name, "holds" if leading else "lost")
            self.leading = leading
        if not leading:
            return
        if time.monotonic() >= self._judge_after:
            with session_scope(self.session_factory) as session:
                recovered = recover_stale_jobs(session, self.settings)
            if recovered:
                for job_id in recovered:
                    log.warning("recovered job %s of a silent worker", job_id, extra={"job_id": job_id})
        # Workers add a sweep's next trial as one ends; this catches what a restart or a full
        # active-job limit left undone.
        added = sweep_service.advance_unfinished(self.session_factory, self.settings)
        if added:
            log.info("added %d sweep trial(s)", added)
        with session_scope(self.session_factory) as session:
            workers_repo.prune(session, utcnow() - timedelta(seconds=SILENT_WORKER_KEPT_S))
        # Last: it is the one step that needs the broker, and a broker outage must not hold up the rest.
        if resent := self.dispatcher.reconcile(self.session_factory):
            with session_scope(self.session_factory) as session:
                persisted_metrics.count_resent(session, resent)

    def run(self, stop: threading.Event) -> None:
        log.info("scheduler ready: %s, every %g s", self.name, self.settings.scheduler_interval_s)
        while not stop.wait(self.settings.scheduler_interval_s):
            try:
                self.tick()
            except SQLAlchemyError as exc:  # the database is away; try again next round
                log.warning("scheduler round failed: %s", exc)
                self._judge_after = time.monotonic() + self.settings.job_heartbeat_timeout_s
            except Exception as exc:  # the broker is away: heartbeats still land, so judging stays on time
                log.warning("scheduler round failed: %s", exc)
        if self.leading:
            try:
                with session_scope(self.session_factory) as session:
                    leases.release(session, self.name)
            except Exception as exc:
                log.warning("could not hand the scheduler lease back: %s", exc)


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings.prepare_data_dir()
    Scheduler(settings).run(stop)
