"""Request and response bodies of /v1/jobs/{id}/evaluate and /v1/jobs/{id}/predict."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.json_schema import exactly_one_of

EXAMPLE_DATASET_ID = "ds_5f1c0e3a9b2d4c6e8f0a1b2c3d4e5f60"


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"dataset_id": EXAMPLE_DATASET_ID}})

    dataset_id: str = Field(max_length=40, description="One of your datasets, with samples of the shape the model takes")


class EvaluateRead(BaseModel):
    """`loss`, then one number per compiled metric under its Keras name, as `model.evaluate` returns them."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": {"loss": 0.2824, "accuracy": 0.9286, "samples": 2100}})
    __pydantic_extra__: dict[str, float] = Field(init=False)

    loss: float
    samples: int = Field(description="How many samples were evaluated")


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"inputs": [[20.0], [90.0]]}, {"dataset_id": EXAMPLE_DATASET_ID, "format": "npy"}],
            **exactly_one_of("inputs", "dataset_id"),  # what _one_source checks
        },
    )

    inputs: list[Any] | dict[str, list[Any]] | None = Field(
        default=None,
        description="Rows of raw features, `[[...], ...]`, or for a model with several inputs an object of rows "
        "by input name. Answered as JSON; up to PREDICT_MAX_JSON_ROWS rows (default 10,000)",
    )
    dataset_id: str | None = Field(
        default=None, max_length=40, description="Predict on one of your datasets' features instead; answered as a file"
    )
    format: Literal["npy", "csv"] = Field(default="npy", description="With dataset_id: the file to answer with")

    @model_validator(mode="after")
    def _one_source(self) -> "PredictRequest":
        if (self.inputs is None) == (self.dataset_id is None):
            raise ValueError("send either inputs or dataset_id")
        return self


class PredictUpload(BaseModel):
    file: bytes = Field(
        description=".npz (array `x`, or one array per input name), .npy, or CSV with a header row and only feature columns"
    )
    format: Literal["npy", "csv"] | None = Field(
        default=None, description="The file to answer with; default .npy, or CSV for a CSV upload"
    )


class PredictRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"predictions": [[0.93, 0.07], [0.04, 0.96]]}})

    predictions: list[Any] | dict[str, list[Any]] = Field(
        description="One row per input row, as `model.predict` returns it; an object by output name for several outputs"
    )
