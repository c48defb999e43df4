"""Job spec schemas shared by the API and the worker; pure pydantic, no Keras."""

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, field_validator, model_validator

from app.json_schema import WHOLE, JsonInt, exactly_one_of
from app.settings import DEFAULT_QUEUE

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

    model_config = ConfigDict(
        json_schema_extra={"example": {"layers": TUTORIAL_LAYERS}, **exactly_one_of("layers", "keras_json")}
    )

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


def _loss_tag(value: Any) -> str:
    # {"type": ...} is one loss; any other object maps output names to losses.
    if isinstance(value, str):
        return "name"
    if isinstance(value, NamedObjectSpec) or (isinstance(value, dict) and "type" in value):
        return "object"
    return "per_output"


LossSpec = Annotated[str | NamedObjectSpec, Field(description='A name ("mse") or {"type": ..., **kwargs}.')]
CompileLoss = Annotated[
    Annotated[str, Tag("name")] | Annotated[NamedObjectSpec, Tag("object")] | Annotated[dict[str, LossSpec], Tag("per_output")],
    Discriminator(_loss_tag),
]


CompileMetrics = list[str | NamedObjectSpec] | dict[str, list[str | NamedObjectSpec]]


class CompileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": TUTORIAL_COMPILE})

    optimizer: str | NamedObjectSpec = Field(default="adam", description='A name ("adam") or {"type": ..., **kwargs}.')
    loss: CompileLoss = Field(
        description='A name ("mse") or {"type": ..., **kwargs}; or, for a model with several outputs, one of those '
        'per output name: {"out_a": "sparse_categorical_crossentropy", "out_b": "mse"}.'
    )
    metrics: CompileMetrics = Field(
        default_factory=list,
        max_length=50,
        description='Metrics for every output, or a list per output name: {"out_a": ["accuracy"], "out_b": ["mae"]}.',
    )
    weighted_metrics: CompileMetrics = Field(
        default_factory=list,
        max_length=50,
        description="Metrics weighted by the samples' weights (`fit.class_weight`), in the same forms as `metrics`.",
    )
    loss_weights: (
        list[Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]]
        | dict[str, Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]]
        | None
    ) = Field(
        default=None,
        max_length=1000,
        description='How much each output\'s loss counts in the total, as in Keras: {"out_a": 1.0, "out_b": 0.2}, '
        "or a list in the order of the model's outputs.",
    )


MonitorMode = Literal["auto", "min", "max"]
# Keras callbacks that carry no code and no paths. The others Epochly does itself: checkpoints
# (ModelCheckpoint, BackupAndRestore), the epoch log (CSVLogger, TensorBoard); code is never accepted.
ALLOWED_CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")
_DONE_BY_EPOCHLY = {
    "ModelCheckpoint": "Epochly checkpoints every job itself and keeps the trained model",
    "BackupAndRestore": "Epochly checkpoints every job itself and resumes it exactly",
    "CSVLogger": "Epochly records every epoch's logs (see /metrics and /log)",
    "TensorBoard": "Epochly records every epoch's logs (see /metrics, /events and /ui)",
    "ProgbarLogger": "Epochly reports progress itself (see /events)",
    "History": "Epochly records every epoch's logs (see /metrics)",
    "LearningRateScheduler": "give compile.optimizer.learning_rate a keras.optimizers.schedules object instead",
}


class EarlyStoppingSpec(BaseModel):
    """keras.callbacks.EarlyStopping with every argument it takes except `verbose`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"type": "EarlyStopping", "patience": 3}})

    type: Literal["EarlyStopping"]
    monitor: str = Field(default="val_loss", min_length=1, max_length=200)
    min_delta: float = Field(default=0.0, strict=True, ge=0.0, allow_inf_nan=False)
    patience: JsonInt = Field(default=0, ge=0, le=100_000)
    mode: MonitorMode = "auto"
    baseline: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    restore_best_weights: bool = False
    start_from_epoch: JsonInt = Field(default=0, ge=0, le=100_000)


class ReduceLROnPlateauSpec(BaseModel):
    """keras.callbacks.ReduceLROnPlateau with every argument it takes except `verbose`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"type": "ReduceLROnPlateau", "patience": 2}})

    type: Literal["ReduceLROnPlateau"]
    monitor: str = Field(default="val_loss", min_length=1, max_length=200)
    factor: float = Field(default=0.1, strict=True, gt=0.0, lt=1.0)
    patience: JsonInt = Field(default=10, ge=0, le=100_000)
    mode: MonitorMode = "auto"
    min_delta: float = Field(default=1e-4, strict=True, ge=0.0, allow_inf_nan=False)
    cooldown: JsonInt = Field(default=0, ge=0, le=100_000)
    min_lr: float = Field(default=0.0, strict=True, ge=0.0, allow_inf_nan=False)


class TerminateOnNaNSpec(BaseModel):
    """keras.callbacks.TerminateOnNaN: the job stops at the first NaN or infinite loss (Epochly always does)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"type": "TerminateOnNaN"}})

    type: Literal["TerminateOnNaN"]


class _RefusedCallback(BaseModel):
    """Any other `type`: refused at `fit.callbacks[i].type` with the reason."""

    model_config = ConfigDict(extra="allow")

    type: Any

    @field_validator("type", mode="before")
    @classmethod
    def _refuse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"give the callback's class name, one of {', '.join(ALLOWED_CALLBACKS)}")
        reason = _DONE_BY_EPOCHLY.get(value, "only callbacks that carry no code or server paths are accepted")
        raise ValueError(f"{value!r} is not allowed here ({reason}); allowed: {', '.join(ALLOWED_CALLBACKS)}")


def _callback_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ALLOWED_CALLBACKS else "Refused"


CallbackSpec = Annotated[
    Annotated[EarlyStoppingSpec, Tag("EarlyStopping")]
    | Annotated[ReduceLROnPlateauSpec, Tag("ReduceLROnPlateau")]
    | Annotated[TerminateOnNaNSpec, Tag("TerminateOnNaN")]
    | Annotated[_RefusedCallback, Tag("Refused")],
    Discriminator(_callback_tag),
    # The schema names only what is accepted; the refusing member exists for its error message.
    WithJsonSchema(
        {
            "oneOf": [{"$ref": f"#/components/schemas/{name}Spec"} for name in ALLOWED_CALLBACKS],
            "discriminator": {
                "propertyName": "type",
                "mapping": {name: f"#/components/schemas/{name}Spec" for name in ALLOWED_CALLBACKS},
            },
        }
    ),
]


class FitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": TUTORIAL_FIT})

    epochs: JsonInt = Field(default=1, ge=1, le=MAX_EPOCHS)
    batch_size: JsonInt = Field(default=32, ge=1, le=1_000_000)
    shuffle: bool = True
    validation_split: float = Field(default=0.0, strict=True, ge=0.0, lt=1.0)
    seed: Annotated[int, Field(ge=0, le=2**31 - 1), WHOLE] | None = Field(
        default=0, description="Same seed, same per-epoch losses."
    )
    steps_per_execution: Annotated[int, Field(ge=1, le=10_000), WHOLE] | None = Field(
        default=None,
        description="Batches run per call into the compiled train step. Default: sized to a few milliseconds "
        "of work, from 32 up to 1,024 batches for tiny models and never more than an epoch, with identical "
        "results. Cancel and progress act between executions, so 1 gives per-batch granularity.",
    )
    normalize: Literal["minmax", "standard"] | None = Field(
        default=None,
        description="Scale features with statistics of the training split; built into the saved model.",
    )
    validation_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="Another of your datasets, with the same sample shape, to validate on after each epoch "
        "(an alternative to validation_split).",
    )
    callbacks: list[CallbackSpec] = Field(
        default_factory=list,
        max_length=20,
        description='Keras callbacks as data: {"type": "EarlyStopping" | "ReduceLROnPlateau" | "TerminateOnNaN", **kwargs}.',
    )
    class_weight: dict[str, Annotated[float, Field(strict=True)]] | None = Field(
        default=None,
        json_schema_extra={"propertyNames": {"pattern": "^(0|[1-9][0-9]*)$"}},  # the class ids _class_ids takes
        max_length=100_000,
        description='Weights of the classes 0..n-1 in the loss, as in Keras, e.g. {"0": 1.0, "1": 3.0}.',
    )

    @field_validator("class_weight")
    @classmethod
    def _class_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for key, weight in value.items():
            if not key.isdigit() or str(int(key)) != key:
                raise ValueError(f"class {key!r} is not a class index: use 0, 1, 2, …")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"class {key}'s weight {weight} must be a finite number >= 0")
        ids = sorted(int(key) for key in value)
        if ids != list(range(len(ids))):
            raise ValueError(f"give a weight for every class from 0 to {max(ids)}, as Keras requires")
        return value


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
    queue: str = Field(
        default=DEFAULT_QUEUE,
        max_length=64,
        description="The queue the job waits in: one of the QUEUES setting. Only workers consuming it "
        "(WORKER_QUEUES, or Celery's -Q) take it, e.g. `gpu` for GPU machines",
    )
