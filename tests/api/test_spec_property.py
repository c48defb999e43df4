"""The invariant, tested by generation: nothing Keras itself builds gets a 5xx at submit. A drawn
model and compile spec (tests/spec_grammar.py) is either accepted (202) or refused with a 422 that
names the field and says why. SPEC_PROPERTY_EXAMPLES sets how many (500 by default); with CI=true the
draws are the same on every run. bench/spec_property.py runs more."""

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, event, given, settings

from tests.conftest import authed_client, embedded_settings
from tests.spec_grammar import Example, examples, outcome, upload_datasets

EXAMPLES = int(os.environ.get("SPEC_PROPERTY_EXAMPLES", "500"))


@dataclass
class Service:
    client: TestClient
    dataset_ids: dict[tuple[str, str], str]
    outcomes: Counter[str]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One in-process API and its datasets for every example. Accepted jobs stay queued (no worker
    runs here), so the owner's limit on active jobs is lifted, or it would refuse the 21st."""
    settings_ = embedded_settings(tmp_path_factory.mktemp("spec-property")).model_copy(update={"owner_max_active_jobs": 10**6})
    with authed_client(settings_) as client:
        service = Service(client, upload_datasets(client), Counter())
        yield service
    print(f"\nspec property: {sum(service.outcomes.values())} examples, {dict(service.outcomes)}")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI", "").lower() == "true",
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # not explain: minutes of Keras builds on a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(example=examples())
def test_every_model_keras_builds_is_accepted_or_refused_with_a_path(service: Service, example: Example) -> None:
    response = service.client.post("/v1/jobs", json=example.spec(service.dataset_ids))
    status, where = outcome(response)
    service.outcomes[f"{status} {where}".strip()] += 1
    event(status)
    assert status in ("202", "422"), f"{status}: {where}"


def test_an_optimizer_a_name_alone_cannot_make_is_refused_at_compile_optimizer(service: Service) -> None:
    """Found by the property: Keras' own get('lossscaleoptimizer') raises KeyError('inner_optimizer'),
    which the service answered at `compile`, with the bare key as its message."""
    spec = {
        "dataset_id": service.dataset_ids[("flat", "value")],
        "model": {"layers": [{"type": "Dense", "units": 1}]},
        "compile": {"optimizer": "lossscaleoptimizer", "loss": "mse"},
    }
    response = service.client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["path"] == "compile.optimizer" and "inner_optimizer" in error["message"], error
