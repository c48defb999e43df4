"""Shared fixtures: real PostgreSQL, Redis and Celery workers; the embedded default in a temp folder.

With CI=true a missing service fails the test that needs it; elsewhere it is skipped with a reason.
"""
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.admin import create_api_key
from app.main import create_app
from app.settings import Settings
from bench.harness import postgres_database
from bench.servers import MotoS3

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("EPOCHLY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# How often a starting process is asked whether it is ready: the suite starts dozens, and waits on each.
READY_POLL_S = 0.05


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def one_spec_checker_for_the_session() -> Iterator[None]:
    """Every in-process app's lifespan stops the spec checker's helper, so each test that submits a
    job would spawn a new one and import TensorFlow again (4 to 6 s here). One helper serves the
    whole session instead, as one serves every request of a long-lived API process."""
    from app.services.spec_check import spec_checker

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spec_checker, "shutdown", lambda: None)
        yield
    spec_checker.shutdown()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database per test session, built by the app's own migrations when the app starts."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A numbered Redis database of its own, flushed before use."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    db = 11
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A real S3-compatible server (moto's server mode) for the session. Its standard AWS_* variables
    are set in this process, and so in the API and worker processes it starts, while it runs."""
    server = MotoS3()
    server.start()
    saved = {name: os.environ.get(name) for name in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def s3_storage_url(moto_s3: MotoS3) -> str:
    """STORAGE_URL for a prefix of the bucket that no other test uses."""
    return f"s3://{moto_s3.bucket}/{uuid.uuid4().hex}"


def embedded_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url="", broker_url="")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return embedded_settings(tmp_path / "var")


@contextmanager
def authed_client(settings: Settings, owner: str = "tests") -> Iterator[TestClient]:
    """A client of the in-process API, authenticated as `owner`."""
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {create_api_key(owner, settings)}"
        yield test_client


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with authed_client(settings) as test_client:
        yield test_client


@pytest.fixture
def example_dataset(client: TestClient) -> dict:
    response = client.post("/v1/datasets/examples/side-effects")
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Until `url` answers 200; fails at once, with the log's tail, if the process exits first."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(READY_POLL_S)
    raise TimeoutError(f"{url} did not answer after {timeout_s}s:\n{log_path.read_text()[-3000:]}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly these settings."""
    return {**os.environ, **{name.upper(): str(value) for name, value in settings.model_dump().items()}}


class RoleProcess:
    """A real process of one role (a `celery worker` with the solo pool, or the scheduler) against the given back end."""

    def __init__(self, settings: Settings, log_path: Path, command: list[str], ready_marker: bytes) -> None:
        self.settings = settings
        self.log_path = log_path
        self.ready_marker = ready_marker
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.name}: exited early:\n{self.log_path.read_text()[-3000:]}")
            if self.ready_marker in self.log_path.read_bytes():
                return
            time.sleep(READY_POLL_S)
        raise TimeoutError(f"{self.log_path.name}: not ready after {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no hand-back: as if the machine died."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


def start_worker(settings: Settings, log_path: Path) -> RoleProcess:
    from app.serve import worker_command

    settings.prepare_data_dir()
    worker = RoleProcess(settings, log_path, worker_command(f"test-{uuid.uuid4().hex[:6]}"), b" ready.")
    worker.wait_ready()
    return worker


def start_scheduler(settings: Settings, log_path: Path) -> RoleProcess:
    from app.serve import scheduler_command

    settings.prepare_data_dir()
    scheduler = RoleProcess(settings, log_path, scheduler_command(), b"scheduler ready")
    scheduler.wait_ready()
    return scheduler


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request, tmp_path: Path) -> Iterator[str]:
    """A database on each back end, built by `alembic upgrade head` as the service builds it."""
    from app.migrate import upgrade_to_head

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'epochly.db'}"
        upgrade_to_head(url)
        yield url
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database(PG_ADMIN_URL) as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture
def session_factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    from app.db import make_engine, make_session_factory

    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()
