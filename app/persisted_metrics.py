"""Metrics of what happens in workers and schedulers, on any machine: an epoch finished, a job finished,
the scheduler requeued or failed a silent worker's job, or re-sent a forgotten message.

Each event adds to a database sample (the metric_count table) in the same transaction that records
it, so it is counted exactly once: however many API processes answer GET /metrics, wherever the
worker ran, and whichever scheduler led; and totals survive restarts. GET /metrics reads the samples
back (app/api/metrics.py). A rolled-back event is not counted, a redelivered epoch (whose row
already exists) is not counted twice."""

import json
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.repositories import metric_counts

Increments = dict[tuple[str, str], float]


def label_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def bound_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass(frozen=True)
class PersistedHistogram:
    name: str
    documentation: str
    labelnames: tuple[str, ...]
    # Finite upper bounds, ascending; +Inf is implied. A sample is stored in its own bucket only
    # (not cumulatively), so one observation updates two rows: its bucket and the sum.
    buckets: tuple[float, ...]

    def increments(self, value: float, labels: dict[str, str]) -> Increments:
        bound = next((b for b in self.buckets if value <= b), math.inf)
        return {
            (f"{self.name}_bucket", label_key({**labels, "le": bound_label(bound)})): 1.0,
            (f"{self.name}_sum", label_key(labels)): value,
        }


@dataclass(frozen=True)
class PersistedCounter:
    name: str
    documentation: str
    labelnames: tuple[str, ...]

    def increments(self, amount: float, labels: dict[str, str]) -> Increments:
        return {(self.name, label_key(labels)): float(amount)}


EPOCH_DURATION = PersistedHistogram(
    "epochly_epoch_duration_seconds",
    "Wall time of one training epoch, by its job's queue",
    ("queue",),
    (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_WALL_TIME = PersistedHistogram(
    "epochly_job_wall_seconds",
    "From a job's first start to its end (requeues included), observed when it finishes",
    ("queue", "status"),
    (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)
RECOVERED_JOBS = PersistedCounter(
    "epochly_recovered_jobs",
    "Running jobs of silent workers that the scheduler requeued, or failed after their last attempt",
    ("action",),
)
RESENT_MESSAGES = PersistedCounter(
    "epochly_dispatcher_resent_messages",
    "Messages the dispatcher sent again for queued jobs that the broker had forgotten",
    (),
)
HISTOGRAMS = (EPOCH_DURATION, JOB_WALL_TIME)
COUNTERS = (RECOVERED_JOBS, RESENT_MESSAGES)


def observe_epoch(session: Session, job_id: str, duration_s: float) -> None:
    """Call in the transaction that wrote the epoch's row, and only when it did write it."""
    facts = metric_counts.job_queue_and_start(session, job_id)
    if facts is not None:
        metric_counts.add(session, EPOCH_DURATION.increments(duration_s, {"queue": facts[0]}))


def observe_finished_job(session: Session, job_id: str, status: str, finished_at: datetime) -> None:
    """Call in the transaction that moved the job to its final status (a job that never ran has no wall time)."""
    facts = metric_counts.job_queue_and_start(session, job_id)
    if facts is None:
        return
    queue, started_at = facts
    if started_at is None:
        return
    wall_s = max(0.0, (finished_at - started_at).total_seconds())
    metric_counts.add(session, JOB_WALL_TIME.increments(wall_s, {"queue": queue, "status": status}))


def count_recovered(session: Session, *, requeued: int, failed: int) -> None:
    increments: Increments = {}
    for action, count in (("requeued", requeued), ("failed", failed)):
        if count:
            increments |= RECOVERED_JOBS.increments(count, {"action": action})
    metric_counts.add(session, increments)


def count_resent(session: Session, messages: int) -> None:
    if messages:
        metric_counts.add(session, RESENT_MESSAGES.increments(messages, {}))
