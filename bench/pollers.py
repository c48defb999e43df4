"""Figure 3, pollers, measured against a bare endpoint in the same run.

One API process each: a bare FastAPI app (bench/bare_app.py, a fixed body of a job's size, the same
uvicorn command, access log included) and Epochly on PostgreSQL + Redis, while a long tutorial job trains. wrk with
the bearer header, in turn: the bare endpoint, `GET /v1/jobs/{id}`, `GET /v1/jobs/{id}/metrics?after=N`
(N is the newest epoch when wrk starts, so it lags by up to 100 by the end), at 200 and at 50 connections; then `GET /v1/jobs?limit=50` over 50
stored jobs of 300 epochs each. Targets: at 200 connections each job route ≥ 30 % of the bare
req/s and the list ≥ 10 %; at 50 connections p99 ≤ 50 ms on both job routes; no non-2xx answer and none slower than 5 s from Epochly.
Usage: python -m bench.pollers [--seconds 10] [--runs 3]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import median, report
from bench.harness import service
from epochly_client.tutorial import TUTORIAL_JOB

LUA = """
wrk.headers["Authorization"] = "Bearer {key}"
request = function() return wrk.format("GET", "{path}") end
"""


def parse_wrk(output: str) -> tuple[float, float, int]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return rate, p99_ms, failed


def wrk(url: str, path: str, key: str, connections: int, seconds: int) -> tuple[float, float, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(LUA.format(key=key, path=path))
        script.flush()
        output = subprocess.run(
            # A request slower than 5 s is a failure (the bound for any route), not wrk's default 2 s.
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout
    return parse_wrk(output)


def bare_server(body_bytes: int, log: Path) -> tuple[subprocess.Popen, str]:
    """The bare app under the very command that serves Epochly's API (app/serve.py), access log
    included, its output going to a file as the harness sends the API's."""
    from bench.asgi_servers import start  # that module measures with this one's wrk

    return start("uvicorn", "bench.bare_app:app", False, {**os.environ, "BARE_BODY_BYTES": str(body_bytes)}, log, "/bare", {})


def store_finished_jobs(database_url: str, owner_name: str, dataset_id: str, count: int, epochs: int) -> None:
    """Jobs as the worker leaves them (status, history, epoch rows), written directly: training 50
    jobs of 300 epochs would take the whole benchmark's time."""
    from sqlalchemy import insert, select

    from app.db import make_engine, make_session_factory, session_scope
    from app.models import EpochMetric, Job, JobEvent, Owner

    factory = make_session_factory(make_engine(database_url))
    with session_scope(factory) as session:
        owner_id = session.scalar(select(Owner.id).where(Owner.name == owner_name))
        start = datetime.now(UTC) - timedelta(hours=1)
        for n in range(count):
            logs = {"loss": 0.28, "accuracy": 0.93}
            job = Job(
                owner_id=owner_id, name=f"stored {n}", tags={}, dataset_id=dataset_id, spec={"dataset_id": dataset_id, **TUTORIAL_JOB},
                status="succeeded", created_at=start + timedelta(seconds=n), started_at=start, finished_at=start,
                epochs_total=epochs, epochs_completed=epochs, latest=logs, attempts=[], stop_reason="completed",
            )
            session.add(job)
            session.flush()
            for status, message in (("queued", "submitted"), ("running", "started"), ("succeeded", f"trained {epochs} epochs")):
                session.add(JobEvent(job_id=job.id, status=status, message=message, at=start))
            rows = [{"job_id": job.id, "epoch": e, "logs": logs, "duration_s": 0.1, "finished_at": start} for e in range(1, epochs + 1)]
            session.execute(insert(EpochMetric), rows)


def target(name: str, client: httpx.Client, job_id: str, bare_url: str, live_url: str) -> tuple[str, str]:
    if name == "bare":
        return bare_url, "/bare"
    if name == "job":
        return live_url, f"/v1/jobs/{job_id}"
    if name == "list":
        return live_url, "/v1/jobs?limit=50"
    # `after` is the newest epoch when wrk starts: at ~10 epochs a second, a poller lags by up to
    # 100 epochs by the end of a 10 s run, as the target puts it.
    newest = client.get(f"/v1/jobs/{job_id}").json()["epochs_completed"]
    return live_url, f"/v1/jobs/{job_id}/metrics?after={newest}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    figures: dict[str, list[tuple[float, float, int]]] = {}
    # One key polls at thousands of requests a second: the limiter stays on (its cost is measured)
    # but with a limit no run reaches.
    with service("postgres-redis", env={"RATE_LIMIT_PER_MIN": str(10**9)}) as live, httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        store_finished_jobs(live.database_url, "bench", dataset_id, 50, 300)
        # Long enough to train through every run (the tutorial's epoch takes about 0.1 s); cancelled at the end.
        job = TUTORIAL_JOB | {"dataset_id": dataset_id, "fit": {**TUTORIAL_JOB["fit"], "epochs": 50_000}}
        job_id = client.post("/v1/jobs", json=job).json()["id"]
        while client.get(f"/v1/jobs/{job_id}").json()["epochs_completed"] < 20:
            time.sleep(0.2)
        body_bytes = len(client.get(f"/v1/jobs/{job_id}").content)
        bare, bare_url = bare_server(body_bytes, Path(tempfile.mkdtemp()) / "bare.log")
        try:
            for run in range(args.runs):
                for connections in (200, 50):
                    for name in ("bare", "job", "metrics", "list"):
                        if name == "list" and connections == 50:
                            continue
                        url, path = target(name, client, job_id, bare_url, live.url)
                        rate, p99, failed = wrk(url, path, live.key, connections, args.seconds)
                        figures.setdefault(f"{name}@{connections}", []).append((rate, p99, failed))
                        print(f"run {run + 1} {name:8} c={connections:3}: {rate:7.0f} req/s  p99 {p99:7.1f} ms  failed {failed}", flush=True)
        finally:
            bare.terminate()
            bare.wait()
        still_training = client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        client.post(f"/v1/jobs/{job_id}/cancel")

    def rate(name: str) -> float:
        return median([r for r, _, _ in figures[name]])

    def p99(name: str) -> float:
        return median([p for _, p, _ in figures[name]])

    # Epochly's answers only: the yardstick's own timeouts say nothing about the service.
    failed = sum(f for name, values in figures.items() if not name.startswith("bare@") for _, _, f in values)
    share = {name: rate(f"{name}@200") / rate("bare@200") for name in ("job", "metrics", "list")}
    print(f"bare endpoint: {rate('bare@200'):.0f} req/s at 200 connections; job {share['job']:.0%}, "
          f"metrics {share['metrics']:.0%} (targets >= 30 %), list {share['list']:.0%} (target >= 10 %)")
    print(f"p99 at 50 connections: job {p99('job@50'):.1f} ms, metrics {p99('metrics@50'):.1f} ms (target <= 50 ms); "
          f"non-2xx or socket errors: {failed}; a job trained throughout: {still_training}")
    report({
        "figure": "3. pollers",
        "bare_req_per_s": round(rate("bare@200")),
        "job_req_per_s": round(rate("job@200")), "job_share": round(share["job"], 2),
        "metrics_req_per_s": round(rate("metrics@200")), "metrics_share": round(share["metrics"], 2),
        "list_req_per_s": round(rate("list@200")), "list_share": round(share["list"], 2),
        "job_p99_ms_at_50": round(p99("job@50"), 1), "metrics_p99_ms_at_50": round(p99("metrics@50"), 1),
        "failed": failed,
        "met": share["job"] >= 0.3 and share["metrics"] >= 0.3 and share["list"] >= 0.1
        and p99("job@50") <= 50 and p99("metrics@50") <= 50 and failed == 0,
    })


if __name__ == "__main__":
    main()
