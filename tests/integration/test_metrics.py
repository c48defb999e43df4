"""GET /metrics against a live stack of its own per back end (so every job in its database is the test's):
the counts agree with the API, several API processes report as one, METRICS_TOKEN guards it, nothing a
user chose leaks into it; and with LOG_FORMAT=json every log line of every role is a JSON object, the
lines about a job carrying its job_id.

The embedded stack runs two API processes (WEB_CONCURRENCY=2: multiprocess mode) and no token; the
PostgreSQL + Redis one runs one process behind METRICS_TOKEN."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from app.admin import create_api_key
from app.serve import TF_CPP_LINE
from app.settings import Settings
from bench.harness import postgres_database
from tests.conftest import PG_ADMIN_URL, REDIS_HOST, REDIS_PORT, require_service, start_scheduler, start_worker
from tests.integration.conftest import ApiServer
from tests.integration.test_training_e2e import tutorial, wait_until_done

TOKEN = "metrics-" + uuid.uuid4().hex
# A Redis database no other test's worker consumes from.
REDIS_DB = 13
EPOCHS = (2, 3)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


@dataclass
class Stack:
    url: str
    key: str
    owner: str
    token: str
    logs: Path
    job_ids: list[str] = field(default_factory=list)
    dataset_id: str = ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def scrape(self) -> dict[str, list]:
        """Samples by name; a fresh connection each time, so several API processes take turns answering."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.get(f"{self.url}/metrics", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        samples: dict[str, list] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(sample)
        return samples


def total(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module", params=["embedded", "postgres-redis"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp(f"metrics-{request.param}")
    with ExitStack() as cleanup:
        if request.param == "embedded":
            settings = Settings(data_dir=logs / "var", log_format="json")
            processes = 2
        else:
            require_service("PostgreSQL", "127.0.0.1", 5432)
            require_service("Redis", REDIS_HOST, REDIS_PORT)
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()
            database_url = cleanup.enter_context(postgres_database(PG_ADMIN_URL))
            broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
            settings = Settings(
                data_dir=logs / "var", database_url=database_url, broker_url=broker_url, log_format="json", metrics_token=TOKEN
            )
            processes = 1
        settings.prepare_data_dir()
        api = ApiServer(settings, logs / "api.log", processes=processes)
        cleanup.callback(api.stop)
        api.wait_ready()
        url = api.url
        owner = f"metrics-owner-{uuid.uuid4().hex[:8]}"
        stack = Stack(url, create_api_key(owner, settings), owner, settings.metrics_token, logs)
        for role in (start_scheduler(settings, logs / "scheduler.log"), start_worker(settings, logs / "worker.log")):
            cleanup.callback(role.stop)
        with stack.client() as client:
            stack.dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
            for epochs in EPOCHS:
                stack.job_ids.append(client.post("/v1/jobs", json=tutorial(stack.dataset_id, epochs=epochs)).json()["id"])
            for job_id in stack.job_ids:
                assert wait_until_done(client, job_id)["status"] == "succeeded"
        yield stack


def scrape_until(stack: Stack, settled, timeout_s: float = 10) -> dict[str, list]:
    """The database part of a scrape is reused for a second: scrape until it shows what just happened."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = stack.scrape()
        if settled(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_jobs_by_status_and_queue_depth_match_the_api(stack):
    with stack.client() as client:
        jobs = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
    by_status = {status: sum(job["status"] == status for job in jobs) for status in STATUSES}
    samples = scrape_until(stack, lambda s: total(s, "epochly_jobs", status="succeeded") == by_status["succeeded"])
    for status, count in by_status.items():
        assert total(samples, "epochly_jobs", status=status, queue="default") == count, status
    assert total(samples, "epochly_queue_depth", queue="default") == by_status["queued"] == 0


def test_epoch_histogram_counts_each_epoch_row_once_and_job_wall_time_each_finished_job(stack):
    with stack.client() as client:
        rows = [row for job_id in stack.job_ids for row in client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]
    assert len(rows) == sum(EPOCHS)
    samples = stack.scrape()
    assert total(samples, "epochly_epoch_duration_seconds_count", queue="default") == len(rows)
    assert total(samples, "epochly_epoch_duration_seconds_bucket", queue="default", le="+Inf") == len(rows)
    assert total(samples, "epochly_epoch_duration_seconds_sum") == pytest.approx(sum(row["duration_s"] for row in rows), rel=1e-6)
    assert total(samples, "epochly_job_wall_seconds_count", queue="default", status="succeeded") == len(stack.job_ids)
    # The scheduler's actions, as its own log tells them.
    lines = (stack.logs / "scheduler.log").read_bytes().splitlines()
    said = [json.loads(line)["message"] for line in lines if line.startswith(b"{")]
    resent = sum(int(m.rsplit("sent ", 1)[1].split()[0]) for m in said if m.endswith(" again"))
    assert total(samples, "epochly_dispatcher_resent_messages_total") == resent
    assert total(samples, "epochly_recovered_jobs_total") == sum(m.startswith("recovered job") for m in said) == 0


def test_request_latency_is_counted_by_route_template_across_api_processes(stack):
    route = "/v1/jobs/{job_id}"
    before = total(stack.scrape(), "epochly_http_request_duration_seconds_count", method="GET", route=route, status="200")
    headers = {"Authorization": f"Bearer {stack.key}"}
    for _ in range(6):  # a fresh connection each, so the kernel spreads them over every API process
        assert httpx.get(f"{stack.url}/v1/jobs/{stack.job_ids[0]}", headers=headers).status_code == 200
    for _ in range(3):  # whichever process answers the scrape reports all of them
        after = total(stack.scrape(), "epochly_http_request_duration_seconds_count", method="GET", route=route, status="200")
        assert after - before == 6


def test_live_workers_their_heartbeat_age_and_the_leading_scheduler(stack):
    samples = stack.scrape()
    assert total(samples, "epochly_scheduler_up") == total(samples, "epochly_database_up") == 1
    assert total(samples, "epochly_workers", queue="default") == 1
    ages = samples["epochly_worker_heartbeat_age_seconds"]
    assert len(ages) == 1 and 0 <= ages[0].value < 60


def test_an_open_event_stream_is_counted_while_it_is_open(stack):
    route = "/v1/events"
    opened, release = threading.Event(), threading.Event()

    def follow() -> None:
        with stack.client() as client, client.stream("GET", route) as response:
            for line in response.iter_lines():
                if line.startswith("event: ready"):
                    opened.set()
                    release.wait(30)
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        assert opened.wait(30)
        for _ in range(3):
            assert total(stack.scrape(), "epochly_sse_streams", route=route) == 1
    finally:
        release.set()
        follower.join(30)
    closed = scrape_until(stack, lambda s: total(s, "epochly_sse_streams", route=route) == 0)
    assert total(closed, "epochly_sse_streams", route=route) == 0


def test_metrics_need_the_token_exactly_when_one_is_set(stack):
    missing = httpx.get(f"{stack.url}/metrics")
    wrong = httpx.get(f"{stack.url}/metrics", headers={"Authorization": "Bearer not-the-token"})
    if not stack.token:
        assert missing.status_code == wrong.status_code == 200
        return
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "METRICS_TOKEN" in response.json()["detail"]
    an_api_key = {"Authorization": f"Bearer {stack.key}"}
    assert httpx.get(f"{stack.url}/metrics", headers=an_api_key).status_code == 401


def test_metrics_name_no_owner_job_or_dataset(stack):
    headers = {"Authorization": f"Bearer {stack.token}"} if stack.token else {}
    text = httpx.get(f"{stack.url}/metrics", headers=headers).text
    for secret in (stack.owner, stack.dataset_id, *stack.job_ids):
        assert secret not in text


def test_liveness_needs_neither_key_nor_database(stack):
    assert httpx.get(f"{stack.url}/health/live").json() == {"status": "alive"}


def test_every_log_line_is_json_and_lines_about_a_job_carry_its_id(stack):
    about_jobs = 0
    for role in ("api", "worker", "scheduler"):
        for line in (stack.logs / f"{role}.log").read_bytes().splitlines():
            if not line.strip() or TF_CPP_LINE.match(line):  # TensorFlow's C++ start-up lines bypass Python's logging
                continue
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= entry.keys(), entry
            for job_id in stack.job_ids:
                if job_id in entry["message"]:
                    assert entry.get("job_id") == job_id, (role, entry)
                    about_jobs += 1
    assert about_jobs >= 2 * len(stack.job_ids)  # the worker's start and finish lines of each job, at least
