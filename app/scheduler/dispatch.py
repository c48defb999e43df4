"""Re-send what the broker forgot. The job rows are the record; the broker only holds doorbells.

Any message from a queue may start any job queued there (app.lifecycle.claim_next), so nothing is
lost while each queue holds at least one message per job queued in it. A broker that restarts
without persistence, evicts a queue or has its folder wiped holds fewer: the dispatcher rings that
queue again for the difference. A deficit is acted on only once it has been seen twice in a row, so
the moment between a commit and its ring, or between a worker taking a message and claiming its
job, never sends a spare; a spare that does slip through is harmless (its claim finds nothing and
ends). A queue no worker consumes keeps its messages waiting, so it shows no deficit either."""

import logging

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.lifecycle import oldest_queued
from app.queue import enqueue_training, waiting_messages
from app.repositories import jobs as jobs_repo

log = logging.getLogger("epochly.scheduler")


class Dispatcher:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery
        self._unmet: dict[str, int] = {}  # per queue, the deficit seen last round and not yet rung for

    def reconcile(self, session_factory: sessionmaker[Session]) -> int:
        """One round: compare each queue's queued jobs with its waiting messages and ring for a lasting
        deficit. Returns how many messages it sent; raises if the database or broker is unreachable."""
        with session_scope(session_factory) as session:
            queued = jobs_repo.queued_counts(session)
        if not queued:
            self._unmet = {}
            return 0
        waiting = waiting_messages(self.celery, queued)
        deficits = {queue: max(0, count - waiting[queue]) for queue, count in queued.items()}
        rings = {queue: min(deficit, self._unmet.get(queue, 0)) for queue, deficit in deficits.items()}
        self._unmet = {queue: deficits[queue] - rings[queue] for queue in deficits if deficits[queue] > rings[queue]}
        sent = 0
        for queue, ring in rings.items():
            if ring == 0:
                continue
            with session_scope(session_factory) as session:
                job_ids = oldest_queued(session, ring, queues=[queue])
            for job_id in job_ids:
                enqueue_training(self.celery, job_id, queue)
            log.warning(
                "queue %s: the broker held %d message(s) for %d queued job(s); sent %d again",
                queue,
                waiting[queue],
                queued[queue],
                len(job_ids),
            )
            sent += len(job_ids)
        return sent
