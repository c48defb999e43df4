"""Dataset uploads, the tutorial example, listing and deletion."""

from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from app import ingest
from app.db import after_commit
from app.errors import DatasetInUse, DatasetNotFound, FieldError, InvalidDataset, PayloadTooLarge
from app.examples import SIDE_EFFECTS_NAME, side_effects
from app.models import Dataset
from app.repositories import datasets as datasets_repo
from app.repositories import sweeps as sweeps_repo
from app.repositories.pagination import Page
from app.services import owners as owner_service
from app.settings import Settings
from app.storage import open_artifacts


def upload_dataset(
    session: Session,
    settings: Settings,
    *,
    owner_id: str,
    stream: BinaryIO,
    filename: str | None,
    name: str | None,
    target: str | None,
) -> Dataset:
    try:
        upload = ingest.receive(stream, settings.uploads_dir, settings.max_upload_bytes)
    except ingest.UploadTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    artifacts = open_artifacts(settings)
    try:
        limit = stored_limit(session, settings, owner_id)
        file_format = ingest.detect_format(upload, filename)
        if file_format == "npz":
            if target is not None:
                raise ingest.DatasetRejected("`target` applies to CSV files only; an .npz names its labels y")
            stored = ingest.store_npz(upload, artifacts.dataset_landing_dir(), limit)
        else:
            stored = ingest.store_csv(upload, target, artifacts.dataset_landing_dir(), limit)
        artifacts.publish_dataset(stored.storage_key)
    except ingest.DatasetRejected as exc:
        raise InvalidDataset(str(exc)) from None
    except ingest.StoredTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    finally:
        upload.path.unlink(missing_ok=True)
    # The limit above was read before the upload streamed in; other uploads may have landed since.
    owner_service.hold_quotas(session, owner_id)
    try:
        owner_service.check_storage_quota(session, settings, owner_id, stored.stored_bytes)
    except PayloadTooLarge:
        if datasets_repo.storage_users(session, stored.storage_key) == 0:
            artifacts.remove_dataset(stored.storage_key)
        raise
    return datasets_repo.add(
        session,
        Dataset(
            owner_id=owner_id,
            name=name or Path(filename or "dataset").name[:200],
            format=file_format,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            upload_bytes=upload.size_bytes,
            **_stored_fields(stored),
        ),
    )


def stored_limit(session: Session, settings: Settings, owner_id: str) -> ingest.StoredLimit:
    """The tighter of MAX_DATASET_BYTES and what is left of the owner's OWNER_MAX_STORED_BYTES."""
    room = owner_service.storage_room(session, settings, owner_id)
    if room < settings.max_dataset_bytes:
        return ingest.StoredLimit(
            room,
            f"the {room:,} bytes left of your stored-bytes quota: the limit is {settings.owner_max_stored_bytes:,} "
            "(OWNER_MAX_STORED_BYTES). Delete datasets you no longer need",
        )
    return ingest.StoredLimit(
        settings.max_dataset_bytes, f"the {settings.max_dataset_bytes:,}-byte limit for one dataset (MAX_DATASET_BYTES)"
    )


def create_side_effects_example(session: Session, settings: Settings, *, owner_id: str) -> Dataset:
    x, y = side_effects()
    owner_service.hold_quotas(session, owner_id)
    owner_service.check_storage_quota(session, settings, owner_id, x.nbytes + y.nbytes)
    artifacts = open_artifacts(settings)
    stored, digest, size = ingest.store_arrays(x, y, artifacts.dataset_landing_dir())
    artifacts.publish_dataset(stored.storage_key)
    return datasets_repo.add(
        session,
        Dataset(
            owner_id=owner_id,
            name=SIDE_EFFECTS_NAME,
            format="example",
            sha256=digest,
            size_bytes=size,
            upload_bytes=size,
            **_stored_fields(stored),
        ),
    )


def get_dataset(session: Session, dataset_id: str, *, owner_id: str, field: str | None = None) -> Dataset:
    """`field`: where a request body names the dataset (`dataset_id`, `fit.validation_dataset_id`). A
    missing one is a 404 there too, as in a path, with the field in its errors."""
    dataset = datasets_repo.get_owned(session, owner_id, dataset_id)
    if dataset is None:
        message = f"no dataset with id {dataset_id!r}"
        raise DatasetNotFound(message, [FieldError(field, message)] if field else [])
    return dataset


def list_datasets(session: Session, *, owner_id: str, sha256: str | None = None, cursor: str | None, limit: int) -> Page[Dataset]:
    """`sha256`: only the datasets uploaded from a file with that hash (lower-case hex)."""
    return datasets_repo.page(session, owner_id, sha256=sha256, cursor=cursor, limit=limit)


def delete_dataset(session: Session, settings: Settings, dataset_id: str, *, owner_id: str) -> None:
    dataset = get_dataset(session, dataset_id, owner_id=owner_id)
    active = datasets_repo.active_job_count(session, dataset_id)
    if active:
        raise DatasetInUse(f"dataset {dataset_id!r} is used by {active} queued or running job(s); wait or cancel them first")
    if sweeps_repo.in_use_by_unfinished(session, dataset_id):
        raise DatasetInUse(f"dataset {dataset_id!r} is used by a sweep that has trials to run; wait or cancel the sweep first")
    storage_key = dataset.storage_key
    datasets_repo.delete(session, dataset)
    if datasets_repo.storage_users(session, storage_key) == 0:
        # Only once the row is gone for good: a rolled-back delete must still find its files.
        after_commit(session, lambda: open_artifacts(settings).remove_dataset(storage_key))


def _stored_fields(stored: ingest.StoredArrays) -> dict[str, object]:
    return {
        "storage_key": stored.storage_key,
        "stored_bytes": stored.stored_bytes,
        "n_samples": stored.n_samples,
        "x_shape": stored.x_shape,
        "y_shape": stored.y_shape,
        "x_dtype": stored.x_dtype,
        "y_dtype": stored.y_dtype,
        "arrays": stored.arrays,
    }
