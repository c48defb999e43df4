"""Notice jobs whose worker went silent and give them another attempt, or fail them after the last."""

from datetime import timedelta

from sqlalchemy.orm import Session

from app import persisted_metrics
from app.lifecycle import WORKER_LOST, JobStatus, finish, requeue
from app.models import utcnow
from app.repositories import jobs as jobs_repo
from app.settings import Settings


def recover_stale_jobs(session: Session, settings: Settings) -> list[str]:
    """Requeue or fail every running job whose heartbeat is older than the timeout; returns their ids.

    Each move is conditional on the heartbeat still being stale and the same worker holding the job,
    so a worker that just came back keeps its job, and several schedulers may sweep at once."""
    timeout = settings.job_heartbeat_timeout_s
    cutoff = utcnow() - timedelta(seconds=timeout)
    recovered = []
    failed = 0
    for job in jobs_repo.stale_running(session, cutoff):
        assert job.worker is not None  # a running job always has one
        silent = f"no heartbeat from {job.worker} for {timeout:g} s"
        attempts = len(job.attempts)
        if attempts >= settings.job_max_attempts:
            error = {
                "type": "WorkerLost",
                "message": f"{silent}, {attempts} time(s); giving up",
                "epoch": job.epochs_completed + 1,
            }
            event = finish(
                session,
                job.id,
                JobStatus.FAILED,
                worker=job.worker,
                outcome=WORKER_LOST,
                message=f"{silent}; no attempts left",
                error=error,
                heartbeat_before=cutoff,
            )
        else:
            event = requeue(
                session,
                job.id,
                worker=job.worker,
                outcome=WORKER_LOST,
                message=f"{silent}; requeued for attempt {attempts + 1} of {settings.job_max_attempts}",
                heartbeat_before=cutoff,
            )
        if event is not None:
            recovered.append(job.id)
            if attempts >= settings.job_max_attempts:
                failed += 1
    persisted_metrics.count_recovered(session, requeued=len(recovered) - failed, failed=failed)
    return recovered
