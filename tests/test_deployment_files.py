"""The deployment files agree with the code they deploy (no Docker engine needed: files are parsed)."""
import importlib
import importlib.util
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "scheduler", "worker")


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


def test_compose_has_postgres_redis_api_scheduler_and_worker_each_with_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "api", "scheduler", "worker"} <= set(services)
    for name in ("postgres", "redis", "api", "scheduler", "worker"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_api_and_worker_run_the_same_build(compose: dict) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api.get("build") is not None
    assert api.get("build") == worker.get("build")
    assert api.get("image") == worker.get("image")


def test_api_command_names_a_callable_app_factory(compose: dict) -> None:
    command = command_of(compose["services"]["api"])
    assert command[0] == "uvicorn" and "--factory" in command
    target = next(arg for arg in command[1:] if ":" in arg and not arg.startswith("-"))
    module_name, _, attribute = target.partition(":")
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
        unknown = {key for key in env if key.lower() not in fields}
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
    assert "app.main:create_app" in exec_form(cmd)


def test_image_imports_the_source_tree_that_holds_alembic_ini_and_migrations(dockerfile: list[tuple[str, str]]) -> None:
    # app/migrate.py finds alembic.ini and migrations/ beside the `app` package; the installed
    # wheel has neither, so the image must import app from the copied source tree.
    workdir = [arguments for instruction, arguments in dockerfile if instruction == "WORKDIR"][-1]
    copied = " ".join(arguments for instruction, arguments in dockerfile if instruction == "COPY")
    assert "alembic.ini" in copied and "migrations" in copied
    env = " ".join(arguments for instruction, arguments in dockerfile if instruction == "ENV")
    assert f"PYTHONPATH={workdir}" in env
    assert (ROOT / "alembic.ini").is_file() and (ROOT / "migrations" / "env.py").is_file()


def test_ci_entry_point_is_executable_and_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    lines = [line.strip() for line in script.read_text().splitlines() if not line.strip().startswith("#")]
    assert any(line in {"make test", "exec make test"} for line in lines)
