import copy
import time

import pytest
from sqlalchemy import func, select

from app import lifecycle
from app.db import make_engine, make_session_factory, session_scope
from app.models import Job
from app.repositories import jobs as jobs_repo
from app.repositories import leases
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS
from tests.conftest import authed_client


def tutorial_job(dataset_id: str, **fit) -> dict:
    return {
        "dataset_id": dataset_id,
        "name": "tutorial",
        "tags": {"owner": "tests"},
        "model": {"layers": copy.deepcopy(TUTORIAL_LAYERS)},
        "compile": copy.deepcopy(TUTORIAL_COMPILE),
        "fit": {**TUTORIAL_FIT, **fit},
    }


def job_count(settings) -> int:
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_submit_returns_202_with_location_and_queued_job(client, example_dataset):
    response = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"]))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert (job["epochs_total"], job["epochs_completed"], job["latest"], job["error"]) == (20, 0, None, None)
    assert job["tags"] == {"owner": "tests"}
    assert [h["status"] for h in job["history"]] == ["queued"]
    assert job["spec"]["model"]["layers"][0]["units"] == 16


def mutate(spec: dict, path: str, value) -> dict:
    spec = copy.deepcopy(spec)
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "error_path", "words"),
    [
        ("model.layers[2].units", -1, "model.layers[2].units", "positive integer"),
        ("model.layers[1].units", "many", "model.layers[1].units", "units"),
        ("model.layers[1].type", "Dnse", "model.layers[1].type", "unknown layer type"),
        ("model.layers[1].bogus", 3, "model.layers[1].bogus", "bogus"),
        ("model.layers[0].input_shape", [3], "model.layers[0].input_shape", "shape (1,)"),
        ("model.layers[1].type", "Lambda", "model.layers[1].type", "not allowed"),
        ("compile.optimizer", "adamm", "compile.optimizer", "unknown optimizer"),
        ("compile.optimizer.type", "Adamm", "compile.optimizer.type", "unknown optimizer"),
        ("compile.optimizer.learning_rat", 0.1, "compile.optimizer.learning_rat", "learning_rat"),
        ("compile.loss", "nope", "compile.loss", "unknown loss"),
        ("compile.metrics", ["accuracy", "nope"], "compile.metrics[1]", "unknown metric"),
        ("fit.epochs", 0, "fit.epochs", "greater than or equal to 1"),
        ("fit.batch_size", 0, "fit.batch_size", "greater than or equal to 1"),
        ("fit.epochs", True, "fit.epochs", "valid integer"),  # not 1: JSON's true is no number
        ("fit.validation_split", False, "fit.validation_split", "valid number"),
        ("fit.normalize", "zscore", "fit.normalize", "minmax"),
        ("fit.validation_split", 1.0, "fit.validation_split", "less than 1"),
        ("model.layers[2].units", 1, "model", "labels"),
        ("fit.extra", 1, "fit.extra", "not permitted"),
    ],
)
def test_invalid_spec_is_422_with_the_field_path_and_creates_no_job(
    client, settings, example_dataset, path, value, error_path, words
):
    response = client.post("/v1/jobs", json=mutate(tutorial_job(example_dataset["id"]), path, value))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert errors[0]["path"] == error_path, errors
    assert words in errors[0]["message"], errors
    assert job_count(settings) == 0


def test_a_missing_dataset_is_404_at_its_field_whatever_else_is_wrong(client, settings, example_dataset):
    """A client expects 404 for a resource that does not exist, in the body as in the path."""
    for spec, path in (
        (mutate(tutorial_job("ds_missing"), "queue", "nowhere"), "dataset_id"),
        (mutate(tutorial_job(example_dataset["id"]), "fit.validation_dataset_id", "ds_missing"), "fit.validation_dataset_id"),
    ):
        response = client.post("/v1/jobs", json=mutate(spec, "fit.validation_split", 0.0))
        assert response.status_code == 404, response.text
        assert response.json()["title"] == "Dataset not found"
        assert response.json()["errors"] == [{"path": path, "message": "no dataset with id 'ds_missing'"}]
    assert job_count(settings) == 0


def test_conv_layer_on_flat_features_names_the_layer(client, example_dataset):
    spec = tutorial_job(example_dataset["id"])
    spec["model"]["layers"].insert(1, {"type": "Conv2D", "filters": 4, "kernel_size": 3})
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "model.layers[1]"


def test_model_needs_exactly_one_of_layers_or_keras_json(client, example_dataset):
    spec = tutorial_job(example_dataset["id"])
    spec["model"] = {}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "model"


def test_keras_json_string_from_to_json_is_accepted(client, example_dataset):
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax")]
    )
    spec = tutorial_job(example_dataset["id"], epochs=2)
    spec["model"] = {"keras_json": model.to_json()}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text


def test_keras_json_naming_a_foreign_module_is_refused(client, example_dataset):
    keras = pytest.importorskip("keras")
    import json

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    config = json.loads(model.to_json())
    config["config"]["layers"][1]["config"]["kernel_initializer"] = {"module": "os", "class_name": "system", "config": {}}
    spec = tutorial_job(example_dataset["id"])
    spec["model"] = {"keras_json": config}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"].startswith("model.keras_json.config.layers[1]")


def test_optimizer_may_be_a_plain_string(client, example_dataset):
    spec = tutorial_job(example_dataset["id"])
    spec["compile"]["optimizer"] = "adam"
    assert client.post("/v1/jobs", json=spec).status_code == 202


def test_list_jobs_newest_first_with_status_filter_and_cursor(client, settings, example_dataset):
    ids = [client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"] for _ in range(3)]
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        lifecycle.claim(session, ids[0], "tests")
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]]
    rest = client.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    running = client.get("/v1/jobs", params={"status": "running"}).json()["items"]
    assert [j["id"] for j in running] == [ids[0]]
    assert client.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422


def test_a_list_shows_the_callers_own_submit_and_cancel_at_once(client, example_dataset):
    """List pages are kept in memory; the process's own changes reach them before the change's answer."""
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["items"] == []
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"], epochs=1)).json()["id"]
    assert [j["id"] for j in client.get("/v1/jobs", params={"status": "queued"}).json()["items"]] == [job_id]
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["items"] == []
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [(j["id"], j["status"]) for j in cancelled] == [(job_id, "cancelled")]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_metrics_after_and_keras_style_log(client, settings, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        lifecycle.claim(session, job_id, "tests")
        for epoch, (loss, acc) in enumerate([(0.64, 0.5576), (0.6061, 0.631), (0.5748, 0.701)], start=1):
            assert jobs_repo.record_epoch(session, job_id, epoch, {"accuracy": acc, "loss": loss}, 0.4)
        assert not jobs_repo.record_epoch(session, job_id, 3, {"loss": 9.0}, 0.4)  # written at most once
    metrics = client.get(f"/v1/jobs/{job_id}/metrics", params={"after": 1}).json()
    assert metrics["job_id"] == job_id and metrics["status"] == "running"
    assert [e["epoch"] for e in metrics["epochs"]] == [2, 3]
    assert metrics["epochs"][1]["logs"] == {"accuracy": 0.701, "loss": 0.5748}
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["epochs_completed"], job["latest"]) == (3, {"accuracy": 0.701, "loss": 0.5748})
    log = client.get(f"/v1/jobs/{job_id}/log").text.splitlines()
    assert log[2] == "Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010"


def test_model_download_is_404_until_the_job_succeeds(client, example_dataset):
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/model")
    assert response.status_code == 404
    assert "queued" in response.json()["detail"]


def test_unknown_job_is_404(client):
    for suffix in ("", "/metrics", "/log", "/model"):
        assert client.get(f"/v1/jobs/job_nope{suffix}").status_code == 404


def test_submit_while_broker_is_down_is_accepted_and_kept_queued(settings, tmp_path):
    """The row is the record: a job submitted while the broker is away waits for it, it is not refused
    (the scheduler's dispatcher sends it once the broker is back: tests/integration/test_broker_forgets.py)."""
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with authed_client(down) as client:
        dataset = client.post("/v1/datasets/examples/side-effects").json()
        response = client.post("/v1/jobs", json=tutorial_job(dataset["id"]))
        assert response.status_code == 202, response.text
        assert [j["status"] for j in client.get("/v1/jobs").json()["items"]] == ["queued"]
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json() == {
            "status": "degraded",
            "database": "ok",
            "broker": "down",
            "scheduler": "down",
            "scheduler_leader": None,
            "workers": [],
        }


def test_health_serves_without_a_scheduler_but_says_degraded(client, settings):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "ok",
        "scheduler": "down",
        "scheduler_leader": None,
        "workers": [],
    }
    factory = make_session_factory(make_engine(settings.resolved_database_url))
    with session_scope(factory) as session:
        assert leases.acquire(session, "scheduler-under-test", ttl_s=30)
    time.sleep(1.1)  # /health checks at most once a second, however many probes ask
    assert client.get("/health").json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "scheduler": "ok",
        "scheduler_leader": "scheduler-under-test",
        "workers": [],
    }


def test_docs_page_is_served_without_a_cdn(client):
    page = client.get("/docs").text
    assert "cdn" not in page.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_openapi_schemas_all_carry_examples(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    ours = ["JobCreate", "JobRead", "JobPage", "DatasetRead", "DatasetPage", "MetricsRead", "EpochRead", "HealthRead", "Problem"]
    for name in ours:
        assert "example" in schemas[name], name
    assert schemas["JobCreate"]["example"]["compile"]["optimizer"] == {"type": "Adam", "learning_rate": 0.0001}


def test_positions_past_any_issued_id_are_refused_or_clamped_never_a_500(client, example_dataset):
    """Found by schemathesis: an `after` beyond SQLite's 64-bit integers overflowed into a 500."""
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    too_far = client.get(f"/v1/jobs/{job_id}/metrics", params={"after": 10**30})
    assert too_far.status_code == 422 and too_far.json()["errors"][0]["path"] == "after"
    client.post(f"/v1/jobs/{job_id}/cancel")
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": f"{10**30}.{10**30}"}) as stream:
        assert stream.status_code == 200
        assert "event: end" in "".join(stream.iter_text())


@pytest.mark.parametrize("written", ["+0.0", "0.0", " 5", "5_0", "1e2"])
def test_integer_query_parameters_accept_only_digits(client, written):
    """Found by schemathesis: `after=+0.0` was read as 0 although the document declares an integer."""
    for path, name in [("/v1/audit", "after"), ("/v1/jobs", "limit"), ("/v1/datasets", "limit"), ("/v1/keys", "limit")]:
        refused = client.get(path, params={name: written})
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["errors"][0]["path"] == name
    assert client.get("/v1/audit", params={"after": "0"}).status_code == 200
