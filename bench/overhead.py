"""Figure 1, overhead: the tutorial job through the service against the same `model.fit` in a
plain in-process script, same data and seed, in one run.

Job wall = the job's `finished_at − started_at` as the service records it (on PostgreSQL + Redis,
one warm worker). Submit → first epoch visible = when a poller of `/metrics` first sees epoch 1,
minus that epoch's own duration. Targets: job wall / raw fit ≤ 1.05; first-epoch latency ≤ 0.5 s.
Usage: python -m bench.overhead [--runs 3]
"""
import argparse
import time
from datetime import datetime

import httpx

from app.examples import side_effects
from bench.common import median, report, tutorial_plain_fit
from bench.harness import service
from epochly_client.tutorial import TUTORIAL_JOB


def seconds_between(start: str, end: str) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def one_job(client: httpx.Client, dataset_id: str) -> tuple[float, float]:
    submitted = time.perf_counter()
    job_id = client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset_id}).json()["id"]
    first_seen = None
    while True:
        metrics = client.get(f"/v1/jobs/{job_id}/metrics", params={"after": 0}).json()
        if first_seen is None and metrics["epochs"]:
            first_seen = time.perf_counter() - submitted - metrics["epochs"][0]["duration_s"]
        if metrics["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.005)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    return seconds_between(job["started_at"], job["finished_at"]), first_seen or 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    x, y = side_effects()
    raw, walls, first = [], [], []
    with service("postgres-redis") as live, httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        for run in range(args.runs):
            raw.append(tutorial_plain_fit(x, y)[0])
            wall, latency = one_job(client, dataset_id)
            walls.append(wall)
            first.append(latency)
            print(f"run {run + 1}: raw fit {raw[-1]:.2f} s, job wall {wall:.2f} s, submit→first epoch overhead {latency * 1000:.0f} ms")
    ratio = median(walls) / median(raw)
    print(f"job wall / raw fit = {ratio:.2f} (target <= 1.05); first epoch visible {median(first) * 1000:.0f} ms after one epoch (target <= 500 ms)")
    report({
        "figure": "1. overhead", "job_wall_over_raw_fit": round(ratio, 2), "target_ratio": 1.05,
        "first_epoch_overhead_ms": round(median(first) * 1000), "target_first_epoch_overhead_ms": 500,
        "met": ratio <= 1.05 and median(first) <= 0.5,
    })


if __name__ == "__main__":
    main()
