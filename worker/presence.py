"""This worker's row in the registry (app/repositories/workers.py): the queues it consumes and the
devices it trains on, refreshed from a side thread so the API knows which queues have a live worker."""

import logging
import threading

import tensorflow as tf

from app.db import session_scope
from app.repositories import workers as workers_repo
from worker.runner import WorkerContext

log = logging.getLogger("epochly.worker")


def list_devices() -> list[dict[str, str]]:
    """What TensorFlow trains on here: [{"kind": "CPU" | "GPU", "name": ...}], a GPU by its product name where known."""
    devices = []
    for device in tf.config.list_physical_devices():
        name = device.name
        if device.device_type == "GPU":
            name = tf.config.experimental.get_device_details(device).get("device_name") or name
        devices.append({"kind": device.device_type, "name": name})
    return devices


class Presence:
    """Beats at start, then every heartbeat interval until stopped; a clean stop removes the row."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)

    def start(self) -> None:
        self._beat()  # before the worker takes its first message: its queue stops looking unserved at once
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            with session_scope(self.ctx.session_factory) as session:
                workers_repo.remove(session, self.ctx.worker_name)
        except Exception as exc:  # the row goes stale and is pruned instead
            log.warning("could not remove this worker's registry row: %s", exc)

    def _run(self) -> None:
        while not self._stopped.wait(self.ctx.heartbeat_interval_s):
            self._beat()

    def _beat(self) -> None:
        try:
            with session_scope(self.ctx.session_factory) as session:
                workers_repo.beat(session, self.ctx.worker_name, self.ctx.queues, self.ctx.devices)
        except Exception as exc:  # the database blinking must not stop the worker; the next beat tries again
            log.warning("worker registry heartbeat failed: %s", exc)
