"""The Celery app both sides share: the API enqueues by task name and never imports worker code.

A message is a doorbell, not the job: the job row is the record. Each job names a queue (Job.queue),
and its doorbell goes to the Celery queue of that name, so a worker started with `-Q gpu` (or
WORKER_QUEUES=gpu) only hears of gpu jobs. A worker that takes a message claims the job it names,
or else the oldest queued job of the same queue (app.lifecycle.claim_next), so the scheduler keeps
the broker honest by count alone: per queue, as many waiting messages as queued jobs
(app/scheduler/dispatch.py)."""

import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from celery import Celery
from kombu import Connection, Exchange, Queue
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

from app.settings import DEFAULT_QUEUE, Settings

TRAIN_TASK = "epochly.train"
# A job may train for hours; Redis must not hand its unacked message to another worker meanwhile.
REDIS_VISIBILITY_TIMEOUT_S = 7 * 24 * 3600


class WholeFileChannel(filesystem.Channel):
    """kombu's folder channel creates a message file under its final name and then writes it, so a
    consumer polling the folder could take it while still empty, and Celery stops the worker on the
    decode error. Here a message is written under a name no consumer reads, then renamed whole."""

    # kombu types the base `_put(queue, message)` and its folder channel `_put(queue, payload, **kwargs)`.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        final = os.path.join(self.data_folder_out, f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg")
        staging = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.staging")
        try:
            with open(staging, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(staging, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class WholeFileTransport(filesystem.Transport):
    Channel = WholeFileChannel


def make_celery(settings: Settings) -> Celery:
    url = settings.resolved_broker_url
    settings.prepare_data_dir()
    celery = Celery("epochly", broker=url)
    celery.conf.update(
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        worker_hijack_root_logger=False,
    )
    if url.startswith("filesystem://"):
        # The embedded broker: messages are files in one folder that the API writes and the worker reads.
        queue_dir = settings.broker_dir / "queue"
        processed_dir = settings.broker_dir / "processed"
        control_dir = settings.broker_dir / "control"
        for folder in (queue_dir, processed_dir, control_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Each message file is named after its queue (`<id>.<queue>.msg`) and a consumer reads only
        # its own queues' files. The exchange → queue bindings are files too: beside the messages,
        # not in whatever folder the process was started from (the transport's default).
        celery.conf.broker_transport = f"{__name__}:WholeFileTransport"
        celery.conf.broker_transport_options = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(processed_dir),
            "control_folder": str(control_dir),
            "store_processed": False,
            "polling_interval": 0.1,
        }
        # Remote control and events need a fan-out exchange, which the folder transport lacks.
        celery.conf.worker_enable_remote_control = False
    elif url.startswith(("redis://", "rediss://")):
        celery.conf.broker_transport_options = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S}
    return celery


log = logging.getLogger("epochly.queue")


class Doorbell(Protocol):
    """Tells the broker that a job waits; a ring that is lost is sent again by the scheduler's dispatcher."""

    def ring(self, job_id: str, queue: str) -> None: ...


class CeleryDoorbell:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def ring(self, job_id: str, queue: str) -> None:
        """Best effort: the job is committed already, and the dispatcher heals a ring the broker missed."""
        try:
            enqueue_training(self.celery, job_id, queue)
        except Exception as exc:
            log.warning("broker did not take the message for job %s (%s); the scheduler will send it again", job_id, exc)


def train_queue(name: str) -> Queue:
    """The Celery queue for jobs of queue `name`, as a worker consumes it: a direct exchange of the
    same name, routed by the name. It is the shape Celery itself gives a queue it meets only by name
    (`-Q gpu` on a worker, `send_task(queue="gpu")` here), so every side agrees."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def enqueue_training(celery: Celery, job_id: str, queue: str) -> None:
    _restore_broker_folders(celery)
    celery.send_task(TRAIN_TASK, args=[job_id], queue=queue)


def waiting_messages(celery: Celery, queues: Iterable[str]) -> dict[str, int]:
    """Per queue, the messages that no worker has taken yet; raises when the broker is unreachable."""
    _restore_broker_folders(celery)
    counts = {}
    with celery.connection_for_write() as connection:
        _connect_once(connection)
        channel: Any = connection.default_channel  # a virtual-transport channel: it has queue_declare
        for queue in queues:
            try:
                counts[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:  # Redis keeps no empty lists: a queue with no messages does not exist
                counts[queue] = 0
    return counts


def _restore_broker_folders(celery: Celery) -> None:
    """The embedded broker's folders, made again when someone wiped them: without them no message
    could be sent or counted, and workers could not look for any. The scheduler asks every round."""
    options = celery.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if folder := options.get(key):
            Path(folder).mkdir(parents=True, exist_ok=True)


def broker_reachable(celery: Celery) -> bool:
    try:
        with celery.connection_for_write() as connection:
            _connect_once(connection)
        return True
    except Exception:
        return False


def _connect_once(connection: Connection) -> None:
    """Fail within seconds when the broker is away, instead of Kombu's default of retrying for ever."""
    connection.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=2)
