"""Reproduce from the record: the Keras tutorial (20 epochs, shuffled, fit.seed null so the worker draws
the seed) through a real API, scheduler and worker, then POST /v1/jobs/{id}/rerun and the rerun through
the same worker. Measured: the maximum absolute difference of the per-epoch losses, rerun against
original, on the embedded default and on PostgreSQL + Redis. Target 0.0 on each.
Usage: python -m bench.rerun [--backends embedded,postgres-redis] [--epochs 20]
"""

import argparse
import sys
import time

import httpx

from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS
from bench.common import report
from bench.harness import service

TARGET_MAX_ABS_DIFF = 0.0
FINISHED = ("succeeded", "failed", "cancelled")


def wait_until_done(client: httpx.Client, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            if job["status"] != "succeeded":
                sys.exit(f"job {job_id} {job['status']}: {job['error']}")
            return job
        time.sleep(0.2)
    sys.exit(f"job {job_id} not finished after {timeout_s}s")


def losses(client: httpx.Client, job_id: str) -> list[float]:
    return [row["logs"]["loss"] for row in client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]


def measure(backend: str, epochs: int) -> dict:
    with service(backend) as live, httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        spec = {
            "dataset_id": dataset_id,
            "model": {"layers": TUTORIAL_LAYERS},
            "compile": TUTORIAL_COMPILE,
            "fit": {**TUTORIAL_FIT, "epochs": epochs, "shuffle": True, "seed": None},
        }
        original = wait_until_done(client, client.post("/v1/jobs", json=spec).json()["id"])
        queued = client.post(f"/v1/jobs/{original['id']}/rerun")
        queued.raise_for_status()
        rerun = wait_until_done(client, queued.json()["id"])
        first, again = losses(client, original["id"]), losses(client, rerun["id"])
        if len(first) != len(again):
            sys.exit(f"{backend}: the original has {len(first)} epochs, the rerun {len(again)}")
        return {
            "backend": backend,
            "epochs": len(first),
            "seed": original["record"]["seed"],
            "max_abs_loss_diff": max(abs(a - b) for a, b in zip(first, again, strict=True)),
            "versions_differ": rerun["versions_differ"],
            "same_as_original": rerun["same_as_original"],
            "device_kind": rerun["record"]["device_kind"],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="embedded,postgres-redis")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    results = []
    for backend in args.backends.split(","):
        result = measure(backend, args.epochs)
        print(
            f"{backend:15} {result['epochs']} epochs, drawn seed {result['seed']}, on {result['device_kind']}: "
            f"max |loss(rerun) - loss(original)| = {result['max_abs_loss_diff']!r} (target {TARGET_MAX_ABS_DIFF}), "
            f"versions_differ {result['versions_differ']}, same_as_original {result['same_as_original']}",
            flush=True,
        )
        results.append(result)
    met = all(r["max_abs_loss_diff"] <= TARGET_MAX_ABS_DIFF and r["same_as_original"] for r in results)
    report(
        {
            "figure": "rerun",
            **{f"max_abs_loss_diff_{r['backend']}": r["max_abs_loss_diff"] for r in results},
            "target": TARGET_MAX_ABS_DIFF,
            "met": met,
        }
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
