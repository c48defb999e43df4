"""Celery entry point: `celery -A worker.celery_app worker --pool=solo`.

Why the solo pool: TensorFlow is not fork-safe. A prefork child of a parent that has touched
TensorFlow can deadlock, so each worker process imports TensorFlow once, at start, and runs jobs
in that same process. Scale out with more worker processes (or machines), not pool children.
"""

from app.queue import make_celery
from app.settings import get_settings

celery = make_celery(get_settings())
celery.conf.imports = ("worker.tasks",)
