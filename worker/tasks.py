"""Celery tasks: thin wrappers around worker/runner.py. Importing this module loads TensorFlow once."""

import logging
import os
import socket
from functools import cache

import numpy as np
from celery.signals import worker_ready, worker_shutting_down
from sqlalchemy.exc import OperationalError

from app.queue import TRAIN_TASK
from app.settings import get_settings
from app.specs import TrainingSpec
from app.training.trainer import EpochReporter, NullHooks, train
from worker.celery_app import celery
from worker.runner import WorkerContext, run_job

log = logging.getLogger("epochly.worker")


@cache
def context() -> WorkerContext:
    return WorkerContext(settings=get_settings(), worker_name=f"{socket.gethostname()} (pid {os.getpid()})")


# A database that is away when the job is claimed: retry the task rather than drop the message.
@celery.task(
    name=TRAIN_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=None,
)
def train_job(job_id: str) -> None:
    run_job(job_id, context())


@worker_ready.connect
def _warm_up(**_: object) -> None:
    """Pay TensorFlow's one-off start-up costs (thread pools, first graph trace) before the first job."""
    spec = TrainingSpec.model_validate(
        {"model": {"layers": [{"type": "Dense", "units": 1}]}, "compile": {"loss": "mse"}, "fit": {"epochs": 1}}
    )
    path = context().settings.models_dir / ".warm-up.keras"
    reporter = EpochReporter(NullHooks())
    train(spec, np.zeros((4, 1), np.float32), np.zeros((4,), np.float32), reporter=reporter, model_path=path)
    path.unlink(missing_ok=True)
    log.info("worker warm: TensorFlow loaded once for this process")


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: object) -> None:
    """SIGTERM (a warm shutdown): the running job finishes its epoch, checkpoints and goes back to the queue."""
    context().shutting_down.set()
