"""Faults done for real on PostgreSQL + Redis: workers killed with SIGKILL, stopped with SIGTERM,
never coming back. The API and scheduler run on a database of their own, with short heartbeat
timeouts and a checkpoint after every epoch: one such pair for the tests that need no other settings,
each of which starts its own workers; a pair of its own for a test that does."""
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest

from app.admin import create_api_key
from app.settings import Settings
from bench.harness import postgres_database
from tests.conftest import PG_ADMIN_URL, REDIS_HOST, REDIS_PORT, require_service, start_scheduler, start_worker
from tests.integration.conftest import ApiServer
from tests.integration.servers import PrivatePostgres
from tests.integration.test_training_e2e import tutorial, wait_until_done

HEARTBEAT_TIMEOUT_S = 3.0
# Bit-identical in every run here; the test allows float32 rounding noise and no more.
RESUME_TOLERANCE = 1e-6


class Cluster:
    def __init__(self, settings: Settings, logs) -> None:
        self.settings = settings
        self.logs = logs
        self.workers: list = []
        self._log_numbers = itertools.count()
        self.api = ApiServer(settings, logs / "api.log")
        self.api.wait_ready()
        self.scheduler = start_scheduler(settings, logs / "scheduler.log")
        self.http = httpx.Client(base_url=self.api.url, timeout=30, headers={"Authorization": f"Bearer {create_api_key('faults', settings)}"})

    def start_worker(self):
        worker = start_worker(self.settings, self.logs / f"worker{next(self._log_numbers)}.log")
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.scheduler.stop()
        self.http.close()
        self.api.stop()


@contextmanager
def cluster(tmp_path, admin_url: str = PG_ADMIN_URL, broker_url: str | None = None, **overrides):
    if broker_url is None:
        require_service("Redis", REDIS_HOST, REDIS_PORT)
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=13).flushdb()
        broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"
    if admin_url == PG_ADMIN_URL:
        require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database(admin_url) as database_url:
        settings = Settings(
            data_dir=tmp_path / "var", database_url=database_url, broker_url=broker_url,
            job_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, checkpoint_interval_s=0, **overrides,
        )
        settings.prepare_data_dir()
        running = Cluster(settings, tmp_path)
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("faults")) as running:
        yield running


@pytest.fixture
def c(shared: Cluster) -> Iterator[Cluster]:
    """The shared API and scheduler; the workers this test starts stop when it ends, so the next
    test's jobs meet only workers of its own."""
    yield shared
    for worker in shared.workers:
        worker.stop()
    shared.workers.clear()


def wait_for_epoch(http, job_id: str, epoch: int, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["epochs_completed"] >= epoch:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise TimeoutError(f"epoch {epoch} not reached")


def epoch_logs(http, job_id: str) -> list[dict]:
    rows = http.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))  # each epoch exactly once, in order
    return [r["logs"] for r in rows]


def assert_same_losses(resumed: list[dict], uninterrupted: list[dict]) -> None:
    assert len(resumed) == len(uninterrupted)
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert abs(a[key] - b[key]) <= RESUME_TOLERANCE, (key, a[key], b[key])


def test_worker_killed_mid_training_is_resumed_by_another_and_matches_an_uninterrupted_run(c):
    first = c.start_worker()
    dataset = c.http.post("/v1/datasets/examples/side-effects").json()
    job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], validation_split=0.1)).json()["id"]
    wait_for_epoch(c.http, job_id, 6)
    first.kill()
    c.start_worker()
    job = wait_until_done(c.http, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert [a["outcome"] for a in job["attempts"]] == ["worker lost", "succeeded"]
    assert job["attempts"][0]["worker"] != job["attempts"][1]["worker"]
    assert any("no heartbeat" in h["message"] for h in job["history"])
    resumed = epoch_logs(c.http, job_id)

    again = c.http.post("/v1/jobs", json=tutorial(dataset["id"], validation_split=0.1)).json()["id"]
    assert wait_until_done(c.http, again)["status"] == "succeeded"
    assert_same_losses(resumed, epoch_logs(c.http, again))


def test_worker_gone_for_good_gets_the_job_requeued_then_failed_when_attempts_run_out(tmp_path):
    with cluster(tmp_path, job_max_attempts=2) as c:
        dataset = c.http.post("/v1/datasets/examples/side-effects").json()
        job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=200)).json()["id"]
        for expected_attempt in (1, 2):
            worker = c.start_worker()
            wait_for_epoch(c.http, job_id, 1 + 2 * (expected_attempt - 1))
            worker.kill()
            if expected_attempt == 1:
                deadline = time.monotonic() + 30
                while c.http.get(f"/v1/jobs/{job_id}").json()["status"] != "queued":
                    assert time.monotonic() < deadline, "a job with a dead worker stayed running"
                    time.sleep(0.2)
        job = wait_until_done(c.http, job_id, timeout_s=60)
        assert job["status"] == "failed"
        assert job["error"]["type"] == "WorkerLost"
        assert len(job["attempts"]) == 2


def test_sigterm_checkpoints_hands_the_job_back_and_exits(c):
    first = c.start_worker()
    dataset = c.http.post("/v1/datasets/examples/side-effects").json()
    job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]
    wait_for_epoch(c.http, job_id, 4)
    first.process.terminate()
    assert first.process.wait(timeout=60) == 0  # it exits by itself, cleanly
    handed = c.http.get(f"/v1/jobs/{job_id}").json()
    assert handed["status"] == "queued"
    assert "handed back" in handed["history"][-1]["message"]
    c.start_worker()
    job = wait_until_done(c.http, job_id)
    assert job["status"] == "succeeded"
    assert [a["outcome"] for a in job["attempts"]] == ["handed back", "succeeded"]
    assert len(epoch_logs(c.http, job_id)) == 20


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_make_run_restarts_a_worker_that_dies(backend, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT, settings_env
    from tests.integration.conftest import free_port

    env = settings_env(Settings(data_dir=tmp_path / "var", port=free_port()))
    serve = subprocess.Popen([sys.executable, "-m", "app.serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        def read_until(marker: str, timeout_s: float = 90) -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                line = serve.stdout.readline()
                lines.append(line)
                if marker in line:
                    return
            raise TimeoutError("".join(lines[-40:]))

        read_until(" ready.")
        worker_pid = int(subprocess.check_output(["pgrep", "-f", "-P", str(serve.pid), "celery"]).split()[0])
        os.kill(worker_pid, signal.SIGKILL)
        read_until("restarting it")
        read_until(" ready.")
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)


def test_redis_restart_mid_job_and_submits_while_it_is_down(tmp_path, private_redis):
    with cluster(tmp_path, broker_url=private_redis.url) as c:
        c.start_worker()
        dataset = c.http.post("/v1/datasets/examples/side-effects").json()
        job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=40)).json()["id"]
        wait_for_epoch(c.http, job_id, 3)
        private_redis.stop()
        during = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=2))
        assert during.status_code == 202  # kept in the database, sent once the broker is back
        assert c.http.get(f"/v1/jobs/{during.json()['id']}").json()["status"] == "queued"
        wait_for_epoch(c.http, job_id, 8)  # training goes on while the broker is away
        private_redis.start()
        assert wait_until_done(c.http, job_id, timeout_s=120)["status"] == "succeeded"
        assert len(epoch_logs(c.http, job_id)) == 40
        assert wait_until_done(c.http, during.json()["id"], timeout_s=60)["status"] == "succeeded"
        after = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=2))
        assert after.status_code == 202
        assert wait_until_done(c.http, after.json()["id"], timeout_s=120)["status"] == "succeeded"


def test_postgres_restart_mid_job_loses_no_epoch_and_does_not_pause_training(tmp_path):
    postgres = PrivatePostgres()
    try:
        postgres.start()
        with cluster(tmp_path, admin_url=postgres.url) as c:
            c.start_worker()
            dataset = c.http.post("/v1/datasets/examples/side-effects").json()
            job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=60)).json()["id"]
            wait_for_epoch(c.http, job_id, 5)
            postgres.stop()
            # A polled job is served from memory while its view lasts, then 503; a read that needs
            # the database is a 503 at once. Never a 500.
            assert c.http.get(f"/v1/jobs/{job_id}").status_code in (200, 503)
            assert c.http.get("/v1/datasets").status_code == 503
            outage_s = 2 * HEARTBEAT_TIMEOUT_S
            time.sleep(outage_s)
            postgres.start()
            job = wait_until_done(c.http, job_id, timeout_s=180)
            assert job["status"] == "succeeded", job
            assert job["restarts"] == 0  # the outage did not make the healthy worker look lost
            rows = c.http.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
            assert [r["epoch"] for r in rows] == list(range(1, 61))  # none lost, none twice
            finished = [datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")) for r in rows]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(finished)]
            assert max(gaps) < outage_s / 2, gaps  # epochs kept ending on time while the database was away
    finally:
        postgres.remove()


def test_worker_killed_mid_run_with_early_stopping_and_plateau_resumes_their_state_and_stops_at_the_same_epoch(c):
    """Exact resume includes callback state: EarlyStopping's wait, best value and best weights and
    ReduceLROnPlateau's wait and cooldown come back from the checkpoint, so the resumed job stops at the
    same epoch, with the same per-epoch losses and learning rates, as the uninterrupted one."""
    import io

    import numpy as np

    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 3)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] > 0) ^ (rng.random(3000) < 0.25)).astype(np.int32)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    spec = {
        "model": {"layers": [{"type": "Dense", "units": 32, "activation": "relu"}, {"type": "Dropout", "rate": 0.2},
                             {"type": "Dense", "units": 2, "activation": "softmax"}]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.02}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 100, "batch_size": 8, "steps_per_execution": 1, "seed": 9, "validation_split": 0.3, "normalize": "standard",
                "callbacks": [
                    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 4, "min_delta": 0.001, "restore_best_weights": True},
                    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 1, "factor": 0.5, "cooldown": 1},
                ]},
    }
    c.start_worker()
    dataset_id = c.http.post("/v1/datasets", files={"file": ("noisy.npz", buffer.getvalue())}).json()["id"]
    whole_id = c.http.post("/v1/jobs", json={"dataset_id": dataset_id, **spec}).json()["id"]
    whole = wait_until_done(c.http, whole_id, timeout_s=400)
    assert whole["status"] == "succeeded" and whole["stop_reason"] == "early_stopping", whole
    stopped_at = whole["epochs_completed"]
    kill_after = whole["best_epoch"] + 1  # EarlyStopping is waiting, with best weights kept, when the worker dies
    assert kill_after < stopped_at < 100

    job_id = c.http.post("/v1/jobs", json={"dataset_id": dataset_id, **spec}).json()["id"]
    wait_for_epoch(c.http, job_id, kill_after, timeout_s=300)
    c.workers[0].kill()
    assert c.http.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    c.start_worker()
    job = wait_until_done(c.http, job_id, timeout_s=400)
    assert job["status"] == "succeeded", job
    assert [a["outcome"] for a in job["attempts"]] == ["worker lost", "succeeded"]
    assert job["stop_reason"] == "early_stopping" and job["epochs_completed"] == stopped_at
    assert (job["best_epoch"], job["best"]) == (whole["best_epoch"], whole["best"])
    assert_same_losses(epoch_logs(c.http, job_id), epoch_logs(c.http, whole_id))


def test_worker_killed_mid_run_resumes_a_two_input_two_output_model_exactly(c):
    """Named inputs and outputs come back from the checkpoint like any model: the resumed job's per-output
    losses and metrics equal an uninterrupted run's, epoch by epoch."""
    import io

    import keras
    import numpy as np

    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(2000, 2)).astype(np.float32), rng.normal(size=(2000, 3)).astype(np.float32)
    kind = ((a[:, 0] + b[:, 1]) > 0).astype(np.int32)
    size = (a[:, 1] - b[:, 2]).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, x_a=a, x_b=b, y_kind=kind, y_size=size)
    first, second = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([first, second]))
    outputs = [keras.layers.Dense(2, activation="softmax", name="kind")(hidden), keras.layers.Dense(1, name="size")(hidden)]
    spec = {
        "model": {"keras_json": keras.Model([first, second], outputs).to_json()},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01},
                    "loss": {"kind": "sparse_categorical_crossentropy", "size": "mse"},
                    "metrics": {"kind": ["accuracy"], "size": ["mae"]}},
        "fit": {"epochs": 12, "batch_size": 8, "steps_per_execution": 1, "seed": 3, "validation_split": 0.2},
    }
    c.start_worker()
    dataset_id = c.http.post("/v1/datasets", files={"file": ("two.npz", buffer.getvalue())}).json()["id"]
    whole_id = c.http.post("/v1/jobs", json={"dataset_id": dataset_id, **spec}).json()["id"]
    whole = wait_until_done(c.http, whole_id, timeout_s=300)
    assert whole["status"] == "succeeded", whole

    job_id = c.http.post("/v1/jobs", json={"dataset_id": dataset_id, **spec}).json()["id"]
    wait_for_epoch(c.http, job_id, 4, timeout_s=300)
    c.workers[0].kill()
    c.start_worker()
    job = wait_until_done(c.http, job_id, timeout_s=300)
    assert job["status"] == "succeeded", job
    assert [a["outcome"] for a in job["attempts"]] == ["worker lost", "succeeded"]
    resumed, uninterrupted = epoch_logs(c.http, job_id), epoch_logs(c.http, whole_id)
    assert {"kind_accuracy", "size_mae", "val_kind_loss", "val_size_loss"} <= set(resumed[-1])
    assert_same_losses(resumed, uninterrupted)
