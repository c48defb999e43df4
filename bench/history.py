"""Figure 14, long histories: a finished job of 100,000 epochs (the cap), read in pages.

On PostgreSQL + Redis, one API process. The job's rows are written directly (training 100,000
epochs would take the benchmark's whole budget). Measured: the time to read the whole history
through `/metrics` in pages of 10,000 and of 1,000, through `/log` (streamed), and through a replay
of `/events`; and the API's peak memory (VmHWM) before and after, which must not grow by anything
like the history's size. Usage: python -m bench.history [--epochs 100000]
"""
import argparse
import time

import httpx

from bench.common import report
from bench.harness import service
from bench.pollers import store_finished_jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100_000)
    args = parser.parse_args()
    with service("postgres-redis", env={"RATE_LIMIT_PER_MIN": str(10**9)}) as live, httpx.Client(
        base_url=live.url, headers=live.headers, timeout=300
    ) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        store_finished_jobs(live.database_url, "bench", dataset_id, 1, args.epochs)
        job_id = client.get("/v1/jobs").json()["items"][0]["id"]
        peak_before = live.api_peak_rss_bytes()
        timings = {}
        for limit in (10_000, 1_000):
            started, after, rows = time.perf_counter(), 0, 0
            while True:
                page = client.get(f"/v1/jobs/{job_id}/metrics", params={"after": after, "limit": limit}).json()
                rows += len(page["epochs"])
                if not page["more"]:
                    break
                after = page["epochs"][-1]["epoch"]
            timings[f"metrics_pages_of_{limit}_s"] = round(time.perf_counter() - started, 2)
            assert rows == args.epochs, rows
        started = time.perf_counter()
        with client.stream("GET", f"/v1/jobs/{job_id}/log") as response:
            lines = sum(chunk.count("\n") for chunk in response.iter_text())
        timings["log_s"] = round(time.perf_counter() - started, 2)
        assert lines == args.epochs, lines
        started, epochs = time.perf_counter(), 0
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            for line in response.iter_lines():
                epochs += line == "event: epoch"
                if line == "event: end":
                    break
        timings["events_replay_s"] = round(time.perf_counter() - started, 2)
        assert epochs == args.epochs, epochs
        peak_after = live.api_peak_rss_bytes()
    grown_mib = (peak_after - peak_before) / 2**20
    print(f"{args.epochs} epochs: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    print(f"API peak memory {peak_before / 2**20:.0f} MiB before, {peak_after / 2**20:.0f} MiB after (+{grown_mib:.0f} MiB)")
    report({"figure": "14. long histories", "epochs": args.epochs, **timings, "api_peak_mib": round(peak_after / 2**20),
            "api_peak_growth_mib": round(grown_mib, 1), "met": grown_mib < 50})


if __name__ == "__main__":
    main()
