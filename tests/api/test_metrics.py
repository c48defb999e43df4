"""GET /metrics in process: route templates as labels (never a raw path), the token, and a scrape that
still answers while the database is away. tests/integration/test_metrics.py checks the counts live."""

from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import read_database_metrics
from app.db import make_engine, make_session_factory
from app.settings import Settings
from tests.conftest import authed_client


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "epochly_http_request_duration_seconds_count"
    }


def test_requests_are_labelled_by_route_template_and_unknown_paths_share_one_label(client):
    for path in ("/v1/jobs/job_secret1", "/v1/jobs/job_secret2", "/made/up/one", "/made/up/two", "/ui/static/app.js"):
        client.get(path)
    client.request("BREW", "/v1/jobs")
    text = client.get("/metrics").text
    counts = request_counts(text)
    assert counts[("GET", "/v1/jobs/{job_id}", "404")] >= 2
    assert counts[("GET", "unmatched", "404")] >= 2
    assert counts[("GET", "/ui/static/{path}", "200")] >= 1
    assert counts[("other", "/v1/jobs", "405")] >= 1
    assert "job_secret" not in text and "/made/up" not in text and "BREW" not in text


def test_a_metrics_token_is_asked_for_once_set(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", metrics_token="t0ken")
    with authed_client(settings) as client:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}, {}):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
        assert client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_a_scrape_without_the_database_says_so_and_nothing_else_from_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        families = read_database_metrics(make_session_factory(engine), Celery(), settings)
    finally:
        engine.dispose()
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("epochly_database_up", [0])]
