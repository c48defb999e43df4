"""The ASGI server itself: uvicorn (httptools, uvloop: what app/serve.py runs) against granian, each
serving the bare endpoint of bench/pollers.py and Epochly's `GET /v1/jobs/{id}`, one process each,
access log on, while a tutorial job trains on PostgreSQL + Redis. wrk with the bearer header at 200
and 50 connections. Which server the service keeps, and why, is in the README (Performance).
Usage: python -m bench.asgi_servers [--seconds 8] [--runs 3]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import median, report
from bench.harness import REDIS_URL, ROOT, free_port, service
from bench.pollers import wrk
from epochly_client.tutorial import TUTORIAL_JOB

BIN = Path(sys.executable).parent


def command(server: str, target: str, factory: bool, port: int) -> list[str]:
    if server == "uvicorn":
        from app.serve import api_command

        line = api_command("127.0.0.1", port)
        at = line.index("app.main:create_app")
        line[at : at + 2] = [target, *(["--factory"] if factory else [])]
        return line
    return [
        str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--access-log", "--log-level", "info", *(["--factory"] if factory else []), target,
    ]


def start(server: str, target: str, factory: bool, env: dict[str, str], log: Path, probe: str, headers: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(command(server, target, factory, port), cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + probe, headers=headers, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{server} did not serve {target}: see {log}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    figures: dict[str, list[tuple[float, float]]] = {}
    logs = Path(tempfile.mkdtemp(prefix="epochly-asgi-"))
    with service("postgres-redis", env={"RATE_LIMIT_PER_MIN": str(10**9)}) as live, httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset_id = client.post("/v1/datasets/examples/side-effects").json()["id"]
        job = TUTORIAL_JOB | {"dataset_id": dataset_id, "fit": {**TUTORIAL_JOB["fit"], "epochs": 50_000}}
        job_id = client.post("/v1/jobs", json=job).json()["id"]
        while client.get(f"/v1/jobs/{job_id}").json()["epochs_completed"] < 20:
            time.sleep(0.2)
        body_bytes = len(client.get(f"/v1/jobs/{job_id}").content)
        # A second API process of the same service under each server: same database, bus and key.
        env = {**os.environ, "DATABASE_URL": live.database_url, "BROKER_URL": REDIS_URL, "DATA_DIR": str(logs / "var"),
               "RATE_LIMIT_PER_MIN": str(10**9), "BARE_BODY_BYTES": str(body_bytes)}
        try:
            for server in ("uvicorn", "granian"):
                bare, bare_url = start(server, "bench.bare_app:app", False, env, logs / f"{server}-bare.log", "/bare", {})
                api, api_url = start(server, "app.main:create_app", True, env, logs / f"{server}-api.log", f"/v1/jobs/{job_id}", live.headers)
                try:
                    for run in range(args.runs):
                        for connections in (200, 50):
                            for name, url, path in (("bare", bare_url, "/bare"), ("job", api_url, f"/v1/jobs/{job_id}")):
                                rate, p99, failed = wrk(url, path, live.key, connections, args.seconds)
                                figures.setdefault(f"{server} {name}@{connections}", []).append((rate, p99))
                                print(f"run {run + 1} {server:8} {name:5} c={connections:3}: {rate:7.0f} req/s  p99 {p99:7.1f} ms  failed {failed}", flush=True)
                finally:
                    for process in (bare, api):
                        process.terminate()
                        process.wait()
        finally:
            client.post(f"/v1/jobs/{job_id}/cancel")

    def rate(name: str) -> float:
        return median([r for r, _ in figures[name]])

    def p99(name: str) -> float:
        return median([p for _, p in figures[name]])

    result: dict[str, object] = {"figure": "16. ASGI server"}
    for server in ("uvicorn", "granian"):
        for name in ("bare", "job"):
            result[f"{server}_{name}_req_per_s"] = round(rate(f"{server} {name}@200"))
            result[f"{server}_{name}_p99_ms_at_50"] = round(p99(f"{server} {name}@50"), 1)
        result[f"{server}_job_share"] = round(rate(f"{server} job@200") / rate(f"{server} bare@200"), 2)
    print(result)
    report(result | {"target": "measured only: the server kept is the one that serves the targets", "met": True})


if __name__ == "__main__":
    main()
