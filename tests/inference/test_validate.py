import numpy as np
import pytest

from app.errors import InvalidInput
from app.inference.signature import ModelInput, Signature
from app.inference.validate import json_inputs

ONE = Signature((ModelInput("input_layer", (1,), "float32"),))
THREE = Signature((ModelInput("x", (3,), "float32"),))
TWO_INPUTS = Signature((ModelInput("age", (1,), "float32"), ModelInput("dose", (2,), "float32")))


def refusal(inputs, signature=THREE, max_rows=100) -> tuple[str, str]:
    with pytest.raises(InvalidInput) as info:
        json_inputs(inputs, signature, max_rows=max_rows)
    error = info.value.errors[0]
    return error.path, error.message


def test_rows_become_one_float32_array_per_input():
    arrays = json_inputs([[1, 2.5, 3], [4, 5, 6]], THREE, max_rows=10)
    assert list(arrays) == ["x"]
    assert arrays["x"].dtype == np.float32 and arrays["x"].tolist() == [[1, 2.5, 3], [4, 5, 6]]


def test_a_one_feature_model_also_takes_plain_numbers():
    assert json_inputs([20, [90.0]], ONE, max_rows=10)["input_layer"].tolist() == [[20.0], [90.0]]


@pytest.mark.parametrize(
    ("inputs", "path", "words"),
    [
        ([[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2]], "inputs[3]", "expected 3 values per row"),
        ([[1, 2, 3], [1, "abc", 3]], "inputs[1]", "at [1]: 'abc' is not a number"),
        ([[1, 2, 3], [1, True, 3]], "inputs[1]", "true is not a number"),
        ([[1, 2, 3], [None, 2, 3]], "inputs[1]", "None is not a number"),
        ([[1, 2, 3], [1, 2, float("inf")]], "inputs[1]", "not a finite number"),
        ([[1, 2, 3], 7], "inputs[1]", "expected a list"),
        ([], "inputs", "no rows"),
    ],
)
def test_bad_rows_are_named_by_row(inputs, path, words):
    got_path, message = refusal(inputs)
    assert got_path == path and words in message


def test_too_many_rows_names_the_first_row_over_the_limit():
    path, message = refusal([[1, 2, 3]] * 11, max_rows=10)
    assert path == "inputs[10]" and "at most 10" in message and "dataset_id" in message


def test_named_inputs_map_to_the_models_inputs():
    arrays = json_inputs({"age": [[20], [30]], "dose": [[1, 2], [3, 4]]}, TWO_INPUTS, max_rows=10)
    assert arrays["dose"].shape == (2, 2) and arrays["age"].shape == (2, 1)


@pytest.mark.parametrize(
    ("inputs", "path", "words"),
    [
        ({"age": [[20], [30], ["x"]], "dose": [[1, 2]] * 3}, "inputs.age[2]", "'x' is not a number"),
        ({"age": [[20]], "dose": [[1, 2, 3]]}, "inputs.dose[0]", "expected 2 values"),
        ({"age": [[20]]}, "inputs.dose", "missing"),
        ({"age": [[20]], "dose": [[1, 2]], "weight": [[1]]}, "inputs.weight", "no input named 'weight'"),
        ({"age": [[20], [21]], "dose": [[1, 2]]}, "inputs.dose", "has 1 rows but inputs.age has 2"),
        ([[20]], "inputs", "2 inputs"),
    ],
)
def test_named_input_errors_name_the_input_and_row(inputs, path, words):
    got_path, message = refusal(inputs, TWO_INPUTS)
    assert got_path == path and words in message
