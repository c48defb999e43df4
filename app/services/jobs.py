"""Submitting jobs, reading their state, metrics, log and trained model."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app import ingest, lifecycle, named_arrays
from app.db import session_scope
from app.errors import Conflict, FieldError, InvalidSpec, JobNotFound, ModelNotReady
from app.lifecycle import JobStatus, StopReason
from app.models import Dataset, EpochMetric, Job, JobEvent
from app.repositories import jobs as jobs_repo
from app.repositories.pagination import Page
from app.services import audit as audit_service
from app.services import datasets as dataset_service
from app.services import owners as owner_service
from app.services.audit import Action, AuditContext
from app.services.spec_check import spec_checker
from app.settings import Settings
from app.specs import JobCreate
from app.storage import open_artifacts

# Enough real samples to catch label/output mismatches without reading a big dataset.
SPEC_CHECK_SAMPLES = 32


@dataclass(frozen=True)
class _TrainingData:
    dataset_id: str
    storage_key: str
    n_train: int
    validation_dataset_id: str | None = None


def submit_job(
    session_factory: sessionmaker[Session],
    settings: Settings,
    payload: JobCreate,
    *,
    owner_id: str,
    audit: AuditContext | None = None,
    rerun_of: str | None = None,
) -> Job:
    """Check everything (checked_job), then write the job and its audit record (`audit`: who is
    calling) and commit; the broker's doorbell rings after that commit (app.lifecycle.submit).
    `rerun_of`: the job whose record `payload` was made from (app/services/reproduce.py)."""
    with session_scope(session_factory) as session:
        owner_service.check_job_quota(session, settings, owner_id)  # before the slow check, so a full quota fails fast
    job = checked_job(session_factory, settings, payload, owner_id=owner_id)
    job.rerun_of = rerun_of
    with session_scope(session_factory) as session:
        # Again, in the transaction that writes: other submits may have landed during the check.
        owner_service.hold_quotas(session, owner_id)
        owner_service.check_job_quota(session, settings, owner_id)
        lifecycle.submit(session, job)
        if audit is not None:
            audit_service.record(session, audit, Action.JOB_SUBMIT, job.id)
        session.refresh(job)  # with its history, for the caller to read after the session is gone
        return job


def checked_job(
    session_factory: sessionmaker[Session],
    settings: Settings,
    payload: JobCreate,
    *,
    owner_id: str,
    objective: str | None = None,
) -> Job:
    """A new job row for `payload`, not yet written, once its datasets and its spec have passed
    every check, the spec against real Keras (`objective`: a metric the epoch logs must hold). No
    transaction is open during the Keras check, which may take seconds."""
    with session_scope(session_factory) as session:  # first: a missing dataset is a 404 whatever else is wrong
        data = _training_data(session, payload, owner_id=owner_id)
    check_queue(settings, payload.queue)
    training = payload.model_dump(mode="json", include={"model", "compile", "fit"})
    take = min(SPEC_CHECK_SAMPLES, data.n_train)
    with open_artifacts(settings).dataset_folder(data.storage_key) as folder:
        x, y = ingest.load_arrays(folder.parent, folder.name, mmap=True)
        x, y = named_arrays.apply(x, lambda a: np.array(a[:take])), named_arrays.apply(y, lambda a: np.array(a[:take]))
    problems = spec_checker.check(
        training,
        x,
        y,
        settings.spec_check_timeout_s,
        objective,
    )
    if problems:
        raise InvalidSpec(
            f"{problems[0]['path']}: {problems[0]['message']}",
            [FieldError(p["path"], p["message"]) for p in problems],
        )
    return Job(
        owner_id=owner_id,
        name=payload.name,
        tags=payload.tags,
        queue=payload.queue,
        dataset_id=data.dataset_id,
        validation_dataset_id=data.validation_dataset_id,
        spec={"dataset_id": data.dataset_id, **training},
        epochs_total=payload.fit.epochs,
        epochs_completed=0,
    )


def check_queue(settings: Settings, queue: str) -> None:
    """A job (or sweep) may wait only in a queue the deployment names in QUEUES."""
    if queue not in settings.queue_names:
        raise InvalidSpec(
            f"queue: no queue named {queue!r}",
            [
                FieldError(
                    "queue", f"no queue named {queue!r}; the queues are {', '.join(settings.queue_names)} (the QUEUES setting)"
                )
            ],
        )


def _training_data(session: Session, payload: JobCreate, *, owner_id: str) -> _TrainingData:
    dataset = dataset_service.get_dataset(session, payload.dataset_id, owner_id=owner_id, field="dataset_id")
    n_train = int(np.ceil(dataset.n_samples * (1.0 - payload.fit.validation_split)))
    if n_train < 1 or (payload.fit.validation_split > 0 and n_train >= dataset.n_samples):
        raise InvalidSpec(
            "validation_split leaves no data for training or for validation",
            [
                FieldError(
                    "fit.validation_split", f"{payload.fit.validation_split} of {dataset.n_samples} samples leaves an empty split"
                )
            ],
        )
    named_inputs = [a["name"] for a in dataset.arrays or [] if a["role"] == "x" and a["name"] is not None]
    if payload.fit.normalize and named_inputs:
        raise InvalidSpec(
            "normalize applies to one array of features",
            [
                FieldError(
                    "fit.normalize",
                    f"normalize scales one array of features; this dataset has named inputs ({', '.join(named_inputs)}): "
                    "scale them before uploading, or add a Normalization layer to the model",
                )
            ],
        )
    validation_id = _validation_dataset(session, payload, dataset, owner_id=owner_id)
    return _TrainingData(dataset.id, dataset.storage_key, n_train, validation_id)


def _validation_dataset(session: Session, payload: JobCreate, dataset: Dataset, *, owner_id: str) -> str | None:
    """fit.validation_dataset_id: another of the owner's datasets, with samples and labels shaped like the training set's."""
    fit = payload.fit
    if fit.validation_dataset_id is None:
        return None
    path = "fit.validation_dataset_id"
    if fit.validation_split > 0:
        raise InvalidSpec(
            "give validation_split or validation_dataset_id, not both",
            [FieldError(path, "give fit.validation_split or fit.validation_dataset_id, not both")],
        )
    validation = dataset_service.get_dataset(session, fit.validation_dataset_id, owner_id=owner_id, field=path)
    for what, ours, theirs in (("samples", dataset.x_shape, validation.x_shape), ("labels", dataset.y_shape, validation.y_shape)):
        if list(ours) != list(theirs):
            raise InvalidSpec(
                f"the validation dataset's {what} do not match the training dataset's",
                [FieldError(path, f"its {what} have shape {tuple(theirs)}; the training dataset's have shape {tuple(ours)}")],
            )
    ours_named, theirs_named = _named_layout(dataset), _named_layout(validation)
    if ours_named != theirs_named:
        raise InvalidSpec(
            "the validation dataset's arrays do not match the training dataset's",
            [
                FieldError(
                    path,
                    f"its arrays are {_describe_layout(theirs_named)}; the training dataset's are {_describe_layout(ours_named)}",
                )
            ],
        )
    return validation.id


def _named_layout(dataset: Dataset) -> list[tuple[str, str | None, list[int]]]:
    return [(a["role"], a["name"], list(a["shape"])) for a in dataset.arrays or []]


def _describe_layout(layout: list[tuple[str, str | None, list[int]]]) -> str:
    if not layout:
        return "one x and one y"
    return ", ".join(f"{role}_{name} {tuple(shape)}" if name else f"{role} {tuple(shape)}" for role, name, shape in layout)


def get_job(session: Session, job_id: str, *, owner_id: str) -> Job:
    job = jobs_repo.get_owned(session, owner_id, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


def get_any_job(session: Session, job_id: str) -> Job:
    """Whoever owns it: for a read shared by several callers, who are each checked against its owner."""
    job = jobs_repo.get(session, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


def job_owner_lookup(session_factory: sessionmaker[Session]) -> Callable[[str], str | None]:
    """Who owns a job, for routing its live events to the owner's streams (None if it is gone)."""

    def owner_of(job_id: str) -> str | None:
        with session_scope(session_factory) as session:
            return jobs_repo.owner_of(session, job_id)

    return owner_of


def list_job_ids(
    session: Session,
    *,
    owner_id: str,
    status: str | None,
    sweep_id: str | None,
    queue: str | None = None,
    cursor: str | None,
    limit: int,
) -> Page[str]:
    return jobs_repo.page_ids(session, owner_id, status=status, sweep_id=sweep_id, queue=queue, cursor=cursor, limit=limit)


def job_metrics(
    session: Session, job_id: str, *, owner_id: str, after: int, limit: int | None = None
) -> tuple[str, list[EpochMetric]]:
    """The status and the epoch rows after `after`, without loading the job and its history. The
    status is read first: the worker writes every row before the final status, so a finished
    status comes with all of its rows."""
    status = jobs_repo.owned_status(session, owner_id, job_id)
    if status is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return status, jobs_repo.epochs_after(session, job_id, after, limit)


def cancel_job(session: Session, job_id: str, *, owner_id: str) -> Job:
    """Cancel a queued job at once, or ask a running one to stop. Cancelling a cancelled job is a no-op."""
    job = get_job(session, job_id, owner_id=owner_id)
    if job.status in lifecycle.ACTIVE:
        lifecycle.cancel(session, job_id)
        session.refresh(job)  # the worker may have claimed or finished it meanwhile
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Conflict(f"job {job_id!r} already {job.status}; only queued or running jobs can be cancelled")
    return job


def stream_backlog(
    session: Session, job_id: str, *, owner_id: str, after_seq: int, after_epoch: int, limit: int
) -> tuple[str, list[JobEvent], list[EpochMetric], bool]:
    """What a stream has not delivered yet, one page at a time: up to `limit` epochs after
    `after_epoch`, and the status events after `after_seq` up to the last of those epochs (a later
    status waits for the epochs before it). The flag says whether this page reached the end."""
    status, epochs = job_metrics(session, job_id, owner_id=owner_id, after=after_epoch, limit=limit)
    events = jobs_repo.events_after(session, job_id, after_seq)
    complete = len(epochs) < limit
    if not complete:
        events = [e for e in events if e.at <= epochs[-1].finished_at]
    return status, events, epochs, complete


def keras_log_page(session: Session, job_id: str, epochs_total: int, *, after: int, limit: int) -> tuple[int, str]:
    """Keras' verbose=2 lines (`Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010`) of up to `limit`
    epochs after `after`: how many there were, and the text."""
    rows = jobs_repo.epochs_after(session, job_id, after, limit)
    return len(rows), "".join(_keras_epoch_line(epochs_total, row) for row in rows)


def _keras_epoch_line(epochs_total: int, row: EpochMetric) -> str:
    ordered = sorted(row.logs.items(), key=lambda kv: _log_order(kv[0]))
    values = " - ".join(f"{key}: {_keras_number(value)}" for key, value in ordered)
    return f"Epoch {row.epoch}/{epochs_total} - {round(row.duration_s)}s - {values}\n"


def keras_log_end(job: Job) -> str:
    """What follows the epoch lines: why training stopped early, or the failure."""
    lines = []
    if job.stop_reason == StopReason.EARLY_STOPPING:
        # Keras' own words for it (EarlyStopping with verbose=1), then which epoch was best.
        lines.append(f"Epoch {job.epochs_completed}: early stopping")
        if job.best_epoch is not None:
            lines.append(f"Best epoch: {job.best_epoch}")
    if job.error:
        lines.extend(job.error.get("traceback", []))
        lines.append(f"{job.error.get('type', 'Error')}: {job.error.get('message', '')}")
    return "".join(f"{line}\n" for line in lines)


def _log_order(key: str) -> tuple[bool, bool, bool]:
    """loss first, then the other metrics, their val_ twins, and the learning rate last, as Keras prints them."""
    return key == "learning_rate", key != "loss", key.startswith("val_")


def _keras_number(value: float) -> str:
    """Keras' progress-bar rule: four decimals, or scientific notation for small values (a learning rate of 1e-4)."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


@dataclass(frozen=True)
class ModelDownload:
    """One of: the model's local file, a short-lived URL to send the client to, or its bytes as
    they stream from the store."""

    filename: str
    path: Path | None = None
    url: str | None = None
    chunks: Iterator[bytes] | None = None
    size: int = 0


def model_download(session: Session, settings: Settings, job_id: str, *, owner_id: str) -> ModelDownload:
    job = get_job(session, job_id, owner_id=owner_id)
    artifacts = open_artifacts(settings)
    if job.status != JobStatus.SUCCEEDED or not job.model_path or not artifacts.model_available(job.model_path):
        raise ModelNotReady(f"job {job_id!r} has no trained model yet (status: {job.status}); it is kept once the job succeeds")
    filename = f"{job_id}.keras"
    local = artifacts.local_model_path(job.model_path)
    if local is not None:
        return ModelDownload(filename, path=local)
    if settings.storage_presign:
        return ModelDownload(filename, url=artifacts.model_url(job.model_path, filename))
    chunks, size = artifacts.open_model(job.model_path)
    return ModelDownload(filename, chunks=chunks, size=size)
