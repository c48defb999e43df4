"""A live service per back end: a real uvicorn API process and a real Celery worker process."""
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.admin import create_api_key
from app.serve import api_command
from app.settings import Settings
from tests.conftest import ROOT, embedded_settings, settings_env, start_scheduler, start_worker
from tests.integration.servers import PrivateRedis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self.log_path = log_path
        self.key = ""
        self.process = subprocess.Popen(
            api_command("127.0.0.1", self.port), cwd=ROOT, env=settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"API not ready after {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="session", params=["embedded", "postgres-redis"])
def backend(request, tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp(request.param) / "var"
    if request.param == "embedded":
        return embedded_settings(data_dir)
    return Settings(
        data_dir=data_dir,
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
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


@pytest.fixture
def live(service):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {service.key}"}) as client:
        yield client
