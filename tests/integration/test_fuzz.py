"""Schemathesis fuzzes every operation of the live service from its own /openapi.json.

Every check in every phase, the stateful one included (bench/schemathesis.toml says which check is
off where, and why). The suite runs a CI-sized budget; `bench/fuzz.py` runs a larger one.
"""

import os

import pytest

from bench.fuzz import fuzz_all_operations

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
MAX_EXAMPLES = int(os.environ.get("EPOCHLY_FUZZ_EXAMPLES", "10"))


def test_api_passes_every_schemathesis_check_in_every_phase(service):
    run = fuzz_all_operations(service.url, service.key, MAX_EXAMPLES)
    assert run.passed, run.output
    assert run.failures == 0
    assert run.operations >= 12
    assert run.requests >= run.operations * 3  # the fuzzer really ran
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.output, run.output
