"""The API's background sweep for jobs whose worker died: requeue and re-dispatch, or fail."""
import asyncio
import logging

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from app.db import session_scope
from app.events.messages import status_message
from app.queue import enqueue_training
from app.services.recovery import recover_stale_jobs

log = logging.getLogger("epochly.recovery")
MAX_SWEEP_INTERVAL_S = 5.0


async def recovery_loop(app: FastAPI) -> None:
    interval = min(MAX_SWEEP_INTERVAL_S, app.state.settings.job_heartbeat_timeout_s / 4)
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(sweep_once, app)
        except Exception as exc:  # the database may be away; try again next round
            log.warning("recovery sweep failed: %s", exc)


def sweep_once(app: FastAPI) -> None:
    # Several API processes may sweep at once: the conditional updates let exactly one win each job.
    with session_scope(app.state.session_factory) as session:
        recovered = recover_stale_jobs(session, app.state.settings)
    for item in recovered:
        for event in item.events:
            app.state.publisher.publish(status_message(event))
        if item.requeued:
            try:
                enqueue_training(app.state.celery, item.job_id)
            except Exception as exc:
                log.error("job %s was requeued but the broker refused it: %s", item.job_id, exc)
