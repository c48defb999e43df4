"""A job's resumable state after its last checkpointed epoch, in the artifact store under
`checkpoints/<job id>/`: the model with its optimizer state (model-<epoch>.keras), arrays beside it
(EarlyStopping's best weights; model-<epoch>.arrays.npz) and the training position and callback
counters (state.json). The files go up first and state.json, one atomic write, last: a crash at any
instant leaves the previous checkpoint or the new one, never a mix.

A remote store's uploads run on a thread of their own, retrying while the store is away: training
never waits for them, and a newer checkpoint replaces one still waiting to go up."""

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.storage import ArtifactStore, with_retry

STATE_FILE = "state.json"
# Random-op state (Dropout and friends) lives in these variables; .keras files do not keep them.
SEED_STATE_NAME = "seed_generator_state"
log = logging.getLogger("epochly.checkpoint")


@dataclass(frozen=True)
class _Snapshot:
    folder: Path
    files: list[str]
    state: bytes


class Checkpoint:
    def __init__(self, store: ArtifactStore, prefix: str, scratch: Path, *, resumable: bool = True) -> None:
        """`resumable=False`: nothing can be stored yet (a job's first attempt), so `load` asks nobody."""
        self.store, self.prefix, self.scratch, self.resumable = store, prefix, scratch, resumable
        # The files the stored state.json names: replaced ones are deleted once a newer state lands.
        self._stored_files: set[str] = set()
        self._uploads = _Uploads(self._publish) if store.remote else None

    def load(self) -> tuple[keras.Model, dict[str, Any]] | None:
        """The model and the state saved with it; the arrays saved with them are in `state["arrays"]`."""
        if not self.resumable:
            return None
        document = with_retry("reading the checkpoint", lambda: self.store.get_bytes(self._key(STATE_FILE)))
        if document is None:
            return None
        state = json.loads(document)
        files = [state["model_file"], *([state["arrays_file"]] if state.get("arrays_file") else [])]
        local = {name: self._fetch(name) for name in files}
        model = keras.models.load_model(local[state["model_file"]])
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(value)
        arrays: dict[str, np.ndarray] = {}
        if state.get("arrays_file"):
            with np.load(local[state["arrays_file"]], allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files}
        shutil.rmtree(self.scratch / "restore", ignore_errors=True)
        self._stored_files = set(files)
        return model, {**state, "arrays": arrays}

    def save(self, model: keras.Model, state: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        # Named by epoch, so no file a stored state.json names is ever rewritten.
        folder = self.scratch / f"epoch-{state['epoch']}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        model_file = f"model-{state['epoch']}.keras"
        model.save(folder / model_file)
        arrays_file = None
        if arrays:
            arrays_file = model_file.replace(".keras", ".arrays.npz")
            np.savez(folder / arrays_file, **arrays)  # type: ignore[arg-type]
        seed_states = [variable.numpy().tolist() for variable in _seed_states(model)]
        document = {**state, "model_file": model_file, "arrays_file": arrays_file, "seed_states": seed_states}
        snapshot = _Snapshot(folder, [model_file, *([arrays_file] if arrays_file else [])], json.dumps(document).encode())
        if self._uploads is None:
            self._publish(snapshot)
        else:
            self._uploads.submit(snapshot)

    def flush(self) -> None:
        """Wait until the newest checkpoint is in the store (a hand-back: the next attempt resumes from it)."""
        if self._uploads is not None:
            self._uploads.flush()

    def close(self) -> None:
        """Stop uploading; what is stored stays (another attempt holds the job now)."""
        if self._uploads is not None:
            self._uploads.abandon()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def discard(self) -> None:
        """The job is over: nothing to resume, so its checkpoint goes."""
        self.close()
        try:
            with_retry(f"deleting {self.prefix}", lambda: self.store.delete_prefix(self.prefix), give_up=_after(30.0))
        except Exception as exc:  # the job's result stands; the leftover files are only bytes
            log.warning("could not delete %s (%s); it stays in the store", self.prefix, exc)

    def _publish(self, snapshot: _Snapshot) -> None:
        for name in snapshot.files:
            source = snapshot.folder / name
            if source.exists():  # a retried publish skips what already went up
                self.store.put_file(source, self._key(name), move=True)
        self.store.put_bytes(snapshot.state, self._key(STATE_FILE))
        for name in self._stored_files - set(snapshot.files):
            self.store.delete(self._key(name))
        self._stored_files = set(snapshot.files)
        shutil.rmtree(snapshot.folder, ignore_errors=True)

    def _fetch(self, name: str) -> Path:
        local = self.store.local_path(self._key(name))
        if local is not None:
            return local
        target = self.scratch / "restore" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with_retry(f"downloading checkpoint file {name}", lambda: self.store.get_file(self._key(name), target))
        return target

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


class _Uploads:
    """One snapshot going up at a time, retried until it lands; at most one waiting, and a newer one
    replaces it (only the newest checkpoint matters)."""

    def __init__(self, publish: Callable[[_Snapshot], None]) -> None:
        self._publish = publish
        self._changed = threading.Condition()
        self._waiting: _Snapshot | None = None
        self._busy = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-uploads", daemon=True)

    def submit(self, snapshot: _Snapshot) -> None:
        with self._changed:
            if self._waiting is not None:
                shutil.rmtree(self._waiting.folder, ignore_errors=True)
            self._waiting = snapshot
            if not self._thread.is_alive():
                self._thread.start()
            self._changed.notify_all()

    def flush(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._waiting is None and not self._busy)

    def abandon(self) -> None:
        with self._changed:
            self._abandoned = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._abandoned)
                if self._abandoned:
                    return
                snapshot, self._waiting, self._busy = self._waiting, None, True
            assert snapshot is not None
            try:
                with_retry("uploading a checkpoint", partial(self._publish, snapshot), give_up=lambda: self._abandoned)
            except Exception as exc:  # abandoned mid-retry, or a local error: training goes on regardless
                log.warning("checkpoint upload dropped: %s", exc)
            with self._changed:
                self._busy = False
                self._changed.notify_all()


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def _seed_states(model: keras.Model) -> list[Any]:
    return [variable for variable in model.variables if variable.name == SEED_STATE_NAME]
