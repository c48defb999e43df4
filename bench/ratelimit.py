"""Figure 12, rate limiter overhead: the polling load of figure 3 (`GET /v1/jobs/{id}` and
`/metrics?after=N`, alternately) against one API process on PostgreSQL + Redis, with the per-key
limiter off (RATE_LIMIT_PER_MIN=0) and on (a limit too high to refuse anything, so every request
pays for the Redis token bucket and the RateLimit headers). Runs alternate off/on to share the noise.
Target: the limiter costs <= 5 % of the polling throughput.
Usage: python -m bench.ratelimit [--connections 50] [--seconds 10] [--runs 5]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.common import median, report
from bench.harness import service
from bench.pollers import parse_wrk
from epochly_client.tutorial import TUTORIAL_JOB

ON = 1_000_000_000  # requests a minute: never refused, always counted
# The job and its /metrics, alternately, with the bench key.
ALTERNATING = """
wrk.headers["Authorization"] = "Bearer {key}"
local paths = {{"/v1/jobs/{job}", "/v1/jobs/{job}/metrics?after=10"}}
local sent = 0
request = function()
  sent = sent + 1
  return wrk.format("GET", paths[sent % 2 + 1])
end
"""


def _job(live) -> str:
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        job_id = client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset_id}).json()["id"]
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
            time.sleep(0.2)
    return job_id


def _load(url: str, key: str, job_id: str, connections: int, seconds: int) -> float:
    """Requests per second, from wrk if installed, else from httpx threads (slower, but the same for both arms)."""
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(ALTERNATING.format(job=job_id, key=key))
            script.flush()
            output = subprocess.run(
                ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
                capture_output=True, text=True, check=True,
            ).stdout
        rate, _, errors = parse_wrk(output)
        assert errors == 0 and rate > 0, output
        return rate
    paths = [f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/metrics?after=10"]
    deadline = time.monotonic() + seconds

    def poll(_: int) -> int:
        done = 0
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            while time.monotonic() < deadline:
                assert client.get(paths[done % 2]).status_code == 200
                done += 1
        return done

    with ThreadPoolExecutor(connections) as pool:
        return sum(pool.map(poll, range(connections))) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(args.runs):
        for arm, limit in (("off", 0), ("on", ON)):
            os.environ["RATE_LIMIT_PER_MIN"] = str(limit)
            with service("postgres-redis") as live:
                job_id = _job(live)
                if arm == "on":
                    probe = httpx.get(f"{live.url}/v1/jobs/{job_id}", headers=live.headers)
                    assert probe.headers.get("RateLimit-Limit") == str(ON), probe.headers
                rate = _load(live.url, live.key, job_id, args.connections, args.seconds)
            rates[arm].append(rate)
            print(f"run {run + 1}, limiter {arm}: {rate:.0f} req/s", flush=True)
    off, on = median(rates["off"]), median(rates["on"])
    # Each run's pair shares that minute's noise: the cost is the median of the pairs' ratios.
    cost = max(0.0, 1 - median([b / a for a, b in zip(rates["off"], rates["on"], strict=True)]))
    print(f"polling with the limiter off: {off:.0f} req/s; on: {on:.0f} req/s; cost {cost:.1%} (target <= 5 %)")
    report({
        "figure": "12. rate limiter overhead", "tool": "wrk" if shutil.which("wrk") else "httpx",
        "connections": args.connections, "runs": args.runs, "off_req_per_s": round(off), "on_req_per_s": round(on),
        "cost_pct": round(100 * cost, 1), "target_cost_pct": 5, "met": cost <= 0.05,
    })
    sys.exit(0 if cost <= 0.05 else 1)


if __name__ == "__main__":
    main()
