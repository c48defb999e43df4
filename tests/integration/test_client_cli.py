"""The Python client and the `epochly` command against a live service (embedded back end)."""
import json
import os
import subprocess
import sys

import pytest

from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS
from epochly_client import Client, EpochlyError
from epochly_client.tutorial import TUTORIAL_JOB

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def epochly(service, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "EPOCHLY_URL": service.url, "EPOCHLY_API_KEY": service.key}
    return subprocess.run(
        [sys.executable, "-c", "from epochly_client.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def test_client_tutorial_is_the_servers_example_job(backend):
    assert TUTORIAL_JOB["model"]["layers"] == TUTORIAL_LAYERS
    assert (TUTORIAL_JOB["compile"], TUTORIAL_JOB["fit"]) == (TUTORIAL_COMPILE, TUTORIAL_FIT)


def test_cli_submit_follow_prints_keras_lines_and_exits_zero(service, tmp_path):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(TUTORIAL_JOB | {"fit": {**TUTORIAL_FIT, "epochs": 4}}))
    result = epochly(service, "submit", str(spec), "--dataset", dataset.id, "--follow")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in lines] == [f"Epoch {k}/4" for k in range(1, 5)]
    assert all(" - loss: " in line and " - accuracy: " in line for line in lines)


def test_cli_read_commands_speak_json_for_scripts(service):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
        job = client.submit(TUTORIAL_JOB | {"fit": {**TUTORIAL_FIT, "epochs": 2}}, dataset_id=dataset.id)
        final = client.wait(job.id)
    assert final.status == "succeeded" and final.epochs_completed == 2
    shown = json.loads(epochly(service, "show", job.id, "--json").stdout)
    assert shown["id"] == job.id and shown["status"] == "succeeded"
    listed = json.loads(epochly(service, "jobs", "--status", "succeeded", "--json").stdout)
    assert job.id in [j["id"] for j in listed]
    log = epochly(service, "log", job.id).stdout.splitlines()
    assert log[1].startswith("Epoch 2/2 - ")


def test_cli_reports_an_invalid_spec_with_its_field_path(service, tmp_path):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
    bad = json.loads(json.dumps(TUTORIAL_JOB))
    bad["model"]["layers"][2]["units"] = -1
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(bad))
    result = epochly(service, "submit", str(spec), "--dataset", dataset.id)
    assert result.returncode == 1
    assert "model.layers[2].units" in result.stderr


def test_cli_follow_of_a_cancelled_job_exits_non_zero(service):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
        job = client.submit(TUTORIAL_JOB | {"fit": {**TUTORIAL_FIT, "epochs": 500}}, dataset_id=dataset.id)
        events = client.stream(job.id)
        next(e for e in events if e.type == "epoch")
        client.cancel(job.id)
        assert [e.data["status"] for e in events if e.type == "end"] == ["cancelled"]
    result = epochly(service, "follow", job.id)
    assert result.returncode == 2
    assert "cancelled" in result.stdout


def test_client_errors_carry_problem_details(service):
    with Client(service.url, api_key=service.key) as client, pytest.raises(EpochlyError) as caught:
        client.get("job_missing")
    assert caught.value.status == 404 and "job_missing" in caught.value.detail


def test_cli_says_when_the_service_is_unreachable(backend):
    env = {**os.environ, "EPOCHLY_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-c", "from epochly_client.cli import main; main()", "jobs"], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "cannot reach" in result.stderr


def test_keys_create_prints_a_working_key_for_a_new_owner(service, backend):
    env = {**os.environ, "DATA_DIR": str(backend.data_dir), "DATABASE_URL": backend.database_url, "BROKER_URL": backend.broker_url}
    result = subprocess.run(
        [sys.executable, "-c", "from epochly_client.cli import main; main()", "keys", "create", "--owner", "bob"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("ek_")
    with Client(service.url, api_key=key) as bob:
        jobs, _ = bob.jobs()
    assert jobs == []  # a new owner sees nobody else's jobs


def test_keys_list_revoke_and_audit_from_the_command_line(service, backend):
    server = {**os.environ, "DATA_DIR": str(backend.data_dir), "DATABASE_URL": backend.database_url, "BROKER_URL": backend.broker_url}
    server.pop("EPOCHLY_URL", None)

    def on_server(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from epochly_client.cli import main; main()", *args],
            capture_output=True, text=True, env=server, timeout=60,
        )

    made = on_server("keys", "create", "--owner", "carol", "--name", "dash", "--scope", "read", "--expires-in", "12h")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    listed = on_server("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    records = {k["prefix"]: k for k in json.loads(listed.stdout)}
    record = records[key[3:11]]
    assert (record["owner"], record["name"], record["scope"]) == ("carol", "dash", "read")
    assert record["expires_at"] is not None
    assert key not in listed.stdout  # records, never a secret
    assert {"carol", "integration"} <= {k["owner"] for k in records.values()}  # every owner's, without --owner

    with Client(service.url, api_key=key) as carol:
        assert carol.jobs()[0] == []
    # Over HTTP with the owner's own write key: the audit log shows the key it made, oldest first.
    carol_writer = on_server("keys", "create", "--owner", "carol")
    writer_env = {"EPOCHLY_URL": service.url, "EPOCHLY_API_KEY": carol_writer.stdout.strip()}
    over_http = subprocess.run(
        [sys.executable, "-c", "from epochly_client.cli import main; main()", "keys", "create", "--name", "laptop", "--json"],
        capture_output=True, text=True, env={**os.environ, **writer_env}, timeout=60,
    )
    assert over_http.returncode == 0, over_http.stderr
    audit = subprocess.run(
        [sys.executable, "-c", "from epochly_client.cli import main; main()", "audit", "--json"],
        capture_output=True, text=True, env={**os.environ, **writer_env}, timeout=60,
    )
    assert audit.returncode == 0, audit.stderr
    actions = [(r["action"], r["target_id"]) for r in json.loads(audit.stdout)]
    assert ("key.create", json.loads(over_http.stdout)["id"]) in actions

    revoked = on_server("keys", "revoke", record["id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with Client(service.url, api_key=key) as carol, pytest.raises(EpochlyError) as refused:
        carol.jobs()
    assert refused.value.status == 401
