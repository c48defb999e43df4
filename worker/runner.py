"""One training job from claim to finish; testable without Celery."""
import logging
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker

from app import ingest
from app.db import make_engine, make_session_factory, session_scope
from app.repositories import datasets as datasets_repo
from app.repositories import jobs as jobs_repo
from app.settings import Settings
from app.specs import TrainingSpec
from app.training.failures import describe_failure
from app.training.trainer import train

log = logging.getLogger("epochly.worker")


@dataclass
class WorkerContext:
    settings: Settings
    worker_name: str

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(make_engine(self.settings.resolved_database_url))


def run_job(job_id: str, ctx: WorkerContext) -> None:
    with session_scope(ctx.session_factory) as session:
        job = jobs_repo.claim(session, job_id, ctx.worker_name)
        if job is None:
            log.info("job %s is not queued any more; nothing to do", job_id)
            return
        spec = TrainingSpec.model_validate(job.spec)
        dataset = datasets_repo.get(session, job.dataset_id) if job.dataset_id else None
        storage_key = dataset.storage_key if dataset else None

    def record_epoch(epoch: int, logs: dict[str, float], duration_s: float) -> None:
        # Its own short transaction: the row is visible to pollers the moment the epoch ends.
        with session_scope(ctx.session_factory) as session:
            jobs_repo.record_epoch(session, job_id, epoch, logs, duration_s)

    model_path = ctx.settings.models_dir / f"{job_id}.keras"
    try:
        if storage_key is None:
            raise FileNotFoundError("the job's dataset was deleted before training started")
        x, y = ingest.load_arrays(ctx.settings.datasets_dir, storage_key)
        train(spec, x, y, on_epoch=record_epoch, model_path=model_path)
    except Exception as exc:
        error = describe_failure(exc)
        log.warning("job %s failed: %s: %s", job_id, error["type"], error["message"])
        with session_scope(ctx.session_factory) as session:
            jobs_repo.finish(session, job_id, status="failed", message=f"{error['type']}: {error['message']}", error=error)
        return
    with session_scope(ctx.session_factory) as session:
        jobs_repo.finish(
            session, job_id, status="succeeded", message=f"trained {spec.fit.epochs} epochs", model_path=str(model_path)
        )
