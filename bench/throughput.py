"""Figure 7, throughput: many small jobs submitted at once, on 1 worker and then on 2 workers.

For each worker count a fresh live service on PostgreSQL + Redis is started (OWNER_MAX_ACTIVE_JOBS
raised so the per-owner limit does not refuse the burst). It gets the side-effects example dataset,
then --jobs small jobs (Dense 4 -> Dense 2, 1 epoch, batch 256) are all submitted concurrently from
one asyncio client. The client waits until no job is queued or running, then reads every job.

  jobs/min   = jobs / (last finished_at - the moment the first submit was sent) x 60
  run time   = finished_at - started_at of each job (the time inside the worker), median and p95
  overhead   = wall / (jobs / workers) - median run time: per-job time outside training
  submit     = seconds until every submit was answered (each submit runs the Keras spec check)
  scaling    = jobs/min with the most workers / jobs/min with the fewest

Target: every job finishes, none lost (every submitted id ends `succeeded`) and none run twice
(each job has exactly one attempt). Scaling is reported, not targeted: the workers share the
machine's cores with the API, PostgreSQL and Redis.
Usage: python -m bench.throughput [--jobs 200] [--workers 1,2] [--runs 1] [--timeout 3600]
"""
import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import datetime

import httpx

from bench.harness import LiveService, service

SMALL_JOB = {
    "model": {"layers": [{"type": "Dense", "units": 4, "activation": "relu"}, {"type": "Dense", "units": 2, "activation": "softmax"}]},
    "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 1, "batch_size": 256},
}
TERMINAL = {"succeeded", "failed", "cancelled"}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def all_jobs(client: httpx.AsyncClient) -> dict[str, dict]:
    jobs, cursor = {}, None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/jobs", params=params)).raise_for_status().json()
        jobs.update({job["id"]: job for job in page["items"]})
        if not (cursor := page["next_cursor"]):
            return jobs


async def active(client: httpx.AsyncClient) -> bool:
    for status in ("queued", "running"):
        if (await client.get("/v1/jobs", params={"status": status, "limit": 1})).raise_for_status().json()["items"]:
            return True
    return False


async def one_run(live: LiveService, dataset_id: str, n_jobs: int, workers: int, timeout_s: float) -> dict:
    limits = httpx.Limits(max_connections=n_jobs + 10, max_keepalive_connections=n_jobs + 10)
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, limits=limits, timeout=600) as client:
        spec = SMALL_JOB | {"dataset_id": dataset_id}
        start = time.time()
        responses = await asyncio.gather(*(client.post("/v1/jobs", json=spec) for _ in range(n_jobs)))
        submit_s = time.time() - start
        refused = [r for r in responses if r.status_code != 202]
        ids = [r.json()["id"] for r in responses if r.status_code == 202]
        deadline = time.monotonic() + timeout_s
        while await active(client) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
        jobs = await all_jobs(client)
    mine = [jobs[i] for i in ids if i in jobs]
    done = [j for j in mine if j["status"] in TERMINAL]
    succeeded = [j for j in mine if j["status"] == "succeeded"]
    run_times = [ts(j["finished_at"]) - ts(j["started_at"]) for j in succeeded]
    wall = max(ts(j["finished_at"]) for j in done) - start if done else float("nan")
    median_run = statistics.median(run_times) if run_times else float("nan")
    statuses: dict[str, int] = {}
    for job in mine:
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
    return {
        "submitted": n_jobs, "refused": len(refused), "refusals": sorted({f"{r.status_code} {r.text[:120]}" for r in refused})[:3],
        "all_finished": not refused and len(done) == n_jobs, "lost": n_jobs - len(succeeded),
        "run_twice": sum(len(j["attempts"]) > 1 for j in mine), "statuses": statuses, "submit_s": submit_s, "wall_s": wall,
        "jobs_per_min": len(done) / wall * 60 if done else 0.0,
        "run_s_median": median_run, "run_s_p95": percentile(run_times, 0.95) if run_times else float("nan"),
        "overhead_s": wall / (n_jobs / workers) - median_run if done else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, one fresh service each")
    parser.add_argument("--runs", type=int, default=1, help="bursts per worker count (medians are reported)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for one burst to finish")
    args = parser.parse_args()
    os.environ["OWNER_MAX_ACTIVE_JOBS"] = str(max(1000, args.jobs))
    cores = os.cpu_count()
    print(f"note: this machine has {cores} CPU cores shared by the workers, the API, PostgreSQL and Redis; "
          f"do not expect jobs/min to scale linearly with workers")
    counts = [int(w) for w in args.workers.split(",")]
    summary: dict[int, dict] = {}
    all_ok = True
    for workers in counts:
        results = []
        with service("postgres-redis", workers=workers) as live:
            dataset = httpx.post(f"{live.url}/v1/datasets/examples/side-effects", headers=live.headers, timeout=60).raise_for_status().json()
            for run in range(args.runs):
                r = asyncio.run(one_run(live, dataset["id"], args.jobs, workers, args.timeout))
                results.append(r)
                all_ok &= r["all_finished"] and r["lost"] == 0 and r["run_twice"] == 0
                print(
                    f"{workers} worker(s), run {run + 1}: {args.jobs} jobs submitted in {r['submit_s']:.1f} s "
                    f"({r['refused']} refused {r['refusals']}); statuses {r['statuses']}; lost {r['lost']}, run twice {r['run_twice']}; "
                    f"all done after {r['wall_s']:.1f} s = {r['jobs_per_min']:.1f} jobs/min; run time in worker median "
                    f"{r['run_s_median']:.2f} s, p95 {r['run_s_p95']:.2f} s; per-job overhead outside training {r['overhead_s']:.2f} s",
                    flush=True,
                )
        summary[workers] = {k: statistics.median(r[k] for r in results) for k in ("jobs_per_min", "submit_s", "run_s_median", "run_s_p95", "overhead_s")}
    lo, hi = min(counts), max(counts)
    scaling = summary[hi]["jobs_per_min"] / summary[lo]["jobs_per_min"] if summary[lo]["jobs_per_min"] else float("nan")
    per_count = ", ".join(f"{w} worker(s) {s['jobs_per_min']:.1f} jobs/min" for w, s in summary.items())
    print(f"throughput, {args.jobs} jobs, median of {args.runs} run(s): {per_count}; scaling {hi} vs {lo} workers x{scaling:.2f} "
          f"on {cores} cores; all finished, none lost, none run twice: {all_ok} (target: all three)")
    result = {"figure": "throughput", "jobs": args.jobs, "runs": args.runs, "cpu_cores": cores, "all_finished_none_lost_none_twice": all_ok}
    for w, s in summary.items():
        result |= {
            f"jobs_per_min_{w}_workers": round(s["jobs_per_min"], 1), f"submit_all_s_{w}_workers": round(s["submit_s"], 1),
            f"run_s_median_{w}_workers": round(s["run_s_median"], 3),
            f"run_s_p95_{w}_workers": round(s["run_s_p95"], 3), f"overhead_s_per_job_{w}_workers": round(s["overhead_s"], 3),
        }
    result |= {f"scaling_{hi}_vs_{lo}_workers": round(scaling, 2), "target": "all finish, none lost, none run twice; scaling reported only", "met": all_ok}
    print("RESULT: " + json.dumps(result))


if __name__ == "__main__":
    main()
