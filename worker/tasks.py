"""Celery tasks: thin wrappers around worker/runner.py. Importing this module loads TensorFlow once."""

import logging
import os
import socket
from functools import cache
from typing import Any

import numpy as np
from celery import Task
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy.exc import OperationalError

from app.queue import TRAIN_TASK
from app.settings import get_settings
from app.specs import TrainingSpec
from app.storage import open_artifacts
from app.training.trainer import EpochReporter, NullHooks, train
from worker.celery_app import celery
from worker.presence import Presence, list_devices
from worker.runner import WorkerContext, run_job

log = logging.getLogger("epochly.worker")


@cache
def context() -> WorkerContext:
    return WorkerContext(
        settings=get_settings(), worker_name=f"{socket.gethostname()} (pid {os.getpid()})", devices=list_devices()
    )


@cache
def presence() -> Presence:
    return Presence(context())


# A database that is away when the job is claimed: retry the task rather than drop the message.
@celery.task(
    name=TRAIN_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=None,
)
def train_job(self: Task, job_id: str) -> None:
    # Each queue's doorbells are routed by the queue's own name (app.queue.train_queue).
    message_queue = (self.request.delivery_info or {}).get("routing_key")
    run_job(job_id, context(), message_queue)


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
    # With STORAGE_URL=s3://… boto3's client takes most of a second to make: now, not in the first job.
    open_artifacts(context().settings)
    log.info("worker warm: TensorFlow loaded once for this process")


@worker_ready.connect
def _join_registry(sender: Any, **_: object) -> None:
    """Record the queues Celery really consumes (WORKER_QUEUES, or -Q on the command line) and start beating."""
    context().queues = [queue.name for queue in sender.task_consumer.queues]
    presence().start()
    log.info("worker consumes queue(s) %s on %s", ", ".join(context().queues), ", ".join(d["name"] for d in context().devices))


@worker_shutdown.connect
def _leave_registry(**_: object) -> None:
    presence().stop()


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: object) -> None:
    """SIGTERM (a warm shutdown): the running job finishes its epoch, checkpoints and goes back to the queue."""
    context().shutting_down.set()
