"""The API's background sweep for jobs whose worker died: requeue and re-dispatch, or fail."""
import asyncio
import logging
import time

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from app.db import session_scope
from app.events.messages import status_message
from app.queue import enqueue_training
from app.services.recovery import recover_stale_jobs

log = logging.getLogger("epochly.recovery")
MAX_SWEEP_INTERVAL_S = 5.0


async def recovery_loop(app: FastAPI) -> None:
    timeout = app.state.settings.job_heartbeat_timeout_s
    interval = min(MAX_SWEEP_INTERVAL_S, timeout / 4)
    # Heartbeats cannot land while the database is away, so after an outage (or this process's
    # start) every running job looks silent: give workers one full timeout to beat again first.
    reachable_since = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(sweep_once, app, time.monotonic() - reachable_since >= timeout)
        except Exception as exc:  # the database may be away; try again next round
            log.warning("recovery sweep failed: %s", exc)
            reachable_since = time.monotonic() + interval


def sweep_once(app: FastAPI, may_requeue: bool) -> None:
    # Several API processes may sweep at once: the conditional updates let exactly one win each job.
    with session_scope(app.state.session_factory) as session:
        session.execute(text("SELECT 1"))  # an unreachable database raises here, before any judgement
        if not may_requeue:
            return
        recovered = recover_stale_jobs(session, app.state.settings)
    for item in recovered:
        for event in item.events:
            app.state.publisher.publish(status_message(event))
        if item.requeued:
            try:
                enqueue_training(app.state.celery, item.job_id)
            except Exception as exc:
                log.error("job %s was requeued but the broker refused it: %s", item.job_id, exc)
