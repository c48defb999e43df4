"""Checks JSON inputs against the model's inputs in the API process, before anything reaches the
helper: every refusal names the input and the row (`inputs[3]`, `inputs.age[2]`)."""

import math
from typing import Any

import numpy as np

from app.errors import FieldError, InvalidInput
from app.inference.signature import ModelInput, Signature


def json_inputs(inputs: list[Any] | dict[str, Any], signature: Signature, *, max_rows: int) -> dict[str, np.ndarray]:
    """One array per model input, keyed by input name, all with the same number of rows."""
    names = [i.name for i in signature.inputs]
    if isinstance(inputs, dict):
        for key in inputs:
            if signature.input_named(key) is None:
                _refuse(f"inputs.{key}", f"the model has no input named {key!r} (its inputs: {', '.join(names)})")
        missing = [name for name in names if name not in inputs]
        if missing:
            _refuse(f"inputs.{missing[0]}", f"missing: the model takes inputs {', '.join(names)}")
        arrays = {i.name: _rows(f"inputs.{i.name}", inputs[i.name], i, max_rows) for i in signature.inputs}
    elif len(signature.inputs) > 1:
        _refuse("inputs", f"the model has {len(names)} inputs: send an object of rows by input name ({', '.join(names)})")
    else:
        only = signature.inputs[0]
        arrays = {only.name: _rows("inputs", inputs, only, max_rows)}
    counts = {name: len(a) for name, a in arrays.items()}
    first = names[0]
    for name, count in counts.items():
        if count != counts[first]:
            _refuse(
                f"inputs.{name}", f"has {count} rows but inputs.{first} has {counts[first]}; every input needs one row per sample"
            )
    return arrays


def _rows(path: str, rows: Any, spec: ModelInput, max_rows: int) -> np.ndarray:
    if not isinstance(rows, list):
        _refuse(path, "expected a list of rows")
    if not rows:
        _refuse(path, "no rows to predict")
    if len(rows) > max_rows:
        _refuse(
            f"{path}[{max_rows}]",
            f"too many rows: {len(rows):,} sent, JSON takes at most {max_rows:,}; send a dataset_id or a .npz / CSV file for more",
        )
    # A one-feature model also takes plain numbers as rows: [20, 90] for [[20], [90]].
    scalar_rows = spec.shape == (1,)
    for index, row in enumerate(rows):
        if scalar_rows and _is_number(row):
            _check_value(f"{path}[{index}]", row)
            continue
        problem = _problem(row, spec.shape, "")
        if problem:
            _refuse(f"{path}[{index}]", problem)
    if scalar_rows:
        rows = [[row] if _is_number(row) else row for row in rows]
    try:
        return np.asarray(rows, dtype=np.dtype(spec.dtype))
    except ValueError:  # ragged along a dimension the model leaves open (None)
        _refuse(path, "rows differ in shape; every row needs the same shape")
        raise


def _problem(value: Any, shape: tuple[int | None, ...], at: str) -> str | None:
    """What is wrong with one row (or part of one, `at` a position inside it like "[2]"), or None."""
    prefix = f"at {at}: " if at else ""
    if not shape:
        if not _is_number(value):
            return f"{prefix}{_show(value)} is not a number"
        if not math.isfinite(value):
            return f"{prefix}{_show(value)} is not a finite number"
        return None
    if not isinstance(value, list):
        return f"{prefix}expected a list of shape {_dims(shape)}, got {_show(value)}"
    if shape[0] is not None and len(value) != shape[0]:
        where = f"at {at}" if at else "per row"
        return f"expected {shape[0]} value{'s' if shape[0] != 1 else ''} {where} (sample shape {_dims(shape)}), got {len(value)}"
    for index, item in enumerate(value):
        problem = _problem(item, shape[1:], f"{at}[{index}]")
        if problem:
            return problem
    return None


def _check_value(path: str, value: Any) -> None:
    problem = _problem(value, (), "")
    if problem:
        _refuse(path, problem)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # not bool, although bool is an int


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 40 else text[:37] + "..."


def _dims(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _refuse(path: str, message: str) -> None:
    raise InvalidInput(f"{path}: {message}", [FieldError(path, message)])


def check_array(path: str, array: np.ndarray, spec: ModelInput, what: str) -> None:
    """A dataset's or a file's array against one model input (shape and numeric type)."""
    if array.dtype.kind not in "biuf":
        _refuse(path, f"{what} has dtype {array.dtype}; the model takes numbers")
    sample = tuple(int(d) for d in array.shape[1:])
    if len(sample) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, sample, strict=False)):
        _refuse(path, f"{what} has samples of shape {_dims(sample)} but the model takes {_dims(spec.shape)}")
    if len(array) == 0:
        _refuse(path, f"{what} has no rows")
