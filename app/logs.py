"""LOG_FORMAT=json: one JSON object a line (time, level, logger, message, and job_id on every line
about a job) for the API, the worker and the scheduler alike. The job a line is about comes from a
context variable that the worker sets for the duration of a job, and the API for a request on one."""

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("epochly_job_id", default=None)
# uvicorn's loggers have handlers of their own and do not propagate: they get the JSON handler too.
OWN_HANDLERS = ("uvicorn", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A line may name its job itself (extra={"job_id": ...}), as the scheduler's do.
        job_id = getattr(record, "job_id", None) or current_job.get()
        if job_id:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json(level: int | str) -> None:
    """Every log line of this process, the libraries' included, as JSON on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in OWN_HANDLERS:
        logging.getLogger(name).handlers = [handler]
    logging.captureWarnings(True)  # a library's warning is a line too


def configure(log_format: str, level: str) -> None:
    """A process that owns its logging (the scheduler): JSON, or text lines for a person."""
    if log_format == "json":
        use_json(level)
    else:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Lines logged inside the block (in this thread, or a thread_in_context started in it) name the job."""
    token = current_job.set(job_id)
    try:
        yield
    finally:
        current_job.reset(token)


def thread_in_context(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread that runs in a copy of the caller's context, so its lines name the caller's job too."""
    return threading.Thread(target=contextvars.copy_context().run, args=(target,), name=name, daemon=True)
