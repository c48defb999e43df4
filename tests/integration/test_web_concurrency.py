"""More than one API process on one machine, on the embedded default: every process hears every event
(one datagram socket each), so no process serves a stale job for long, each stream carries every
epoch exactly once, a revoked key is refused by all; and WEB_CONCURRENCY=N starts N processes."""

import threading
import time
from pathlib import Path

import httpx

from app.admin import create_api_key
from app.events.transport import socket_dir
from tests.conftest import embedded_settings, start_scheduler, start_worker
from tests.integration.conftest import ApiServer
from tests.integration.sse import read_events
from tests.integration.test_training_e2e import tutorial

EPOCHS = 15


def test_two_api_processes_serve_the_same_jobs_fresh_and_stream_each_epoch_once(tmp_path):
    settings = embedded_settings(tmp_path / "var")
    settings.prepare_data_dir()
    first = ApiServer(settings, tmp_path / "api1.log")
    first.wait_ready()
    second = ApiServer(settings, tmp_path / "api2.log")
    second.wait_ready()
    roles = [start_scheduler(settings, tmp_path / "scheduler.log"), start_worker(settings, tmp_path / "worker.log")]
    key, spare = create_api_key("two", settings), create_api_key("two", settings, name="spare")
    clients = [httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) for api in (first, second)]
    try:
        dataset_id = clients[0].post("/v1/datasets/examples/side-effects").json()["id"]
        job_id = clients[1].post("/v1/jobs", json=tutorial(dataset_id, epochs=EPOCHS, batch_size=64)).json()["id"]
        streams: list[list] = [[], []]

        def follow(index: int) -> None:
            with clients[index].stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as response:
                streams[index].extend(read_events(response))

        followers = [threading.Thread(target=follow, args=(i,)) for i in (0, 1)]
        for follower in followers:
            follower.start()
        seen = [(0, 0), (0, 0)]
        order = {"queued": 0, "running": 1, "succeeded": 2}
        deadline = time.monotonic() + 120
        while min(s[0] for s in seen) < 2:
            assert time.monotonic() < deadline
            for index, client in enumerate(clients):
                job = client.get(f"/v1/jobs/{job_id}").json()
                now = (order[job["status"]], job["epochs_completed"])
                assert now >= seen[index], f"process {index + 1} went back from {seen[index]} to {now}"
                seen[index] = now
            time.sleep(0.02)
        for follower in followers:
            follower.join(timeout=60)
        for index, events in enumerate(streams):
            epochs = [e.data["epoch"] for e in events if e.event == "epoch"]
            assert epochs == list(range(1, EPOCHS + 1)), f"stream on process {index + 1}: {epochs}"
            assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
        for client in clients:  # both have the final job and every row, not a cached older one
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded" and job["epochs_completed"] == EPOCHS
            assert len(client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]) == EPOCHS

        spare_id = clients[0].get("/v1/keys").json()["items"][0]["id"]
        for api in (first, second):  # cached by both
            assert httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": f"Bearer {spare}"}).status_code == 200
        assert clients[0].delete(f"/v1/keys/{spare_id}").status_code == 204
        time.sleep(1.0)
        for api in (first, second):
            assert httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": f"Bearer {spare}"}).status_code == 401
    finally:
        for client in clients:
            client.close()
        for role in roles:
            role.stop()
        first.stop()
        second.stop()


def test_web_concurrency_starts_that_many_api_processes_behind_one_port(tmp_path):
    settings = embedded_settings(tmp_path / "var")
    settings.prepare_data_dir()
    api = ApiServer(settings, tmp_path / "api.log", processes=2)
    try:
        deadline = time.monotonic() + 90
        while len(list(socket_dir(settings).glob("api-*.sock"))) < 2:
            assert api.process.poll() is None, api.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, api.log_path.read_text()[-3000:]
            time.sleep(0.2)
        key = create_api_key("many", settings)
        for _ in range(20):  # fresh connections, spread over both processes by the kernel
            answer = httpx.get(f"{api.url}/v1/datasets", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200
        children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == api.process.pid]
        assert len([c for c in children if b"spawn_main" in (c / "cmdline").read_bytes()]) == 2  # not its resource tracker
    finally:
        api.stop()


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
