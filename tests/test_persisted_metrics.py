"""The metrics workers and schedulers persist (app/persisted_metrics.py), on both back ends: each event
is counted once, by the transaction that records it, and not at all if that transaction rolls back."""

import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import session_scope
from app.models import Job, utcnow
from app.persisted_metrics import EPOCH_DURATION, JOB_WALL_TIME, RECOVERED_JOBS, label_key
from app.repositories import metric_counts
from app.scheduler.recovery import recover_stale_jobs
from app.settings import Settings
from worker.runner import JobHooks, WorkerContext


def samples(factory: sessionmaker[Session]) -> dict[tuple[str, str], float]:
    with session_scope(factory) as session:
        return {(name, labels): value for name, labels, value in metric_counts.all_samples(session)}


def running_job(factory: sessionmaker[Session], worker: str = "worker-a", queue: str = "gpu") -> str:
    with session_scope(factory) as session:
        job_id = lifecycle.submit(session, Job(spec={}, epochs_total=3, queue=queue)).id
    with session_scope(factory) as session:
        assert lifecycle.claim(session, job_id, worker) is not None
    return job_id


def test_an_epoch_written_twice_is_counted_once_in_its_queue(session_factory, tmp_path):
    ctx = WorkerContext(settings=Settings(data_dir=tmp_path), worker_name="worker-a")
    ctx.__dict__["session_factory"] = session_factory  # the test's database, not the settings' one
    job_id = running_job(session_factory)
    hooks = JobHooks(job_id, ctx)
    for epoch, duration_s in ((1, 0.3), (1, 0.3), (2, 7.0)):  # epoch 1 redelivered
        hooks._write_row(epoch, {"loss": 1.0}, duration_s, utcnow())
    counted = samples(session_factory)
    bucket = f"{EPOCH_DURATION.name}_bucket"
    assert counted[(bucket, label_key({"le": "0.5", "queue": "gpu"}))] == 1
    assert counted[(bucket, label_key({"le": "10.0", "queue": "gpu"}))] == 1
    assert counted[(f"{EPOCH_DURATION.name}_sum", label_key({"queue": "gpu"}))] == pytest.approx(7.3)


def test_recovery_counts_requeued_then_failed_and_the_failed_job_wall_time(session_factory, tmp_path):
    settings = Settings(data_dir=tmp_path, job_heartbeat_timeout_s=0.2, job_max_attempts=2)
    job_id = running_job(session_factory)
    for attempt in (1, 2):
        time.sleep(0.3)
        with session_scope(session_factory) as session:
            assert recover_stale_jobs(session, settings) == [job_id]
        if attempt == 1:
            with session_scope(session_factory) as session:
                assert lifecycle.claim(session, job_id, "worker-b") is not None
    counted = samples(session_factory)
    assert counted[(RECOVERED_JOBS.name, label_key({"action": "requeued"}))] == 1
    assert counted[(RECOVERED_JOBS.name, label_key({"action": "failed"}))] == 1
    wall = [value for (name, labels), value in counted.items() if name == f"{JOB_WALL_TIME.name}_bucket"]
    assert wall == [1] and (f"{JOB_WALL_TIME.name}_sum", label_key({"queue": "gpu", "status": "failed"})) in counted


def test_a_rolled_back_finish_counts_nothing(session_factory):
    job_id = running_job(session_factory)
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        assert lifecycle.finish(session, job_id, lifecycle.JobStatus.SUCCEEDED, worker="worker-a", message="done") is not None
        raise RuntimeError("the commit never happens")
    assert samples(session_factory) == {}
    with session_scope(session_factory) as session:
        lifecycle.finish(session, job_id, lifecycle.JobStatus.SUCCEEDED, worker="worker-a", message="done")
    assert sum(value for (name, _), value in samples(session_factory).items() if name.endswith("_bucket")) == 1
