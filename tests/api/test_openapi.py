"""The OpenAPI document says exactly what the service does, and real tools read it: a validator, a
client generator (whose client then talks to the service), and the pages at /docs and /redoc."""

import asyncio
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from openapi_spec_validator import validate

from app.api.routes.owner_events import _events as owner_events
from app.events.hub import EventHub
from app.repositories.pagination import CURSOR_PATTERN
from tests.api.test_jobs import tutorial_job

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
MISSING_DATASET = "ds_" + "0" * 32


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_document_passes_openapi_spec_validator(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_error_response_is_a_problem_as_problem_json(document):
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and (path, status) != ("/health", "503"):
                assert response["content"] == PROBLEM, (method, path, status)


def test_401_is_declared_exactly_where_a_key_is_needed(document):
    for method, path, operation in operations(document):
        needs_key = path not in {"/health", "/health/live"}
        assert ("401" in operation["responses"]) == needs_key, (method, path)
        assert bool(operation.get("security")) == needs_key, (method, path)


def test_model_download_is_binary_and_keras_json_a_string_or_an_object(document):
    model = document["paths"]["/v1/jobs/{job_id}/model"]["get"]["responses"]["200"]["content"]
    assert model == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    keras_json = document["components"]["schemas"]["ModelSpec"]["properties"]["keras_json"]
    assert {branch["type"] for branch in keras_json["anyOf"]} == {"string", "object", "null"}


def test_creates_link_the_new_id_to_every_operation_that_takes_it(document):
    by_id = {operation["operationId"]: (path, operation) for _, path, operation in operations(document)}
    creates = (("/v1/datasets", "201", "dataset_id"), ("/v1/jobs", "202", "job_id"), ("/v1/sweeps", "202", "sweep_id"))
    for path, status, parameter in creates:
        links = document["paths"][path]["post"]["responses"][status]["links"]
        taking_it = {
            operation_id
            for operation_id, (_, operation) in by_id.items()
            if any(p["name"] == parameter for p in operation.get("parameters", []))
        }
        assert {link["operationId"] for link in links.values()} == taking_it
        for link in links.values():
            assert link["parameters"] == {parameter: "$response.body#/id"}


def test_a_cursor_of_the_documented_shape_is_accepted_and_any_other_is_422(client, document):
    parameter = next(p for p in document["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "cursor")
    assert parameter["schema"]["anyOf"][0]["pattern"] == CURSOR_PATTERN
    assert "microseconds" in parameter["description"]
    names_no_row = "1795608000000000.job_" + "f" * 32
    assert client.get("/v1/jobs", params={"cursor": names_no_row}).status_code == 200
    response = client.get("/v1/datasets", params={"cursor": names_no_row + "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_405_allows_every_method_of_the_path(client):
    response = client.put("/v1/datasets")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert client.delete("/v1/jobs").headers["allow"] == "GET, POST"


def generate_client(document: dict, folder: Path, package: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package openapi-python-client generates from `document`, written to folder/package, with
    every one of its modules imported. Ruff, which formats the generator's output, lives next to this
    interpreter."""
    schema_file = folder / "openapi.json"
    schema_file.write_text(json.dumps(document))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema_file)]
    command += ["--output-path", str(folder / package), "--meta", "none", "--fail-on-warning"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "warning" not in output.lower(), output
    monkeypatch.syspath_prepend(str(folder))
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(module.name)  # 0.29.1 once wrote a predict_job.py that raised NameError here
    return folder / package


def test_generated_client_covers_every_operation_and_parses_a_404_into_its_problem(client, document, tmp_path, monkeypatch):
    package = generate_client(document, tmp_path, "epochly_generated", monkeypatch)
    generated = {module.stem for module in package.glob("api/*/*.py") if module.stem != "__init__"}
    assert generated == {operation["operationId"] for _, _, operation in operations(document)}

    api = importlib.import_module("epochly_generated")
    create_job = importlib.import_module("epochly_generated.api.jobs.create_job")
    models = importlib.import_module("epochly_generated.models")
    generated_client = api.Client(base_url=str(client.base_url))
    generated_client.set_httpx_client(client)  # the in-process app, with this test's key
    response = create_job.sync_detailed(client=generated_client, body=models.JobCreate.from_dict(tutorial_job(MISSING_DATASET)))
    assert response.status_code == 404
    problem = response.parsed
    assert isinstance(problem, models.Problem)
    assert problem.title == "Dataset not found"
    assert [(e.path, e.message) for e in problem.errors] == [("dataset_id", f"no dataset with id {MISSING_DATASET!r}")]


def test_every_request_body_has_one_media_type(document):
    """A generated client's operation takes one typed body: 0.29.1 generates one that does not
    import for an operation with two."""
    for method, path, operation in operations(document):
        if "requestBody" in operation:
            assert len(operation["requestBody"]["content"]) == 1, (method, path)


def test_the_schema_says_what_the_service_refuses_for_predict_sources_and_empty_datasets(client, document):
    """schemathesis sent these schema-valid bodies and met 422s: the schema now refuses them too."""
    predict = document["paths"]["/v1/jobs/{job_id}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    valid = jsonschema.Draft202012Validator(predict).is_valid
    assert valid({"inputs": [[20.0]]}) and valid({"dataset_id": "ds_x"}) and valid({"inputs": [[20.0]], "dataset_id": None})
    for body in ({"inputs": [[20.0]], "dataset_id": "ds_x"}, {}, {"inputs": None}):
        assert not valid(body), body
        assert client.post("/v1/jobs/job_nope/predict", json=body).status_code == 422, body
    upload = document["components"]["schemas"]["Body_create_dataset"]["properties"]["file"]
    assert upload["minLength"] == 1
    assert client.post("/v1/datasets", files={"file": ("empty.csv", b"")}).status_code == 422


def sse_events(text: str) -> list[dict]:
    """Each event of a stream as an SSE parser reads it (what schemathesis validates): its fields,
    `retry` a number; comments left out."""
    events = []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = int(value) if key == "retry" else fields.get(key, "") + value
        if fields:
            events.append(fields)
    return events


def test_every_event_a_stream_sends_matches_the_event_schema_its_operation_declares(client, document, example_dataset):
    """schemathesis reads a 3.1 stream's schema as each event's; {"type": "string"} refused them all."""

    def check(path: str, events: list[dict]) -> None:
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
        assert events
        for event in events:
            jsonschema.validate(event, schema)

    async def first_owner_frame() -> bytes:
        frames = owner_events(SimpleNamespace(hub=EventHub(owner_of=lambda job_id: "alice")), "alice", "key_1")
        try:
            return await anext(frames)
        finally:
            await frames.aclose()

    owner_stream = sse_events(asyncio.run(first_owner_frame()).decode())
    assert owner_stream[0] == {"retry": 1000, "event": "ready", "data": "{}"}
    check("/v1/events", owner_stream)
    job_id = client.post("/v1/jobs", json=tutorial_job(example_dataset["id"])).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    job_stream = sse_events(client.get(f"/v1/jobs/{job_id}/events").text)  # a finished job's stream ends
    assert [e["event"] for e in job_stream][-1] == "end"
    check("/v1/jobs/{job_id}/events", job_stream)


def test_docs_and_redoc_are_served_by_the_service_with_no_outside_url(client):
    docs = client.get("/docs").text
    redoc = client.get("/redoc").text
    for page in (docs, redoc):
        assert "http://" not in page and "https://" not in page
    assert 'src="/docs-assets/swagger-ui-bundle.js"' in docs and "validatorUrl" in docs
    assert 'src="/redoc-assets/redoc.standalone.js"' in redoc
    bundle = client.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    # Swagger UI reads OpenAPI 3.1 from 5.0 on; 4.x said "Unable to render this definition".
    vendored = (Path(__file__).resolve().parents[2] / "app/static/vendor/README.md").read_text()
    assert "| `swagger-ui-dist` (Apache-2.0) | 5." in vendored
    assert client.get("/redoc-assets/redoc.standalone.js").status_code == 200


def test_integer_parameters_declare_their_bounds_as_json_schema_keywords(document):
    """A validator placed before Query(...) once turned `minimum` into an unknown `ge` key, and
    schemathesis then sent `limit=-67` as a valid request."""
    integers = [
        (path, parameter)
        for _, path, operation in operations(document)
        for parameter in operation.get("parameters", [])
        if parameter["schema"].get("type") == "integer"
    ]
    assert len(integers) >= 6
    for path, parameter in integers:
        schema = parameter["schema"]
        assert not {"ge", "le", "gt", "lt"} & set(schema), (path, parameter)
        assert "minimum" in schema and "maximum" in schema, (path, parameter)
