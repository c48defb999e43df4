"""Process settings, read once from the environment (12-factor names)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # Requests per minute per API key: a token bucket (Redis on the production pair, in-process embedded).
    rate_limit_per_min: int = 6000

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
    def uploads_dir(self) -> Path:
        return (self.data_dir / "uploads").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
