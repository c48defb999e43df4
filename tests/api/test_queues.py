"""Named queues through the API, in process without a worker (tests/integration/test_queues_e2e.py
runs real ones): a job or sweep names its queue, an unknown one is refused at `queue`, lists filter
by it, and a queued job says when no live worker consumes its queue (the worker table decides)."""

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.api.served_queues import REFRESH_S
from app.db import make_engine, make_session_factory, session_scope
from app.models import WorkerRecord, utcnow
from app.repositories import workers as workers_repo
from app.settings import Settings
from tests.api.test_jobs import tutorial_job
from tests.api.test_sweeps import sweep_body
from tests.conftest import authed_client

GPU = [{"kind": "GPU", "name": "NVIDIA H100 80GB HBM3"}]


@pytest.fixture
def two_queues(settings: Settings) -> Settings:
    return settings.model_copy(update={"queues": "default,gpu"})


@pytest.fixture
def client(two_queues: Settings) -> Iterator[TestClient]:
    with authed_client(two_queues) as test_client:
        yield test_client


def beat(settings: Settings, worker_id: str, queues: list[str], devices: list[dict[str, str]], age_s: float = 0.0) -> None:
    """A worker's registry row, as worker/presence.py writes it (`age_s`: its heartbeat that long ago)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            workers_repo.beat(session, worker_id, queues, devices)
            if age_s:
                then = utcnow() - timedelta(seconds=age_s)
                session.execute(update(WorkerRecord).where(WorkerRecord.id == worker_id).values(heartbeat_at=then))
    finally:
        engine.dispose()


def test_a_queued_job_says_no_worker_consumes_its_queue_until_a_live_one_does(client, two_queues, example_dataset):
    gpu = client.post("/v1/jobs", json={**tutorial_job(example_dataset["id"]), "queue": "gpu"})
    assert gpu.status_code == 202, gpu.text
    gpu_id = gpu.json()["id"]
    default_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    body = client.get(f"/v1/jobs/{gpu_id}").json()
    assert (body["status"], body["queue"], body["waiting_reason"]) == ("queued", "gpu", "no worker is consuming queue `gpu`")
    assert body["worker"] is None and body["worker_devices"] is None

    # A silent worker (its heartbeat older than the timeout) serves nothing; a live one serves its queues.
    beat(two_queues, "gone (pid 1)", ["gpu"], GPU, age_s=two_queues.job_heartbeat_timeout_s + 5)
    beat(two_queues, "gpu-box (pid 2)", ["gpu"], GPU)
    time.sleep(REFRESH_S + 0.2)  # the served queues are read at most once a second
    assert client.get(f"/v1/jobs/{gpu_id}").json()["waiting_reason"] is None
    assert client.get(f"/v1/jobs/{default_id}").json()["waiting_reason"] == "no worker is consuming queue `default`"

    listed = client.get("/v1/jobs", params={"queue": "gpu"}).json()["items"]
    assert [(j["id"], j["queue"], j["waiting_reason"]) for j in listed] == [(gpu_id, "gpu", None)]
    assert [j["id"] for j in client.get("/v1/jobs", params={"queue": "default"}).json()["items"]] == [default_id]
    assert client.get("/v1/jobs", params={"queue": "cpu"}).json()["items"] == []

    workers = client.get("/health").json()["workers"]
    assert [(w["id"], w["queues"], w["devices"]) for w in workers] == [("gpu-box (pid 2)", ["gpu"], GPU)]
    assert 0 <= workers[0]["heartbeat_age_s"] < 5


def test_an_unknown_queue_is_422_at_queue_for_jobs_and_sweeps(client, example_dataset):
    for path, body in (
        ("/v1/jobs", tutorial_job(example_dataset["id"])),
        ("/v1/sweeps", sweep_body(example_dataset["id"])),
    ):
        response = client.post(path, json={**body, "queue": "tpu"})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert [e["path"] for e in problem["errors"]] == ["queue"]
        assert "tpu" in problem["errors"][0]["message"] and "default, gpu" in problem["errors"][0]["message"]


def test_a_sweeps_trials_wait_in_the_sweeps_queue(client, example_dataset):
    response = client.post("/v1/sweeps", json={**sweep_body(example_dataset["id"]), "queue": "gpu"})
    assert response.status_code == 202, response.text
    assert response.json()["queue"] == "gpu"
    trials = client.get("/v1/jobs", params={"sweep_id": response.json()["id"]}).json()["items"]
    assert len(trials) == 2 and {t["queue"] for t in trials} == {"gpu"}
