"""Keras' layer catalogue, enumerated from the installed Keras: every public class of `keras.layers` is
trained by the real worker, refused with a 422 that names the path and the reason, or listed with why.

One job per input group trains every layer of the group side by side (tests/keras_catalogue.py), so
the worker traces a few large graphs instead of starting a hundred jobs. The README's coverage table
is what this test writes: run it, and a stale table is rewritten (outside CI) and the test fails."""

import io
import json
import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.integration.test_training_e2e import wait_until_done
from tests.keras_catalogue import (
    IN_EVERY_MODEL,
    NOT_BUILDABLE,
    REFUSED,
    aliases_of,
    covered_by_group,
    fault_model,
    group_arrays,
    group_model,
    keras_faults,
    public_layer_classes,
    unaccounted,
)

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- layer-coverage: written by tests/integration/test_keras_catalogue.py -->", "<!-- /layer-coverage -->"


def upload(own_live, arrays: dict[str, np.ndarray]) -> str:
    """The arrays as an .npz dataset; its id."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    response = own_live.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def job_spec(dataset_id: str, model: keras.Model, name: str) -> dict:
    return {
        "dataset_id": dataset_id,
        "name": name,
        "model": {"keras_json": json.loads(model.to_json())},
        "compile": {"optimizer": "adam", "loss": "mse"},
        "fit": {"epochs": 1, "batch_size": 8},
    }


def coverage_table() -> str:
    classes = public_layer_classes()
    aliases = aliases_of()
    trained = [*sorted(name for names in covered_by_group().values() for name in names), IN_EVERY_MODEL]
    trained_count = len(trained) + sum(len(aliases[name]) for name in trained)
    faults = keras_faults()
    rows = [f"| `{name}` | refused: 422 at `model.layers[i].type` | {why} |" for name, why in REFUSED.items()]
    rows += [f"| `{name}` | Keras fails it: 422 at `{fault.path}` with Keras' message | {fault.why} |" for name, fault in faults.items()]
    rows += [f"| `{name}` | cannot be built here | {why} |" for name, why in NOT_BUILDABLE.items()]
    named = [f"`{name}`" + (f" (also `{'`, `'.join(aliases[name])}`)" if aliases[name] else "") for name in trained]
    return "\n".join(
        [
            START,
            f"**{trained_count} of {len(classes)} public `keras.layers` classes trained** (Keras {keras.__version__}): "
            "each in a model that passes the submit-time check and trains an epoch on a real worker. The other "
            f"{len(classes) - trained_count} and why, and the forms of a layer that Keras itself fails:",
            "",
            "| class | outcome | why |",
            "|---|---|---|",
            *rows,
            "",
            "Trained: " + ", ".join(named) + ".",
            END,
        ]
    )


def test_every_public_layer_class_is_trained_refused_or_listed(own_live):
    assert unaccounted() == [], "new keras.layers classes: give each a recipe, a refusal or a reason in tests/keras_catalogue.py"

    jobs = {}
    for group, names in covered_by_group().items():
        dataset_id = upload(own_live, group_arrays(group))
        response = own_live.post("/v1/jobs", json=job_spec(dataset_id, group_model(group, names), f"catalogue: {group}"))
        assert response.status_code == 202, f"{group} ({', '.join(names)}): {response.text}"
        jobs[group] = response.json()["id"]

    # While the worker trains: what the service refuses, and what Keras itself fails.
    plain = upload(own_live, group_arrays("flat"))
    for name in REFUSED:
        spec = {"dataset_id": plain, "model": {"layers": [{"type": name}]}, "compile": {"loss": "mse"}}
        response = own_live.post("/v1/jobs", json=spec)
        assert response.status_code == 422, f"{name}: {response.text}"
        error = response.json()["errors"][0]
        assert error["path"] == "model.layers[0].type" and "not allowed" in error["message"], (name, error)
    for name, fault in keras_faults().items():
        dataset_id = upload(own_live, group_arrays(fault.group))
        response = own_live.post("/v1/jobs", json=job_spec(dataset_id, fault_model(name), name))
        assert response.status_code == 422, f"{name} now passes: move it from keras_faults to the recipes ({response.text})"
        error = response.json()["errors"][0]
        assert error["path"] == fault.path and fault.says in error["message"], (name, error)

    for group, job_id in jobs.items():
        job = wait_until_done(own_live, job_id, timeout_s=300)
        assert job["status"] == "succeeded", f"{group}: {job['error']}"
        loss = own_live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"][0]["logs"]["loss"]
        assert np.isfinite(loss), group

    table = coverage_table()
    readme = README.read_text()
    current = re.search(re.escape(START) + ".*?" + re.escape(END), readme, flags=re.S)
    assert current, f"README.md has no {START} block"
    if current.group(0) != table:
        if os.environ.get("CI", "").lower() != "true":
            README.write_text(readme.replace(current.group(0), table))
        pytest.fail("README.md's layer coverage table was stale (rewritten outside CI): commit it")
