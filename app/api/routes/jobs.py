"""/v1/jobs: submit training jobs and follow them by polling."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse, PlainTextResponse

from app.api.deps import DIGITS_ONLY, AuditDep, CursorQuery, OwnerDep, PageLimit, SessionDep, SessionFactoryDep, SettingsDep
from app.api.problems import problems
from app.api.schemas import EpochRead, JobPage, JobRead, MetricsRead
from app.lifecycle import JobStatus
from app.models import Job
from app.services import audit as audit_service
from app.services import jobs as job_service
from app.services.audit import Action
from app.specs import MAX_EPOCHS, JobCreate

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JOB_ID_OPERATIONS = (
    "get_job",
    "cancel_job",
    "get_job_metrics",
    "get_job_log",
    "get_job_model",
    "stream_job_events",
    "evaluate_job",
    "predict_job",
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={
        **problems(429),
        202: {
            "description": "The job, queued",
            "headers": {"Location": {"description": "The new job's URL", "schema": {"type": "string"}}},
            # The new job's id feeds every operation that takes one (operation ids are route names).
            "links": {
                operation: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
                for operation in JOB_ID_OPERATIONS
            },
        },
    },
    summary="Submit a training job",
    description="The job is queued once it is stored, even while the broker is away: the scheduler sends it then.",
)
def create_job(
    payload: JobCreate,
    owner: OwnerDep,
    session_factory: SessionFactoryDep,
    settings: SettingsDep,
    response: Response,
    audit: AuditDep,
) -> Job:
    job = job_service.submit_job(session_factory, settings, payload, owner_id=owner.id, audit=audit)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    sweep_id: Annotated[str | None, Query(max_length=40, description="Only this sweep's trials")] = None,
    cursor: CursorQuery = None,
    limit: PageLimit = 50,
) -> JobPage:
    page = job_service.list_jobs(session, owner_id=owner.id, status=status_filter, sweep_id=sweep_id, cursor=cursor, limit=limit)
    return JobPage(items=[JobRead.model_validate(j) for j in page.items], next_cursor=page.next_cursor)


def job_read(request: Request, job: Job) -> JobRead:
    """The stored job plus, while it runs, its in-epoch position as last published by the worker."""
    read = JobRead.model_validate(job)
    if job.status == JobStatus.RUNNING and (progress := request.app.state.hub.progress.get(job.id)):
        read.batch = progress["batch"]
        read.batches_per_epoch = progress["batches_per_epoch"]
    return read


@router.get("/{job_id}", response_model=JobRead, responses=problems(404))
def get_job(job_id: str, owner: OwnerDep, session: SessionDep, request: Request) -> JobRead:
    return job_read(request, job_service.get_job(session, job_id, owner_id=owner.id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409),
    summary="Cancel a job: a queued job never starts; a running one stops at the next step boundary (see fit.steps_per_execution) and keeps its epochs",
)
def cancel_job(job_id: str, owner: OwnerDep, session: SessionDep, request: Request, audit: AuditDep) -> JobRead:
    job = job_service.cancel_job(session, job_id, owner_id=owner.id)
    audit_service.record(session, audit, Action.JOB_CANCEL, job_id)
    session.commit()
    return job_read(request, job)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses=problems(404),
    summary="Epoch rows after epoch N, so a poller fetches only what is new",
)
def get_job_metrics(
    job_id: str, owner: OwnerDep, session: SessionDep, after: Annotated[int, Query(ge=0, le=MAX_EPOCHS), DIGITS_ONLY] = 0
) -> MetricsRead:
    status, epochs = job_service.job_metrics(session, job_id, owner_id=owner.id, after=after)
    return MetricsRead(job_id=job_id, status=JobStatus(status), epochs=[EpochRead.model_validate(e) for e in epochs])


@router.get(
    "/{job_id}/log",
    response_class=PlainTextResponse,
    responses={
        **problems(404),
        200: {"content": {"text/plain": {"example": "Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010\n"}}},
    },
    summary="The training log in Keras' verbose=2 style, one line per finished epoch",
)
def get_job_log(job_id: str, owner: OwnerDep, session: SessionDep) -> PlainTextResponse:
    job, epochs = job_service.job_epochs(session, job_id, owner_id=owner.id)
    return PlainTextResponse(job_service.keras_log(job, epochs))


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        **problems(404),
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "A .keras file",
        },
    },
    summary="Download the trained model as a .keras file (404 until the job has succeeded)",
)
def get_job_model(job_id: str, owner: OwnerDep, session: SessionDep) -> FileResponse:
    path = job_service.model_file(session, job_id, owner_id=owner.id)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job_id}.keras")
