"""A job's resumable state after its last checkpointed epoch: the model with its optimizer state
(one .keras file), arrays beside it (EarlyStopping's best weights; one .npz) and the training
position and callback counters (state.json). Written so a crash at any instant leaves either the
previous checkpoint or the new one, never a mix."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

STATE_FILE = "state.json"
# Random-op state (Dropout and friends) lives in these variables; .keras files do not keep them.
SEED_STATE_NAME = "seed_generator_state"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path

    def load(self) -> tuple[keras.Model, dict[str, Any]] | None:
        """The model and the state saved with it; the arrays saved with them are in `state["arrays"]`."""
        state_path = self.folder / STATE_FILE
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(self.folder / state["model_file"])
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(value)
        arrays: dict[str, np.ndarray] = {}
        if state.get("arrays_file"):
            with np.load(self.folder / state["arrays_file"], allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files}
        return model, {**state, "arrays": arrays}

    def save(self, model: keras.Model, state: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Alternate between two model files so the one state.json names is never being rewritten.
        previous = self._state().get("model_file")
        model_file = "model-b.keras" if previous == "model-a.keras" else "model-a.keras"
        model.save(self.folder / model_file)
        arrays_file = None
        if arrays:
            arrays_file = model_file.replace(".keras", ".arrays.npz")
            np.savez(self.folder / arrays_file, **arrays)  # type: ignore[arg-type]
        partial = self.folder / (STATE_FILE + ".partial")
        seed_states = [variable.numpy().tolist() for variable in _seed_states(model)]
        partial.write_text(
            json.dumps({**state, "model_file": model_file, "arrays_file": arrays_file, "seed_states": seed_states})
        )
        partial.replace(self.folder / STATE_FILE)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _state(self) -> dict[str, Any]:
        path = self.folder / STATE_FILE
        return json.loads(path.read_text()) if path.is_file() else {}


def _seed_states(model: keras.Model) -> list[Any]:
    return [variable for variable in model.variables if variable.name == SEED_STATE_NAME]
