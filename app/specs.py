"""Job spec schemas shared by the API and the worker; pure pydantic, no Keras."""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TUTORIAL_LAYERS: list[Any] = [
    {"type": "Dense", "units": 16, "activation": "relu", "input_shape": [1]},
    {"type": "Dense", "units": 32, "activation": "relu"},
    {"type": "Dense", "units": 2, "activation": "sigmoid"},
]
TUTORIAL_COMPILE: dict[str, Any] = {
    "optimizer": {"type": "Adam", "learning_rate": 0.0001},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
}
TUTORIAL_FIT: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 10,
    "shuffle": True,
    "validation_split": 0.0,
    "seed": 0,
    "normalize": "minmax",
}

MAX_EPOCHS = 100_000


class LayerSpec(BaseModel):
    """One Keras layer: `type` is the class name in `keras.layers`; every other key is a keyword argument."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": TUTORIAL_LAYERS[0]})

    type: str = Field(min_length=1, max_length=100)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelSpec(BaseModel):
    """Either a list of layers (a Sequential model) or Keras' own `model.to_json()` output."""

    model_config = ConfigDict(json_schema_extra={"example": {"layers": TUTORIAL_LAYERS}})

    layers: list[LayerSpec] | None = Field(default=None, min_length=1, max_length=500)
    keras_json: dict[str, Any] | None = Field(
        default=None,
        description="The output of `model.to_json()`, as a string or as parsed JSON.",
        # A string is parsed into the object before validation (below), so the Python type stays a
        # dict while the schema names both forms the API accepts.
        json_schema_extra={
            "anyOf": [
                {"type": "string", "contentMediaType": "application/json"},
                {"type": "object", "additionalProperties": True},
                {"type": "null"},
            ]
        },
    )

    @field_validator("keras_json", mode="before")
    @classmethod
    def _parse_json_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"keras_json is not valid JSON: {exc.msg} at character {exc.pos}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one_form(self) -> "ModelSpec":
        if (self.layers is None) == (self.keras_json is None):
            raise ValueError("give exactly one of `layers` or `keras_json`")
        return self


class NamedObjectSpec(BaseModel):
    """A Keras object by class name with keyword arguments, e.g. {"type": "Adam", "learning_rate": 0.001}."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": TUTORIAL_COMPILE["optimizer"]})

    type: str = Field(min_length=1, max_length=100)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CompileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": TUTORIAL_COMPILE})

    optimizer: str | NamedObjectSpec = Field(default="adam", description='A name ("adam") or {"type": ..., **kwargs}.')
    loss: str | NamedObjectSpec = Field(description='A name ("mse") or {"type": ..., **kwargs}.')
    metrics: list[str | NamedObjectSpec] = Field(default_factory=list, max_length=50)


class FitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": TUTORIAL_FIT})

    epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=32, ge=1, le=1_000_000)
    shuffle: bool = True
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int | None = Field(default=0, ge=0, le=2**31 - 1, description="Same seed, same per-epoch losses.")
    steps_per_execution: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Batches run per call into the compiled train step. Default: up to 32, which trains small "
        "models about twice as fast with identical results. Cancel and progress act between executions, so 1 "
        "gives per-batch granularity.",
    )
    normalize: Literal["minmax", "standard"] | None = Field(
        default=None,
        description="Scale features with statistics of the training split; built into the saved model.",
    )


class TrainingSpec(BaseModel):
    """What the worker needs to train: model, compile and fit settings."""

    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)


class JobCreate(TrainingSpec):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "dataset_id": "ds_5f1c0e3a9b2d4c6e8f0a1b2c3d4e5f60",
                "name": "side-effects tutorial",
                "tags": {"tutorial": "keras"},
                "model": {"layers": TUTORIAL_LAYERS},
                "compile": TUTORIAL_COMPILE,
                "fit": TUTORIAL_FIT,
            }
        },
    )

    dataset_id: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
