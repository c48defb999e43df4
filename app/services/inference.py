"""Evaluate and predict on a job's trained model. The API process checks ownership, status and the
inputs' shapes; the warm inference process (app.inference.pool) runs Keras."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app import ingest
from app.db import session_scope
from app.errors import FieldError, InvalidInput, JobNotFound, ModelNotReady, ModelNotTrained
from app.inference import files
from app.inference.helper import InferenceFailed, from_blob, to_blob
from app.inference.pool import Predictor
from app.inference.signature import ModelInput, Signature, SignatureCache, SignatureUnreadable, model_stamp, read_signature
from app.inference.validate import check_array, json_inputs
from app.lifecycle import JobStatus
from app.repositories import jobs as jobs_repo
from app.services import datasets as dataset_service
from app.settings import Settings
from app.storage import open_artifacts

FileFormat = Literal["npy", "csv"]
# What a file answer holds: CSV, or .npy for one output and .npz (an array per output) for several.
AnswerFormat = Literal["npy", "npz", "csv"]
_signatures = SignatureCache()


@dataclass(frozen=True)
class Predictions:
    values: list[Any] | dict[str, list[Any]]
    cache: str  # "hit" when the warm process already held the model, "miss" when it loaded the file


@dataclass(frozen=True)
class PredictionFile:
    path: Path
    format: AnswerFormat
    rows: int
    cache: str


@dataclass(frozen=True)
class Evaluation:
    logs: dict[str, float]
    samples: int
    cache: str


@dataclass(frozen=True)
class _Model:
    stamp: tuple[str, int, int]
    signature: Signature


def predict_json(
    session_factory: sessionmaker[Session],
    settings: Settings,
    predictor: Predictor,
    job_id: str,
    inputs: list[Any] | dict[str, Any],
    *,
    owner_id: str,
) -> Predictions:
    with _trained_model(session_factory, settings, predictor, job_id, owner_id=owner_id) as model:
        arrays = json_inputs(inputs, model.signature, max_rows=settings.predict_max_json_rows)
        try:
            cache, outputs = predictor.predict_blobs(model.stamp, {name: to_blob(a) for name, a in arrays.items()})
        except InferenceFailed as exc:
            raise InvalidInput(str(exc), [FieldError("inputs", str(exc))]) from None
    values = {name: from_blob(blob).tolist() for name, blob in outputs.items()}
    return Predictions(values=values[""] if list(values) == [""] else values, cache=cache)


def predict_dataset(
    session_factory: sessionmaker[Session],
    settings: Settings,
    predictor: Predictor,
    job_id: str,
    dataset_id: str,
    fmt: FileFormat,
    *,
    owner_id: str,
) -> PredictionFile:
    with (
        _trained_model(session_factory, settings, predictor, job_id, owner_id=owner_id) as model,
        _dataset_files(session_factory, settings, dataset_id, owner_id=owner_id) as (x_path, _),
    ):
        inputs = _dataset_inputs(model.signature, x_path)
        return _predict_files(settings, predictor, model, inputs, fmt, "dataset_id")


def predict_upload(
    session_factory: sessionmaker[Session],
    settings: Settings,
    predictor: Predictor,
    job_id: str,
    stream: BinaryIO,
    fmt: FileFormat,
    *,
    owner_id: str,
) -> PredictionFile:
    with _trained_model(session_factory, settings, predictor, job_id, owner_id=owner_id) as model:
        inputs = files.receive_inputs(
            stream, settings.predictions_dir, settings.max_upload_bytes, settings.max_dataset_bytes, model.signature
        )
        try:
            return _predict_files(settings, predictor, model, inputs, fmt, "file")
        finally:
            for path in inputs.values():
                path.unlink(missing_ok=True)


def evaluate(
    session_factory: sessionmaker[Session],
    settings: Settings,
    predictor: Predictor,
    job_id: str,
    dataset_id: str,
    *,
    owner_id: str,
) -> Evaluation:
    with (
        _trained_model(session_factory, settings, predictor, job_id, owner_id=owner_id) as model,
        _dataset_files(session_factory, settings, dataset_id, owner_id=owner_id) as (x_path, y_path),
    ):
        inputs = _dataset_inputs(model.signature, x_path)
        try:
            cache, logs, samples = predictor.evaluate_files(model.stamp, inputs, y_path)
        except InferenceFailed as exc:
            raise InvalidInput(str(exc), [FieldError("dataset_id", str(exc))]) from None
    return Evaluation(logs=logs, samples=samples, cache=cache)


@contextmanager
def _trained_model(
    session_factory: sessionmaker[Session], settings: Settings, predictor: Predictor, job_id: str, *, owner_id: str
) -> Iterator[_Model]:
    """The job's model file (a local copy, kept while the block runs, when it is in object storage)
    and what it takes. The read ends before Keras runs: no transaction stays open across a prediction."""
    with session_scope(session_factory) as session:
        found = jobs_repo.owned_model(session, owner_id, job_id)
    if found is None:  # another owner's job too
        raise JobNotFound(f"no job with id {job_id!r}")
    status, model_path = found
    if status != JobStatus.SUCCEEDED:
        raise ModelNotTrained(f"job {job_id!r} is {status}; only a succeeded job has a model to evaluate or predict with")
    if not model_path:
        raise ModelNotReady(f"job {job_id!r} succeeded but its model file is gone")
    with ExitStack() as held:
        try:
            path = held.enter_context(open_artifacts(settings).model_file(model_path))
        except FileNotFoundError:
            raise ModelNotReady(f"job {job_id!r} succeeded but its model file is gone") from None
        yield _described_model(predictor, path)


def _described_model(predictor: Predictor, path: Path) -> _Model:
    stamp = model_stamp(path)
    signature = _signatures.get(stamp)
    if signature is None:
        try:
            signature = read_signature(path)
        except SignatureUnreadable:  # ask the loaded model itself
            _, described = predictor.describe(stamp)
            signature = Signature(tuple(ModelInput(name, shape, dtype) for name, shape, dtype in described))
        _signatures.put(stamp, signature)
    return _Model(stamp, signature)


@contextmanager
def _dataset_files(
    session_factory: sessionmaker[Session], settings: Settings, dataset_id: str, *, owner_id: str
) -> Iterator[tuple[Path | dict[str, Path], Path | dict[str, Path]]]:
    with session_scope(session_factory) as session:
        storage_key = dataset_service.get_dataset(session, dataset_id, owner_id=owner_id, field="dataset_id").storage_key
    with open_artifacts(settings).dataset_folder(storage_key) as folder:
        yield ingest.array_files(folder.parent, folder.name)


def _dataset_inputs(signature: Signature, x: Path | dict[str, Path]) -> dict[str, Path]:
    """The dataset's feature files by model input: its one x for a one-input model, or its
    x_<input> arrays matched by name."""
    if not isinstance(x, dict):
        only = _one_input(signature, "dataset_id", "the dataset has one array of features")
        _check_file("dataset_id", x, only, "the dataset")
        return {only.name: x}
    names = [i.name for i in signature.inputs]
    if len(x) == 1 and len(names) == 1:
        x = {names[0]: next(iter(x.values()))}
    if set(x) != set(names):
        message = (
            f"the model's inputs are {', '.join(names)} but the dataset's are {', '.join(f'x_{n}' for n in x)}; "
            "they must match by name"
        )
        raise InvalidInput(f"dataset_id: {message}", [FieldError("dataset_id", message)])
    for spec in signature.inputs:
        _check_file("dataset_id", x[spec.name], spec, f"the dataset's x_{spec.name}")
    return {spec.name: x[spec.name] for spec in signature.inputs}


def _one_input(signature: Signature, path: str, why: str) -> ModelInput:
    if len(signature.inputs) != 1:
        names = ", ".join(i.name for i in signature.inputs)
        message = f"the model has {len(signature.inputs)} inputs ({names}) but {why}; send JSON inputs or a .npz by input name"
        raise InvalidInput(f"{path}: {message}", [FieldError(path, message)])
    return signature.inputs[0]


def _check_file(path: str, npy: Path, spec: ModelInput, what: str) -> None:
    x = np.load(npy, mmap_mode="r", allow_pickle=False)
    check_array(path, x, spec, what)


def _predict_files(
    settings: Settings, predictor: Predictor, model: _Model, inputs: dict[str, Path], fmt: FileFormat, path: str
) -> PredictionFile:
    out = files.work_path(settings.predictions_dir, f".{fmt}")
    try:
        cache, rows, written = predictor.predict_files(model.stamp, inputs, out, fmt)
    except InferenceFailed as exc:
        out.unlink(missing_ok=True)
        raise InvalidInput(str(exc), [FieldError(path, str(exc))]) from None
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return PredictionFile(path=out, format=cast(AnswerFormat, written), rows=rows, cache=cache)
