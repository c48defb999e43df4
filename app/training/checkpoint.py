"""A job's resumable state after its last checkpointed epoch: the model with its optimizer state
(one .keras file) and the training position (state.json). Written so a crash at any instant
leaves either the previous checkpoint or the new one, never a mix."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

STATE_FILE = "state.json"
# Random-op state (Dropout and friends) lives in these variables; .keras files do not keep them.
SEED_STATE_NAME = "seed_generator_state"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path

    def load(self) -> tuple[keras.Model, dict[str, Any]] | None:
        state_path = self.folder / STATE_FILE
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(self.folder / state["model_file"])
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(value)
        return model, state

    def save(self, model: keras.Model, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Alternate between two model files so the one state.json names is never being rewritten.
        previous = self._state().get("model_file")
        model_file = "model-b.keras" if previous == "model-a.keras" else "model-a.keras"
        model.save(self.folder / model_file)
        partial = self.folder / (STATE_FILE + ".partial")
        seed_states = [variable.numpy().tolist() for variable in _seed_states(model)]
        partial.write_text(json.dumps({**state, "model_file": model_file, "seed_states": seed_states}))
        partial.replace(self.folder / STATE_FILE)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _state(self) -> dict[str, Any]:
        path = self.folder / STATE_FILE
        return json.loads(path.read_text()) if path.is_file() else {}


def _seed_states(model: keras.Model) -> list[Any]:
    return [variable for variable in model.variables if variable.name == SEED_STATE_NAME]
