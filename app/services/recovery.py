"""Notice jobs whose worker went silent and give them another attempt, or fail them after the last."""
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.models import JobEvent, utcnow
from app.repositories import jobs as jobs_repo
from app.settings import Settings


@dataclass(frozen=True)
class Recovered:
    job_id: str
    events: list[JobEvent]
    requeued: bool


def recover_stale_jobs(session: Session, settings: Settings) -> list[Recovered]:
    timeout = settings.job_heartbeat_timeout_s
    cutoff = utcnow() - timedelta(seconds=timeout)
    recovered = []
    for job in jobs_repo.stale_running(session, cutoff):
        silent = f"no heartbeat from {job.worker} for {timeout:g} s"
        attempts = len(job.attempts)
        exhausted = attempts >= settings.job_max_attempts
        note = "no attempts left" if exhausted else f"requeued for attempt {attempts + 1} of {settings.job_max_attempts}"
        # Conditional on the heartbeat still being stale: a worker that just came back keeps its job.
        event = jobs_repo.requeue(
            session, job, from_status="running", outcome="worker lost", message=f"{silent}; {note}", heartbeat_before=cutoff
        )
        if event is None:
            continue
        events = [event]
        if exhausted:
            error = {"type": "WorkerLost", "message": f"{silent}, {attempts} time(s); giving up", "epoch": job.epochs_completed + 1}
            events.append(jobs_repo.finish(session, job.id, status="failed", message=error["message"], error=error))
        recovered.append(Recovered(job.id, events, requeued=not exhausted))
    return recovered
