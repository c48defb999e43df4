"""Celery entry point: `celery -A worker.celery_app worker --pool=solo` (add `-Q gpu` to consume other
queues than WORKER_QUEUES).

Why the solo pool: TensorFlow is not fork-safe. A prefork child of a parent that has touched
TensorFlow can deadlock, so each worker process imports TensorFlow once, at start, and runs jobs
in that same process. Scale out with more worker processes (or machines), not pool children.
"""

from celery.signals import setup_logging

from app import logs
from app.queue import make_celery, train_queue
from app.settings import get_settings

settings = get_settings()
celery = make_celery(settings)
celery.conf.imports = ("worker.tasks",)
# What the worker consumes unless `-Q` names other queues (Celery then creates those the same way).
celery.conf.task_queues = [train_queue(name) for name in settings.worker_queue_names]


def _log_json(loglevel: int | str = "info", **_: object) -> None:
    logs.use_json(loglevel)


if settings.log_format == "json":
    # Now, so that what Celery says before it sets up logging (its warning about running as root) is
    # JSON too; and with a receiver for its signal, Celery then leaves logging alone (but its level).
    logs.use_json(settings.log_level)
    setup_logging.connect(_log_json, weak=False)
