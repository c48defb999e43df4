"""ORM models: datasets, jobs, their status history and per-epoch metrics."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both back ends (SQLite forgets the zone on the way back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Owner(Base):
    """Whoever holds API keys; every dataset and job belongs to one."""

    __tablename__ = "owner"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("own"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """Only the SHA-256 of a key is stored: keys are 32+ random characters, so a slow hash adds nothing."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("owner.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The 8 characters after `ek_`, so people can tell keys apart (keys from before 0006 keep 5).
    prefix: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200), server_default="key")
    # "read" (GET routes and streams) or "write" (everything).
    scope: Mapped[str] = mapped_column(String(8), server_default="write")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    # Written at most once a minute per key (app/services/owners.py: KeyCache).
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRecord(Base):
    """One state-changing call, written in the transaction of the change it records. Append-only."""

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_owner_id_id", "owner_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owner.id", ondelete="CASCADE"))
    key_id: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(40))


class KeyRefusal(Base):
    """Refused calls (401, 403, 429) of one key, counted rather than stored one row each."""

    __tablename__ = "key_refusal"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_key.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime]


class Dataset(Base):
    __tablename__ = "dataset"
    # GET /v1/datasets?sha256=: a client asks whether its owner already holds a file before uploading it.
    __table_args__ = (Index("ix_dataset_owner_id_sha256", "owner_id", "sha256"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ds"))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("owner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    n_samples: Mapped[int] = mapped_column(BigInteger)
    x_shape: Mapped[list[int]] = mapped_column(JSON)
    y_shape: Mapped[list[int]] = mapped_column(JSON)
    x_dtype: Mapped[str] = mapped_column(String(16))
    y_dtype: Mapped[str] = mapped_column(String(16))
    # Named inputs / outputs: [{role: "x" | "y", name, shape, dtype}] (name null for a plain x or y);
    # null for a dataset of one x and one y, whose shapes x_shape / y_shape give.
    arrays: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The bytes received; kept for clients of the first API (equal to upload_bytes).
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # What the dataset takes on disk once parsed (x.npy + y.npy); OWNER_MAX_STORED_BYTES counts these.
    stored_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The uploaded file's bytes as sent (the example dataset: its x then y arrays' raw bytes).
    sha256: Mapped[str] = mapped_column(String(64))
    # Directory name under DATA_DIR/datasets; derived from content, never from user input.
    storage_key: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A hyperparameter search: its trials are jobs (Job.sweep_id). Its status is derived from theirs."""

    __tablename__ = "sweep"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("swp"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("owner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The queue every trial is routed to (Job.queue).
    queue: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("dataset.id", ondelete="SET NULL"), index=True)
    # The base job spec ({dataset_id, model, compile, fit}, every default filled in) that trials vary.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # path → distribution, as submitted (app.sweeps.spec.Distribution).
    search: Mapped[dict[str, Any]] = mapped_column(JSON)
    sampler: Mapped[str] = mapped_column(String(16))
    pruner: Mapped[str] = mapped_column(String(16))
    objective_metric: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(8))
    trials: Mapped[int] = mapped_column(Integer)
    parallel: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Set by POST /cancel: no new trial starts, and every queued or running one is cancelled.
    cancelled_at: Mapped[datetime | None]
    # Set once the last trial has finished (or the sweep was cancelled and its trials have stopped).
    finished_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        # The scheduler's stale-heartbeat sweep: running jobs by heartbeat age.
        Index("ix_job_status_heartbeat", "status", "heartbeat_at"),
        # A trial number is taken once: two processes adding the same trial cannot both succeed.
        UniqueConstraint("sweep_id", "trial", name="uq_job_sweep_trial"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("owner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("dataset.id", ondelete="SET NULL"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A value of app.lifecycle.JobStatus, written only by app/lifecycle.py.
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    epochs_total: Mapped[int] = mapped_column(Integer)
    epochs_completed: Mapped[int] = mapped_column(Integer, default=0)
    latest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    worker: Mapped[str | None] = mapped_column(String(200))
    model_path: Mapped[str | None] = mapped_column(Text)
    # Set by POST /cancel on a running job; the worker stops at the next batch boundary.
    cancel_requested_at: Mapped[datetime | None]
    # Written by the running worker every few seconds; a stale one means the worker is gone.
    heartbeat_at: Mapped[datetime | None]
    # One entry per time a worker took the job: {"attempt", "worker", "started_at", "ended_at", "outcome"}.
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # fit.validation_dataset_id, as a column so that dataset cannot be deleted under a queued or running job.
    validation_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("dataset.id", ondelete="SET NULL"), index=True)
    # A value of app.lifecycle.StopReason, set when the job finishes: why training ended.
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    # The best finished epoch (1-based) by Keras' EarlyStopping rule, and its logs.
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A sweep's trial: its sweep, 1-based trial number, the sampled values by spec path, what
    # Optuna keeps for the trial (grid point, Hyperband rungs), and the best objective value so far.
    sweep_id: Mapped[str | None] = mapped_column(ForeignKey("sweep.id", ondelete="CASCADE"), index=True)
    trial: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sweep_attrs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    objective: Mapped[float | None] = mapped_column(Float)
    # The Celery queue the job is routed to (one of the QUEUES setting); only workers consuming it take it.
    queue: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    # What makes the job repeatable, written by the worker that starts its first attempt (later attempts
    # resume from it): {dataset_sha256, seed (the one drawn when fit.seed was null), spec (the stored spec
    # with that seed in fit.seed), python, tensorflow, keras, numpy, device_kind}. Null until it starts.
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # POST /v1/jobs/{id}/rerun: the job this one was queued from, by its record.
    rerun_of: Mapped[str | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    # A rerun, once started: each recorded version or device kind that is not the original's,
    # [{name, original, rerun}] ([] when none is). Null for other jobs, and until the rerun starts.
    versions_differ: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    history: Mapped[list["JobEvent"]] = relationship(order_by="JobEvent.id", cascade="all, delete-orphan", lazy="selectin")


class JobEvent(Base):
    """One status change of a job, so a user can see where the time went."""

    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class EpochMetric(Base):
    """One finished epoch; the primary key makes a redelivered epoch a no-op."""

    __tablename__ = "epoch_metric"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    logs: Mapped[dict[str, Any]] = mapped_column(JSON)
    duration_s: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerLease(Base):
    """Which scheduler process leads (dispatch and recovery) until `expires_at`; others stand by."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    renewed_at: Mapped[datetime | None]


class WorkerRecord(Base):
    """A live (or lately live) Celery worker: the queues it consumes and the devices it trains on.

    Workers upsert their row every few seconds; a row whose heartbeat is older than the heartbeat
    timeout is a worker that is gone."""

    __tablename__ = "worker"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSON)
    # [{"kind": "CPU" | "GPU", "name": ...}], as TensorFlow lists them.
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class MetricCount(Base):
    """One persisted Prometheus sample: a counter, or a histogram's bucket or sum (app/persisted_metrics.py).
    Workers and schedulers on any machine add to it in the transaction that makes the event real."""

    __tablename__ = "metric_count"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The sample's labels as sorted compact JSON, so one label set is one row.
    labels: Mapped[str] = mapped_column(String(400), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
