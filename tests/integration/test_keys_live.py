"""Issue 15 with real API processes: revocation across 2 API processes, expiry, read scope and the
rate limit on both back ends, and that a key's secret never reaches the logs."""
import threading
import time

import httpx
import pytest

from app.admin import create_api_key
from app.settings import Settings
from tests.conftest import embedded_settings
from tests.integration.conftest import ApiServer

RATE_LIMIT = 20


@pytest.fixture(scope="module", params=["embedded", "postgres-redis"])
def apis(request, tmp_path_factory):
    """One API process on the embedded default (one per data folder), two on PostgreSQL + Redis."""
    data_dir = tmp_path_factory.mktemp(f"keys-{request.param}") / "var"
    if request.param == "embedded":
        settings = embedded_settings(data_dir).model_copy(update={"rate_limit_per_min": RATE_LIMIT})
        count = 1
    else:
        settings = Settings(
            data_dir=data_dir,
            database_url=request.getfixturevalue("postgres_url"),
            broker_url=request.getfixturevalue("redis_url"),
            rate_limit_per_min=RATE_LIMIT,
        )
        count = 2
    settings.prepare_data_dir()
    logs = tmp_path_factory.mktemp("keys-logs")
    servers: list[ApiServer] = []
    try:
        for i in range(count):  # one after the other: the first applies the migrations
            servers.append(ApiServer(settings, logs / f"api-{i}.log"))
            servers[-1].wait_ready()
        yield settings, servers
    finally:
        for server in servers:
            server.stop()


def get(server: ApiServer, key: str, path: str = "/v1/jobs") -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_revoked_key_is_refused_by_every_api_process_within_a_second_and_its_streams_close(apis):
    settings, servers = apis
    admin_key = create_api_key("live", settings)
    victim = create_api_key("live", settings, name="victim")
    for server in servers:
        assert get(server, victim).status_code == 200  # cached in every process now
    victim_id = next(
        k["id"]
        for k in httpx.get(servers[0].url + "/v1/keys", headers={"Authorization": f"Bearer {admin_key}"}).json()["items"]
        if k["name"] == "victim"
    )
    closed: dict[int, float] = {}

    def watch(index: int, server: ApiServer) -> None:
        with httpx.stream("GET", server.url + "/v1/events", headers={"Authorization": f"Bearer {victim}"}, timeout=30) as r:
            assert r.status_code == 200
            for _ in r.iter_bytes():
                pass
        closed[index] = time.monotonic()

    watchers = [threading.Thread(target=watch, args=(i, s), daemon=True) for i, s in enumerate(servers)]
    for watcher in watchers:
        watcher.start()
    time.sleep(1.0)  # the streams are open
    revoked_at = time.monotonic()
    response = httpx.delete(f"{servers[-1].url}/v1/keys/{victim_id}", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 204
    for server in servers:
        while (answer := get(server, victim)).status_code != 401:
            assert time.monotonic() - revoked_at < 1.0, f"{server.url} still accepts a revoked key"
            time.sleep(0.05)
        assert "expired" not in answer.json()["detail"]
    for watcher in watchers:
        watcher.join(timeout=5)
    assert sorted(closed) == list(range(len(servers))), "a revoked key's stream stayed open"
    assert max(closed.values()) - revoked_at < 2.0
    for server in servers:
        assert get(server, admin_key).status_code == 200


def test_expired_key_is_401_saying_so(apis):
    settings, servers = apis
    key = create_api_key("live", settings, expires_in_s=2)
    assert get(servers[0], key).status_code == 200
    time.sleep(2.1)
    for server in servers:
        answer = get(server, key)
        assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_read_key_reads_and_is_403_on_writes(apis):
    settings, servers = apis
    key = create_api_key("live", settings, scope="read")
    for server in servers:
        assert get(server, key).status_code == 200
        refused = httpx.post(server.url + "/v1/datasets/examples/side-effects", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 403


def test_rate_limit_is_one_bucket_per_key_across_api_processes(apis):
    settings, servers = apis
    key = create_api_key("live", settings)
    answers = [get(servers[i % len(servers)], key) for i in range(RATE_LIMIT + 3)]
    statuses = [a.status_code for a in answers]
    assert statuses[:RATE_LIMIT] == [200] * RATE_LIMIT, statuses
    assert 429 in statuses[RATE_LIMIT:], statuses
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert all(a.headers["RateLimit-Limit"] == str(RATE_LIMIT) for a in answers)
    assert int(answers[RATE_LIMIT - 1].headers["RateLimit-Remaining"]) <= 1
    other = create_api_key("live", settings)
    assert get(servers[0], other).status_code == 200  # another key has its own bucket
    for _ in range(RATE_LIMIT + 3):
        assert httpx.get(servers[0].url + "/health").status_code == 200


def test_a_keys_secret_never_reaches_the_logs(apis):
    settings, servers = apis
    key = create_api_key("live", settings)
    for server in servers:
        get(server, key)
        get(server, key, "/v1/jobs/job_nope")
        get(server, key + "x")
        httpx.post(server.url + "/v1/keys", headers={"Authorization": f"Bearer {key}"}, json={"name": "n"})
    time.sleep(0.5)
    for server in servers:
        assert key[3:] not in server.log_path.read_text(errors="replace")
