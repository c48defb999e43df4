"""Following a training job as `model.fit` would run it here: Keras' callbacks and progress bar fed
from the job's events, its History, and the trained weights loaded into the caller's model."""

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any

import httpx
import keras

from epochly_client.client import Client, EpochlyError
from epochly_client.models import Job, JobStatus

LOG_TAIL_LINES = 20
# The worker logs each epoch's learning rate; Keras' own logs carry it only when this callback runs.
LOGS_LEARNING_RATE = "ReduceLROnPlateau"


class JobFailed(RuntimeError):
    """The job ended without a trained model: the worker's error and the tail of its log, or a cancel."""

    def __init__(self, job: Job, log_tail: str) -> None:
        self.job = job
        self.log_tail = log_tail
        if job.status == JobStatus.CANCELLED:
            what = f"job {job.id} was cancelled after {job.epochs_completed} of {job.epochs_total} epochs"
        else:
            error = job.error or {}
            what = f"job {job.id} failed: {error.get('type', 'error')}: {error.get('message', '')}"
        super().__init__(f"{what}\n{log_tail}" if log_tail else what)


class RemoteFit:
    """A submitted job and the model it trains. `wait()` follows it (the local callbacks and Keras'
    progress bar as its epochs arrive), loads the trained weights into the model and returns the History."""

    def __init__(
        self,
        client: Client,
        job: Job,
        model: Any,
        *,
        n_samples: int,
        callbacks: list[Any] | None = None,
        verbose: int | str = "auto",
        initial_epoch: int = 0,
        uploaded_bytes: int = 0,
    ) -> None:
        self.client = client
        self.job_id = job.id
        self.model = model
        self.uploaded_bytes = uploaded_bytes
        fit = job.raw.get("spec", {}).get("fit", {})
        self._initial_epoch = initial_epoch
        self._keeps_learning_rate = any(c.get("type") == LOGS_LEARNING_RATE for c in fit.get("callbacks", []))
        n_train = math.ceil(n_samples * (1.0 - fit.get("validation_split", 0.0)))
        self._params = {
            "verbose": verbose,
            "epochs": initial_epoch + job.epochs_total,
            "steps": math.ceil(n_train / fit.get("batch_size", 32)),
        }
        self._callbacks = list(callbacks or [])
        self._verbose = verbose

    def __repr__(self) -> str:
        return f"RemoteFit(job_id={self.job_id!r})"

    def cancel(self) -> Job:
        return self.client.cancel(self.job_id)

    def wait(self) -> keras.callbacks.History:
        # The order model.fit puts them in: the caller's callbacks, then History, then the progress bar.
        history = keras.callbacks.History()
        progbar = keras.callbacks.ProgbarLogger() if self._verbose != 0 else None
        callbacks = keras.callbacks.CallbackList(
            [*self._callbacks, history, *([progbar] if progbar else [])], model=self.model, **self._params
        )
        callbacks.on_train_begin()
        logs = self._follow(callbacks, progbar)
        job = self.client.get(self.job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise JobFailed(job, self._log_tail() if job.status == JobStatus.FAILED else "")
        self._load_weights()
        callbacks.on_train_end(logs)
        history.job_id = self.job_id
        history.uploaded_bytes = self.uploaded_bytes
        return history

    def _follow(self, callbacks: Any, progbar: Any) -> dict[str, float]:
        """Epoch by epoch until the job ends. Anything that stops the following (Ctrl-C, a callback's
        exception) cancels the job first, so it does not train on for no one; its epochs stay recorded."""
        begun: int | None = None
        logs: dict[str, float] = {}
        try:
            for event in self.client.stream(self.job_id):
                epoch = event.data.get("epoch")
                if event.type not in ("progress", "epoch") or not isinstance(epoch, int):
                    continue
                index = self._initial_epoch + epoch - 1
                if begun != index:  # begun when its first news arrives: an early stop leaves no empty epoch
                    callbacks.on_epoch_begin(index)
                    begun = index
                if event.type == "progress" and progbar is not None:
                    progbar.on_train_batch_end(event.data["batch"] - 1)
                elif event.type == "epoch":
                    logs = self._keras_logs(event.data["logs"])
                    callbacks.on_epoch_end(index, logs)
        except BaseException:
            with contextlib.suppress(EpochlyError, httpx.HTTPError):
                self.cancel()
            raise
        return logs

    def _keras_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """The job's logs with the keys a local fit's would have."""
        if self._keeps_learning_rate:
            return dict(logs)
        return {key: value for key, value in logs.items() if key != "learning_rate"}

    def _load_weights(self) -> None:
        """The trained weights and the optimizer's state, as a local fit leaves them (so a later local
        fit goes on from there); the optimizer gets its variables first, as its first step would make them."""
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        with tempfile.TemporaryDirectory() as folder:
            path = self.client.download_model(self.job_id, Path(folder) / "model.keras")
            self.model.load_weights(path)

    def _log_tail(self) -> str:
        try:
            lines = self.client.log(self.job_id).splitlines()
        except EpochlyError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])
