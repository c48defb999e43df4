"""Sweep queries, and the trial rows (jobs with a sweep_id) that decisions and leaderboards read."""

from collections import Counter
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.lifecycle import ACTIVE, StopReason
from app.models import EpochMetric, Job, Sweep, utcnow
from app.repositories.pagination import Page, newest_first


def get(session: Session, sweep_id: str) -> Sweep | None:
    return session.get(Sweep, sweep_id)


def get_owned(session: Session, owner_id: str, sweep_id: str) -> Sweep | None:
    return session.scalar(select(Sweep).where(Sweep.id == sweep_id, Sweep.owner_id == owner_id))


def page(session: Session, owner_id: str, *, cursor: str | None, limit: int) -> Page[Sweep]:
    return newest_first(session, select(Sweep).where(Sweep.owner_id == owner_id), Sweep, cursor, limit)


def unfinished_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Sweep.id).where(Sweep.finished_at.is_(None)).order_by(Sweep.created_at)))


def status_counts(session: Session, sweep_ids: list[str]) -> dict[str, Counter[str]]:
    """Trials by status for each sweep; `pruned` counted apart as well (they are also `succeeded`)."""
    counts: dict[str, Counter[str]] = {sweep_id: Counter() for sweep_id in sweep_ids}
    stmt = (
        select(Job.sweep_id, Job.status, Job.stop_reason, func.count())
        .where(Job.sweep_id.in_(sweep_ids))
        .group_by(Job.sweep_id, Job.status, Job.stop_reason)
    )
    for sweep_id, status, stop_reason, count in session.execute(stmt):
        counts[str(sweep_id)][status] += count
        if stop_reason == StopReason.PRUNED:
            counts[str(sweep_id)]["pruned"] += count
    return counts


def trials(session: Session, sweep_id: str) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial)))


def best_trial(session: Session, sweep_id: str, direction: str) -> Job | None:
    order = Job.objective.desc() if direction == "maximize" else Job.objective.asc()
    stmt = select(Job).where(Job.sweep_id == sweep_id, Job.objective.is_not(None)).order_by(order, Job.trial).limit(1)
    return session.scalar(stmt)


def trial_rows(session: Session, sweep_id: str) -> list[Any]:
    """What Optuna needs of each trial, without the jobs' histories."""
    stmt = select(Job.id, Job.trial, Job.status, Job.stop_reason, Job.params, Job.sweep_attrs, Job.objective).where(
        Job.sweep_id == sweep_id
    )
    return list(session.execute(stmt.order_by(Job.trial)))


def objective_curves(session: Session, sweep_id: str, metric: str) -> dict[str, dict[int, float]]:
    """Each trial's objective value by epoch, from the rows already written."""
    stmt = (
        select(EpochMetric.job_id, EpochMetric.epoch, EpochMetric.logs)
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.sweep_id == sweep_id)
    )
    curves: dict[str, dict[int, float]] = {}
    for job_id, epoch, logs in session.execute(stmt):
        value = logs.get(metric)
        if isinstance(value, int | float):
            curves.setdefault(job_id, {})[epoch] = float(value)
    return curves


def active_trial_ids(session: Session, sweep_id: str) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.sweep_id == sweep_id, Job.status.in_(ACTIVE))))


def note_objective(session: Session, job_id: str, value: float, direction: str) -> None:
    """Keep the trial's best objective value so far (the leaderboard sorts by it)."""
    better = Job.objective < value if direction == "maximize" else Job.objective > value
    session.execute(update(Job).where(Job.id == job_id, or_(Job.objective.is_(None), better)).values(objective=value))


def keep_attrs(session: Session, job_id: str, attrs: dict[str, Any]) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(sweep_attrs=attrs))


def mark_finished(session: Session, sweep_id: str) -> bool:
    result = session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.finished_at.is_(None)).values(finished_at=utcnow()))
    return bool(getattr(result, "rowcount", 0))


def mark_cancelled(session: Session, sweep_id: str) -> None:
    session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.cancelled_at.is_(None)).values(cancelled_at=utcnow()))


def in_use_by_unfinished(session: Session, dataset_id: str) -> bool:
    stmt = select(Sweep.id).where(Sweep.dataset_id == dataset_id, Sweep.finished_at.is_(None)).limit(1)
    return session.scalar(stmt) is not None
