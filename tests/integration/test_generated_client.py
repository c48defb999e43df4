"""A client that openapi-python-client generates from the live service's /openapi.json predicts with a
model the real worker trained: JSON rows in, JSON out; a CSV file in, a .npy out."""

import importlib
import io

import httpx
import numpy as np
import pytest

from epochly_client import Client
from epochly_client.tutorial import TUTORIAL_JOB
from tests.api.test_openapi import generate_client

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def test_generated_client_predicts_from_json_rows_and_from_a_file(service, tmp_path, monkeypatch):
    document = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    generate_client(document, tmp_path, "epochly_live_client", monkeypatch)
    api = importlib.import_module("epochly_live_client")
    models = importlib.import_module("epochly_live_client.models")
    predict_job = importlib.import_module("epochly_live_client.api.inference.predict_job")
    predict_job_file = importlib.import_module("epochly_live_client.api.inference.predict_job_file")
    types = importlib.import_module("epochly_live_client.types")

    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
        job = client.wait(client.submit(TUTORIAL_JOB | {"fit": {**TUTORIAL_JOB["fit"], "epochs": 1}}, dataset_id=dataset.id).id)
        assert job.status == "succeeded"
        expected = np.array(client.predict(job.id, [[20.0], [90.0]]))

    with api.AuthenticatedClient(base_url=service.url, token=service.key) as generated:
        body = models.PredictJobPredictRequest.from_dict({"inputs": [[20.0], [90.0]]})
        rows = predict_job.sync(job.id, client=generated, body=body)
        assert isinstance(rows, models.PredictRead), rows
        assert np.allclose(rows.predictions, expected, atol=1e-6)

        upload = types.File(payload=io.BytesIO(b"age\n20\n90\n"), file_name="ages.csv", mime_type="text/csv")
        body = models.PredictJobFilePredictUpload(file=upload, format_=models.PredictJobFilePredictUploadFormat.NPY)
        response = predict_job_file.sync_detailed(job.id, client=generated, body=body)
        assert response.status_code == 200, response.content
        assert np.allclose(np.load(response.parsed.payload), expected, atol=1e-6)
