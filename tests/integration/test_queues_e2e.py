"""Routing to named queues with two real Celery workers, on both back ends: the service's worker
consumes `default` (WORKER_QUEUES), a second one only `gpu` (Celery's -Q). No GPU is needed: the
queue is a name, and each worker reports the devices TensorFlow finds."""

import json
import socket
import time
import uuid

from app.serve import worker_command
from epochly_client import Client
from tests.conftest import RoleProcess
from tests.integration.test_client_cli import epochly
from tests.integration.test_training_e2e import tutorial, wait_until_done

UNSERVED_GPU = "no worker is consuming queue `gpu`"


def worker_id(role: RoleProcess) -> str:
    """The name a worker process gives itself in the registry and in a job's `worker`."""
    return f"{socket.gethostname()} (pid {role.process.pid})"


def health_workers(http, timeout_s: float = 5, *, until) -> list[dict]:
    """/health's live workers, once `until(workers)` holds (it is cached for a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        workers = http.get("/health").json()["workers"]
        if until(workers) or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


def test_a_gpu_job_waits_for_a_gpu_worker_and_default_jobs_never_go_to_it(service, live, backend, tmp_path):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(tutorial(dataset["id"], epochs=2)))
    submitted = epochly(service, "submit", str(spec), "--queue", "gpu", "--json")
    assert submitted.returncode == 0, submitted.stderr
    gpu_id = json.loads(submitted.stdout)["id"]

    # Only the default worker runs: the gpu job stays queued, and says why, however long it waits.
    workers = health_workers(live, until=lambda ws: bool(ws))
    assert [w["queues"] for w in workers] == [["default"]] and workers[0]["devices"][0]["kind"] == "CPU"
    default_before = wait_until_done(live, live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=2)).json()["id"])
    assert default_before["status"] == "succeeded"
    with Client(service.url, api_key=service.key) as client:
        job = client.get(gpu_id)
        assert (job.status, job.queue, job.waiting_reason, job.raw["attempts"]) == ("queued", "gpu", UNSERVED_GPU, [])
        assert [j.id for j in client.jobs(queue="gpu")[0]] == [gpu_id]

    gpu_worker = RoleProcess(
        backend, tmp_path / "gpu-worker.log", [*worker_command(f"gpu-{uuid.uuid4().hex[:6]}"), "-Q", "gpu"], b" ready."
    )
    try:
        gpu_worker.wait_ready()
        gpu_name = worker_id(gpu_worker)
        registered = health_workers(live, until=lambda ws: any(w["id"] == gpu_name for w in ws))
        assert {w["id"]: w["queues"] for w in registered}[gpu_name] == ["gpu"]  # what -Q made Celery consume

        done = wait_until_done(live, gpu_id)
        assert done["status"] == "succeeded", done["error"]
        assert done["worker"] == gpu_name and [a["worker"] for a in done["attempts"]] == [gpu_name]
        assert done["worker_devices"] and {d["kind"] for d in done["worker_devices"]} <= {"CPU", "GPU"}
        assert done["waiting_reason"] is None

        # With both running, default jobs still go to the default worker only.
        default_ids = [live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=1)).json()["id"] for _ in range(3)]
        for default_id in default_ids:
            finished = wait_until_done(live, default_id)
            assert finished["status"] == "succeeded" and finished["queue"] == "default"
            assert gpu_name not in {a["worker"] for a in finished["attempts"]}
    finally:
        gpu_worker.stop()
    # A clean shutdown takes the worker out of the registry at once.
    left = health_workers(live, until=lambda ws: all(w["id"] != gpu_name for w in ws))
    assert gpu_name not in {w["id"] for w in left}
