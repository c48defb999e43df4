"""The deployment files agree with the code they deploy (no Docker engine needed: files are parsed)."""

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "scheduler", "worker", "worker-gpu")
ONE_SHOTS = {"minio-setup"}
# Read by boto3 (the S3 artifact store), not by Settings: the standard AWS variables.
AWS_VARIABLES = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        instruction, _, arguments = entry.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def volume_mounts_of(service: dict) -> dict[str, str]:
    """Container path -> volume name (or host path)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def test_every_long_running_service_has_a_healthcheck_and_a_memory_limit(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "minio", "api", "scheduler", "worker", "worker-gpu"} <= set(services)
    for name in set(services) - ONE_SHOTS:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("mem_limit"), f"{name} has no memory limit"
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "on-failure", f"{name} runs once: it must not restart after success"


def test_api_and_worker_run_the_same_build(compose: dict) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api.get("build") is not None
    assert api.get("build") == worker.get("build")
    assert api.get("image") == worker.get("image")


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_api_command_is_the_console_script_that_runs_the_app_factory(compose: dict, dockerfile: list[tuple[str, str]]) -> None:
    from app.serve import api_command

    command = command_of(compose["services"]["api"])
    cmd = exec_form([arguments for instruction, arguments in dockerfile if instruction == "CMD"][-1])
    assert command == cmd == ["epochly-api"]
    module_name, _, attribute = console_scripts()["epochly-api"].partition(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))
    uvicorn = api_command("0.0.0.0", 8000)
    assert "--factory" in uvicorn
    module_name, _, attribute = next(arg for arg in uvicorn if arg.startswith("app.main:")).partition(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_api_healthcheck_probes_the_health_route(compose: dict) -> None:
    from app.api.routes import health

    probe = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert re.findall(r"https?://[^'\"\s]+", probe) == ["http://127.0.0.1:8000/health"]
    assert any(getattr(route, "path", None) == "/health" for route in health.router.routes)


def test_worker_command_names_an_existing_celery_app_module_and_the_solo_pool(compose: dict) -> None:
    command = command_of(compose["services"]["worker"])
    assert command[:1] == ["celery"] and "worker" in command
    module_name = command[command.index("-A") + 1]
    # find_spec, not import: importing the app module creates DATA_DIR folders as a side effect.
    assert importlib.util.find_spec(module_name) is not None, module_name
    # TensorFlow is not fork-safe: one job per worker process.
    assert "--pool=solo" in command


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_worker_and_scheduler_start_only_after_the_api_is_healthy_so_migrations_have_run(compose: dict, role: str) -> None:
    depends_on = compose["services"][role]["depends_on"]
    assert depends_on["api"]["condition"] == "service_healthy"


def test_scheduler_command_is_the_one_make_run_starts(compose: dict) -> None:
    from app.serve import scheduler_command

    command = command_of(compose["services"]["scheduler"])
    assert command[0] == "python" and command[1:] == scheduler_command()[1:]
    assert importlib.util.find_spec(command[command.index("-m") + 1]) is not None


def test_every_environment_variable_on_api_and_worker_is_a_settings_field(compose: dict) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES:
        env = environment_of(compose["services"][name])
        assert {"DATABASE_URL", "BROKER_URL", "DATA_DIR"} <= set(env), name
        unknown = {key for key in env if key.lower() not in fields} - AWS_VARIABLES
        assert not unknown, f"{name} sets variables Settings ignores: {sorted(unknown)}"


def test_api_and_worker_share_one_named_volume_at_data_dir(compose: dict) -> None:
    sources = set()
    for name in APP_SERVICES:
        service = compose["services"][name]
        data_dir = environment_of(service)["DATA_DIR"]
        mounts = volume_mounts_of(service)
        assert data_dir in mounts, f"{name} mounts nothing at DATA_DIR={data_dir}"
        sources.add(mounts[data_dir])
    assert len(sources) == 1, f"api and worker mount different volumes at DATA_DIR: {sources}"
    assert sources <= set(compose.get("volumes") or {}), "the shared volume is not a declared named volume"


def test_dockerfile_runs_as_a_non_root_user_and_defaults_to_the_api(dockerfile: list[tuple[str, str]]) -> None:
    users = [arguments for instruction, arguments in dockerfile if instruction == "USER"]
    assert users, "no USER line: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    cmd = [arguments for instruction, arguments in dockerfile if instruction == "CMD"][-1]
    assert exec_form(cmd) == ["epochly-api"]


def test_image_builds_on_base_image_installs_a_wheelhouse_when_given_and_needs_no_pythonpath(
    dockerfile: list[tuple[str, str]],
) -> None:
    # ARG before the first FROM: a build argument that FROM lines may use.
    assert dockerfile[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [arguments.split() for instruction, arguments in dockerfile if instruction == "FROM"]
    stages = {words[-1] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    # Every stage starts from BASE_IMAGE or from an earlier stage, the final one from BASE_IMAGE.
    assert froms[-1] == ["${BASE_IMAGE}"] and {words[0] for words in froms} <= {"${BASE_IMAGE}"} | stages
    copied = [arguments for instruction, arguments in dockerfile if instruction == "COPY"]
    assert "wheels/ /wheels/" in copied and any("client/" in line for line in copied)
    runs = [arguments for instruction, arguments in dockerfile if instruction == "RUN"]
    assert any("--no-index --find-links /wheels" in run and "pip install" in run for run in runs)
    # The client too: its `epochly` command line makes keys inside the container.
    assert any("pip wheel" in run and "/src /src/client" in run for run in runs)
    env = " ".join(arguments for instruction, arguments in dockerfile if instruction == "ENV")
    assert "PYTHONPATH" not in env
    assert (ROOT / "wheels" / "README.md").is_file()


def test_a_built_wheel_ships_the_migrations_and_migrates_from_anywhere(tmp_path: Path) -> None:
    """What the image does: install the wheel (no source tree), then migrate a fresh database."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("epochly-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= names
    shipped = {name.rsplit("/", 1)[1] for name in names if name.startswith("app/migrations/versions/")}
    assert shipped == {path.name for path in (ROOT / "migrations" / "versions").glob("*.py")}
    # Run from elsewhere, with the unpacked wheel first on the path: the repository is out of reach.
    script = (
        "import sys; from app.migrate import migrations_dir, upgrade_to_head; "
        "print(migrations_dir()); upgrade_to_head(sys.argv[1])"
    )
    database = tmp_path / "fresh.db"
    result = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{database}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "site" / "app" / "migrations")
    import sqlite3

    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "job", "dataset", "api_key", "worker"} <= tables


def test_the_image_carries_the_epochly_command_line_for_server_side_keys() -> None:
    # `docker compose exec api epochly keys create --owner NAME`: the client's console script, in the image
    # because the Dockerfile installs /src/client; --owner reaches app.admin in the same environment.
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    assert client["project"]["scripts"]["epochly"] == "epochly_client.cli:main"
    from app.admin import create_api_key

    assert callable(create_api_key)


def test_worker_healthcheck_runs_the_registry_heartbeat_check(compose: dict) -> None:
    probe = compose["services"]["worker"]["healthcheck"]["test"]
    assert probe[1:] == ["python", "-m", "worker.healthcheck"]
    assert importlib.util.find_spec("worker.healthcheck") is not None


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The settings a role reads from its environment: here the embedded SQLite database under tmp_path."""
    from app.migrate import upgrade_to_head
    from app.settings import get_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    yield settings
    get_settings.cache_clear()


def test_worker_healthcheck_is_healthy_only_while_this_hosts_worker_beats(embedded_env: Settings) -> None:
    import socket
    from datetime import timedelta

    from sqlalchemy import update

    from app.db import make_engine, make_session_factory, session_scope
    from app.models import WorkerRecord, utcnow
    from app.repositories import workers as workers_repo
    from worker.healthcheck import beating_here

    here = f"{socket.gethostname()} (pid 1)"
    engine = make_engine(embedded_env.resolved_database_url)
    sessions = make_session_factory(engine)
    try:
        assert not beating_here()
        with session_scope(sessions) as session:
            workers_repo.beat(session, "another-host (pid 1)", ["default"], [])
        assert not beating_here()
        with session_scope(sessions) as session:
            workers_repo.beat(session, here, ["default"], [])
        assert beating_here()
        silent_since = utcnow() - timedelta(seconds=embedded_env.job_heartbeat_timeout_s + 1)
        with session_scope(sessions) as session:
            session.execute(update(WorkerRecord).where(WorkerRecord.id == here).values(heartbeat_at=silent_since))
        assert not beating_here()
    finally:
        engine.dispose()


def test_minio_is_the_artifact_store_with_its_bucket_made_before_the_app_starts(compose: dict) -> None:
    services = compose["services"]
    assert services["minio"]["image"] == "minio/minio"
    setup = services["minio-setup"]
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing store/epochly" in " ".join(setup["entrypoint"])
    assert services["api"]["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"
    for name in APP_SERVICES:
        env = environment_of(services[name])
        assert env["STORAGE_URL"] == "s3://epochly/artifacts", name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert set(env) >= AWS_VARIABLES, name
    minio = environment_of(services["minio"])
    api = environment_of(services["api"])
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == (api["AWS_ACCESS_KEY_ID"], api["AWS_SECRET_ACCESS_KEY"])


def test_gpu_worker_is_a_profile_with_an_nvidia_reservation_on_the_gpu_queue(compose: dict) -> None:
    services = compose["services"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert command_of(gpu) == command_of(services["worker"])
    assert environment_of(gpu)["WORKER_QUEUES"] == "gpu"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert set(Settings(queues=environment_of(services["api"])["QUEUES"]).queue_names) >= {"default", "gpu"}
    assert "profiles" not in services["worker"]


def test_standin_override_swaps_only_the_third_party_images() -> None:
    override = yaml.safe_load((ROOT / "docker" / "compose.standin.yml").read_text())["services"]
    for name in ("postgres", "redis", "minio"):
        assert override[name]["image"].startswith("epochly-standin/"), name
    for name in APP_SERVICES:
        assert set(override[name]) == {"environment"} and set(override[name]["environment"]) == {"STORAGE_URL"}, name


def test_make_test_does_not_run_test_docker() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = dict(re.findall(r"^([\w-]+):([^\n=]*)$", makefile, re.M))
    assert {"wheelhouse", "test-docker"} <= set(targets)
    assert "test-docker" not in targets["test"]
    assert "docker/test-docker.sh" in makefile and os.access(ROOT / "docker" / "test-docker.sh", os.X_OK)


def test_ci_entry_point_is_executable_and_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    lines = [line.strip() for line in script.read_text().splitlines() if not line.strip().startswith("#")]
    assert any(line in {"make test", "exec make test"} for line in lines)
