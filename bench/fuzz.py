"""Fuzz every operation of a running Epochly service with schemathesis, from its own /openapi.json.

Checks: no 5xx, status codes as declared, content types as declared, bodies as declared.
Usage: python -m bench.fuzz [--examples 200]   (starts its own service on the embedded back end)
"""
import argparse

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz_all_operations(base_url: str, api_key: str, max_examples: int) -> tuple[list[str], int, int]:
    """Returns (failure reports, operations fuzzed, requests sent)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {api_key}"}
    failures: list[str] = []
    operations = 0
    requests_sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: schemathesis.Case) -> None:
            nonlocal requests_sent
            requests_sent += 1
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:  # one report per operation, then go on to the next
            failures.append(f"{operation.label}: {exc}")
    return failures, operations, requests_sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    from bench.harness import service

    with service("embedded", workers=0) as live:
        failures, operations, requests_sent = fuzz_all_operations(live.url, live.key, args.examples)
    print(f"fuzzed {operations} operations with {requests_sent} requests (up to {args.examples} each): {len(failures)} failing")
    for failure in failures:
        print(failure)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
