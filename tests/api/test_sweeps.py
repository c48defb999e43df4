"""POST /v1/sweeps and friends, in process against real Keras, without a worker: what is checked at
create, which trials are queued and how, the owner's active-job limit, cancel and the 404s."""

import pytest

from app.specs import TUTORIAL_COMPILE, TUTORIAL_LAYERS
from tests.conftest import authed_client


def sweep_body(dataset_id: str, **overrides) -> dict:
    return {
        "dataset_id": dataset_id,
        "name": "rates",
        "tags": {"team": "a"},
        "model": {"layers": TUTORIAL_LAYERS},
        "compile": TUTORIAL_COMPILE,
        "fit": {"epochs": 3, "batch_size": 32, "validation_split": 0.2, "seed": 0, "normalize": "minmax"},
        "search": {
            "compile.optimizer.learning_rate": {"type": "choice", "values": [0.001, 0.01]},
            "model.layers[1].units": {"type": "int", "low": 8, "high": 16, "step": 8},
        },
        "sampler": "grid",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parallel": 2,
        **overrides,
    }


def test_a_grid_sweep_is_accepted_and_queues_parallel_trials_as_ordinary_jobs(client, example_dataset):
    response = client.post("/v1/sweeps", json=sweep_body(example_dataset["id"]))
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert response.headers["Location"] == f"/v1/sweeps/{sweep['id']}"
    assert sweep["trials"] == 4 and sweep["status"] == "queued"  # the grid's size, by default
    trials = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["items"]
    assert len(trials) == 2  # `parallel`, queued right after the response
    assert sorted(t["trial"] for t in trials) == [1, 2]
    for trial in trials:
        assert trial["status"] == "queued" and trial["sweep_id"] == sweep["id"]
        assert trial["params"]["compile.optimizer.learning_rate"] in (0.001, 0.01)
        assert trial["params"]["model.layers[1].units"] in (8, 16)
        # The sampled values are in the job's own spec, which the worker trains.
        assert trial["spec"]["compile"]["optimizer"]["learning_rate"] == trial["params"]["compile.optimizer.learning_rate"]
        assert trial["spec"]["model"]["layers"][1]["units"] == trial["params"]["model.layers[1].units"]
        assert trial["tags"] == {"team": "a"} and trial["name"].endswith(f"trial {trial['trial']}")
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == 2  # two different grid points
    read = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert read["counts"]["queued"] == 2 and read["trials_created"] == 2
    assert [entry["trial"] for entry in read["leaderboard"]] == [1, 2]  # no objective yet: by trial number
    listed = client.get("/v1/sweeps").json()["items"]
    assert [s["id"] for s in listed] == [sweep["id"]]


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"search": {"compile.optimizer.beta_9": {"type": "uniform", "low": 0.1, "high": 0.2}}},
            "search.compile.optimizer.beta_9",
            "no 'beta_9'",
        ),
        ({"search": {"model.layers[7].units": {"type": "choice", "values": [4]}}}, "search.model.layers[7].units", "3 item(s)"),
        ({"search": {"fit..epochs": {"type": "choice", "values": [4]}}}, "search.fit..epochs", "should match pattern"),
        ({"objective": {"metric": "val_auc", "direction": "maximize"}}, "objective.metric", "reports no 'val_auc'"),
        (
            {"search": {"compile.optimizer.learning_rate": {"type": "loguniform", "low": 0.001, "high": 0.1}}},
            "search.compile.optimizer.learning_rate",
            "a grid takes choice or int values",
        ),
        ({"trials": 9}, "trials", "the grid has 4 points"),
        ({"parallel": True}, "parallel", "valid integer"),
        ({"search": {"model.layers[1].units": {"type": "choice", "values": [8, 0]}}}, "search.model.layers[1].units", "0"),
        (
            {"search": {"model.layers[1].activation": {"type": "choice", "values": ["relu", "nonsense"]}}},
            "search.model.layers[1].activation",
            "nonsense",
        ),
    ],
)
def test_a_bad_search_is_a_422_at_its_field(client, example_dataset, change, path, words):
    response = client.post("/v1/sweeps", json=sweep_body(example_dataset["id"], **change))
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["path"] == path, error
    assert words in error["message"], error
    assert client.get("/v1/sweeps").json()["items"] == []  # nothing half-written


def test_a_missing_dataset_is_404_before_the_search_is_checked(client):
    search = {"model.B": {"type": "int", "low": -2, "high": 2}}  # not in the base either
    response = client.post("/v1/sweeps", json=sweep_body("ds_missing", search=search))
    assert response.status_code == 404, response.text
    assert response.json()["errors"][0]["path"] == "dataset_id"


def test_a_sweep_waits_for_room_under_the_active_job_limit_instead_of_failing(settings, example_dataset, client):
    limited = settings.model_copy(update={"owner_max_active_jobs": 1})
    with authed_client(limited, owner="limited") as capped:
        dataset = capped.post("/v1/datasets/examples/side-effects").json()
        response = capped.post("/v1/sweeps", json=sweep_body(dataset["id"], parallel=3))
        assert response.status_code == 202, response.text
        sweep_id = response.json()["id"]
        read = capped.get(f"/v1/sweeps/{sweep_id}").json()
        assert read["status"] == "queued" and read["trials_created"] == 1  # one slot: one trial, the rest wait
        assert (
            capped.post(
                "/v1/jobs",
                json={**{k: sweep_body(dataset["id"])[k] for k in ("model", "compile", "fit")}, "dataset_id": dataset["id"]},
            ).status_code
            == 429
        )


def test_cancel_cancels_queued_trials_and_adds_no_more(client, example_dataset):
    sweep_id = client.post("/v1/sweeps", json=sweep_body(example_dataset["id"])).json()["id"]
    cancelled = client.post(f"/v1/sweeps/{sweep_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["counts"]["cancelled"] == 2 and body["finished_at"] is not None
    assert {t["status"] for t in client.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["items"]} == {"cancelled"}
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 200  # again: a no-op
    audit = [r["action"] for r in client.get("/v1/audit").json()["items"]]
    assert "sweep.create" in audit and "sweep.cancel" in audit


def test_another_owners_sweep_does_not_exist(client, settings, example_dataset):
    sweep_id = client.post("/v1/sweeps", json=sweep_body(example_dataset["id"])).json()["id"]
    with authed_client(settings, owner="someone else") as other:
        for method, path in [("GET", ""), ("POST", "/cancel"), ("GET", "/importance"), ("GET", "/events")]:
            response = other.request(method, f"/v1/sweeps/{sweep_id}{path}")
            assert response.status_code == 404, (method, path, response.text)
        assert other.get("/v1/sweeps").json()["items"] == []
        assert other.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["items"] == []


def test_a_dataset_used_by_an_unfinished_sweep_cannot_be_deleted(client, example_dataset):
    client.post("/v1/sweeps", json=sweep_body(example_dataset["id"]))
    response = client.delete(f"/v1/datasets/{example_dataset['id']}")
    assert response.status_code == 409, response.text
