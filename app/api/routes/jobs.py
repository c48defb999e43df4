"""/v1/jobs: submit training jobs and follow them by polling."""

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import (
    DIGITS_ONLY,
    AuditDep,
    CursorQuery,
    OwnerDep,
    PageLimit,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    in_session,
    in_view_thread,
)
from app.api.problems import problems
from app.api.schemas import JobPage, JobRead, MetricsRead
from app.api.served_queues import ServedQueues
from app.api.views import WINDOW_ROWS, JobEntry, JobViews, epoch_row, etag
from app.db import session_scope
from app.errors import JobNotFound
from app.lifecycle import JobStatus
from app.models import Job
from app.repositories.pagination import Page
from app.services import audit as audit_service
from app.services import jobs as job_service
from app.services import reproduce as reproduce_service
from app.services.audit import Action
from app.specs import MAX_EPOCHS, JobCreate

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Unchanged: the ETag sent as If-None-Match still holds"}}
METRICS_PAGE = 1_000
LOG_PAGE = 1_000
MAX_METRICS_PAGE = 10_000
JOB_ID_OPERATIONS = (
    "get_job",
    "cancel_job",
    "get_job_metrics",
    "get_job_log",
    "get_job_model",
    "stream_job_events",
    "evaluate_job",
    "predict_job",
    "predict_job_file",
    "rerun_job",
)
# A new job's 202: where it is, and the operations its id feeds (operation ids are route names).
QUEUED_JOB: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "The job, queued",
        "headers": {"Location": {"description": "The new job's URL", "schema": {"type": "string"}}},
        "links": {
            operation: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
            for operation in JOB_ID_OPERATIONS
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={**problems(404, 429), **QUEUED_JOB},
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
async def list_jobs(
    owner: OwnerDep,
    request: Request,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    sweep_id: Annotated[str | None, Query(max_length=40, description="Only this sweep's trials")] = None,
    queue: Annotated[str | None, Query(max_length=64, description="Only the jobs of this queue")] = None,
    cursor: CursorQuery = None,
    limit: PageLimit = 50,
) -> Response:
    """The page's ids from memory, or one indexed query shared by every caller asking for the same page;
    each job's body from memory too (the few that changed since they were last read, one read each,
    shared with every other reader of the same job)."""
    state = request.app.state
    page = await page_ids(state, (owner.id, status_filter, sweep_id, queue, cursor, limit))
    found: dict[str, JobEntry | BaseException | None] = {job_id: cached_entry(state, job_id) for job_id in page.items}
    # Only the jobs not in memory need a task each (a page of 50 gathered as tasks cost more than the
    # answer); those are read at once, each shared with every other reader of the same job.
    missing = [job_id for job_id, entry in found.items() if entry is None]
    if missing:
        read = await asyncio.gather(*(job_entry(state, job_id, owner.id) for job_id in missing), return_exceptions=True)
        found.update(zip(missing, read, strict=True))
    progress = state.hub.progress
    # A job deleted between the two reads (its owner's account removed) is left out, not a 404.
    shown = [(job_id, entry) for job_id, entry in found.items() if isinstance(entry, JobEntry) and entry.owner_id == owner.id]
    served = await served_queues(state, [entry for _, entry in shown])
    items = b",".join(entry.render(progress.get(job_id), served) for job_id, entry in shown)
    body = b'{"items":[' + items + b'],"next_cursor":' + json.dumps(page.next_cursor).encode() + b"}"
    return Response(body, media_type="application/json")


async def page_ids(state: Any, query: tuple[str, str | None, str | None, str | None, str | None, int]) -> Page[str]:
    views: JobViews = state.job_views
    page = views.page(query)
    if page is None:

        async def fill() -> Page[str]:
            since = views.tick()
            found = await in_view_thread(state, _read_page_ids, state.session_factory, *query)
            views.keep_page(query, found, since)
            return found

        page = await views.once(("page", query), fill)
    return page


def _read_page_ids(
    session_factory: sessionmaker[Session],
    owner_id: str,
    status: str | None,
    sweep_id: str | None,
    queue: str | None,
    cursor: str | None,
    limit: int,
) -> Page[str]:
    with session_scope(session_factory) as session:
        return job_service.list_job_ids(
            session, owner_id=owner_id, status=status, sweep_id=sweep_id, queue=queue, cursor=cursor, limit=limit
        )


@router.get("/{job_id}", response_model=JobRead, responses={**problems(404), **NOT_MODIFIED})
async def get_job(job_id: str, owner: OwnerDep, request: Request) -> Response:
    state = request.app.state
    entry = await job_entry(state, job_id, owner.id)
    return _conditional(request, entry.render(state.hub.progress.get(job_id), await served_queues(state, [entry])))


async def served_queues(state: Any, entries: list[JobEntry]) -> frozenset[str] | None:
    """The queues live workers consume, looked up only when some job shown is waiting in one."""
    if not any(entry.status is JobStatus.QUEUED for entry in entries):
        return None
    served: ServedQueues = state.served_queues
    return await served.get()


async def job_entry(state: Any, job_id: str, owner_id: str) -> JobEntry:
    """The job as this process serves it: from memory (a stale entry while one read refreshes it), or
    read once for every caller waiting."""
    entry = cached_entry(state, job_id)
    if entry is None:
        views: JobViews = state.job_views
        entry = await views.once(("job", job_id), partial(_fill_entry, state, job_id))
    if entry.owner_id != owner_id:  # another owner's job does not exist, as far as the caller can tell
        raise JobNotFound(f"no job with id {job_id!r}")
    return entry


def cached_entry(state: Any, job_id: str) -> JobEntry | None:
    """The job from memory whoever owns it; a stale one starts its refresh, nobody waiting for it."""
    views: JobViews = state.job_views
    entry = views.job(job_id)
    if entry is not None and entry.stale:
        views.once.start(("job", job_id), partial(_fill_entry, state, job_id))
    return entry


async def _fill_entry(state: Any, job_id: str) -> JobEntry:
    views: JobViews = state.job_views
    since = views.tick()
    read, job_owner = await in_view_thread(state, _read_job, state.session_factory, job_id)
    return views.keep_job(read, job_owner, since)


def _read_job(session_factory: sessionmaker[Session], job_id: str) -> tuple[JobRead, str]:
    """The job whoever owns it, and its owner: one read serves every caller, each checked afterwards."""
    with session_scope(session_factory) as session:
        job = job_service.get_any_job(session, job_id)
        return _stored_read(session, job), job.owner_id or ""


def _stored_read(session: Session, job: Job) -> JobRead:
    read = JobRead.model_validate(job)
    read.same_as_original = reproduce_service.same_as_original(session, job)
    return read


def _conditional(request: Request, body: bytes) -> Response:
    """The body with its ETag, or a bodiless 304 when the client already holds it."""
    tag = etag(body)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def job_read(request: Request, session: Session, job: Job) -> JobRead:
    """The stored job plus, while it runs, its in-epoch position as last published by the worker."""
    read = _stored_read(session, job)
    if job.status == JobStatus.RUNNING and (progress := request.app.state.hub.progress.get(job.id)):
        read.batch = progress["batch"]
        read.batches_per_epoch = progress["batches_per_epoch"]
    return read


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
    return job_read(request, session, job)


@router.post(
    "/{job_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={**problems(404, 409, 422, 429), **QUEUED_JOB},
    summary="Queue a new job from a job's record: the same dataset, spec (with the recorded seed pinned) and queue",
    description="409 while the job has not started (it has no `record` yet). The new job's `rerun_of` names this "
    "one; once it starts, its `versions_differ` lists the recorded versions or device kind that differ, and once "
    "both have finished its `same_as_original` says whether every epoch's loss repeated. Limits apply as to a submit.",
)
def rerun_job(
    job_id: str, owner: OwnerDep, session_factory: SessionFactoryDep, settings: SettingsDep, response: Response, audit: AuditDep
) -> Job:
    job = reproduce_service.rerun_job(session_factory, settings, job_id, owner_id=owner.id, audit=audit)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses={**problems(404), **NOT_MODIFIED},
    summary="Epoch rows after epoch N, so a poller fetches only what is new",
)
async def get_job_metrics(
    job_id: str,
    owner: OwnerDep,
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_EPOCHS, description="The last epoch already seen"), DIGITS_ONLY] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_METRICS_PAGE, description="Rows per response"), DIGITS_ONLY] = METRICS_PAGE,
) -> Response:
    entry = await job_entry(request.app.state, job_id, owner.id)
    views: JobViews = request.app.state.job_views
    window = views.window(job_id)
    status_now: str
    if not _window_serves(views, job_id, after, entry) and entry.epochs_completed - after < WINDOW_ROWS:
        # Pollers of one job ask for nearly the same rows: one read refills the window for all.
        await views.once(("rows", job_id), lambda: _fill_window(request, job_id, owner.id, after))
    window = views.window(job_id)
    if window is not None and _window_serves(views, job_id, after, entry):
        status_now, (rows, more) = entry.status, window.slice(after, limit)
    else:  # behind the window, or a history longer than it: page straight from the database
        count = limit + 1
        status_now, found = await run_in_threadpool(_read_rows, request.app.state.session_factory, job_id, owner.id, after, count)
        rows, more = found[:limit], len(found) > limit
    head = b'{"job_id":' + json.dumps(job_id).encode() + b',"status":' + json.dumps(str(status_now)).encode()
    return _conditional(request, head + b',"epochs":[' + b",".join(rows) + b'],"more":' + (b"true" if more else b"false") + b"}")


def _window_serves(views: JobViews, job_id: str, after: int, entry: JobEntry) -> bool:
    window = views.window(job_id)
    return window is not None and window.covers(after) and window.last >= entry.epochs_completed


async def _fill_window(request: Request, job_id: str, owner_id: str, after: int) -> None:
    views: JobViews = request.app.state.job_views
    since = views.tick()
    count = WINDOW_ROWS + 1
    _, found = await in_view_thread(
        request.app.state, _read_rows, request.app.state.session_factory, job_id, owner_id, after, count
    )
    if len(found) < count:  # the read reached the newest row
        views.keep_window(job_id, after + 1, found, since)


def _read_rows(
    session_factory: sessionmaker[Session], job_id: str, owner_id: str, after: int, limit: int
) -> tuple[str, list[bytes]]:
    with session_scope(session_factory) as session:
        status_now, rows = job_service.job_metrics(session, job_id, owner_id=owner_id, after=after, limit=limit)
        return status_now, [epoch_row(r.epoch, r.logs, r.duration_s, r.finished_at) for r in rows]


@router.get(
    "/{job_id}/log",
    response_class=PlainTextResponse,
    responses={
        **problems(404),
        200: {"content": {"text/plain": {"example": "Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010\n"}}},
    },
    summary="The training log in Keras' verbose=2 style, one line per finished epoch",
)
async def get_job_log(job_id: str, owner: OwnerDep, request: Request) -> StreamingResponse:
    """Streamed a page of epochs at a time: a 100,000-epoch history is never in memory whole."""
    job = await in_session(request, lambda session: job_service.get_job(session, job_id, owner_id=owner.id))

    async def lines() -> AsyncIterator[str]:
        after = 0
        while True:
            page = partial(job_service.keras_log_page, job_id=job_id, epochs_total=job.epochs_total, after=after, limit=LOG_PAGE)
            count, text = await in_session(request, page)
            yield text
            after += count
            if count < LOG_PAGE:
                break
        yield job_service.keras_log_end(job)

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        **problems(404),
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "A .keras file",
        },
        307: {"description": "With STORAGE_PRESIGN=1 and object storage: a short-lived presigned URL of the .keras file"},
    },
    summary="Download the trained model as a .keras file (404 until the job has succeeded)",
)
def get_job_model(job_id: str, owner: OwnerDep, session: SessionDep, settings: SettingsDep) -> Response:
    download = job_service.model_download(session, settings, job_id, owner_id=owner.id)
    if download.path is not None:
        return FileResponse(download.path, media_type="application/octet-stream", filename=download.filename)
    if download.url is not None:
        return RedirectResponse(download.url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    assert download.chunks is not None
    return StreamingResponse(
        download.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "Content-Length": str(download.size),
        },
    )
