"""Issue 15 in process: key records, scopes, expiry, revocation, the audit log, rate limits, stored-size quotas."""
import io
import time
import zipfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from app.admin import create_api_key, list_api_keys, revoke_api_key
from app.db import make_engine, make_session_factory, session_scope
from app.main import create_app
from app.models import ApiKey
from app.settings import Settings
from tests.api.test_jobs import tutorial_job

RECORD_FIELDS = {"id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_created_listed_without_secrets_and_revoked_over_http(client):
    created = client.post("/v1/keys", json={"name": "laptop", "scope": "read", "expires_in_s": 3600})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == RECORD_FIELDS | {"key"}
    secret = body["key"]
    assert body["prefix"] == secret[3:11] and body["scope"] == "read" and body["name"] == "laptop"
    assert body["expires_at"] is not None and body["revoked_at"] is None

    listed = client.get("/v1/keys")
    assert listed.status_code == 200
    page = listed.json()
    assert set(page) == {"items", "next_cursor"}
    assert body["id"] in [k["id"] for k in page["items"]]
    assert all(set(k) == RECORD_FIELDS for k in page["items"])
    assert secret not in listed.text
    # The calling key's last_used_at is written (at most once a minute).
    assert any(k["last_used_at"] for k in page["items"])

    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/v1/keys/{body['id']}").status_code == 204
    refused = client.get("/v1/jobs", headers=bearer(secret))
    assert refused.status_code == 401
    assert "expired" not in refused.json()["detail"]
    assert client.get("/v1/keys").json()["items"][0]["revoked_at"] is not None


def test_a_key_can_revoke_itself(client):
    secret = client.post("/v1/keys", json={"name": "self"}).json()
    assert client.delete(f"/v1/keys/{secret['id']}", headers=bearer(secret["key"])).status_code == 204
    assert client.get("/v1/keys", headers=bearer(secret["key"])).status_code == 401


def test_read_key_reads_but_every_write_is_403_and_it_creates_only_read_keys(client, example_dataset):
    read = client.post("/v1/keys", json={"scope": "read"}).json()["key"]
    assert client.get("/v1/datasets", headers=bearer(read)).status_code == 200
    assert client.get(f"/v1/datasets/{example_dataset['id']}", headers=bearer(read)).status_code == 200
    for method, url, kwargs in [
        ("POST", "/v1/jobs", {"json": tutorial_job(example_dataset["id"])}),
        ("POST", "/v1/datasets/examples/side-effects", {}),
        ("DELETE", f"/v1/datasets/{example_dataset['id']}", {}),
        ("POST", "/v1/jobs/job_x/cancel", {}),
    ]:
        response = client.request(method, url, headers=bearer(read), **kwargs)
        assert response.status_code == 403, (method, url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.post("/v1/keys", json={"scope": "write"}, headers=bearer(read)).status_code == 403
    made = client.post("/v1/keys", json={}, headers=bearer(read))
    assert made.status_code == 201 and made.json()["scope"] == "read"


def test_another_owners_key_id_is_404(client, settings):
    mallory = create_api_key("mallory", settings)
    mine = client.post("/v1/keys", json={}).json()
    assert client.delete(f"/v1/keys/{mine['id']}", headers=bearer(mallory)).status_code == 404
    assert mine["id"] not in client.get("/v1/keys", headers=bearer(mallory)).text
    assert client.get("/v1/jobs", headers=bearer(mine["key"])).status_code == 200


def test_expired_key_is_401_saying_it_expired(client):
    key = client.post("/v1/keys", json={"expires_in_s": 1}).json()["key"]
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200  # now cached
    time.sleep(1.2)
    refused = client.get("/v1/jobs", headers=bearer(key))
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]


def test_expiry_is_a_whole_number_as_json_schema_reads_it_so_true_is_422_not_one_second(client):
    for value in (True, "60"):
        response = client.post("/v1/keys", json={"expires_in_s": value})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["path"] == "expires_in_s"
    assert client.post("/v1/keys", json={"expires_in_s": 60.0}).status_code == 201  # 60.0 is an integer to JSON Schema


def test_server_cli_functions_list_and_revoke_at_once(client, settings):
    key = create_api_key("tests", settings, name="ci", scope="read", expires_in_s=90)
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    listed = [k for k in list_api_keys("tests", settings) if k["name"] == "ci"]
    assert len(listed) == 1 and listed[0]["scope"] == "read" and listed[0]["expires_at"]
    assert key not in str(list_api_keys(None, settings))
    revoke_api_key(listed[0]["id"], settings)
    deadline = time.monotonic() + 1.0
    while client.get("/v1/jobs", headers=bearer(key)).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works after 1 s"
        time.sleep(0.05)


def test_audit_log_records_every_change_oldest_first_without_secrets(client, example_dataset):
    job = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()
    client.post(f"/v1/jobs/{job['id']}/cancel")
    made = client.post("/v1/keys", json={"name": "audit"}).json()
    client.delete(f"/v1/keys/{made['id']}")
    response = client.get("/v1/audit")
    assert response.status_code == 200
    page = response.json()
    cli, *items = page["items"]  # the fixture's key, made with the server-side CLI
    assert cli["action"] == "key.create" and cli["key_id"] is None and cli["client"].startswith("cli@")
    assert [r["action"] for r in items] == ["dataset.upload", "job.submit", "job.cancel", "key.create", "key.revoke"]
    assert [r["target_id"] for r in items] == [example_dataset["id"], job["id"], job["id"], made["id"], made["id"]]
    assert all(set(r) == {"id", "at", "key_id", "action", "target_id", "client", "outcome"} for r in items)
    assert all(r["outcome"] == "ok" and r["key_id"] and r["client"] for r in items)
    assert made["key"] not in response.text
    first = client.get("/v1/audit", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get("/v1/audit", params={"after": first["next_cursor"]}).json()
    assert [r["id"] for r in first["items"] + rest["items"]] == [r["id"] for r in page["items"]]
    assert client.delete("/v1/audit").status_code == 405


def test_refused_calls_are_counted_per_key(settings):
    with TestClient(create_app(settings)) as test_client:
        read = create_api_key("tests", settings, scope="read")
        for _ in range(3):
            assert test_client.post("/v1/datasets/examples/side-effects", headers=bearer(read)).status_code == 403
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        rows = session.execute(text("SELECT status, count FROM key_refusal")).all()
        assert [tuple(r) for r in rows] == [(403, 3)]
        # Only the key's creation (by the server-side CLI): refusals are counted, not logged one row each.
        assert session.execute(text("SELECT action FROM audit_record")).scalars().all() == ["key.create"]


def test_rate_limit_is_429_with_retry_after_and_every_response_has_the_headers(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", rate_limit_per_min=5)
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {create_api_key('tests', settings)}"
        answers = [test_client.get("/v1/jobs") for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert [int(a.headers["RateLimit-Remaining"]) for a in answers] == [4, 3, 2, 1, 0, 0]
        assert all(a.headers["RateLimit-Limit"] == "5" and int(a.headers["RateLimit-Reset"]) >= 1 for a in answers)
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].headers["content-type"] == "application/problem+json"
        assert test_client.get("/v1/jobs/job_x").status_code == 429
        for _ in range(10):
            health = test_client.get("/health")
            assert health.status_code == 200 and "RateLimit-Limit" not in health.headers


def _npz(arrays: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in arrays.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


def _leftovers(settings: Settings) -> list[str]:
    return [str(p) for d in (settings.datasets_dir, settings.uploads_dir) if d.exists() for p in d.rglob("*")]


def test_npz_declaring_gigabytes_is_refused_at_once_naming_the_array_and_leaving_nothing(client, settings):
    # A few KB of zeros compressed, declaring 10^5 x 10^5 float64 = 80 GB.
    bomb = _npz({"x": _npy_header((100_000, 100_000)) + bytes(64 * 1024), "y": _npy_header((100_000,)) + bytes(1024)})
    assert len(bomb) < 10_000
    started = time.monotonic()
    response = client.post("/v1/datasets", files={"file": ("bomb.npz", bomb)})
    assert time.monotonic() - started < 2
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "'x'" in detail and "80,000,000,128" in detail and "MAX_DATASET_BYTES" in detail
    assert _leftovers(settings) == []


def test_npz_member_running_past_its_header_is_refused_as_it_streams(client, settings):
    x = np.zeros((10, 2), dtype=np.float32)
    y = np.zeros((10,), dtype=np.int32)
    liar = _npy_header((10, 2), "<f4") + x.tobytes() + bytes(5 * 1024 * 1024)
    response = client.post("/v1/datasets", files={"file": ("liar.npz", _npz({"x": liar, "y": _npy_header((10,), "<i4") + y.tobytes()}))})
    assert response.status_code == 413, response.text
    assert "more data than its header declares" in response.json()["detail"]
    assert _leftovers(settings) == []


def test_owner_quota_counts_stored_bytes_and_dataset_records_both_sizes(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", owner_max_stored_bytes=40_000)
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {create_api_key('tests', settings)}"
        x = np.zeros((2000, 2), dtype=np.float32)
        y = np.zeros((2000,), dtype=np.int32)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=x, y=y)
        first = test_client.post("/v1/datasets", files={"file": ("a.npz", buffer.getvalue())})
        assert first.status_code == 201, first.text
        dataset = first.json()
        assert dataset["upload_bytes"] == dataset["size_bytes"] == len(buffer.getvalue())
        assert dataset["stored_bytes"] == x.nbytes + y.nbytes + 2 * 128
        assert dataset["stored_bytes"] > dataset["upload_bytes"]  # compressed: the quota counts what is stored
        second = test_client.post("/v1/datasets", files={"file": ("b.npz", buffer.getvalue())})
        assert second.status_code == 413
        assert "OWNER_MAX_STORED_BYTES" in second.json()["detail"]
        csv = "a,b\n" + "0,1\n" * 20_000
        third = test_client.post("/v1/datasets", files={"file": ("c.csv", csv.encode())})
        assert third.status_code == 413 and "once parsed" in third.json()["detail"], third.text


def test_migration_keeps_existing_keys_working_as_write_keys_with_no_expiry(tmp_path):
    from alembic import command

    from app.migrate import alembic_config

    settings = Settings(data_dir=tmp_path / "var")
    settings.prepare_data_dir()
    url = settings.resolved_database_url
    config = alembic_config(url)
    command.upgrade(config, "0005")
    old_key = "ek_" + "A" * 43
    from app.services.owners import hash_key

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO owner (id, name, created_at) VALUES ('own_1', 'old', :now)"), {"now": datetime.now(UTC)})
        connection.execute(
            text("INSERT INTO api_key (id, owner_id, key_hash, prefix, created_at) VALUES ('key_1', 'own_1', :h, :p, :now)"),
            {"h": hash_key(old_key), "p": old_key[:8], "now": datetime.now(UTC)},
        )
    engine.dispose()
    with TestClient(create_app(settings)) as test_client:  # the app migrates to head on start
        response = test_client.get("/v1/keys", headers=bearer(old_key))
        assert response.status_code == 200, response.text
        (record,) = response.json()["items"]
        assert record["scope"] == "write" and record["expires_at"] is None and record["prefix"] == "AAAAA"
        assert test_client.post("/v1/datasets/examples/side-effects", headers=bearer(old_key)).status_code == 201


@pytest.mark.parametrize("expires_in", [timedelta(seconds=-1)])
def test_expiry_in_the_database_is_enforced_on_first_sight(settings, client, expires_in):
    key = create_api_key("tests", settings)
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        session.execute(update(ApiKey).values(expires_at=datetime.now(UTC) + expires_in).where(ApiKey.prefix == key[3:11]))
    response = client.get("/v1/jobs", headers=bearer(key))
    assert response.status_code == 401 and "expired" in response.json()["detail"]
