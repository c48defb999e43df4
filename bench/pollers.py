"""Figure 3, pollers: 200 concurrent clients polling `GET /v1/jobs/{id}` and `/metrics?after=N`
(alternately) against one API process on PostgreSQL. The load comes from wrk, a separate process.
Targets: ≥ 1,500 req/s with p99 ≤ 50 ms.
Usage: python -m bench.pollers [--connections 200] [--seconds 15] [--runs 3]
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time

import httpx

from bench.common import median, report
from bench.harness import service
from epochly_client.tutorial import TUTORIAL_JOB

LUA = """
local paths = {{"/v1/jobs/{job}", "/v1/jobs/{job}/metrics?after=10"}}
local i = 0
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1])
end
"""


def parse_wrk(output: str) -> tuple[float, float, int]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, p99_ms, int(errors.group(1)) if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    rates, p99s = [], []
    with service("postgres-redis") as live:
        with httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
            dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
            job_id = client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset_id}).json()["id"]
            while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(LUA.format(job=job_id, key=live.key))
            script.flush()
            for run in range(args.runs):
                output = subprocess.run(
                    ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", script.name, live.url],
                    capture_output=True, text=True, check=True,
                ).stdout
                rate, p99, errors = parse_wrk(output)
                assert errors == 0 and rate > 0, output
                rates.append(rate)
                p99s.append(p99)
                print(f"run {run + 1}: {rate:.0f} req/s, p99 {p99:.1f} ms")
    print(f"{args.connections} pollers: {median(rates):.0f} req/s (target >= 1500), p99 {median(p99s):.1f} ms (target <= 50 ms)")
    report({
        "figure": "3. pollers", "connections": args.connections, "req_per_s": round(median(rates)), "target_req_per_s": 1500,
        "p99_ms": round(median(p99s), 1), "target_p99_ms": 50, "met": median(rates) >= 1500 and median(p99s) <= 50,
    })


if __name__ == "__main__":
    main()
