"""Fuzz every operation of a running Epochly service with schemathesis, from its own /openapi.json.

Every check, in every phase: examples, coverage, fuzzing, and the stateful phase, which follows the
document's links (a created dataset or job into the operations that take its id). The few checks
switched off for some operations, and why, are in bench/schemathesis.toml.
Usage: python -m bench.fuzz [--examples 200]   (starts its own service on the embedded back end)
"""

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass
class FuzzRun:
    returncode: int
    output: str

    def count(self, pattern: str) -> int:
        match = re.search(pattern, self.output)
        return int(match.group(1)) if match else 0

    @property
    def operations(self) -> int:
        return self.count(r"Tested: (\d+)")

    @property
    def requests(self) -> int:
        return self.count(r"(\d+) generated")

    @property
    def failures(self) -> int:
        return self.count(r"(\d+) failures?\b")

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.operations > 0


def fuzz_all_operations(base_url: str, api_key: str, max_examples: int) -> FuzzRun:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(CONFIG)),
        *("run", f"{base_url}/openapi.json", "--checks", "all", "--max-examples", str(max_examples), "--workers", "1"),
        *("--header", f"Authorization: Bearer {api_key}", "--request-timeout", "30"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    return FuzzRun(result.returncode, result.stdout + result.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    from bench.harness import service

    with service("embedded", workers=0) as live:
        run = fuzz_all_operations(live.url, live.key, args.examples)
    print(run.output)
    print(
        f"fuzzed {run.operations} operations with {run.requests} test cases (up to {args.examples} each): {run.failures} failing"
    )
    raise SystemExit(0 if run.passed else 1)


if __name__ == "__main__":
    main()
