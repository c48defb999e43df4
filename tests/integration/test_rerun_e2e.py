"""Reproduce from the record on a real worker, on the embedded default and on PostgreSQL + Redis: a
rerun of a job that shuffles with a seed the worker drew repeats every epoch's loss bit for bit."""

from tests.integration.test_training_e2e import tutorial, wait_until_done


def losses(client, job_id: str) -> list[float]:
    return [row["logs"]["loss"] for row in client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]


def test_a_rerun_repeats_every_epoch_loss_of_a_job_whose_seed_the_worker_drew(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    original = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=8, shuffle=True, seed=None)).json()
    assert original["spec"]["fit"]["seed"] is None
    original = wait_until_done(live, original["id"])
    assert original["status"] == "succeeded", original["error"]
    record = original["record"]
    assert record["dataset_sha256"] == dataset["sha256"] and isinstance(record["seed"], int)

    response = live.post(f"/v1/jobs/{original['id']}/rerun")
    assert response.status_code == 202, response.text
    rerun = wait_until_done(live, response.json()["id"])
    assert rerun["status"] == "succeeded", rerun["error"]
    assert rerun["rerun_of"] == original["id"]
    assert rerun["record"]["seed"] == record["seed"]
    assert rerun["versions_differ"] == []

    first, again = losses(live, original["id"]), losses(live, rerun["id"])
    assert len(first) == 8
    assert [x.hex() for x in again] == [x.hex() for x in first]  # exact, not approximately
    assert rerun["same_as_original"] is True

    # A different drawn seed would have trained to other losses: the seed is what made them repeat.
    other = wait_until_done(live, live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=8, seed=None)).json()["id"])
    if other["record"]["seed"] != record["seed"]:
        assert losses(live, other["id"]) != first
