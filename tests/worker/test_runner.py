"""worker/runner.py without Celery: one attempt from claim to finish, on the embedded default, with
TensorFlow in this process. The message is only a doorbell; the rows decide what runs."""
from pathlib import Path

import pytest
from sqlalchemy import select

from app import lifecycle
from app.db import session_scope
from app.lifecycle import JobStatus
from app.models import EpochMetric, Job
from app.services import datasets as dataset_service
from app.settings import Settings
from worker.runner import WorkerContext, run_job

SMALL = {
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 2, "activation": "softmax"}]},
    "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture
def ctx(settings: Settings) -> WorkerContext:
    from app.migrate import upgrade_to_head

    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    return WorkerContext(settings=settings, worker_name="runner-test")


@pytest.fixture
def dataset_id(ctx: WorkerContext) -> str:
    with session_scope(ctx.session_factory) as session:
        return dataset_service.create_side_effects_example(session, ctx.settings, owner_id=None).id  # type: ignore[arg-type]


def queue_job(ctx: WorkerContext, dataset_id: str | None) -> str:
    with session_scope(ctx.session_factory) as session:
        return lifecycle.submit(session, Job(dataset_id=dataset_id, spec={"dataset_id": dataset_id, **SMALL}, epochs_total=3)).id


def read_job(ctx: WorkerContext, job_id: str) -> Job:
    with session_scope(ctx.session_factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def epochs(ctx: WorkerContext, job_id: str) -> list[int]:
    with session_scope(ctx.session_factory) as session:
        return list(session.scalars(select(EpochMetric.epoch).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch)))


def test_run_job_trains_writes_every_epoch_and_succeeds(ctx, dataset_id):
    job_id = queue_job(ctx, dataset_id)
    run_job(job_id, ctx)
    job = read_job(ctx, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert epochs(ctx, job_id) == [1, 2, 3] and job.epochs_completed == 3
    assert [(a["worker"], a["outcome"]) for a in job.attempts] == [("runner-test", "succeeded")]
    assert job.model_path and Path(job.model_path).is_file()
    assert not (ctx.settings.checkpoints_dir / job_id).exists()  # nothing to resume once finished


def test_a_message_for_a_cancelled_job_runs_the_oldest_queued_one(ctx, dataset_id):
    cancelled, waiting = queue_job(ctx, dataset_id), queue_job(ctx, dataset_id)
    with session_scope(ctx.session_factory) as session:
        lifecycle.cancel(session, cancelled)
    run_job(cancelled, ctx)
    assert read_job(ctx, cancelled).status == JobStatus.CANCELLED and epochs(ctx, cancelled) == []
    assert read_job(ctx, waiting).status == JobStatus.SUCCEEDED


def test_a_duplicate_message_for_a_job_another_worker_holds_runs_nothing(ctx, dataset_id):
    job_id = queue_job(ctx, dataset_id)
    with session_scope(ctx.session_factory) as session:
        lifecycle.claim(session, job_id, "other-worker")
    run_job(job_id, ctx)
    job = read_job(ctx, job_id)
    assert (job.status, job.worker, len(job.attempts)) == (JobStatus.RUNNING, "other-worker", 1)
    assert epochs(ctx, job_id) == []


def test_a_job_whose_dataset_is_gone_fails_with_a_reason(ctx):
    job_id = queue_job(ctx, None)
    run_job(job_id, ctx)
    job = read_job(ctx, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["type"] == "FileNotFoundError"
    assert job.attempts[-1]["outcome"] == "failed"


def test_the_worker_records_the_seed_it_drew_and_what_it_ran_with(ctx, dataset_id):
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    with session_scope(ctx.session_factory) as session:
        spec = {"dataset_id": dataset_id, **SMALL, "fit": {**SMALL["fit"], "seed": None, "shuffle": True}}
        job_id = lifecycle.submit(session, Job(dataset_id=dataset_id, spec=spec, epochs_total=3)).id
        sha256 = dataset_service.get_dataset(session, dataset_id, owner_id=None).sha256  # type: ignore[arg-type]
    run_job(job_id, ctx)
    job = read_job(ctx, job_id)
    assert job.status == JobStatus.SUCCEEDED
    record = job.record
    assert record is not None
    assert isinstance(record["seed"], int) and 0 <= record["seed"] < 2**31
    # The spec as it ran: the one submitted, with the drawn seed in place of null.
    assert record["spec"] == {**spec, "fit": {**spec["fit"], "seed": record["seed"]}}
    assert record["dataset_sha256"] == sha256
    assert {k: record[k] for k in ("python", "tensorflow", "keras", "numpy", "device_kind")} == {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "device_kind": "CPU",
    }
    assert job.rerun_of is None and job.versions_differ is None
