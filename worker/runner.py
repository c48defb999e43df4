"""One training job from claim to finish; testable without Celery."""
import logging
import threading
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker

from app import ingest
from app.db import make_engine, make_session_factory, session_scope
from app.events.messages import epoch_message, progress_message, status_message
from app.events.publisher import Publisher, make_publisher
from app.models import JobEvent
from app.repositories import datasets as datasets_repo
from app.repositories import jobs as jobs_repo
from app.settings import Settings
from app.specs import TrainingSpec
from app.training.failures import describe_failure
from app.training.trainer import EpochReporter, train

log = logging.getLogger("epochly.worker")
CANCEL_POLL_S = 0.2


@dataclass
class WorkerContext:
    settings: Settings
    worker_name: str

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(make_engine(self.settings.resolved_database_url))

    @cached_property
    def publisher(self) -> Publisher:
        return make_publisher(self.settings)


class JobHooks:
    """Connects training to the outside: epoch rows to the database, events to the bus, cancel from the API."""

    def __init__(self, job_id: str, ctx: WorkerContext) -> None:
        self.job_id = job_id
        self.ctx = ctx
        self.cancelled = threading.Event()
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch_cancel, name=f"cancel-watch-{job_id}", daemon=True)

    def __enter__(self) -> "JobHooks":
        self._watcher.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._watcher.join()

    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None:
        # Its own short transaction: the row is visible to pollers the moment the epoch ends.
        with session_scope(self.ctx.session_factory) as session:
            row = jobs_repo.record_epoch(session, self.job_id, epoch, logs, duration_s)
        if row is not None:
            self.ctx.publisher.publish(epoch_message(row))

    def progress(self, epoch: int, batch: int, batches: int | None) -> None:
        self.ctx.publisher.publish(progress_message(self.job_id, epoch, batch, batches))

    def should_stop(self) -> bool:
        return self.cancelled.is_set()

    def _watch_cancel(self) -> None:
        """A cheap primary-key read a few times a second, off the training thread, so batches never wait on it."""
        while not self._done.wait(CANCEL_POLL_S):
            try:
                with session_scope(self.ctx.session_factory) as session:
                    if jobs_repo.cancel_requested(session, self.job_id):
                        self.cancelled.set()
                        return
            except Exception as exc:  # the database blinking must not kill training
                log.warning("cancel check for job %s failed: %s", self.job_id, exc)


def run_job(job_id: str, ctx: WorkerContext) -> None:
    with session_scope(ctx.session_factory) as session:
        started = jobs_repo.claim(session, job_id, ctx.worker_name)
        if started is None:
            log.info("job %s is not queued any more; nothing to do", job_id)
            return
        job = jobs_repo.get(session, job_id)
        assert job is not None
        spec = TrainingSpec.model_validate(job.spec)
        dataset = datasets_repo.get(session, job.dataset_id) if job.dataset_id else None
        storage_key = dataset.storage_key if dataset else None
    _publish(ctx, started)

    model_path = ctx.settings.models_dir / f"{job_id}.keras"
    with JobHooks(job_id, ctx) as hooks:
        reporter = EpochReporter(hooks)
        try:
            if storage_key is None:
                raise FileNotFoundError("the job's dataset was deleted before training started")
            x, y = ingest.load_arrays(ctx.settings.datasets_dir, storage_key)
            model = train(spec, x, y, reporter=reporter, model_path=model_path)
        except Exception as exc:
            error = describe_failure(exc, reporter.epoch)
            log.warning("job %s failed in epoch %s: %s: %s", job_id, reporter.epoch, error["type"], error["message"])
            _finish(ctx, job_id, status="failed", message=f"{error['type']}: {error['message']}", error=error)
            return
    if model is None:
        _finish(ctx, job_id, status="cancelled", message=f"cancelled during epoch {reporter.epoch}; {reporter.epoch - 1} finished epoch(s) kept")
    else:
        _finish(ctx, job_id, status="succeeded", message=f"trained {spec.fit.epochs} epochs", model_path=str(model_path))


def _finish(ctx: WorkerContext, job_id: str, **fields: object) -> None:
    with session_scope(ctx.session_factory) as session:
        event = jobs_repo.finish(session, job_id, **fields)  # type: ignore[arg-type]
    _publish(ctx, event)


def _publish(ctx: WorkerContext, event: JobEvent) -> None:
    ctx.publisher.publish(status_message(event))
