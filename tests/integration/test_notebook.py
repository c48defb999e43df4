"""examples/tutorial.ipynb, executed in a real Jupyter kernel (nbclient + ipykernel) against a live
service: the tutorial's code with `model.fit` changed to `epochly_client.keras.fit`."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tutorial.ipynb"


def cell_text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def test_the_tutorial_notebook_trains_remotely_and_its_model_predicts_as_the_service(service, monkeypatch, tmp_path):
    monkeypatch.setenv("EPOCHLY_URL", service.url)
    monkeypatch.setenv("EPOCHLY_API_KEY", service.key)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    fitted = next(cell_text(cell) for cell in code if "epochly_client.keras.fit(model" in cell.source)
    epochs = re.findall(r"^Epoch (\d+)/20$", fitted, flags=re.M)
    assert epochs == [str(n) for n in range(1, 21)], fitted
    assert len(re.findall(r" - accuracy: \d\.\d{4} - loss: \d\.\d{4}$", fitted, flags=re.M)) == 20, fitted

    summary = "".join(cell_text(cell) for cell in code)
    accuracy = float(re.search(r"final accuracy: (\d\.\d+)", summary).group(1))
    assert accuracy >= 0.9, summary
    assert "'accuracy'" in summary and "'loss'" in summary
    difference = float(re.search(r"largest difference, local vs service: (\S+)", summary).group(1))
    assert difference <= 1e-6, summary
