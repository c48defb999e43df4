"""The broker forgets every message while jobs wait: a Redis restarted without persistence, or the
embedded broker's folder wiped. The job rows are the record, so the scheduler sends them again and
every queued job runs."""
import re
import shutil
import time
from pathlib import Path

import pytest

from app.settings import Settings
from tests.conftest import embedded_settings
from tests.integration.test_faults import HEARTBEAT_TIMEOUT_S, cluster, wait_for_epoch
from tests.integration.test_training_e2e import tutorial, wait_until_done

# After the broker comes back, the dispatcher needs two rounds (SCHEDULER_INTERVAL_S each) to act.
RECOVERY_BOUND_S = HEARTBEAT_TIMEOUT_S + 5


def queue_two_behind_a_running_job(http) -> tuple[str, list[str]]:
    dataset = http.post("/v1/datasets/examples/side-effects").json()
    running = http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=30)).json()["id"]
    wait_for_epoch(http, running, 1)
    waiting = [http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=2)).json()["id"] for _ in range(2)]
    assert [http.get(f"/v1/jobs/{j}").json()["status"] for j in waiting] == ["queued", "queued"]
    return running, waiting


def messages_sent_again(scheduler_log: Path) -> int:
    return sum(int(n) for n in re.findall(rb"sent (\d+) again", scheduler_log.read_bytes()))


def assert_all_run(http, running: str, waiting: list[str]) -> None:
    first = wait_until_done(http, running, timeout_s=120)
    assert first["status"] == "succeeded", first
    finished_at = time.monotonic()
    for job_id in waiting:
        job = wait_until_done(http, job_id, timeout_s=RECOVERY_BOUND_S + 60)
        assert job["status"] == "succeeded", job
        assert len(job["attempts"]) == 1  # sent again, but run once
    # Both were started by the one worker once it was free, not after some long timeout.
    assert time.monotonic() - finished_at < RECOVERY_BOUND_S + 30


def test_redis_restarted_without_persistence_loses_no_queued_job(tmp_path, private_redis):
    with cluster(tmp_path, broker_url=private_redis.url) as c:
        c.start_worker()
        running, waiting = queue_two_behind_a_running_job(c.http)
        private_redis.stop()
        private_redis.start()  # empty: --save "" --appendonly no
        assert_all_run(c.http, running, waiting)
        assert messages_sent_again(c.scheduler.log_path) == 2


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_wiped_embedded_broker_folder_loses_no_queued_job(backend, tmp_path):
    from tests.conftest import start_scheduler, start_worker
    from tests.integration.conftest import ApiServer

    settings: Settings = embedded_settings(tmp_path / "var").model_copy(update={"job_heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S})
    settings.prepare_data_dir()
    api = ApiServer(settings, tmp_path / "api.log")
    roles = []
    try:
        api.wait_ready()
        roles.append(scheduler := start_scheduler(settings, tmp_path / "scheduler.log"))
        roles.append(start_worker(settings, tmp_path / "worker.log"))
        import httpx

        from app.admin import create_api_key

        headers = {"Authorization": f"Bearer {create_api_key('forgets', settings)}"}
        with httpx.Client(base_url=api.url, timeout=30, headers=headers) as http:
            running, waiting = queue_two_behind_a_running_job(http)
            assert len(list((settings.broker_dir / "queue").iterdir())) == 2
            shutil.rmtree(settings.broker_dir)  # the whole folder, as `rm -rf var/broker` would
            assert_all_run(http, running, waiting)
        assert messages_sent_again(scheduler.log_path) == 2
    finally:
        for role in roles:
            role.stop()
        api.stop()
