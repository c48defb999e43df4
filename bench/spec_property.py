"""The submit-time invariant of tests/api/test_spec_property.py, run longer: drawn Keras models and
compile specs (tests/spec_grammar.py) through POST /v1/jobs of an in-process API on the embedded back
end. Counts 202, 422 and everything else (a 5xx, a 422 naming no field, an exception raised by the
app), the time per example, and writes each failing spec to --failures.
Target: 0 of anything but 202 and a 422 with a path and a message.
Usage: python -m bench.spec_property [--examples 5000] [--seed 0] [--failures spec_property_failures.json]
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from bench.common import report
from tests.conftest import authed_client, embedded_settings
from tests.spec_grammar import Example, examples, outcome, upload_datasets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failures", type=Path, default=Path("spec_property_failures.json"))
    args = parser.parse_args()
    outcomes: Counter[str] = Counter()
    forms: Counter[str] = Counter()  # by outcome and model form
    fields: Counter[str] = Counter()  # the field each 422 names
    submit_s: Counter[str] = Counter()  # seconds in POST /v1/jobs, by outcome and model form
    failures: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        # Accepted jobs stay queued (no worker runs), so the owner's limit on active jobs is lifted.
        service_settings = embedded_settings(Path(folder)).model_copy(update={"owner_max_active_jobs": 10**6})
        with authed_client(service_settings) as client:
            dataset_ids = upload_datasets(client)

            # Generation only: a failure is counted and kept, not shrunk, so the run goes on to the end.
            @seed(args.seed)
            @settings(
                max_examples=args.examples,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(example=examples())
            def submit(example: Example) -> None:
                spec = example.spec(dataset_ids)
                posted = time.perf_counter()
                try:
                    status, where = outcome(client.post("/v1/jobs", json=spec))
                except Exception as exc:  # the in-process app raises what a server would answer 500 to
                    status, where = "500", f"raised {type(exc).__name__}: {exc}"
                submit_s[f"{status} {example.form}"] += time.perf_counter() - posted
                outcomes[status] += 1
                forms[f"{status} {example.form}"] += 1
                if status == "422":
                    fields[where] += 1
                elif status != "202":
                    failures.append({"form": example.form, "status": status, "response": where, "spec": spec})

            started = time.perf_counter()
            submit()
            elapsed = time.perf_counter() - started
    total = sum(outcomes.values())
    args.failures.write_text(json.dumps(failures, indent=1))
    print(f"{total} examples in {elapsed:.0f} s ({1000 * elapsed / max(total, 1):.0f} ms each): {dict(outcomes)}")
    for key in sorted(forms):
        print(f"  {key}: {forms[key]}, {1000 * submit_s[key] / forms[key]:.0f} ms per submit")
    print("422 by field:", ", ".join(f"{field} {count}" for field, count in fields.most_common()))
    for failure in failures[:5]:
        print(f"  {failure['form']}: {failure['status']} {failure['response'][:300]}")
    report(
        {
            "examples": total,
            "accepted_202": outcomes["202"],
            "refused_422": outcomes["422"],
            "other": total - outcomes["202"] - outcomes["422"],
            "wall_s": round(elapsed, 1),
            "submit_s": round(sum(submit_s.values()), 1),
            "ms_per_example": round(1000 * elapsed / max(total, 1)),
            "target_other": 0,
        }
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
