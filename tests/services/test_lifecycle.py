"""The job state machine against a real database on both back ends: the whole table of moves, the
guards that settle races, and events that are published only after the commit."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import make_session_factory, session_scope
from app.lifecycle import ALLOWED, TERMINAL, IllegalMove, JobStatus
from app.models import Job, JobEvent, utcnow

WORKER = "worker-a"


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


class RecordingDoorbell:
    def __init__(self) -> None:
        self.rung: list[tuple[str, str]] = []

    def ring(self, job_id: str, queue: str) -> None:
        self.rung.append((job_id, queue))


def new_job(session: Session, queue: str = "default") -> str:
    return lifecycle.submit(session, Job(spec={}, epochs_total=3, queue=queue)).id


def reach(session: Session, status: JobStatus) -> str:
    """A job brought to `status` by legal moves only."""
    job_id = new_job(session)
    if status is JobStatus.QUEUED:
        return job_id
    if status is JobStatus.CANCELLED:
        assert lifecycle.cancel(session, job_id)
        return job_id
    assert lifecycle.claim(session, job_id, WORKER)
    if status in TERMINAL:
        assert lifecycle.finish(session, job_id, status, worker=WORKER, message="done")
    return job_id


def status_of(session: Session, job_id: str) -> str:
    return session.scalar(select(Job.status).where(Job.id == job_id))


@pytest.mark.parametrize("origin", list(JobStatus))
@pytest.mark.parametrize("target", list(JobStatus))
def test_every_move_in_the_table_is_made_and_every_other_refused(session_factory, origin, target):
    with session_scope(session_factory) as session:
        job_id = reach(session, origin)
        events_before = len(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all())
        allowed = target in ALLOWED[origin]
        event = lifecycle.move(session, job_id, target, message="try")
        assert (event is not None) == allowed
        assert status_of(session, job_id) == (target if allowed else origin)
        events_after = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        assert len(events_after) == events_before + (1 if allowed else 0)


def test_only_a_requeue_leads_back_to_queued_and_final_statuses_lead_nowhere():
    assert lifecycle.sources(JobStatus.QUEUED) == {JobStatus.RUNNING}
    assert {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED} == TERMINAL
    assert all(not ALLOWED[s] for s in TERMINAL)


def test_a_move_from_a_status_the_table_forbids_is_a_bug_not_a_lost_race(session_factory):
    with session_scope(session_factory) as session:
        job_id = new_job(session)
        with pytest.raises(IllegalMove):
            lifecycle.move(session, job_id, JobStatus.RUNNING, message="x", from_=[JobStatus.SUCCEEDED])
        with pytest.raises(IllegalMove):
            lifecycle.finish(session, job_id, JobStatus.QUEUED, worker=WORKER, message="x")


def test_claim_opens_an_attempt_and_a_second_claim_finds_nothing(session_factory):
    with session_scope(session_factory) as session:
        job_id = new_job(session)
        assert lifecycle.claim(session, job_id, WORKER) is not None
        assert lifecycle.claim(session, job_id, "worker-b") is None
        job = session.get(Job, job_id)
        session.refresh(job)
        assert job.worker == WORKER and job.heartbeat_at is not None and job.started_at is not None
        assert [(a["attempt"], a["worker"], a["outcome"]) for a in job.attempts] == [(1, WORKER, None)]


def test_claim_next_takes_the_named_job_or_else_the_oldest_queued_one(session_factory):
    with session_scope(session_factory) as session:
        cancelled, older, newer = new_job(session), new_job(session), new_job(session)
        lifecycle.cancel(session, cancelled)
        claimed = lifecycle.claim_next(session, cancelled, WORKER, queues=["default"])
        assert claimed is not None and claimed[0] == older
        assert lifecycle.claim_next(session, newer, WORKER, queues=["default"])[0] == newer
        assert (
            lifecycle.claim_next(session, older, WORKER, queues=["default"]) is None
        )  # nothing queued: the doorbell does nothing


def test_claim_next_takes_only_jobs_of_the_given_queues_and_records_the_devices(session_factory):
    gpu = [{"kind": "GPU", "name": "NVIDIA H100"}]
    with session_scope(session_factory) as session:
        older_gpu, default_job = new_job(session, "gpu"), new_job(session)
        claimed = lifecycle.claim_next(session, older_gpu, WORKER, queues=["default"])
        assert claimed is not None and claimed[0] == default_job
        assert lifecycle.claim(session, older_gpu, "worker-b", queues=["default"]) is None  # the named job too
        claimed = lifecycle.claim_next(session, default_job, "worker-b", queues=["gpu"], devices=gpu)
        assert claimed is not None and claimed[0] == older_gpu
        assert session.get(Job, older_gpu).attempts[-1]["devices"] == gpu


def test_only_the_worker_holding_a_job_may_finish_or_hand_it_back(session_factory):
    with session_scope(session_factory) as session:
        job_id = reach(session, JobStatus.RUNNING)
        assert lifecycle.finish(session, job_id, JobStatus.SUCCEEDED, worker="worker-b", message="not mine") is None
        assert lifecycle.requeue(session, job_id, worker="worker-b", outcome=lifecycle.HANDED_BACK, message="not mine") is None
        assert not lifecycle.beat(session, job_id, "worker-b")
        assert lifecycle.beat(session, job_id, WORKER)
        assert (
            lifecycle.finish(session, job_id, JobStatus.SUCCEEDED, worker=WORKER, message="trained", model_path="m") is not None
        )
        job = session.get(Job, job_id)
        session.refresh(job)
        assert job.finished_at is not None and job.model_path == "m" and job.attempts[-1]["outcome"] == "succeeded"


def test_requeue_closes_the_attempt_and_a_fresh_heartbeat_keeps_the_job(session_factory):
    with session_scope(session_factory) as session:
        job_id = reach(session, JobStatus.RUNNING)
        long_ago = utcnow() - timedelta(hours=1)
        kept = lifecycle.requeue(
            session, job_id, worker=WORKER, outcome=lifecycle.WORKER_LOST, message="silent", heartbeat_before=long_ago
        )
        assert kept is None  # it beat after the cutoff
        assert lifecycle.requeue(session, job_id, worker=WORKER, outcome=lifecycle.WORKER_LOST, message="silent") is not None
        assert lifecycle.claim(session, job_id, "worker-b") is not None
        job = session.get(Job, job_id)
        session.refresh(job)
        assert [(a["worker"], a["outcome"]) for a in job.attempts] == [(WORKER, "worker lost"), ("worker-b", None)]


def test_cancel_stops_a_queued_job_at_once_and_flags_a_running_one(session_factory):
    with session_scope(session_factory) as session:
        queued, running = new_job(session), reach(session, JobStatus.RUNNING)
        assert lifecycle.cancel(session, queued) is not None
        assert lifecycle.cancel(session, running) is None
        assert status_of(session, queued) == JobStatus.CANCELLED
        assert status_of(session, running) == JobStatus.RUNNING
        assert session.scalar(select(Job.cancel_requested_at).where(Job.id == running)) is not None


def test_events_and_doorbells_go_out_only_after_the_commit(migrated_url):
    from app.db import make_engine

    publisher, doorbell = RecordingPublisher(), RecordingDoorbell()
    engine = make_engine(migrated_url)
    factory: sessionmaker[Session] = make_session_factory(engine, publisher=publisher, doorbell=doorbell)
    try:
        with pytest.raises(RuntimeError), session_scope(factory) as session:
            new_job(session)
            raise RuntimeError("the request failed after the move")
        assert publisher.messages == [] and doorbell.rung == []

        with session_scope(factory) as session:
            job_id = new_job(session)
            assert publisher.messages == []  # not before the commit
        assert [(m["type"], m["status"]) for m in publisher.messages] == [("status", "queued")]
        assert doorbell.rung == [(job_id, "default")]

        def claim_and_finish(session: Session) -> None:
            lifecycle.claim(session, job_id, WORKER)
            lifecycle.finish(
                session, job_id, JobStatus.FAILED, worker=WORKER, message="boom", error={"type": "E", "message": "boom"}
            )

        run_committed(factory, claim_and_finish)
        assert [m["status"] for m in publisher.messages] == ["queued", "running", "failed"]
        assert [m["seq"] for m in publisher.messages] == sorted(m["seq"] for m in publisher.messages)

        def claim_and_hand_back(session: Session) -> None:
            lifecycle.claim(session, gpu_job, WORKER)
            lifecycle.requeue(session, gpu_job, worker=WORKER, outcome=lifecycle.HANDED_BACK, message="stopping")

        with session_scope(factory) as session:
            gpu_job = new_job(session, "gpu")
        run_committed(factory, claim_and_hand_back)
        assert doorbell.rung[1:] == [(gpu_job, "gpu"), (gpu_job, "gpu")]  # a requeue rings in the job's own queue
    finally:
        engine.dispose()


def run_committed(factory: sessionmaker[Session], work: Callable[[Session], None]) -> None:
    with session_scope(factory) as session:
        work(session)
