"""The worker container's health check: `python -m worker.healthcheck` exits 0 when a worker process of
this host has beaten in the worker registry within the heartbeat timeout, 1 otherwise.

The registry beat comes from the worker's presence thread (worker/presence.py), which keeps beating
while a long job trains, so a busy worker reads healthy and a wedged or lost one does not. Not
`celery inspect ping`: a solo-pool worker answers remote control only between jobs."""

import socket
import sys
from datetime import timedelta

from app.db import make_engine, make_session_factory, session_scope
from app.models import utcnow
from app.repositories import workers as workers_repo
from app.settings import get_settings


def beating_here() -> bool:
    settings = get_settings()
    # Worker names are "<hostname> (pid N)" (worker/tasks.py); a container's hostname is its own.
    prefix = f"{socket.gethostname()} ("
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            since = utcnow() - timedelta(seconds=settings.job_heartbeat_timeout_s)
            return any(worker.id.startswith(prefix) for worker in workers_repo.live(session, since))
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(0 if beating_here() else 1)
