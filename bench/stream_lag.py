"""Stream lag: how long after an epoch row is written does every /events client receive it?

Runs the tutorial job while N concurrent SSE clients (one asyncio process, separate from the
API) follow it; lag = arrival time − the row's `finished_at` (same machine clock).
Usage: python -m bench.stream_lag [--clients 100] [--backend postgres-redis|embedded] [--runs 3]
"""
import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime

import httpx

from bench.common import percentile, report
from bench.harness import LiveService, service
from epochly_client.tutorial import TUTORIAL_JOB


async def follow(client: httpx.AsyncClient, job_id: str, lags: list[float], ready: asyncio.Event, counter: list[int], n: int) -> int:
    epochs = 0
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
        counter[0] += 1
        if counter[0] == n:
            ready.set()
        event, data = None, None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and event:
                if event == "epoch":
                    row = json.loads(data)
                    written = datetime.fromisoformat(row["finished_at"].replace("Z", "+00:00")).timestamp()
                    lags.append(time.time() - written)
                    epochs += 1
                elif event == "end":
                    return epochs
                event, data = None, None
    return epochs


async def one_run(live: LiveService, clients: int, epochs: int) -> tuple[list[float], int]:
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, limits=limits, timeout=60) as client:
        dataset = (await client.post("/v1/datasets/examples/side-effects")).json()
        # Submit with the worker idle, then attach every stream while the job is still queued/starting.
        spec = TUTORIAL_JOB | {"dataset_id": dataset["id"], "fit": {**TUTORIAL_JOB["fit"], "epochs": epochs}}
        job = (await client.post("/v1/jobs", json=spec)).json()
        lags: list[float] = []
        ready, counter = asyncio.Event(), [0]
        received = await asyncio.gather(*(follow(client, job["id"], lags, ready, counter, clients) for _ in range(clients)))
        return lags, sum(received)


async def idle_stream_bytes(live: LiveService, clients: int) -> float:
    """API memory per open stream on a job that stays queued (no worker): nothing but keep-alives."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, limits=limits, timeout=60) as client:
        dataset = (await client.post("/v1/datasets/examples/side-effects")).json()
        job = (await client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset["id"]})).json()
        before = live.api_rss_bytes()
        opened = asyncio.Event()
        count = [0]

        async def hold() -> None:
            async with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=None) as response:
                async for _ in response.aiter_lines():
                    count[0] += 1 if _.startswith("event: status") else 0
                    if count[0] >= clients:
                        opened.set()

        tasks = [asyncio.create_task(hold()) for _ in range(clients)]
        await asyncio.wait_for(opened.wait(), timeout=120)
        await asyncio.sleep(2)
        after = live.api_rss_bytes()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return (after - before) / clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--backend", default="postgres-redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    p50s, p99s, maxes = [], [], []
    with service(args.backend) as live:
        for run in range(args.runs):
            lags, received = asyncio.run(one_run(live, args.clients, args.epochs))
            expected = args.clients * args.epochs
            p50s.append(percentile(lags, 0.5))
            p99s.append(percentile(lags, 0.99))
            maxes.append(max(lags))
            print(f"run {run + 1}: {received}/{expected} epoch events; lag p50 {p50s[-1] * 1000:.1f} ms, p99 {p99s[-1] * 1000:.1f} ms, max {maxes[-1] * 1000:.1f} ms")
            assert received == expected, "a stream missed an epoch"
    with service(args.backend, workers=0) as idle:
        per_stream = asyncio.run(idle_stream_bytes(idle, args.clients))
    p99 = statistics.median(p99s)
    print(
        f"stream lag, {args.clients} clients, {args.backend}: median of {args.runs} runs: "
        f"p50 {statistics.median(p50s) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {statistics.median(maxes) * 1000:.1f} ms (target p99 <= 500 ms); "
        f"API memory per idle stream {per_stream / 1024:.1f} KiB"
    )
    report({
        "figure": "4. streams", "clients": args.clients, "p99_lag_ms": round(p99 * 1000, 1), "target_p99_lag_ms": 500,
        "p50_lag_ms": round(statistics.median(p50s) * 1000, 1), "kib_per_idle_stream": round(per_stream / 1024, 1), "met": p99 <= 0.5,
    })


if __name__ == "__main__":
    main()
