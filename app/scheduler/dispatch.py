"""Re-send what the broker forgot. The job rows are the record; the broker only holds doorbells.

Any message may start any queued job (app.lifecycle.claim_next), so nothing is lost while the
training queue holds at least one message per queued job. A broker that restarts without
persistence, evicts the queue or has its folder wiped holds fewer: the dispatcher rings again for
the difference. A deficit is acted on only once it has been seen twice in a row, so the moment
between a commit and its ring, or between a worker taking a message and claiming its job, never
sends a spare; a spare that does slip through is harmless (its claim finds nothing and ends)."""

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
        self._unmet = 0  # the deficit seen last round and not yet rung for

    def reconcile(self, session_factory: sessionmaker[Session]) -> int:
        """One round: compare queued jobs with waiting messages and ring for a lasting deficit.
        Returns how many messages it sent; raises if the database or broker is unreachable."""
        with session_scope(session_factory) as session:
            queued = jobs_repo.queued_count(session)
        if queued == 0:
            self._unmet = 0
            return 0
        deficit = max(0, queued - waiting_messages(self.celery))
        ring = min(deficit, self._unmet)
        self._unmet = deficit - ring
        if ring == 0:
            return 0
        with session_scope(session_factory) as session:
            job_ids = oldest_queued(session, ring)
        for job_id in job_ids:
            enqueue_training(self.celery, job_id)
        log.warning("the broker held %d message(s) for %d queued job(s); sent %d again", queued - deficit, queued, len(job_ids))
        return len(job_ids)
