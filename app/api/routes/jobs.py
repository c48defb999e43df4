"""/v1/jobs: submit training jobs and follow them by polling."""
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy.orm import Session

from app.api.deps import CeleryDep, OwnerDep, SessionDep, SettingsDep, in_session
from app.api.problems import problems
from app.api.schemas import EpochRead, JobPage, JobRead, JobStatus, MetricsRead
from app.errors import ServiceUnavailable
from app.events.messages import status_message
from app.models import Job
from app.queue import enqueue_training
from app.services import jobs as job_service
from app.specs import JobCreate

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
log = logging.getLogger("epochly.api")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(429, 503),
    summary="Submit a training job",
)
def create_job(
    payload: JobCreate, owner: OwnerDep, session: SessionDep, settings: SettingsDep, celery: CeleryDep, response: Response
) -> Job:
    job = job_service.submit_job(session, settings, payload, owner_id=owner.id)
    session.commit()  # the worker must find the row: enqueue only after commit
    try:
        enqueue_training(celery, job.id)
    except Exception as exc:
        log.warning("broker refused job %s: %s", job.id, exc)
        job_service.withdraw_job(session, job)
        session.commit()
        raise ServiceUnavailable("the job queue is unavailable; nothing was submitted, try again shortly") from None
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    page = job_service.list_jobs(session, owner_id=owner.id, status=status_filter, cursor=cursor, limit=limit)
    return JobPage(items=[JobRead.model_validate(j) for j in page.items], next_cursor=page.next_cursor)


def job_read(request: Request, job: Job) -> JobRead:
    """The stored job plus, while it runs, its in-epoch position as last published by the worker."""
    read = JobRead.model_validate(job)
    if job.status == "running" and (progress := request.app.state.hub.progress.get(job.id)):
        read.batch = progress["batch"]
        read.batches_per_epoch = progress["batches_per_epoch"]
    return read


@router.get("/{job_id}", response_model=JobRead, responses=problems(404))
async def get_job(job_id: str, owner: OwnerDep, request: Request) -> JobRead:
    return await in_session(request, lambda session: job_read(request, job_service.get_job(session, job_id, owner_id=owner.id)))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409),
    summary="Cancel a job: a queued job never starts; a running one stops at the next step boundary (see fit.steps_per_execution) and keeps its epochs",
)
def cancel_job(job_id: str, owner: OwnerDep, session: SessionDep, request: Request) -> JobRead:
    job, event = job_service.cancel_job(session, job_id, owner_id=owner.id)
    session.commit()
    if event is not None:
        request.app.state.publisher.publish(status_message(event))
    return job_read(request, job)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses=problems(404),
    summary="Epoch rows after epoch N, so a poller fetches only what is new",
)
async def get_job_metrics(
    job_id: str, owner: OwnerDep, request: Request, after: Annotated[int, Query(ge=0)] = 0
) -> MetricsRead:
    def read(session: Session) -> MetricsRead:
        status, epochs = job_service.job_metrics(session, job_id, owner_id=owner.id, after=after)
        return MetricsRead(job_id=job_id, status=status, epochs=[EpochRead.model_validate(e) for e in epochs])  # type: ignore[arg-type]

    return await in_session(request, read)


@router.get(
    "/{job_id}/log",
    response_class=PlainTextResponse,
    responses={**problems(404), 200: {"content": {"text/plain": {"example": "Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010\n"}}}},
    summary="The training log in Keras' verbose=2 style, one line per finished epoch",
)
def get_job_log(job_id: str, owner: OwnerDep, session: SessionDep) -> PlainTextResponse:
    job, epochs = job_service.job_epochs(session, job_id, owner_id=owner.id)
    return PlainTextResponse(job_service.keras_log(job, epochs))


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={**problems(404), 200: {"content": {"application/octet-stream": {}}, "description": "A .keras file"}},
    summary="Download the trained model as a .keras file (404 until the job has succeeded)",
)
def get_job_model(job_id: str, owner: OwnerDep, session: SessionDep) -> FileResponse:
    path = job_service.model_file(session, job_id, owner_id=owner.id)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job_id}.keras")
