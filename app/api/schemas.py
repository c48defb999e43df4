"""Response schemas; every one carries an example built from the tutorial's job."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.json_schema import WHOLE
from app.lifecycle import JobStatus, StopReason
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS

EXAMPLE_DATASET: dict[str, Any] = {
    "id": "ds_5f1c0e3a9b2d4c6e8f0a1b2c3d4e5f60",
    "name": "side-effects",
    "format": "example",
    "n_samples": 2100,
    "x_shape": [1],
    "y_shape": [],
    "size_bytes": 16800,
    "upload_bytes": 16800,
    "stored_bytes": 16928,
    "sha256": "9b0c6f1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4",
    "created_at": "2026-11-25T12:00:00Z",
}
EXAMPLE_LOGS: dict[str, Any] = {"loss": 0.2824, "accuracy": 0.9286}
EXAMPLE_EPOCH: dict[str, Any] = {"epoch": 20, "logs": EXAMPLE_LOGS, "duration_s": 0.41, "finished_at": "2026-11-25T12:00:09Z"}
EXAMPLE_JOB: dict[str, Any] = {
    "id": "job_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
    "name": "side-effects tutorial",
    "tags": {"tutorial": "keras"},
    "dataset_id": EXAMPLE_DATASET["id"],
    "status": "succeeded",
    "spec": {
        "dataset_id": EXAMPLE_DATASET["id"],
        "model": {"layers": TUTORIAL_LAYERS, "keras_json": None},
        "compile": TUTORIAL_COMPILE,
        "fit": TUTORIAL_FIT,
    },
    "created_at": "2026-11-25T12:00:00Z",
    "started_at": "2026-11-25T12:00:01Z",
    "finished_at": "2026-11-25T12:00:10Z",
    "epochs_total": 20,
    "epochs_completed": 20,
    "latest": EXAMPLE_LOGS,
    "stop_reason": "completed",
    "best_epoch": 20,
    "best": EXAMPLE_LOGS,
    "error": None,
    "queue": "default",
    "waiting_reason": None,
    "worker": "celery@host (pid 4242)",
    "worker_devices": [{"kind": "CPU", "name": "/physical_device:CPU:0"}],
    "attempts": [
        {
            "attempt": 1,
            "worker": "celery@host (pid 4242)",
            "devices": [{"kind": "CPU", "name": "/physical_device:CPU:0"}],
            "started_at": "2026-11-25T12:00:01Z",
            "ended_at": "2026-11-25T12:00:10Z",
            "outcome": "succeeded",
        }
    ],
    "restarts": 0,
    "record": {
        "dataset_sha256": EXAMPLE_DATASET["sha256"],
        "seed": 0,
        "spec": {
            "dataset_id": EXAMPLE_DATASET["id"],
            "model": {"layers": TUTORIAL_LAYERS, "keras_json": None},
            "compile": TUTORIAL_COMPILE,
            "fit": TUTORIAL_FIT,
        },
        "python": "3.11.9",
        "tensorflow": "2.20.0",
        "keras": "3.15.1",
        "numpy": "2.1.3",
        "device_kind": "CPU",
    },
    "history": [
        {"status": "queued", "message": "submitted; waiting for a worker", "at": "2026-11-25T12:00:00Z"},
        {"status": "running", "message": "started on celery@host (pid 4242)", "at": "2026-11-25T12:00:01Z"},
        {"status": "succeeded", "message": "trained 20 epochs", "at": "2026-11-25T12:00:10Z"},
    ],
}


class DatasetArray(BaseModel):
    role: Literal["x", "y"] = Field(description="x: a model input; y: labels of a model output")
    name: str | None = Field(description="The input or output name (x_<name> / y_<name>); null for a plain x or y")
    shape: list[int] = Field(description="Shape of one sample")
    dtype: str


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_DATASET})

    id: str
    name: str
    format: str = Field(description="csv, npz or example")
    n_samples: int
    x_shape: list[int] = Field(description="Shape of one sample's features")
    y_shape: list[int] = Field(description="Shape of one sample's label ([] for a scalar label)")
    arrays: list[DatasetArray] | None = Field(
        default=None,
        description="For named inputs or outputs (x_<input> / y_<output> arrays, CSV column groups): every array; "
        "x_shape and y_shape then describe the first of each. Null for one x and one y",
    )
    size_bytes: int = Field(description="The bytes received (the same as upload_bytes; kept for older clients)")
    upload_bytes: int = Field(description="The bytes received")
    stored_bytes: int = Field(description="What the parsed arrays take on disk; OWNER_MAX_STORED_BYTES counts these")
    sha256: str
    created_at: datetime


class DatasetPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"items": [EXAMPLE_DATASET], "next_cursor": None}})

    items: list[DatasetRead]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class JobError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"type": "NonFiniteLoss", "message": "loss became nan in epoch 3, batch 17", "epoch": 3}}
    )

    type: str
    message: str
    epoch: int | None = Field(default=None, description="The 1-based epoch the job failed in (null if before training)")


class JobEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_JOB["history"][0]})

    status: JobStatus
    message: str
    at: datetime


class DeviceRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"kind": "GPU", "name": "NVIDIA H100 80GB HBM3"}})

    kind: str = Field(description="CPU or GPU, as TensorFlow lists the device")
    name: str = Field(description="A GPU's product name where TensorFlow knows it; otherwise TensorFlow's device name")


class AttemptRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": EXAMPLE_JOB["attempts"][0]})

    attempt: int
    worker: str
    devices: list[DeviceRead] = Field(default_factory=list, description="What the attempt's worker trained on")
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None = Field(description="succeeded, failed, cancelled, worker lost or handed back; null while running")


class JobRecordRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": EXAMPLE_JOB["record"]})

    dataset_sha256: str | None = Field(
        description="The training dataset's `sha256` (the uploaded file's); null if it was deleted before the job started"
    )
    seed: int = Field(description="The seed the job trained with: fit.seed, or the one the worker drew when it was null")
    spec: dict[str, Any] = Field(description="The spec as it ran: the stored spec with `seed` in fit.seed")
    python: str = Field(description="The worker's Python version")
    tensorflow: str
    keras: str
    numpy: str
    device_kind: Literal["CPU", "GPU"] = Field(description="GPU when the worker trains on a GPU, else CPU")


class VersionDifference(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"name": "tensorflow", "original": "2.19.0", "rerun": "2.20.0"}})

    name: Literal["python", "tensorflow", "keras", "numpy", "device_kind"]
    original: str | None = Field(description="The original job's recorded value")
    rerun: str | None = Field(description="This rerun's")


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_JOB})

    id: str
    name: str | None
    tags: dict[str, str]
    dataset_id: str | None
    status: JobStatus
    spec: dict[str, Any] = Field(description="The submitted spec, as stored")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    epochs_total: int
    epochs_completed: int
    latest: dict[str, float] | None = Field(description="The last finished epoch's Keras logs")
    stop_reason: StopReason | None = Field(
        default=None,
        description="Why training ended: completed, early_stopping (an EarlyStopping callback; the job succeeded "
        "with epochs_completed < epochs_total), nan_loss (the job failed with NonFiniteLoss) or cancelled. "
        "Null while the job is queued or running, or after another failure",
    )
    best_epoch: int | None = Field(
        default=None,
        description="The best finished epoch (1-based) by Keras' EarlyStopping rule: the first EarlyStopping's "
        "monitor, mode and min_delta, else val_loss (or loss without validation data)",
    )
    best: dict[str, float] | None = Field(default=None, description="The best epoch's Keras logs")
    error: JobError | None
    queue: str = Field(default="default", description="The queue the job waits in; only workers consuming it take it")
    waiting_reason: str | None = Field(
        default=None,
        description='Queued jobs that no worker can take: why, e.g. "no worker is consuming queue `gpu`". '
        "Null otherwise (the job may still wait for a busy worker)",
    )
    worker: str | None
    history: list[JobEventRead]
    cancel_requested_at: datetime | None = Field(default=None, description="Set while a running job is being cancelled")
    attempts: list[AttemptRead] = Field(default_factory=list, description="Each time a worker took the job")
    heartbeat_at: datetime | None = Field(default=None, description="The running worker's last sign of life")
    batch: int | None = Field(default=None, description="Running jobs: batches finished in the current epoch")
    batches_per_epoch: int | None = Field(default=None, description="Running jobs: batches in one epoch")
    sweep_id: str | None = Field(default=None, description="The sweep this job is a trial of (null: not a trial)")
    trial: int | None = Field(default=None, description="Its 1-based trial number in the sweep")
    params: dict[str, Any] | None = Field(default=None, description="The trial's sampled values, by spec path")
    record: JobRecordRead | None = Field(
        default=None,
        description="What makes the job repeatable, written when a worker starts it (null while it has not started); "
        "POST /v1/jobs/{id}/rerun queues a new job from it",
    )
    rerun_of: str | None = Field(
        default=None, description="The job this one reruns (POST /v1/jobs/{id}/rerun); null for a job submitted as such"
    )
    versions_differ: list[VersionDifference] | None = Field(
        default=None,
        description="A rerun, once a worker has started it: each recorded version or device kind that is not the "
        "original's ([] when none is: on the same worker kind its losses repeat the original's bit for bit). "
        "Null for other jobs, and while the rerun has not started",
    )
    same_as_original: bool | None = Field(
        default=None,
        description="A rerun, once it and its original have both finished: true when versions_differ is empty and "
        "every epoch's loss equals the original's exactly (the same number of epochs, each bit for bit). Null otherwise",
    )

    @computed_field(description="How many times the job was started again after a lost or stopping worker")  # type: ignore[prop-decorator]
    @property
    def restarts(self) -> int:
        return max(0, len(self.attempts) - 1)

    @computed_field(description="The devices `worker` trains (or trained) the job on; null while no worker holds it")  # type: ignore[prop-decorator]
    @property
    def worker_devices(self) -> list[DeviceRead] | None:
        return self.attempts[-1].devices if self.worker is not None and self.attempts else None


class JobPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"items": [EXAMPLE_JOB], "next_cursor": None}})

    items: list[JobRead]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class EpochRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_EPOCH})

    epoch: int = Field(description="1-based epoch number")
    logs: dict[str, float] = Field(description="Every value in Keras' logs for this epoch")
    duration_s: float
    finished_at: datetime


class MetricsRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"job_id": EXAMPLE_JOB["id"], "status": "running", "epochs": [EXAMPLE_EPOCH]}}
    )

    job_id: str
    status: JobStatus
    epochs: list[EpochRead] = Field(description="At most `limit` rows after `after`, oldest first")
    more: bool = Field(default=False, description="More rows follow: ask again with `after` = the last epoch here")


class HealthRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": "ok",
                "database": "ok",
                "broker": "ok",
                "scheduler": "ok",
                "scheduler_leader": "host (pid 4243)",
                "workers": [
                    {
                        "id": "host (pid 4242)",
                        "queues": ["default"],
                        "devices": [{"kind": "CPU", "name": "/physical_device:CPU:0"}],
                        "started_at": "2026-11-25T12:00:00Z",
                        "heartbeat_age_s": 3.2,
                    }
                ],
            }
        }
    )

    status: Literal["ok", "degraded"]
    database: Literal["ok", "down"]
    broker: Literal["ok", "down"]
    scheduler: Literal["ok", "down"] = Field(description="ok while a scheduler process holds the lead")
    scheduler_leader: str | None = Field(default=None, description="The scheduler process that leads now")
    workers: list["WorkerRead"] = Field(
        default_factory=list, description="The live workers: those that beat within the heartbeat timeout"
    )


class WorkerRead(BaseModel):
    id: str = Field(description="The worker process, as jobs name it in `worker`")
    queues: list[str] = Field(description="The queues it consumes")
    devices: list[DeviceRead]
    started_at: datetime
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat")


class ProblemFieldError(BaseModel):
    path: str = Field(description="JSON path of the offending field, e.g. model.layers[2].units")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details: every error this API returns has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "about:blank",
                "title": "Invalid job spec",
                "status": 422,
                "detail": "model.layers[2].units: Received an invalid value for `units`, expected a positive integer.",
                "errors": [
                    {
                        "path": "model.layers[2].units",
                        "message": "Received an invalid value for `units`, expected a positive integer. Received: units=-1",
                    }
                ],
            }
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] = Field(default_factory=list)


EXAMPLE_KEY: dict[str, Any] = {
    "id": "key_3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
    "name": "laptop",
    "prefix": "Zq3kP0xw",
    "scope": "read",
    "created_at": "2026-11-25T12:00:00Z",
    "expires_at": "2026-12-25T12:00:00Z",
    "last_used_at": "2026-11-25T12:05:00Z",
    "revoked_at": None,
}


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"name": "laptop", "scope": "read", "expires_in_s": 2592000}}
    )

    name: str = Field(default="key", min_length=1, max_length=200, description="A label, to tell keys apart")
    scope: Literal["read", "write"] | None = Field(
        default=None,
        description="`read`: GET routes and streams only; `write`: everything. Default: the calling key's scope. "
        "A `read` key can create only `read` keys.",
    )
    # Lax pydantic read `true` as 1 s: every number in a request body is read as JSON Schema reads it.
    expires_in_s: Annotated[int, Field(ge=1, le=10 * 365 * 86400), WHOLE] | None = Field(
        default=None, description="Seconds until it expires; null: never"
    )


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_KEY})

    id: str
    name: str
    prefix: str = Field(description="The first characters after `ek_`, to tell keys apart; never the whole key")
    scope: Literal["read", "write"]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": {**EXAMPLE_KEY, "key": "ek_Zq3kP0xw…"}})

    key: str = Field(description="The key itself: shown this once, and stored only as its hash")


class KeyPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"items": [EXAMPLE_KEY], "next_cursor": None}})

    items: list[KeyRead]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


EXAMPLE_AUDIT: dict[str, Any] = {
    "id": 42,
    "at": "2026-11-25T12:00:00Z",
    "key_id": EXAMPLE_KEY["id"],
    "action": "job.submit",
    "target_id": EXAMPLE_JOB["id"],
    "client": "203.0.113.7",
    "outcome": "ok",
}


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"example": EXAMPLE_AUDIT})

    id: int
    at: datetime
    key_id: str | None = Field(description="The key that made the call (null: the server-side CLI)")
    action: str = Field(description="dataset.upload, dataset.delete, job.submit, job.cancel, key.create, key.revoke, …")
    target_id: str | None
    client: str | None = Field(description="The caller's address")
    outcome: str


class AuditPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"items": [EXAMPLE_AUDIT], "next_cursor": None}})

    items: list[AuditRead]
    next_cursor: str | None = Field(description="Pass as ?after= for the next page; null on the last page")


class TrialRead(BaseModel):
    """One trial of a sweep: an ordinary job, with what was sampled for it and how it did."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "job_id": EXAMPLE_JOB["id"],
                "trial": 7,
                "status": "succeeded",
                "params": {"compile.optimizer.learning_rate": 0.01, "model.layers[0].units": 32, "fit.batch_size": 10},
                "objective": 0.9476,
                "epochs_completed": 30,
                "stop_reason": "completed",
            }
        },
    )

    job_id: str
    trial: int
    status: JobStatus
    params: dict[str, Any]
    objective: float | None = Field(description="The best value of the objective metric over the trial's epochs so far")
    epochs_completed: int
    stop_reason: StopReason | None = Field(description="pruned: the pruner stopped it; completed; early_stopping; …")


class TrialCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = Field(default=0, description="Pruned trials included")
    failed: int = 0
    cancelled: int = 0
    pruned: int = Field(default=0, description="Trials the pruner stopped (they end `succeeded`)")


class SweepObjective(BaseModel):
    metric: str
    direction: Literal["maximize", "minimize"]


class SweepSummary(BaseModel):
    """A sweep without its leaderboard (lists)."""

    id: str
    name: str | None
    tags: dict[str, str]
    queue: str = Field(default="default", description="The queue every trial waits in")
    dataset_id: str | None
    status: JobStatus = Field(
        description="queued until a trial starts, running until the last one ends, then succeeded "
        "(some trial succeeded), failed or cancelled"
    )
    sampler: Literal["grid", "random", "tpe"]
    pruner: Literal["none", "median", "hyperband"]
    objective: SweepObjective
    trials: int = Field(description="How many trials the sweep runs in all")
    trials_created: int = Field(description="How many have been added so far")
    parallel: int
    seed: int
    counts: TrialCounts
    best: TrialRead | None = Field(description="The trial with the best objective so far")
    created_at: datetime
    cancelled_at: datetime | None
    finished_at: datetime | None


class SweepRead(SweepSummary):
    spec: dict[str, Any] = Field(description="The base job spec that trials vary")
    search: dict[str, dict[str, Any]] = Field(description="Spec path → distribution")
    leaderboard: list[TrialRead] = Field(description="Every trial, best objective first; trials without one yet last")


class SweepPage(BaseModel):
    items: list[SweepSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class ImportanceRead(BaseModel):
    """How much of the objective's spread each parameter explains (Optuna's PED-ANOVA), summing to 1."""

    sweep_id: str
    method: Literal["ped-anova"] = "ped-anova"
    trials_used: int = Field(description="Completed (unpruned) trials with an objective; importances need at least 2")
    importances: dict[str, float] = Field(description="Spec path → share of importance, largest first")


class LivenessRead(BaseModel):
    status: Literal["alive"] = "alive"
