"""The hot polls (app/api/hot_reads.py) skip FastAPI's routing and dependency solving; what a client
gets must be exactly what FastAPI's own path gives. An unknown query parameter, which FastAPI ignores,
sends the same request down that path, so each pair below is one request answered both ways."""
import pytest
from fastapi.testclient import TestClient

from app.admin import create_api_key
from app.main import create_app
from tests.api.test_jobs import tutorial_job

SAME_HEADERS = ("content-type", "etag", "cache-control", "ratelimit-limit")


def both_ways(client: TestClient, path: str, **kwargs):
    joiner = "&" if "?" in path else "?"
    return client.get(path, **kwargs), client.get(f"{path}{joiner}via=fastapi", **kwargs)


def assert_same(hot, routed) -> None:
    assert hot.status_code == routed.status_code
    assert hot.content == routed.content
    for header in SAME_HEADERS:
        assert hot.headers.get(header) == routed.headers.get(header), header


@pytest.mark.parametrize("path", ["/v1/jobs/{id}", "/v1/jobs/{id}/metrics", "/v1/jobs/{id}/metrics?after=0&limit=5", "/v1/jobs?limit=5", "/v1/jobs"])
def test_a_hot_poll_answers_exactly_as_fastapis_path(client, example_dataset, path):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"]
    hot, routed = both_ways(client, path.format(id=job_id))
    assert hot.status_code == 200
    assert_same(hot, routed)
    tag = hot.headers.get("etag")
    if tag:
        unchanged, routed_unchanged = both_ways(client, path.format(id=job_id), headers={"If-None-Match": tag})
        assert unchanged.status_code == 304
        assert_same(unchanged, routed_unchanged)


def test_errors_on_the_hot_path_are_the_apps_problems(client, settings, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"]
    with TestClient(create_app(settings)) as other:
        other.headers["Authorization"] = f"Bearer {create_api_key('someone else', settings)}"
        hot, routed = both_ways(other, f"/v1/jobs/{job_id}")  # another owner's job does not exist for them
        assert hot.status_code == 404 and hot.headers["content-type"] == "application/problem+json"
        assert_same(hot, routed)
    for headers in ({"Authorization": "Bearer ek_not_a_key"}, {"Authorization": ""}):
        hot, routed = both_ways(client, f"/v1/jobs/{job_id}/metrics", headers=headers)
        assert hot.status_code == 401 and hot.json()["detail"] == routed.json()["detail"]
    # Values the hot path does not take go to FastAPI's validation, which names the field.
    for query in ("after=-1", "after=1e3", "after=+1", "limit=0", "limit=10001"):
        answer = client.get(f"/v1/jobs/{job_id}/metrics?{query}")
        assert answer.status_code == 422 and answer.json()["errors"][0]["path"] == query.split("=")[0], (query, answer.text)
    assert client.get("/v1/jobs?limit=201").status_code == 422


def test_hot_polls_are_counted_under_their_route_template(client, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"]
    client.get(f"/v1/jobs/{job_id}")
    client.get(f"/v1/jobs/{job_id}/metrics")
    scrape = client.get("/metrics").text
    for template in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/metrics"):
        assert f'method="GET",route="{template}",status="200"' in scrape, template


def test_a_stream_on_the_hot_path_replays_exactly_as_fastapis_path(client, settings, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")  # finished: the stream replays its history and ends
    hot, routed = both_ways(client, f"/v1/jobs/{job_id}/events")
    assert hot.status_code == 200 and hot.headers["content-type"].startswith("text/event-stream")
    assert hot.content == routed.content and b"event: end" in hot.content
    resumed, routed_resumed = both_ways(client, f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "1.0"})
    assert resumed.content == routed_resumed.content and resumed.content.count(b"event: status") == 1
    with TestClient(create_app(settings)) as other:
        other.headers["Authorization"] = f"Bearer {create_api_key('someone else', settings)}"
        hot, routed = both_ways(other, f"/v1/jobs/{job_id}/events")
        assert hot.status_code == 404
        assert_same(hot, routed)
