"""Process settings, read once from the environment (12-factor names)."""

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The queue a job or sweep waits in unless it names another.
DEFAULT_QUEUE = "default"
# Queue names become Redis keys and message file names (`<id>.<queue>.msg`): no dots, slashes or spaces.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # Empty means "the embedded default under DATA_DIR", so one variable moves everything.
    database_url: str = ""
    broker_url: str = ""
    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8000
    # `make run`'s console: below debug it hides what a user cannot act on (TensorFlow's C++ log
    # lines, setuptools' and Celery's warnings); debug shows everything.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json: one JSON object a line (time, level, logger, message, and job_id on lines about a job),
    # for a log collector; text: lines for a person.
    log_format: Literal["text", "json"] = "text"
    # Set, GET /metrics asks for `Authorization: Bearer <token>`; empty, it is open like /health.
    metrics_token: str = ""
    # How long a submit waits for the Keras spec check before answering 503.
    spec_check_timeout_s: float = 120.0
    max_upload_bytes: int = 2 * 1024**3
    # JSON request bodies (job specs); uploads have their own limit above.
    max_request_bytes: int = 1024**2
    # A running job whose worker has not written a heartbeat for this long is requeued (or failed
    # after JOB_MAX_ATTEMPTS tries); workers beat every few seconds.
    job_heartbeat_timeout_s: float = 60.0
    job_max_attempts: int = 3
    # How often the scheduler sweeps for silent workers and re-sends what the broker forgot.
    scheduler_interval_s: float = 1.0
    # How often a running job saves a resumable checkpoint (0: after every epoch).
    checkpoint_interval_s: float = 30.0
    # Datasets larger than this train from a memory map, a batch at a time, instead of being loaded.
    worker_memory_budget_bytes: int = 4 * 1024**3
    owner_max_active_jobs: int = 20
    owner_max_stored_bytes: int = 20 * 1024**3
    # Evaluate / predict: the warm inference process keeps loaded models up to this many bytes (LRU).
    predict_cache_bytes: int = 1024**3
    predict_timeout_s: float = 300.0
    # Rows one JSON predict request may carry; bigger batches go as a dataset_id or a .npz / CSV file.
    predict_max_json_rows: int = 10_000
    # The stored (parsed, uncompressed) size of one dataset; an .npz is checked from its headers first.
    max_dataset_bytes: int = 4 * 1024**3
    # Where datasets, checkpoints and trained models live: empty for DATA_DIR itself, a folder (or
    # file://…), or s3://bucket/prefix reached with the standard AWS_* variables (AWS_ENDPOINT_URL for MinIO).
    storage_url: str = ""
    # Datasets and models fetched from object storage stay in DATA_DIR/cache up to this many bytes (LRU).
    worker_cache_bytes: int = 20 * 1024**3
    # Model downloads answer 307 to a short-lived presigned URL instead of streaming through the API.
    storage_presign: bool = False
    # Requests per minute per API key: a token bucket (Redis on the production pair, in-process embedded).
    rate_limit_per_min: int = 6000
    # Comma-separated: the queues a job (or sweep) may name, and the ones this worker consumes
    # (Celery's -Q on the worker's command line overrides WORKER_QUEUES).
    queues: str = DEFAULT_QUEUE
    worker_queues: str = DEFAULT_QUEUE

    @field_validator("queues", "worker_queues")
    @classmethod
    def _queue_names(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("name at least one queue")
        if bad := [name for name in names if not QUEUE_NAME.fullmatch(name)]:
            raise ValueError(f"queue names are 1-64 letters, digits, _ or -; not {', '.join(map(repr, bad))}")
        return ",".join(dict.fromkeys(names))

    @property
    def queue_names(self) -> list[str]:
        return self.queues.split(",")

    @property
    def worker_queue_names(self) -> list[str]:
        return self.worker_queues.split(",")

    def prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'epochly.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def datasets_dir(self) -> Path:
        return (self.data_dir / "datasets").resolve()

    @property
    def models_dir(self) -> Path:
        return (self.data_dir / "models").resolve()

    @property
    def checkpoints_dir(self) -> Path:
        return (self.data_dir / "checkpoints").resolve()

    @property
    def predictions_dir(self) -> Path:
        return (self.data_dir / "predictions").resolve()

    @property
    def cache_dir(self) -> Path:
        return (self.data_dir / "cache").resolve()

    @property
    def uploads_dir(self) -> Path:
        return (self.data_dir / "uploads").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
