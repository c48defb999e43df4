"""Each job's record, reruns from it, and how a rerun compares with its original. The worker's part is
played here by the calls it makes (claim, record_start, record_epoch, finish), so no TensorFlow loads:
tests/worker/test_runner.py and tests/integration/test_rerun_e2e.py run the real one."""

import math
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import make_engine, make_session_factory, session_scope
from app.events.publisher import make_publisher
from app.lifecycle import JobStatus
from app.models import Job
from app.repositories import jobs as jobs_repo
from app.services import reproduce as reproduce_service
from tests.api.test_jobs import tutorial_job
from tests.conftest import authed_client

CPU_WORKER = {"python": "3.11.9", "tensorflow": "2.20.0", "keras": "3.15.1", "numpy": "2.1.3", "device_kind": "CPU"}


def worker_sessions(settings) -> sessionmaker[Session]:
    """As the worker's: its commits publish the job's events, which keep the API's views current."""
    return make_session_factory(make_engine(settings.resolved_database_url), publisher=make_publisher(settings))


def start(settings, job_id: str, environment: dict[str, str] = CPU_WORKER) -> dict:
    """What a worker does as it takes the job: claim it and write its record."""
    with session_scope(worker_sessions(settings)) as session:
        assert lifecycle.claim(session, job_id, "tests") is not None
        job = session.get(Job, job_id)
        assert job is not None
        return reproduce_service.record_start(session, job, environment)


def read_when(client, job_id: str, ready: Callable[[dict], bool]) -> dict:
    """The job once `ready` holds: the API learns of the worker's commits from their events."""
    deadline = time.monotonic() + 10
    while not ready(job := client.get(f"/v1/jobs/{job_id}").json()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def test_a_job_shows_its_record_once_a_worker_has_started_it(client, settings, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], seed=None)).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").json()["record"] is None
    recorded = start(settings, job_id)
    job = read_when(client, job_id, lambda job: job["record"] is not None)
    record = job["record"]
    assert record == recorded
    assert record["dataset_sha256"] == example_dataset["sha256"]
    assert isinstance(record["seed"], int)
    submitted = job["spec"]
    assert submitted["fit"]["seed"] is None
    assert record["spec"] == {**submitted, "fit": {**submitted["fit"], "seed": record["seed"]}}
    assert {k: record[k] for k in CPU_WORKER} == CPU_WORKER


def finish(settings, job_id: str, losses: list[float], to: JobStatus = JobStatus.SUCCEEDED) -> None:
    """What the worker does after start(): an epoch row per loss, then the final status."""
    with session_scope(worker_sessions(settings)) as session:
        for epoch, loss in enumerate(losses, start=1):
            assert jobs_repo.record_epoch(session, job_id, epoch, {"loss": loss, "accuracy": 0.5}, 0.1)
        assert lifecycle.finish(session, job_id, to, worker="tests", message="done") is not None


def test_rerun_of_a_missing_or_another_owners_job_is_404(client, settings, example_dataset):
    assert client.post("/v1/jobs/job_missing/rerun").status_code == 404
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    start(settings, job_id)
    with authed_client(settings, owner="someone-else") as other:
        response = other.post(f"/v1/jobs/{job_id}/rerun")
    assert response.status_code == 404 and response.json()["title"] == "Job not found"


def test_rerun_of_a_job_that_has_not_started_is_409_saying_why(client, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/rerun")
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Job cannot be rerun"
    assert "has not started yet" in response.json()["detail"] and "record" in response.json()["detail"]


def test_a_rerun_is_queued_from_the_record_with_the_drawn_seed_pinned(client, settings, example_dataset):
    original_id = client.post("/v1/jobs", json={**tutorial_job(example_dataset["id"], seed=None), "name": "tut"}).json()["id"]
    record = start(settings, original_id)
    response = client.post(f"/v1/jobs/{original_id}/rerun")
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert response.headers["location"] == f"/v1/jobs/{rerun['id']}"
    assert rerun["id"] != original_id and rerun["status"] == "queued"
    assert rerun["spec"] == record["spec"] and rerun["spec"]["fit"]["seed"] == record["seed"]
    assert (rerun["dataset_id"], rerun["queue"], rerun["name"]) == (example_dataset["id"], "default", "tut")
    assert (rerun["rerun_of"], rerun["record"], rerun["versions_differ"], rerun["same_as_original"]) == (
        original_id,
        None,
        None,
        None,
    )
    shown = client.get(f"/v1/jobs/{rerun['id']}").json()
    assert shown["rerun_of"] == original_id
    assert client.get(f"/v1/jobs/{original_id}").json()["rerun_of"] is None
    # The rerun is a job like any other: its record pins the same seed again.
    assert start(settings, rerun["id"])["seed"] == record["seed"]


def test_a_rerun_counts_against_the_active_job_limit(settings, example_dataset):
    limited = settings.model_copy(update={"owner_max_active_jobs": 1})
    with authed_client(limited) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        job_id = client.post("/v1/jobs", json=tutorial_job(dataset_id)).json()["id"]
        start(limited, job_id)
        response = client.post(f"/v1/jobs/{job_id}/rerun")
    assert response.status_code == 429, response.text


def test_a_rerun_says_whether_it_repeated_the_original(client, settings, example_dataset):
    losses = [0.6931471805599453, 0.5012345678901234, 0.41]
    original_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=3)).json()["id"]
    start(settings, original_id)

    same = client.post(f"/v1/jobs/{original_id}/rerun").json()["id"]
    start(settings, same)
    finish(settings, same, losses)
    # Finished before its original: nothing to compare with yet.
    assert read_when(client, same, lambda job: job["status"] == "succeeded")["same_as_original"] is None
    finish(settings, original_id, losses)
    job = read_when(client, same, lambda job: job["same_as_original"] is not None)
    assert (job["versions_differ"], job["same_as_original"]) == ([], True)

    off_by_one_bit = client.post(f"/v1/jobs/{original_id}/rerun").json()["id"]
    start(settings, off_by_one_bit)
    finish(settings, off_by_one_bit, [*losses[:2], math.nextafter(0.41, 1.0)])
    job = read_when(client, off_by_one_bit, lambda job: job["status"] == "succeeded")
    assert (job["versions_differ"], job["same_as_original"]) == ([], False)

    on_a_gpu = client.post(f"/v1/jobs/{original_id}/rerun").json()["id"]
    start(settings, on_a_gpu, {**CPU_WORKER, "device_kind": "GPU", "tensorflow": "2.21.0"})
    assert read_when(client, on_a_gpu, lambda job: job["versions_differ"] is not None)["versions_differ"] == [
        {"name": "tensorflow", "original": "2.20.0", "rerun": "2.21.0"},
        {"name": "device_kind", "original": "CPU", "rerun": "GPU"},
    ]
    finish(settings, on_a_gpu, losses)
    assert read_when(client, on_a_gpu, lambda job: job["status"] == "succeeded")["same_as_original"] is False
