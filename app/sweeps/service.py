"""Sweeps: create one, add its trials as ordinary jobs, judge each trial's epochs for pruning, and
read the results. The trial rows are the record; Optuna (app/sweeps/study.py) decides from them.

`advance` adds trials and may run in several processes at once (the API after a create, the
scheduler every round, after any restart): each trial number is inserted
once (uq_job_sweep_trial), so the loser of a race adds nothing, and a sweep ends with exactly
`trials` trials however often it is advanced."""

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from optuna.trial import TrialState
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import lifecycle
from app.db import session_scope
from app.errors import Conflict, FieldError, InvalidSpec, SweepNotFound
from app.lifecycle import ACTIVE, JobStatus, StopReason
from app.models import Job, Sweep
from app.repositories import owners as owners_repo
from app.repositories import sweeps as sweeps_repo
from app.repositories.pagination import Page
from app.services import audit as audit_service
from app.services import datasets as dataset_service
from app.services import jobs as job_service
from app.services.audit import Action, AuditContext
from app.settings import Settings
from app.specs import JobCreate
from app.sweeps import study
from app.sweeps.spec import (
    MAX_GRID,
    ChoiceSpec,
    IntSpec,
    SweepCreate,
    UniformSpec,
    corner_values,
    describe_missing,
    get_path,
    grid_size,
    parse_path,
    set_paths,
)
from app.sweeps.study import SearchConfig, TrialRecord

log = logging.getLogger("epochly.sweeps")

# Create checks each distribution's edge values against real Keras; past this many, the rest are
# checked as their trials are drawn (a trial whose spec fails ends `failed`, saying why).
MAX_EDGE_CHECKS = 24
DISTRIBUTIONS: dict[str, type[ChoiceSpec | UniformSpec | IntSpec]] = {
    "choice": ChoiceSpec,
    "uniform": UniformSpec,
    "loguniform": UniformSpec,
    "int": IntSpec,
}


def config_of(sweep: Sweep) -> SearchConfig:
    search = {path: DISTRIBUTIONS[spec["type"]].model_validate(spec) for path, spec in sweep.search.items()}
    return SearchConfig(
        sweep_id=sweep.id,
        search=search,
        sampler=cast(Any, sweep.sampler),
        pruner=cast(Any, sweep.pruner),
        direction=cast(Any, sweep.direction),
        seed=sweep.seed,
        epochs=int(sweep.spec["fit"]["epochs"]),
    )


# --- creating ---------------------------------------------------------------------------------


def create_sweep(
    session_factory: sessionmaker[Session],
    settings: Settings,
    payload: SweepCreate,
    *,
    owner_id: str,
    audit: AuditContext | None = None,
) -> Sweep:
    """Check the search against the base spec and real Keras, then write the sweep. Its trials are
    added by `advance`, which the caller runs once this returns."""
    with session_scope(session_factory) as session:  # first: a missing dataset is a 404 whatever else is wrong
        dataset_service.get_dataset(session, payload.dataset_id, owner_id=owner_id, field="dataset_id")
    base = {"dataset_id": payload.dataset_id, **payload.training_spec()}
    _check_search(payload, base)
    base_job = JobCreate.model_validate({**base, "name": payload.name, "tags": payload.tags, "queue": payload.queue})
    job_service.checked_job(session_factory, settings, base_job, owner_id=owner_id, objective=payload.objective.metric)
    for path, value in _edges(payload)[:MAX_EDGE_CHECKS]:
        _check_value(session_factory, settings, base, path, value, owner_id=owner_id)
    with session_scope(session_factory) as session:
        sweep = Sweep(
            owner_id=owner_id,
            name=payload.name,
            tags=payload.tags,
            queue=payload.queue,
            dataset_id=payload.dataset_id,
            spec=base,
            search={path: spec.model_dump(mode="json") for path, spec in payload.search.items()},
            sampler=payload.sampler,
            pruner=payload.pruner,
            objective_metric=payload.objective.metric,
            direction=payload.objective.direction,
            trials=payload.trial_count,
            parallel=payload.parallel,
            seed=payload.seed,
        )
        session.add(sweep)
        session.flush()
        if audit is not None:
            audit_service.record(session, audit, Action.SWEEP_CREATE, sweep.id)
        return sweep


def _check_search(payload: SweepCreate, base: dict[str, Any]) -> None:
    """Every path names a value of the base spec; a grid has finite, not too many, points."""
    errors: list[FieldError] = []
    for path in payload.search:
        field = f"search.{path}"
        steps = parse_path(path)
        try:
            get_path(base, steps)
        except KeyError as missing:
            errors.append(FieldError(field, f"the base spec has no {path}: {describe_missing(base, steps, missing.args[0])}"))
    if payload.sampler == "grid":
        for path, spec in payload.search.items():
            if isinstance(spec, UniformSpec):
                errors.append(FieldError(f"search.{path}", f"a grid takes choice or int values; {spec.type} is a range"))
        size = grid_size(payload.search)
        if size > MAX_GRID:
            errors.append(FieldError("search", f"the grid has more than {MAX_GRID} points"))
        elif size and payload.trials is not None and payload.trials > size:
            errors.append(FieldError("trials", f"{payload.trials} trials, but the grid has {size} points"))
    if errors:
        raise InvalidSpec(f"{errors[0].path}: {errors[0].message}", errors)


def _edges(payload: SweepCreate) -> list[tuple[str, Any]]:
    return [(path, value) for path, spec in payload.search.items() for value in corner_values(spec)]


def _check_value(
    session_factory: sessionmaker[Session], settings: Settings, base: dict[str, Any], path: str, value: Any, *, owner_id: str
) -> None:
    field = f"search.{path}"
    try:
        candidate = JobCreate.model_validate(set_paths(base, {path: value}))
        job_service.checked_job(session_factory, settings, candidate, owner_id=owner_id)
    except ValidationError as exc:
        message = f"the value {value!r} makes the spec invalid: {exc.errors()[0]['msg']}"
        raise InvalidSpec(f"{field}: {message}", [FieldError(field, message)]) from None
    except InvalidSpec as exc:
        message = f"the value {value!r} fails: {exc.detail}"
        raise InvalidSpec(f"{field}: {message}", [FieldError(field, message)]) from None


# --- advancing --------------------------------------------------------------------------------


def advance(session_factory: sessionmaker[Session], settings: Settings, sweep_id: str) -> int:
    """Add trials while fewer than `parallel` are queued or running, fewer than `trials` exist and
    the owner is under the active-job limit (a sweep waits for room rather than failing); mark the
    sweep finished once its last trial has. Returns how many trials it added."""
    added = 0
    while True:
        with session_scope(session_factory) as session:
            sweep = sweeps_repo.get(session, sweep_id)
            if sweep is None or sweep.finished_at is not None:
                return added
            counts = sweeps_repo.status_counts(session, [sweep_id])[sweep_id]
            created, active = _created(counts), sum(counts[s] for s in ACTIVE)
            if active == 0 and (sweep.cancelled_at is not None or created >= sweep.trials):
                sweeps_repo.mark_finished(session, sweep_id)
                return added
            if sweep.cancelled_at is not None or created >= sweep.trials or active >= sweep.parallel:
                return added
            if owners_repo.active_job_count(session, sweep.owner_id) >= settings.owner_max_active_jobs:
                return added
            config = config_of(sweep)
            records = _records(session, sweep)
            base, owner_id, label, tags, queue = sweep.spec, sweep.owner_id, sweep.name or sweep.id, sweep.tags, sweep.queue
        number, params, attrs = study.ask(config, records)
        job = _trial_job(session_factory, settings, base, params, owner_id=owner_id)
        job.name, job.tags, job.queue = f"{label} · trial {number + 1}", dict(tags), queue
        job.sweep_id, job.trial, job.params, job.sweep_attrs = sweep_id, number + 1, params, attrs
        try:
            with session_scope(session_factory) as session:
                if not _still_wanted(session, sweep_id):
                    return added
                if job.status == JobStatus.FAILED:
                    lifecycle.refuse(session, job, job.error or {})
                else:
                    lifecycle.submit(session, job)
        except IntegrityError:
            log.info("sweep %s: trial %d was added by another process", sweep_id, number + 1)
            return added
        added += 1


def _created(counts: Counter[str]) -> int:
    return sum(counts[status] for status in JobStatus)


def _still_wanted(session: Session, sweep_id: str) -> bool:
    sweep = sweeps_repo.get(session, sweep_id)
    return sweep is not None and sweep.cancelled_at is None and sweep.finished_at is None


def _trial_job(
    session_factory: sessionmaker[Session],
    settings: Settings,
    base: dict[str, Any],
    params: dict[str, Any],
    *,
    owner_id: str,
) -> Job:
    """The trial's job, checked against real Keras; a spec that fails comes back as a job to refuse."""
    spec = set_paths(base, params)
    try:
        return job_service.checked_job(session_factory, settings, JobCreate.model_validate(spec), owner_id=owner_id)
    except (ValidationError, InvalidSpec) as exc:
        message = exc.detail if isinstance(exc, InvalidSpec) else str(exc.errors()[0]["msg"])
        job = Job(owner_id=owner_id, dataset_id=None, spec=spec, epochs_total=int(spec["fit"]["epochs"]), epochs_completed=0)
        job.status = JobStatus.FAILED
        job.error = {"type": "InvalidSpec", "message": f"the sampled spec failed its check: {message}", "epoch": None}
        return job


def advance_unfinished(session_factory: sessionmaker[Session], settings: Settings) -> int:
    """The scheduler's round: advance every sweep that is not finished (after a restart, or while
    an owner was at the active-job limit)."""
    with session_scope(session_factory) as session:
        sweep_ids = sweeps_repo.unfinished_ids(session)
    return sum(advance(session_factory, settings, sweep_id) for sweep_id in sweep_ids)


# --- judging epochs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialContext:
    """What a worker needs to report a trial's epochs to its sweep."""

    sweep_id: str
    number: int
    metric: str
    direction: str
    prunes: bool


def trial_context(session: Session, job: Job) -> TrialContext | None:
    if job.sweep_id is None or job.trial is None:
        return None
    sweep = sweeps_repo.get(session, job.sweep_id)
    if sweep is None:
        return None
    return TrialContext(sweep.id, job.trial, sweep.objective_metric, sweep.direction, sweep.pruner != "none")


def note_epoch(session: Session, job_id: str, trial: TrialContext, logs: dict[str, float]) -> None:
    """In the epoch row's transaction: keep the trial's best objective value."""
    value = logs.get(trial.metric)
    if value is not None and value == value:  # NaN never improves on anything
        sweeps_repo.note_objective(session, job_id, value, trial.direction)


def should_prune(session_factory: sessionmaker[Session], job_id: str, trial: TrialContext) -> bool:
    """The pruner's verdict on the trial after its latest written epoch, from every trial's rows."""
    with session_scope(session_factory) as session:
        sweep = sweeps_repo.get(session, trial.sweep_id)
        if sweep is None:
            return False
        prune, attrs = study.should_prune(config_of(sweep), _records(session, sweep), trial.number - 1)
        sweeps_repo.keep_attrs(session, job_id, attrs)
        return prune


def _records(session: Session, sweep: Sweep) -> list[TrialRecord]:
    curves = sweeps_repo.objective_curves(session, sweep.id, sweep.objective_metric)
    return [
        TrialRecord(
            number=row.trial - 1,
            state=_optuna_state(row.status, row.stop_reason, row.objective),
            params=row.params or {},
            value=row.objective,
            intermediate=curves.get(row.id, {}),
            system_attrs=row.sweep_attrs or {},
        )
        for row in sweeps_repo.trial_rows(session, sweep.id)
    ]


def _optuna_state(status: str, stop_reason: str | None, objective: float | None) -> TrialState:
    if status in ACTIVE:
        return TrialState.RUNNING
    if status == JobStatus.SUCCEEDED and stop_reason == StopReason.PRUNED:
        return TrialState.PRUNED
    if status == JobStatus.SUCCEEDED and objective is not None:
        return TrialState.COMPLETE
    return TrialState.FAIL


# --- reading ----------------------------------------------------------------------------------


@dataclass
class SweepView:
    sweep: Sweep
    status: JobStatus
    counts: Counter[str]
    leaderboard: list[Job]


def sweep_status(sweep: Sweep, counts: Counter[str]) -> JobStatus:
    """In the job vocabulary: queued until a trial starts, running until the last trial has ended."""
    active = sum(counts[s] for s in ACTIVE)
    if sweep.cancelled_at is not None:
        return JobStatus.CANCELLED
    if active == 0 and _created(counts) >= sweep.trials:
        return JobStatus.SUCCEEDED if counts[JobStatus.SUCCEEDED] else JobStatus.FAILED
    if _created(counts) > counts[JobStatus.QUEUED]:
        return JobStatus.RUNNING
    return JobStatus.QUEUED


def get_sweep(session: Session, sweep_id: str, *, owner_id: str) -> Sweep:
    sweep = sweeps_repo.get_owned(session, owner_id, sweep_id)
    if sweep is None:
        raise SweepNotFound(f"no sweep with id {sweep_id!r}")
    return sweep


def view(session: Session, sweep_id: str, *, owner_id: str) -> SweepView:
    sweep = get_sweep(session, sweep_id, owner_id=owner_id)
    counts = sweeps_repo.status_counts(session, [sweep.id])[sweep.id]
    return SweepView(sweep, sweep_status(sweep, counts), counts, ranked(sweeps_repo.trials(session, sweep.id), sweep.direction))


def ranked(trials: list[Job], direction: str) -> list[Job]:
    """Best objective first; trials without one yet last, by trial number."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(trials, key=lambda j: (j.objective is None, sign * (j.objective or 0.0), j.trial or 0))


def list_sweeps(
    session: Session, *, owner_id: str, cursor: str | None, limit: int
) -> tuple[Page[Sweep], dict[str, Counter[str]]]:
    page = sweeps_repo.page(session, owner_id, cursor=cursor, limit=limit)
    return page, sweeps_repo.status_counts(session, [s.id for s in page.items])


def bests(session: Session, sweeps: list[Sweep]) -> dict[str, Job]:
    """Each sweep's best trial so far (a list page shows it without the leaderboard)."""
    found = {}
    for sweep in sweeps:
        best = sweeps_repo.best_trial(session, sweep.id, sweep.direction)
        if best is not None:
            found[sweep.id] = best
    return found


def cancel_sweep(session: Session, sweep_id: str, *, owner_id: str) -> None:
    """No new trial starts; queued trials are cancelled at once, running ones at their next batch."""
    sweep = get_sweep(session, sweep_id, owner_id=owner_id)
    if sweep.finished_at is not None and sweep.cancelled_at is None:
        status = sweep_status(sweep, sweeps_repo.status_counts(session, [sweep.id])[sweep.id])
        raise Conflict(f"sweep {sweep.id!r} already {status}; only a queued or running sweep can be cancelled")
    sweeps_repo.mark_cancelled(session, sweep.id)
    for job_id in sweeps_repo.active_trial_ids(session, sweep.id):
        lifecycle.cancel(session, job_id)
    if not sweeps_repo.active_trial_ids(session, sweep.id):
        sweeps_repo.mark_finished(session, sweep.id)


def importances(session: Session, sweep_id: str, *, owner_id: str) -> tuple[dict[str, float], int]:
    sweep = get_sweep(session, sweep_id, owner_id=owner_id)
    records = _records(session, sweep)
    return study.importances(config_of(sweep), records), sum(r.state is TrialState.COMPLETE for r in records)
