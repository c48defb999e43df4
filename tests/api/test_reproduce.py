"""Each job's record, reruns from it, and how a rerun compares with its original. The worker's part is
played here by the calls it makes (claim, record_start, record_epoch, finish), so no TensorFlow loads:
tests/worker/test_runner.py and tests/integration/test_rerun_e2e.py run the real one."""

import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import make_engine, make_session_factory, session_scope
from app.events.publisher import make_publisher
from app.models import Job
from app.services import reproduce as reproduce_service
from tests.api.test_jobs import tutorial_job

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
