"""/v1/datasets: upload, list, read and delete datasets, and create the tutorial's example."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from sqlalchemy.orm import Session

from app.api.deps import AuditDep, CursorQuery, OwnerDep, PageLimit, SessionDep, SettingsDep, in_session
from app.api.problems import problems
from app.api.schemas import EXAMPLE_DATASET, DatasetPage, DatasetRead
from app.models import Dataset
from app.services import audit as audit_service
from app.services import datasets as dataset_service
from app.services.audit import Action

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
# The transport ceiling for uploads; the deployment's own cap (MAX_UPLOAD_BYTES) is enforced while
# the file streams to disk, so an oversized upload fails without ever being held in memory.
UPLOAD_BODY_CEILING = 1024**4
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
# The new dataset's id feeds every operation that takes one (OpenAPI links; operation ids are route names).
CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The stored dataset",
        "headers": {"Location": {"description": "The new dataset's URL", "schema": {"type": "string"}}},
        "links": {
            operation: {"operationId": operation, "parameters": {"dataset_id": "$response.body#/id"}}
            for operation in ("get_dataset", "delete_dataset")
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses={**problems(413), **CREATED},
    max_body_size=UPLOAD_BODY_CEILING,
    summary="Upload a dataset (CSV with a header row, or .npz with arrays x and y)",
)
def create_dataset(
    owner: OwnerDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    audit: AuditDep,
    file: Annotated[
        UploadFile,
        # An empty file is refused (422): the schema says so, as it cannot say that the bytes parse.
        File(description="CSV (header row, numeric columns) or .npz with arrays x and y", json_schema_extra={"minLength": 1}),
    ],
    name: Annotated[str | None, Form(max_length=200, description="Defaults to the file name")] = None,
    target: Annotated[str | None, Form(max_length=200, description="CSV only: the label column; default the last")] = None,
) -> Dataset:
    dataset = dataset_service.upload_dataset(
        session, settings, owner_id=owner.id, stream=file.file, filename=file.filename, name=name, target=target
    )
    audit_service.record(session, audit, Action.DATASET_UPLOAD, dataset.id)
    session.commit()
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return dataset


@router.post(
    "/examples/side-effects",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=CREATED,
    summary="Create the Keras tutorial's side-effects dataset (2100 samples, seeded)",
)
def create_side_effects_dataset(
    owner: OwnerDep, session: SessionDep, settings: SettingsDep, response: Response, audit: AuditDep
) -> Dataset:
    dataset = dataset_service.create_side_effects_example(session, settings, owner_id=owner.id)
    audit_service.record(session, audit, Action.DATASET_UPLOAD, dataset.id)
    session.commit()
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return dataset


# What `sha256` of a dataset hashes, for a client that decides from it whether to upload at all.
SHA256_DESCRIPTION = (
    "Only the datasets whose `sha256` is this: 64 hex digits (either case), the SHA-256 of the uploaded file's bytes "
    "exactly as sent as the multipart `file` part (`hashlib.sha256(open(path, 'rb').read()).hexdigest()`), so a "
    "client can tell before uploading whether it already holds that content. The name and `target` are not hashed: "
    "a CSV uploaded with two different `target` columns matches twice. The tutorial's example dataset hashes its "
    "x then y arrays' raw bytes"
)


@router.get(
    "",
    response_model=DatasetPage,
    summary="List datasets, newest first; ?sha256= finds those holding the same file",
)
async def list_datasets(
    owner: OwnerDep,
    request: Request,
    sha256: Annotated[
        str | None, Query(pattern=SHA256_PATTERN, description=SHA256_DESCRIPTION, examples=[EXAMPLE_DATASET["sha256"]])
    ] = None,
    cursor: CursorQuery = None,
    limit: PageLimit = 50,
) -> DatasetPage:
    content = sha256.lower() if sha256 is not None else None

    def read(session: Session) -> DatasetPage:
        page = dataset_service.list_datasets(session, owner_id=owner.id, sha256=content, cursor=cursor, limit=limit)
        return DatasetPage(items=[DatasetRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor)

    return await in_session(request, read)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=problems(404))
def get_dataset(dataset_id: str, owner: OwnerDep, session: SessionDep) -> Dataset:
    return dataset_service.get_dataset(session, dataset_id, owner_id=owner.id)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404, 409),
    summary="Delete a dataset (409 while a queued or running job uses it)",
)
def delete_dataset(dataset_id: str, owner: OwnerDep, session: SessionDep, settings: SettingsDep, audit: AuditDep) -> Response:
    dataset_service.delete_dataset(session, settings, dataset_id, owner_id=owner.id)
    audit_service.record(session, audit, Action.DATASET_DELETE, dataset_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
