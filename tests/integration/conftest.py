"""A live service per back end: a real uvicorn API process and a real Celery worker process."""

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.admin import create_api_key
from app.serve import api_command
from app.settings import Settings
from tests.conftest import ROOT, embedded_settings, settings_env, start_scheduler, start_worker, wait_for_http
from tests.integration.servers import PrivateRedis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """`processes` > 1 starts uvicorn with WEB_CONCURRENCY: that many API processes behind one port."""

    def __init__(self, settings: Settings, log_path: Path, processes: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self.log_path = log_path
        self.key = ""
        env = {**settings_env(settings), "WEB_CONCURRENCY": str(processes)}
        self.process = subprocess.Popen(
            api_command("127.0.0.1", self.port, log_format=settings.log_format),
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90) -> None:
        wait_for_http(f"{self.url}/health", self.process, self.log_path, timeout_s)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


# A second queue that the service's one worker does not consume (tests/integration/test_queues_e2e.py).
QUEUES = "default,gpu"


@pytest.fixture(scope="session", params=["embedded", "postgres-redis"])
def backend(request, tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp(request.param) / "var"
    if request.param == "embedded":
        return embedded_settings(data_dir).model_copy(update={"queues": QUEUES})
    return Settings(
        data_dir=data_dir,
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
        queues=QUEUES,
    )


@pytest.fixture(scope="session")
def service(backend, tmp_path_factory):
    """The API (which applies the migrations) first, then the scheduler and one worker."""
    logs = tmp_path_factory.mktemp("logs")
    backend.prepare_data_dir()
    api = ApiServer(backend, logs / "api.log")
    roles = []
    try:
        api.wait_ready()
        api.key = create_api_key("integration", backend)
        roles.append(start_scheduler(backend, logs / "scheduler.log"))
        roles.append(start_worker(backend, logs / "worker.log"))
        yield api
    finally:
        for role in roles:
            role.stop()
        api.stop()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    """A Redis of the test's own, with no persistence, that the test may stop and start at will."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_live(service, backend, request):
    """A client of the service as an owner of the module's own: what a module that submits many large
    specs (the Keras catalogues) leaves behind stays out of other modules' lists, which would serve
    pages of those specs to the read-path load tests."""
    owner = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    key = create_api_key(owner, backend)
    with httpx.Client(base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def live(service):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {service.key}"}) as client:
        yield client
