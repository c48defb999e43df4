"""Schemathesis fuzzes every operation of the live service from its own /openapi.json.

Checked: no 5xx, every status code declared, every body and content type as declared.
The suite runs a CI-sized budget; `bench/fuzz.py` runs a larger one.
"""
import os

import pytest

from bench.fuzz import fuzz_all_operations

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
MAX_EXAMPLES = int(os.environ.get("EPOCHLY_FUZZ_EXAMPLES", "20"))


def test_api_has_no_server_errors_and_keeps_its_declared_schema(service):
    failures, operations, requests_sent = fuzz_all_operations(service.url, service.key, MAX_EXAMPLES)
    assert operations >= 12
    assert requests_sent >= operations * 3  # the fuzzer really ran
    assert failures == [], "\n\n".join(failures)
