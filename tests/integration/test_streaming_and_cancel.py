"""Live streams and cancellation against a real API process and a real worker."""
import io
import time

import numpy as np

from tests.integration.sse import read_events
from tests.integration.test_training_e2e import tutorial, wait_until_done


def slow_dataset(live) -> str:
    """About two seconds per epoch at batch size 1: time to watch and cancel mid-epoch."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.normal(size=(3000, 4)).astype(np.float32), y=rng.integers(0, 2, 3000))
    return live.post("/v1/datasets", files={"file": ("slow.npz", buffer.getvalue())}).json()["id"]


def slow_job(dataset_id: str, epochs: int = 50) -> dict:
    return {
        "dataset_id": dataset_id,
        "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 2, "activation": "softmax"}]},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        # One batch per execution: progress and cancel act at every batch, as the test watches them.
        "fit": {"epochs": epochs, "batch_size": 1, "steps_per_execution": 1},
    }


def wait_for(predicate, timeout_s: float = 60, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval_s)
    raise TimeoutError("condition not met")


def test_stream_delivers_every_epoch_once_in_order_then_end(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]
    with live.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(read_events(response))
    epochs = [e.data["epoch"] for e in events if e.event == "epoch"]
    assert epochs == list(range(1, 21))
    assert [e.data["status"] for e in events if e.event == "status"] == ["queued", "running", "succeeded"]
    assert events[-1].event == "end" and events[-1].data == {"status": "succeeded"}
    assert all(e.id for e in events)
    rows = live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    streamed = [e.data for e in events if e.event == "epoch"]
    assert streamed == rows  # the same rows a poller sees


def test_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]
    first: list = []
    with live.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as response:
        for event in read_events(response):
            first.append(event)
            if event.event == "epoch" and event.data["epoch"] == 5:
                break  # drop the connection mid-job
    last_id = first[-1].id
    with live.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last_id}, timeout=120) as response:
        second = list(read_events(response))
    epochs = [e.data["epoch"] for e in first + second if e.event == "epoch"]
    assert epochs == list(range(1, 21))
    statuses = [e.data["status"] for e in first + second if e.event == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert second[-1].event == "end"


def test_stream_on_a_finished_job_replays_history_and_ends(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=2)).json()["id"]
    wait_until_done(live, job_id)
    with live.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as response:
        events = list(read_events(response))
    assert [e.event for e in events] == ["status", "status", "epoch", "epoch", "status", "end"]


def test_stream_for_unknown_job_is_404(live):
    assert live.get("/v1/jobs/job_nope/events").status_code == 404


def test_cancel_queued_and_running_jobs(live):
    dataset_id = slow_dataset(live)
    running = live.post("/v1/jobs", json=slow_job(dataset_id)).json()["id"]
    queued = live.post("/v1/jobs", json=slow_job(dataset_id)).json()["id"]  # one worker: waits behind the first

    # Progress within the epoch is visible on the job while it runs.
    job = wait_for(lambda: (j := live.get(f"/v1/jobs/{running}").json())["batch"] and j)
    assert job["status"] == "running" and job["batches_per_epoch"] == 3000

    response = live.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert live.post(f"/v1/jobs/{queued}/cancel").json()["status"] == "cancelled"  # twice is harmless

    wait_for(lambda: live.get(f"/v1/jobs/{running}").json()["epochs_completed"] >= 1)
    wait_for(lambda: (live.get(f"/v1/jobs/{running}").json()["batch"] or 0) > 100)  # well into the next epoch
    epochs_at_cancel = live.get(f"/v1/jobs/{running}").json()["epochs_completed"]
    requested = time.monotonic()
    assert live.post(f"/v1/jobs/{running}/cancel").json()["cancel_requested_at"]
    done = wait_until_done(live, running, timeout_s=30)
    assert time.monotonic() - requested < 2.0
    assert done["status"] == "cancelled"
    assert done["epochs_completed"] == epochs_at_cancel  # the interrupted epoch is not recorded
    assert len(live.get(f"/v1/jobs/{running}/metrics").json()["epochs"]) == epochs_at_cancel
    assert live.get(f"/v1/jobs/{running}/model").status_code == 404

    never = live.get(f"/v1/jobs/{queued}").json()
    assert never["started_at"] is None and [h["status"] for h in never["history"]] == ["queued", "cancelled"]

    # The worker is free for the next job at once.
    after = wait_until_done(live, live.post("/v1/jobs", json=slow_job(dataset_id, epochs=1) | {"fit": {"epochs": 1, "batch_size": 64}}).json()["id"])
    assert after["status"] == "succeeded"
    assert live.post(f"/v1/jobs/{after['id']}/cancel").status_code == 409
