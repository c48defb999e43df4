"""The scheduler's parts against a real database (both back ends) and a real broker (the embedded
folder and Redis): the stale-heartbeat sweep, the dispatcher that re-sends what the broker forgot,
and the lease that lets one scheduler lead."""
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import make_session_factory, session_scope
from app.lifecycle import JobStatus
from app.models import Job
from app.queue import TRAIN_QUEUE, CeleryDoorbell, make_celery, waiting_messages
from app.repositories import leases
from app.scheduler.dispatch import Dispatcher
from app.scheduler.recovery import recover_stale_jobs
from app.settings import Settings
from tests.conftest import REDIS_HOST, REDIS_PORT, require_service


def queue_job(factory: sessionmaker[Session]) -> str:
    with session_scope(factory) as session:
        return lifecycle.submit(session, Job(spec={}, epochs_total=1)).id


def job(factory: sessionmaker[Session], job_id: str) -> Job:
    with session_scope(factory) as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found


def test_a_silent_worker_loses_its_job_to_another_attempt_then_the_job_fails_when_attempts_run_out(session_factory, tmp_path):
    settings = Settings(data_dir=tmp_path, job_heartbeat_timeout_s=0.2, job_max_attempts=2)
    job_id = queue_job(session_factory)
    with session_scope(session_factory) as session:
        lifecycle.claim(session, job_id, "worker-a")
    time.sleep(0.3)
    with session_scope(session_factory) as session:
        assert recover_stale_jobs(session, settings) == [job_id]
    requeued = job(session_factory, job_id)
    assert requeued.status == JobStatus.QUEUED and requeued.attempts[-1]["outcome"] == "worker lost"
    assert "requeued for attempt 2 of 2" in requeued.history[-1].message

    with session_scope(session_factory) as session:
        lifecycle.claim(session, job_id, "worker-b")
    with session_scope(session_factory) as session:
        assert recover_stale_jobs(session, settings) == []  # it just started: its heartbeat is fresh
    time.sleep(0.3)
    with session_scope(session_factory) as session:
        assert recover_stale_jobs(session, settings) == [job_id]
    failed = job(session_factory, job_id)
    assert failed.status == JobStatus.FAILED and failed.error is not None and failed.error["type"] == "WorkerLost"
    assert [a["outcome"] for a in failed.attempts] == ["worker lost", "worker lost"]


def test_one_scheduler_leads_and_a_standby_takes_over_on_release_or_expiry(session_factory):
    with session_scope(session_factory) as session:
        assert leases.acquire(session, "a", ttl_s=30)
        assert not leases.acquire(session, "b", ttl_s=30)
        assert leases.acquire(session, "a", ttl_s=30)  # renewal
        leases.release(session, "a")
        assert leases.acquire(session, "b", ttl_s=0.1)
    time.sleep(0.2)
    with session_scope(session_factory) as session:
        assert not leases.is_held(leases.current(session))
        assert leases.acquire(session, "a", ttl_s=30)
        assert leases.current(session).holder == "a"


@pytest.fixture(params=["filesystem", "redis"])
def celery(request, tmp_path) -> Iterator[Celery]:
    if request.param == "redis":
        require_service("Redis", REDIS_HOST, REDIS_PORT)
        settings = Settings(data_dir=tmp_path, broker_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/14")
    else:
        settings = Settings(data_dir=tmp_path)
    app = make_celery(settings)
    forget_every_message(app)
    yield app
    forget_every_message(app)


def forget_every_message(celery: Celery) -> None:
    with celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(TRAIN_QUEUE)


def test_dispatcher_sends_again_what_the_broker_forgot_once_the_loss_lasts(session_factory, celery):
    factory = make_session_factory(session_factory.kw["bind"], doorbell=CeleryDoorbell(celery))
    ids = [queue_job(factory) for _ in range(3)]
    assert waiting_messages(celery) == 3  # each submit rang once, after its commit
    dispatcher = Dispatcher(celery)
    assert [dispatcher.reconcile(factory) for _ in range(2)] == [0, 0]

    forget_every_message(celery)
    assert dispatcher.reconcile(factory) == 0  # seen once: it might be a message on its way
    assert dispatcher.reconcile(factory) == 3
    assert waiting_messages(celery) == 3
    assert dispatcher.reconcile(factory) == 0

    with session_scope(factory) as session:
        lifecycle.claim(session, ids[0], "worker-a")  # as a worker would, having taken one message
    forget_every_message(celery)
    assert [dispatcher.reconcile(factory) for _ in range(2)] == [0, 2]  # only the jobs still queued


def test_dispatcher_sends_nothing_while_nothing_is_queued(session_factory, celery):
    dispatcher = Dispatcher(celery)
    assert [dispatcher.reconcile(session_factory) for _ in range(3)] == [0, 0, 0]
    assert waiting_messages(celery) == 0
