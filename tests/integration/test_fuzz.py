"""Schemathesis fuzzes every operation of the live service from its own /openapi.json.

Every check in every phase, the stateful one included (bench/schemathesis.toml says which check is
off where, and why). The suite runs a CI-sized budget; `bench/fuzz.py` runs a larger one.
"""

import os

import pytest

from app.admin import create_api_key
from bench.fuzz import fuzz_all_operations

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
MAX_EXAMPLES = int(os.environ.get("EPOCHLY_FUZZ_EXAMPLES", "10"))


def test_api_passes_every_schemathesis_check_in_every_phase(service, backend):
    # An owner of its own: the fuzzer may revoke its key (DELETE /v1/keys/{id} takes the caller's own),
    # which must not lock the tests that share this service out.
    run = fuzz_all_operations(service.url, create_api_key("fuzzer", backend), MAX_EXAMPLES)
    assert run.passed, run.output
    assert run.failures == 0
    assert run.operations >= 12
    assert run.requests >= run.operations * 3  # the fuzzer really ran
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.output, run.output
