"""What a sweep is asked to do: the base job spec, the search space over paths in it, the sampler,
pruner and objective. Pure pydantic and JSON, no Optuna and no Keras."""

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, model_validator

from app.json_schema import WHOLE, JsonInt
from app.settings import DEFAULT_QUEUE
from app.specs import TUTORIAL_COMPILE, TUTORIAL_LAYERS, CompileSpec, FitSpec, ModelSpec

MAX_TRIALS = 1000
MAX_GRID = MAX_TRIALS

Scalar = str | int | float | bool


class ChoiceSpec(BaseModel):
    """One of the listed values."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["choice"]
    values: list[Scalar | None] = Field(min_length=1, max_length=1000)


class UniformSpec(BaseModel):
    """A float between `low` and `high`: evenly (`uniform`) or evenly on a log scale (`loguniform`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["uniform", "loguniform"]
    low: float = Field(strict=True, allow_inf_nan=False)
    high: float = Field(strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> "UniformSpec":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a loguniform range must be above 0; low is {self.low}")
        return self


class IntSpec(BaseModel):
    """An integer from `low` to `high` inclusive, in steps of `step`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: JsonInt = Field(ge=-(2**31), le=2**31)
    high: JsonInt = Field(ge=-(2**31), le=2**31)
    step: JsonInt = Field(default=1, ge=1, le=2**31)

    @model_validator(mode="after")
    def _ordered(self) -> "IntSpec":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not be above high ({self.high})")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low ({self.high - self.low}) must be a multiple of step ({self.step})")
        return self

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


Distribution = Annotated[ChoiceSpec | UniformSpec | IntSpec, Discriminator("type")]
# model.layers[0].units: fields joined by dots, list items by [index], under model, compile or fit.
SEARCH_PATH_PATTERN = r"^(model|compile|fit)(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*)+$"
SearchPath = Annotated[str, StringConstraints(pattern=SEARCH_PATH_PATTERN, max_length=300)]


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=200, description="A key of the epoch logs, e.g. val_accuracy or loss")
    direction: Literal["maximize", "minimize"]


EXAMPLE_SWEEP: dict[str, Any] = {
    "dataset_id": "ds_5f1c0e3a9b2d4c6e8f0a1b2c3d4e5f60",
    "name": "tutorial: rate × width × batch",
    "model": {"layers": TUTORIAL_LAYERS},
    "compile": TUTORIAL_COMPILE,
    "fit": {"epochs": 30, "batch_size": 10, "validation_split": 0.2, "seed": 0, "normalize": "minmax"},
    "search": {
        "compile.optimizer.learning_rate": {"type": "choice", "values": [0.0001, 0.001, 0.01]},
        "model.layers[0].units": {"type": "choice", "values": [8, 16, 32]},
        "fit.batch_size": {"type": "choice", "values": [10, 32]},
    },
    "sampler": "grid",
    "pruner": "median",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "parallel": 2,
    "seed": 0,
}


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_SWEEP})

    dataset_id: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    queue: str = Field(
        default=DEFAULT_QUEUE, max_length=64, description="The queue every trial waits in: one of the QUEUES setting"
    )
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    search: dict[SearchPath, Distribution] = Field(
        min_length=1,
        max_length=50,
        description="A path in the spec (compile.optimizer.learning_rate, model.layers[0].units, fit.batch_size) "
        "→ the distribution its value is drawn from",
        # Every key must match the pattern (pydantic states it as patternProperties, which alone would
        # still allow other keys).
        json_schema_extra={"additionalProperties": False},
    )
    sampler: Literal["grid", "random", "tpe"] = Field(
        default="tpe",
        description="grid: every combination of the choice and int values, in a seeded order; random; "
        "tpe: Optuna's Tree-structured Parzen Estimator",
    )
    pruner: Literal["none", "median", "hyperband"] = Field(
        default="none",
        description="Stops a trial after an epoch whose objective falls behind the other trials' "
        "(median: Optuna's MedianPruner; hyperband: its HyperbandPruner)",
    )
    objective: Objective
    trials: Annotated[int, Field(ge=1, le=MAX_TRIALS), WHOLE] | None = Field(
        default=None,
        description="How many trials in all. Default: the grid's size for `grid`, otherwise 10",
    )
    parallel: JsonInt = Field(default=2, ge=1, le=100, description="How many trials may be queued or running at once")
    seed: JsonInt = Field(
        default=0, ge=0, le=2**31 - 1, description="Same seed, same sampled parameters (given the same results)"
    )

    def training_spec(self) -> dict[str, Any]:
        """The base spec as a job stores it: every field with its default, so every path a user may name is there."""
        return self.model_dump(mode="json", include={"model", "compile", "fit"})

    @property
    def trial_count(self) -> int:
        if self.trials is not None:
            return self.trials
        return grid_size(self.search) if self.sampler == "grid" else 10


def grid_size(search: dict[str, Any]) -> int:
    """How many combinations a grid has; 0 if a float range makes it endless."""
    size = 1
    for distribution in search.values():
        if isinstance(distribution, UniformSpec):
            return 0
        size *= len(grid_values(distribution))
        if size > MAX_GRID:
            return size
    return size


def grid_values(distribution: ChoiceSpec | IntSpec) -> list[Any]:
    return list(distribution.values) if isinstance(distribution, ChoiceSpec) else distribution.values()


_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")


def parse_path(path: str) -> list[str | int]:
    """`model.layers[0].units` → ["model", "layers", 0, "units"], for a path SEARCH_PATH_PATTERN matched."""
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def get_path(spec: Any, steps: list[str | int]) -> Any:
    """The value at `steps`; KeyError naming the first step that is missing."""
    node = spec
    for depth, step in enumerate(steps):
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise KeyError(depth)
        elif not isinstance(node, dict) or step not in node:
            raise KeyError(depth)
        node = node[step]
    return node


def set_paths(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `spec` with each path's value replaced."""
    result = copy.deepcopy(spec)
    for path, value in values.items():
        steps = parse_path(path)
        parent = get_path(result, steps[:-1])
        parent[steps[-1]] = value
    return result


def describe_missing(spec: dict[str, Any], steps: list[str | int], depth: int) -> str:
    """Why a path does not exist, in terms of what the base spec does have there."""
    shown = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps[:depth]).lstrip(".")
    node = get_path(spec, steps[:depth])
    step = steps[depth]
    if isinstance(step, int):
        if isinstance(node, list):
            return f"{shown} has {len(node)} item(s); there is no [{step}]"
        return f"{shown} is not a list"
    if isinstance(node, dict):
        fields = ", ".join(sorted(k for k, v in node.items() if v is not None)[:20])
        return f"{shown or 'the spec'} has no {step!r}" + (f" (it has {fields})" if fields else "")
    return f"{shown} is {node!r}, not an object: give it as an object to search inside it"


def corner_values(distribution: ChoiceSpec | UniformSpec | IntSpec) -> list[Any]:
    """The values at the edges of a distribution (every value of a choice): if the spec is valid with
    each, it is valid with any value drawn between them."""
    if isinstance(distribution, ChoiceSpec):
        return list(distribution.values)
    if isinstance(distribution, IntSpec):
        return sorted({distribution.low, distribution.high})
    return [distribution.low, distribution.high]
