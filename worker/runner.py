"""One training attempt, from claim to finish or hand-back; testable without Celery."""

import logging
import platform
import queue
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from app import ingest, lifecycle, logs, named_arrays, persisted_metrics
from app.db import make_engine, make_session_factory, session_scope
from app.events.messages import progress_message
from app.events.publisher import Publisher, make_publisher
from app.lifecycle import JobStatus, StopReason
from app.models import utcnow
from app.queue import CeleryDoorbell, make_celery
from app.repositories import datasets as datasets_repo
from app.repositories import jobs as jobs_repo
from app.services import reproduce as reproduce_service
from app.settings import Settings
from app.specs import EarlyStoppingSpec, TrainingSpec
from app.storage import Artifacts, open_artifacts
from app.storage import with_retry as with_store_retry
from app.sweeps import service as sweep_service
from app.sweeps.service import TrialContext
from app.training.checkpoint import Checkpoint
from app.training.failures import describe_failure
from app.training.trainer import EpochReporter, NonFiniteLoss, Outcome, train

log = logging.getLogger("epochly.worker")
CANCEL_POLL_S = 0.2
RETRY_MAX_DELAY_S = 5.0


def with_retry(what: str, action: Callable[[], None]) -> None:
    """Keep trying a database write until it lands: a row must never be dropped because the
    database was restarting. Gives up only when the process ends."""
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as exc:
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(RETRY_MAX_DELAY_S, delay * 2)


@dataclass
class WorkerContext:
    settings: Settings
    worker_name: str
    # Set when the worker is asked to stop: the running job checkpoints and goes back to the queue.
    shutting_down: threading.Event = field(default_factory=threading.Event)
    # The queues this worker consumes: WORKER_QUEUES, or what Celery's -Q made of them (worker/tasks.py).
    queues: list[str] = field(default_factory=list)
    # What TensorFlow trains on here ([{"kind", "name"}]); each attempt records them.
    devices: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queues = self.queues or self.settings.worker_queue_names

    @cached_property
    def environment(self) -> dict[str, str]:
        """What each job's record names of this worker: the versions that decide the numbers, and
        whether it trains on a GPU (TensorFlow takes one when it sees one)."""
        return {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "device_kind": "GPU" if any(device["kind"] == "GPU" for device in self.devices) else "CPU",
        }

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(
            make_engine(self.settings.resolved_database_url), publisher=self.publisher, doorbell=CeleryDoorbell(self.celery)
        )

    @cached_property
    def artifacts(self) -> Artifacts:
        return open_artifacts(self.settings)

    @cached_property
    def publisher(self) -> Publisher:
        return make_publisher(self.settings)

    @cached_property
    def celery(self) -> Celery:
        return make_celery(self.settings)

    @property
    def heartbeat_interval_s(self) -> float:
        return max(0.5, self.settings.job_heartbeat_timeout_s / 6)


class JobHooks:
    """Connects training to the outside: epoch rows to the database, events to the bus, cancel from
    the API, heartbeats so the service knows this worker is alive."""

    def __init__(self, job_id: str, ctx: WorkerContext, trial: TrialContext | None = None) -> None:
        self.job_id = job_id
        self.ctx = ctx
        self.trial = trial
        self.cancelled = threading.Event()
        # The sweep's pruner judged this trial from the rows written so far: end after this epoch.
        self.pruned = threading.Event()
        self.pruned_after = 0
        # The service gave the job to another attempt (this worker looked dead): stop, finish nothing.
        self.lost = threading.Event()
        self._done = threading.Event()
        self._watcher = logs.thread_in_context(self._watch, f"job-watch-{job_id}")
        # Epoch rows go through a writer thread: training never waits on the database, and a row
        # that cannot be written yet (database restarting) waits in this queue, in order.
        self._rows: queue.Queue[tuple[int, dict[str, float], float, datetime] | None] = queue.Queue()
        self._writer = logs.thread_in_context(self._write_rows, f"job-rows-{job_id}")

    def __enter__(self) -> "JobHooks":
        self._watcher.start()
        self._writer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._rows.put(None)
        self._writer.join()  # every epoch row is in the database before the job is finished
        self._done.set()
        self._watcher.join()

    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None:
        self._rows.put((epoch, logs, duration_s, utcnow()))

    def _write_rows(self) -> None:
        while (item := self._rows.get()) is not None:
            with_retry(f"writing epoch {item[0]} of job {self.job_id}", partial(self._write_row, *item))
            if self.trial is not None and self.trial.prunes and not self.pruned.is_set():
                self._judge(item[0])

    def _write_row(self, epoch: int, logs: dict[str, float], duration_s: float, finished_at: datetime) -> None:
        # Its own short transaction: the row is visible to pollers as soon as it lands.
        with session_scope(self.ctx.session_factory) as session:
            recorded = jobs_repo.record_epoch(session, self.job_id, epoch, logs, duration_s, finished_at)
            if self.trial is not None:
                sweep_service.note_epoch(session, self.job_id, self.trial, logs)
            if recorded is not None:  # a redelivered epoch is counted once
                persisted_metrics.observe_epoch(session, self.job_id, duration_s)

    def _judge(self, epoch: int) -> None:
        """Off the training thread, which goes on with the next epoch meanwhile: a verdict to prune
        ends training after the epoch it arrives in."""
        assert self.trial is not None
        try:
            if sweep_service.should_prune(self.ctx.session_factory, self.job_id, self.trial):
                self.pruned_after = epoch
                self.pruned.set()
        except Exception as exc:  # a missed verdict only lets the trial run on; the next epoch asks again
            log.warning("pruning verdict for job %s after epoch %d failed: %s", self.job_id, epoch, exc)

    def progress(self, epoch: int, batch: int, batches: int | None) -> None:
        self.ctx.publisher.publish(progress_message(self.job_id, epoch, batch, batches))

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()

    def should_hand_back(self) -> bool:
        return self.ctx.shutting_down.is_set()

    def should_end(self) -> bool:
        return self.pruned.is_set()

    def _watch(self) -> None:
        """Off the training thread, so batches never wait on the database: cancel checks a few times
        a second, heartbeats every few seconds."""
        last_beat = 0.0
        elapsed = 0.0
        while not self._done.wait(CANCEL_POLL_S):
            elapsed += CANCEL_POLL_S
            try:
                with session_scope(self.ctx.session_factory) as session:
                    if elapsed - last_beat >= self.ctx.heartbeat_interval_s:
                        last_beat = elapsed
                        if not lifecycle.beat(session, self.job_id, self.ctx.worker_name):
                            self.lost.set()
                            return
                    if jobs_repo.cancel_requested(session, self.job_id):
                        self.cancelled.set()
                        return
            except Exception as exc:  # the database blinking must not kill training
                log.warning("heartbeat/cancel check for job %s failed: %s", self.job_id, exc)


def run_job(message_job_id: str, ctx: WorkerContext, message_queue: str | None = None) -> None:
    """Take the job the message names, or else the oldest one queued in the message's queue (any of
    this worker's queues when that is unknown), and run one attempt of it."""
    queues = [message_queue] if message_queue in ctx.queues else ctx.queues
    with session_scope(ctx.session_factory) as session:
        claimed = lifecycle.claim_next(session, message_job_id, ctx.worker_name, queues=queues, devices=ctx.devices)
        if claimed is None:
            log.info("no queued job for message %s; nothing to do", message_job_id)
            return
        job_id = claimed[0]
        job = jobs_repo.get(session, job_id)
        assert job is not None
        trial = sweep_service.trial_context(session, job)
        # Trained from the record's spec: its fit.seed is the one recorded, drawn there if the job left it null.
        spec = TrainingSpec.model_validate(reproduce_service.record_start(session, job, ctx.environment)["spec"])
        dataset = datasets_repo.get(session, job.dataset_id) if job.dataset_id else None
        storage_key = dataset.storage_key if dataset else None
        validation_key: str | None = None
        if spec.fit.validation_dataset_id is not None:
            validation = datasets_repo.get(session, job.validation_dataset_id) if job.validation_dataset_id else None
            validation_key = validation.storage_key if validation else None
        # The first attempt has no checkpoint to resume: not asking the store saves a round trip.
        resumable = len(job.attempts) > 1

    with logs.job_context(job_id):  # every line of the attempt, its threads' included, names the job
        log.info("job %s: attempt started on %s", job_id, ctx.worker_name)
        _run_attempt(ctx, job_id, spec, storage_key, validation_key, trial, resumable=resumable)


def _run_attempt(
    ctx: WorkerContext,
    job_id: str,
    spec: TrainingSpec,
    storage_key: str | None,
    validation_key: str | None,
    trial: TrialContext | None,
    *,
    resumable: bool = True,
) -> None:
    artifacts = ctx.artifacts
    model_path = artifacts.model_work_path(job_id)
    checkpoint = Checkpoint(
        artifacts.store, artifacts.checkpoint_prefix(job_id), artifacts.checkpoint_scratch(job_id), resumable=resumable
    )
    # The datasets' local copies stay out of the cache's eviction until training is over.
    with JobHooks(job_id, ctx, trial) as hooks, ExitStack() as datasets_in_use:
        reporter = EpochReporter(hooks)
        try:
            if storage_key is None:
                raise FileNotFoundError("the job's dataset was deleted before training started")
            if spec.fit.validation_dataset_id is not None and validation_key is None:
                raise FileNotFoundError("the job's validation dataset was deleted before training started")
            folder = datasets_in_use.enter_context(artifacts.dataset_folder(storage_key, patient=True))
            x, y = ingest.load_arrays(folder.parent, folder.name, mmap=True)
            validation_data = None
            if validation_key:
                validation_folder = datasets_in_use.enter_context(artifacts.dataset_folder(validation_key, patient=True))
                validation_data = ingest.load_arrays(validation_folder.parent, validation_folder.name, mmap=True)
            in_memory = named_arrays.nbytes(x) + named_arrays.nbytes(y) <= ctx.settings.worker_memory_budget_bytes
            if in_memory:
                x, y = named_arrays.apply(x, np.asarray), named_arrays.apply(y, np.asarray)
                if validation_data is not None:
                    validation_data = (
                        named_arrays.apply(validation_data[0], np.asarray),
                        named_arrays.apply(validation_data[1], np.asarray),
                    )
            outcome = train(
                spec,
                x,
                y,
                reporter=reporter,
                model_path=model_path,
                in_memory=in_memory,
                checkpoint=checkpoint,
                checkpoint_interval_s=ctx.settings.checkpoint_interval_s,
                validation_data=validation_data,
            )
        except Exception as exc:
            error = describe_failure(exc, reporter.epoch)
            log.warning("job %s failed in epoch %s: %s: %s", job_id, reporter.epoch, error["type"], error["message"])
            _finish(
                ctx,
                job_id,
                JobStatus.FAILED,
                message=f"{error['type']}: {error['message']}",
                error=error,
                **_best(reporter),
                stop_reason=StopReason.NAN_LOSS if isinstance(exc, NonFiniteLoss) else None,
            )
            checkpoint.discard()
            return
    if hooks.lost.is_set():
        log.warning("job %s was given to another attempt while this worker ran it; stopping", job_id)
        checkpoint.close()
        return
    if outcome is Outcome.HANDED_BACK:
        checkpoint.flush()  # the next attempt resumes from the checkpoint: it must be in the store first
        checkpoint.close()
        _hand_back(ctx, job_id, reporter.epoch)
        return
    model_reference = ""
    if outcome in (Outcome.PRUNED, Outcome.EARLY_STOPPED, Outcome.COMPLETED):
        # A job is succeeded only once its model is in the store, however long the store is away.
        model_reference = with_store_retry(
            f"uploading the model of job {job_id}", lambda: artifacts.publish_model(job_id, model_path)
        )
    if outcome is Outcome.CANCELLED:
        kept = reporter.epoch - 1
        _finish(
            ctx,
            job_id,
            JobStatus.CANCELLED,
            message=f"cancelled during epoch {reporter.epoch}; {kept} finished epoch(s) kept",
            stop_reason=StopReason.CANCELLED,
            **_best(reporter),
        )
        checkpoint.discard()
    elif outcome is Outcome.PRUNED:
        assert trial is not None
        _finish(
            ctx,
            job_id,
            JobStatus.SUCCEEDED,
            message=f"pruned after epoch {reporter.epoch} of {spec.fit.epochs}: its {trial.metric} fell behind the "
            f"other trials' (judged after epoch {hooks.pruned_after})",
            model_path=model_reference,
            stop_reason=StopReason.PRUNED,
            **_best(reporter),
        )
        checkpoint.discard()
    elif outcome is Outcome.EARLY_STOPPED:
        _finish(
            ctx,
            job_id,
            JobStatus.SUCCEEDED,
            message=f"stopped early after epoch {reporter.epoch} of {spec.fit.epochs}: {_early_stop_cause(spec, reporter)}",
            model_path=model_reference,
            stop_reason=StopReason.EARLY_STOPPING,
            **_best(reporter),
        )
        checkpoint.discard()
    else:
        _finish(
            ctx,
            job_id,
            JobStatus.SUCCEEDED,
            message=f"trained {spec.fit.epochs} epochs",
            model_path=model_reference,
            stop_reason=StopReason.COMPLETED,
            **_best(reporter),
        )
        checkpoint.discard()


def _best(reporter: EpochReporter) -> dict[str, Any]:
    driver = reporter.callbacks
    if driver is None or driver.best_epoch is None:
        return {}
    return {"best_epoch": driver.best_epoch, "best": driver.best}


def _early_stop_cause(spec: TrainingSpec, reporter: EpochReporter) -> str:
    """In the words a user set: which EarlyStopping, on what, after how long."""
    driver = reporter.callbacks
    stopper = next((cb for cb in spec.fit.callbacks if isinstance(cb, EarlyStoppingSpec)), None)
    if stopper is None or driver is None:
        return "EarlyStopping"
    cause = f"EarlyStopping: no improvement in {stopper.monitor} (patience {stopper.patience})"
    if driver.best_epoch is not None:
        cause += f"; best epoch {driver.best_epoch}"
        if stopper.restore_best_weights:
            cause += ", whose weights the model holds"
    return cause


def _hand_back(ctx: WorkerContext, job_id: str, epoch: int) -> None:
    """The job goes back to the queue (its doorbell rings after the commit) and resumes from its checkpoint."""

    def requeue() -> None:
        with session_scope(ctx.session_factory) as session:
            lifecycle.requeue(
                session,
                job_id,
                worker=ctx.worker_name,
                outcome=lifecycle.HANDED_BACK,
                message=f"{ctx.worker_name} is shutting down; handed back after epoch {epoch} (checkpointed), will resume",
            )

    with_retry(f"handing back job {job_id}", requeue)


def _finish(ctx: WorkerContext, job_id: str, to: JobStatus, **fields: Any) -> None:
    def finish() -> None:
        with session_scope(ctx.session_factory) as session:
            if lifecycle.finish(session, job_id, to, worker=ctx.worker_name, **fields) is None:
                log.warning("job %s is no longer held by %s; its result (%s) is dropped", job_id, ctx.worker_name, to)
            else:
                log.info("job %s %s: %s", job_id, to, fields["message"])

    with_retry(f"finishing job {job_id}", finish)
