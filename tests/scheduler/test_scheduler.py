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
from app.queue import CeleryDoorbell, make_celery, waiting_messages
from app.repositories import leases
from app.scheduler.dispatch import Dispatcher
from app.scheduler.recovery import recover_stale_jobs
from app.settings import Settings
from tests.conftest import REDIS_HOST, REDIS_PORT, require_service

QUEUES = ("default", "gpu")


def queue_job(factory: sessionmaker[Session], queue: str = "default") -> str:
    with session_scope(factory) as session:
        return lifecycle.submit(session, Job(spec={}, epochs_total=1, queue=queue)).id


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


def forget_every_message(celery: Celery, queues: tuple[str, ...] = QUEUES) -> None:
    with celery.connection_for_write() as connection:
        for queue in queues:
            connection.default_channel.queue_purge(queue)


def waiting(celery: Celery) -> dict[str, int]:
    return waiting_messages(celery, QUEUES)


def test_dispatcher_sends_again_what_the_broker_forgot_once_the_loss_lasts(session_factory, celery):
    factory = make_session_factory(session_factory.kw["bind"], doorbell=CeleryDoorbell(celery))
    ids = [queue_job(factory) for _ in range(3)]
    assert waiting(celery) == {"default": 3, "gpu": 0}  # each submit rang once, after its commit
    dispatcher = Dispatcher(celery)
    assert [dispatcher.reconcile(factory) for _ in range(2)] == [0, 0]

    forget_every_message(celery)
    assert dispatcher.reconcile(factory) == 0  # seen once: it might be a message on its way
    assert dispatcher.reconcile(factory) == 3
    assert waiting(celery) == {"default": 3, "gpu": 0}
    assert dispatcher.reconcile(factory) == 0

    with session_scope(factory) as session:
        lifecycle.claim(session, ids[0], "worker-a")  # as a worker would, having taken one message
    forget_every_message(celery)
    assert [dispatcher.reconcile(factory) for _ in range(2)] == [0, 2]  # only the jobs still queued


def test_dispatcher_sends_nothing_while_nothing_is_queued(session_factory, celery):
    dispatcher = Dispatcher(celery)
    assert [dispatcher.reconcile(session_factory) for _ in range(3)] == [0, 0, 0]
    assert waiting(celery) == {"default": 0, "gpu": 0}


def test_dispatcher_reconciles_each_queue_on_its_own(session_factory, celery):
    """Messages waiting in one queue never cover jobs queued in another: the gpu queue's loss is
    made good in the gpu queue, however many spare doorbells wait in the default one."""
    factory = make_session_factory(session_factory.kw["bind"], doorbell=CeleryDoorbell(celery))
    gpu_jobs = [queue_job(factory, "gpu") for _ in range(2)]
    queue_job(factory)
    assert waiting(celery) == {"default": 1, "gpu": 2}
    forget_every_message(celery, ("gpu",))
    for _ in range(3):  # spares: the default queue now holds more messages than all queued jobs together
        CeleryDoorbell(celery).ring(gpu_jobs[0], "default")
    dispatcher = Dispatcher(celery)
    assert [dispatcher.reconcile(factory) for _ in range(2)] == [0, 2]
    assert waiting(celery) == {"default": 4, "gpu": 2}
    with celery.connection_for_write() as connection:
        resent = {connection.default_channel.basic_get("gpu", no_ack=True).decode()[0][0] for _ in range(2)}
    assert resent == set(gpu_jobs)


def test_recovery_requeues_a_lost_workers_job_into_the_jobs_own_queue(session_factory, celery, tmp_path):
    settings = Settings(data_dir=tmp_path, job_heartbeat_timeout_s=0.2)
    factory = make_session_factory(session_factory.kw["bind"], doorbell=CeleryDoorbell(celery))
    job_id = queue_job(factory, "gpu")
    with session_scope(factory) as session:
        lifecycle.claim(session, job_id, "worker-a", queues=["gpu"])
    forget_every_message(celery)  # the worker took the submit's message
    time.sleep(0.3)
    with session_scope(factory) as session:
        assert recover_stale_jobs(session, settings) == [job_id]
    assert waiting(celery) == {"default": 0, "gpu": 1}


def test_a_broker_outage_does_not_hold_up_the_recovery_of_silent_workers_jobs(session_factory, tmp_path):
    """Heartbeats go to the database, not the broker: while only the broker is away, a job whose worker
    fell silent is still requeued on time (the dispatcher's failure is logged, round after round)."""
    import threading

    from app.scheduler.service import Scheduler

    nothing_listens = "redis://127.0.0.1:1/0"
    settings = Settings(data_dir=tmp_path, broker_url=nothing_listens, job_heartbeat_timeout_s=0.3, scheduler_interval_s=0.05)
    scheduler = Scheduler(settings, session_factory=session_factory, name="broker-less")
    queue_job(session_factory, "gpu")  # a waiting job: every round asks the broker about it, and fails
    stop = threading.Event()
    rounds = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    rounds.start()
    try:
        time.sleep(0.5)  # several rounds fail on the broker first
        job_id = queue_job(session_factory)
        with session_scope(session_factory) as session:
            lifecycle.claim(session, job_id, "silent-worker")
        deadline = time.monotonic() + 3
        while job(session_factory, job_id).status != JobStatus.QUEUED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job(session_factory, job_id).attempts[-1]["outcome"] == "worker lost"
    finally:
        stop.set()
        rounds.join(timeout=10)
