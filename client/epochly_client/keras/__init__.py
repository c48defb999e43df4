"""`model.fit` on an Epochly service: `epochly_client.keras.fit(model, x, y, ...)` takes Keras' own
arguments, trains the model where the service runs it, and leaves the trained weights in `model`.

Needs Keras (`pip install 'epochly-client[keras]'`); the rest of epochly_client does not.
"""

import functools
import os
from typing import Any

import numpy as np

from epochly_client.client import DEFAULT_URL, Client, EpochlyError
from epochly_client.keras.data import MAX_DATASET_BYTES, Arrays, dataset_arrays, digest, feature_arrays, output_names
from epochly_client.keras.follow import JobFailed, RemoteFit
from epochly_client.keras.spec import compile_spec, model_json, split_callbacks

__all__ = ["MAX_DATASET_BYTES", "InvalidSpec", "JobFailed", "RemoteFit", "attach", "evaluate", "fit", "predict"]

# /predict answers this many rows as JSON (PREDICT_MAX_JSON_ROWS' default); more go in several requests.
PREDICT_ROWS = 10_000


class InvalidSpec(ValueError):
    """The service refused the job (422): `path` names the field, e.g. compile.loss or model.keras_json."""

    def __init__(self, error: EpochlyError) -> None:
        first = error.errors[0] if error.errors else {}
        self.path: str | None = first.get("path")
        self.errors = error.errors
        message = first.get("message") or error.detail
        super().__init__(f"{self.path}: {message}" if self.path else message)


def fit(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: int | str = "auto",
    callbacks: list[Any] | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    class_weight: dict[int, float] | None = None,
    initial_epoch: int = 0,
    client: Client | None = None,
    name: str | None = None,
    queue: str | None = None,
    detach: bool = False,
) -> Any:
    """`model.fit(x, y, ...)` with the training done by the service: returns Keras' History (plus `job_id`)
    once the trained weights are in `model`, or with `detach=True` a RemoteFit at once (`.wait()` later)."""
    server_callbacks, local_callbacks = split_callbacks(callbacks)
    compiled = compile_spec(model)
    client = client or default_client()
    train = dataset_arrays(model, x, y)
    fit_spec: dict[str, Any] = {
        "epochs": epochs - initial_epoch,
        "batch_size": batch_size or 32,  # model.fit's default
        "shuffle": shuffle,
        "callbacks": server_callbacks,
    }
    if class_weight is not None:
        fit_spec["class_weight"] = {str(int(label)): float(weight) for label, weight in class_weight.items()}
    validation = dataset_arrays(model, *_pair(validation_data), argument="validation_data") if validation_data else None
    training_set, uploaded = _dataset(client, train, name or model.name)
    if validation is not None:
        validation_set, validation_uploaded = _dataset(client, validation, f"{name or model.name} (validation)")
        fit_spec["validation_dataset_id"] = validation_set
        uploaded += validation_uploaded
    else:
        fit_spec["validation_split"] = validation_split
    spec = {"name": name, "model": {"keras_json": model_json(model)}, "compile": compiled, "fit": fit_spec}
    try:
        job = client.submit(spec, dataset_id=training_set, queue=queue)
    except EpochlyError as exc:
        raise (InvalidSpec(exc) if exc.status == 422 else exc) from None
    run = RemoteFit(
        client,
        job,
        model,
        n_samples=train.n_samples,
        callbacks=local_callbacks,
        verbose=verbose,
        initial_epoch=initial_epoch,
        uploaded_bytes=uploaded,
    )
    return run if detach else run.wait()


def attach(
    job_id: str, model: Any, *, verbose: int | str = "auto", callbacks: list[Any] | None = None, client: Client | None = None
) -> Any:
    """Follow a job submitted earlier (e.g. `fit(..., detach=True)`) as `fit` would, load its trained weights
    into `model` and return its History. A finished job's epochs are replayed."""
    _, local_callbacks = split_callbacks(callbacks)
    client = client or default_client()
    job = client.get(job_id)
    n_samples = client.dataset(job.raw["dataset_id"]).n_samples
    return RemoteFit(client, job, model, n_samples=n_samples, callbacks=local_callbacks, verbose=verbose).wait()


def evaluate(model_or_job: Any, x: Any, y: Any = None, *, return_dict: bool = False, client: Client | None = None) -> Any:
    """`model.evaluate(x, y)` run where the trained model is stored: the loss alone for a model without
    metrics, else [loss, *metrics] (a dict with `return_dict`), as Keras returns them."""
    model, job_id = _model_and_job(model_or_job)
    client = client or default_client()
    dataset_id, _ = _dataset(client, dataset_arrays(model, x, y), f"evaluate {job_id}")
    result = client.evaluate(job_id, dataset_id)
    result.pop("samples", None)
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


def predict(model_or_job: Any, x: Any, *, client: Client | None = None) -> Any:
    """`model.predict(x)` run where the trained model is stored: an array, or one per output for several."""
    model, job_id = _model_and_job(model_or_job)
    client = client or default_client()
    features = feature_arrays(model, x)
    rows = len(next(iter(features.values())))
    parts = []
    for start in range(0, rows, PREDICT_ROWS):
        chunk = {name: array[start : start + PREDICT_ROWS].tolist() for name, array in features.items()}
        parts.append(client.predict(job_id, chunk.get("", chunk)))
    if isinstance(parts[0], dict):
        by_output = {name: np.concatenate([np.asarray(part[name], dtype=np.float32) for part in parts]) for name in parts[0]}
        names = output_names(model)
        return [by_output[name] for name in names] if names else by_output
    return np.concatenate([np.asarray(part, dtype=np.float32) for part in parts])


@functools.cache
def default_client() -> Client:
    """One client for the session, from EPOCHLY_URL and EPOCHLY_API_KEY as the `epochly` command reads them."""
    return Client(os.environ.get("EPOCHLY_URL", DEFAULT_URL), api_key=os.environ.get("EPOCHLY_API_KEY"))


def _dataset(client: Client, arrays: Arrays, name: str) -> tuple[str, int]:
    """The dataset holding exactly these arrays: one of the caller's with the same hash, else uploaded.
    Returns its id and the bytes sent."""
    payload = arrays.npz()
    sha256 = digest(payload)
    found, _ = client.datasets(sha256=sha256, limit=1)
    # Checked here too: a service without the sha256 filter answers with the newest datasets instead.
    match = next((dataset for dataset in found if dataset.sha256 == sha256), None)
    if match is not None:
        return match.id, 0
    try:
        return client.upload_dataset_content(payload, filename="data.npz", name=name[:200]).id, len(payload)
    except EpochlyError as exc:
        raise (InvalidSpec(exc) if exc.status == 422 else exc) from None


def _pair(validation_data: Any) -> tuple[Any, Any]:
    """(x_val, y_val) as Keras takes it; a tf.data.Dataset of (x, y) batches goes as x alone."""
    if isinstance(validation_data, tuple | list):
        if len(validation_data) != 2:
            raise ValueError("validation_data: give (x_val, y_val); sample weights are not taken")
        return validation_data[0], validation_data[1]
    return validation_data, None


def _model_and_job(model_or_job: Any) -> tuple[Any, str]:
    """A model trained by `fit` knows its job (its History's job_id); a RemoteFit names both; a bare job
    id has no model, so several inputs or outputs go by the names in the caller's dicts."""
    if isinstance(model_or_job, str):
        return None, model_or_job
    if isinstance(model_or_job, RemoteFit):
        return model_or_job.model, model_or_job.job_id
    job_id = getattr(getattr(model_or_job, "history", None), "job_id", None)
    if job_id is None:
        raise ValueError("give a model that epochly_client.keras.fit trained, or the RemoteFit it returned")
    return model_or_job, job_id
