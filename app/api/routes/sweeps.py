"""/v1/sweeps: hyperparameter searches whose trials are ordinary jobs."""

from collections import Counter

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from sqlalchemy.orm import Session

from app.api.deps import AuditDep, CursorQuery, OwnerDep, PageLimit, SessionDep, SessionFactoryDep, SettingsDep, in_session
from app.api.problems import problems
from app.api.schemas import ImportanceRead, SweepPage, SweepRead, SweepSummary, TrialCounts, TrialRead
from app.db import session_scope
from app.models import Job, Sweep
from app.services import audit as audit_service
from app.services.audit import Action
from app.sweeps import service as sweep_service
from app.sweeps.service import SweepView
from app.sweeps.spec import SweepCreate

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
# list_jobs takes it as ?sweep_id=, for the trials.
SWEEP_ID_OPERATIONS = ("get_sweep", "cancel_sweep", "get_sweep_importance", "stream_sweep_events", "list_jobs")


def trial_read(job: Job) -> TrialRead:
    return TrialRead(
        job_id=job.id,
        trial=job.trial or 0,
        status=job.status,
        params=job.params or {},
        objective=job.objective,
        epochs_completed=job.epochs_completed,
        stop_reason=job.stop_reason,
    )


def sweep_summary(sweep: Sweep, counts: Counter[str], best: Job | None) -> SweepSummary:
    return SweepSummary.model_validate(
        {
            "id": sweep.id,
            "name": sweep.name,
            "tags": sweep.tags,
            "queue": sweep.queue,
            "dataset_id": sweep.dataset_id,
            "status": sweep_service.sweep_status(sweep, counts),
            "sampler": sweep.sampler,
            "pruner": sweep.pruner,
            "objective": {"metric": sweep.objective_metric, "direction": sweep.direction},
            "trials": sweep.trials,
            "trials_created": sum(count for key, count in counts.items() if key != "pruned"),
            "parallel": sweep.parallel,
            "seed": sweep.seed,
            "counts": TrialCounts(**counts),
            "best": trial_read(best) if best is not None and best.objective is not None else None,
            "created_at": sweep.created_at,
            "cancelled_at": sweep.cancelled_at,
            "finished_at": sweep.finished_at,
        }
    )


def sweep_read(view: SweepView) -> SweepRead:
    best = view.leaderboard[0] if view.leaderboard else None
    return SweepRead(
        **sweep_summary(view.sweep, view.counts, best).model_dump(),
        spec=view.sweep.spec,
        search=view.sweep.search,
        leaderboard=[trial_read(job) for job in view.leaderboard],
    )


def _advance(session_factory: SessionFactoryDep, settings: SettingsDep, sweep_id: str) -> None:
    sweep_service.advance(session_factory, settings, sweep_id)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepRead,
    responses={
        **problems(404, 429),
        202: {
            "description": "The sweep, accepted; its first trials are queued right after this response",
            "headers": {"Location": {"description": "The new sweep's URL", "schema": {"type": "string"}}},
            "links": {
                operation: {"operationId": operation, "parameters": {"sweep_id": "$response.body#/id"}}
                for operation in SWEEP_ID_OPERATIONS
            },
        },
    },
    summary="Start a hyperparameter sweep",
    description="Each search path and value is checked against the base spec and real Keras first (422 at "
    "`search.<path>`, or at `objective.metric` for a metric the model does not report). Trials are added as "
    "ordinary jobs, at most `parallel` at a time and within your active-job limit.",
)
def create_sweep(
    payload: SweepCreate,
    owner: OwnerDep,
    session_factory: SessionFactoryDep,
    settings: SettingsDep,
    response: Response,
    audit: AuditDep,
    background: BackgroundTasks,
) -> SweepRead:
    sweep = sweep_service.create_sweep(session_factory, settings, payload, owner_id=owner.id, audit=audit)
    background.add_task(_advance, session_factory, settings, sweep.id)
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    with session_scope(session_factory) as session:
        return sweep_read(sweep_service.view(session, sweep.id, owner_id=owner.id))


@router.get("", response_model=SweepPage, summary="List sweeps, newest first")
async def list_sweeps(owner: OwnerDep, request: Request, cursor: CursorQuery = None, limit: PageLimit = 50) -> SweepPage:
    def read(session: Session) -> SweepPage:
        page, counts = sweep_service.list_sweeps(session, owner_id=owner.id, cursor=cursor, limit=limit)
        bests = sweep_service.bests(session, page.items)
        items = [sweep_summary(s, counts[s.id], bests.get(s.id)) for s in page.items]
        return SweepPage(items=items, next_cursor=page.next_cursor)

    return await in_session(request, read)


@router.get(
    "/{sweep_id}",
    response_model=SweepRead,
    responses=problems(404),
    summary="A sweep: its status, counts by trial state, the best trial and the leaderboard",
)
def get_sweep(sweep_id: str, owner: OwnerDep, session: SessionDep) -> SweepRead:
    return sweep_read(sweep_service.view(session, sweep_id, owner_id=owner.id))


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepRead,
    responses=problems(404, 409),
    summary="Cancel a sweep: no new trials, queued ones cancelled at once, running ones at their next batch",
)
def cancel_sweep(sweep_id: str, owner: OwnerDep, session: SessionDep, audit: AuditDep) -> SweepRead:
    sweep_service.cancel_sweep(session, sweep_id, owner_id=owner.id)
    audit_service.record(session, audit, Action.SWEEP_CANCEL, sweep_id)
    session.commit()
    return sweep_read(sweep_service.view(session, sweep_id, owner_id=owner.id))


@router.get(
    "/{sweep_id}/importance",
    response_model=ImportanceRead,
    responses=problems(404),
    summary="How much each searched parameter matters to the objective (Optuna's PED-ANOVA over finished trials)",
)
def get_sweep_importance(sweep_id: str, owner: OwnerDep, session: SessionDep) -> ImportanceRead:
    values, used = sweep_service.importances(session, sweep_id, owner_id=owner.id)
    ordered = dict(sorted(values.items(), key=lambda item: -item[1]))
    return ImportanceRead(sweep_id=sweep_id, trials_used=used, importances=ordered)
