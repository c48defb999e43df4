"""Figure 4, streams: how long after an epoch row is written does every /events client receive it?

N concurrent SSE clients (spread over several client processes, separate from the API, so the
load generator is not the bottleneck) attach to a queued tutorial job; a blocker job holds the
only worker until every stream is attached, then is cancelled, so every epoch is delivered live.
Lag = arrival time − the row's `finished_at` (same machine clock). Also reports the API's memory
per idle stream. Target: p99 lag ≤ 0.5 s at 1,000 clients.
Usage: python -m bench.stream_lag [--clients 1000] [--processes 4] [--backend postgres-redis|embedded] [--runs 3]
"""
import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from datetime import datetime

import httpx

from bench.common import percentile, report
from bench.harness import LiveService, service
from epochly_client.tutorial import TUTORIAL_JOB


async def follow(client: httpx.AsyncClient, job_id: str, lags: list[float], attached: list[int]) -> int:
    """Read one stream to its end; returns the epoch events seen."""
    epochs = 0
    buffer = b""
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
        attached[0] += 1
        async for chunk in response.aiter_raw():
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            arrived = time.time()
            for frame in frames:
                if frame.startswith(b"event: epoch"):
                    row = json.loads(frame.split(b"data: ", 1)[1])
                    lags.append(arrived - datetime.fromisoformat(row["finished_at"].replace("Z", "+00:00")).timestamp())
                    epochs += 1
                elif frame.startswith(b"event: end"):
                    return epochs
    return epochs


def client_process(live: LiveService, job_id: str, clients: int, ready, results) -> None:
    async def main() -> None:
        lags: list[float] = []
        attached = [0]
        limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
        async with httpx.AsyncClient(base_url=live.url, headers=live.headers, limits=limits, timeout=120) as client:
            tasks = [asyncio.create_task(follow(client, job_id, lags, attached)) for _ in range(clients)]
            while attached[0] < clients:
                await asyncio.sleep(0.05)
            ready.release()
            received = sum(await asyncio.gather(*tasks))
        results.put((lags, received))

    asyncio.run(main())


def one_run(live: LiveService, clients: int, processes: int, epochs: int) -> tuple[list[float], int]:
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset = client.post("/v1/datasets/examples/side-effects").json()["id"]
        blocker = client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset, "fit": {**TUTORIAL_JOB["fit"], "epochs": 10_000}}).json()["id"]
        spec = TUTORIAL_JOB | {"dataset_id": dataset, "fit": {**TUTORIAL_JOB["fit"], "epochs": epochs}}
        job_id = client.post("/v1/jobs", json=spec).json()["id"]
        context = multiprocessing.get_context("spawn")
        ready, results = context.Semaphore(0), context.Queue()
        shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        workers = [context.Process(target=client_process, args=(live, job_id, n, ready, results)) for n in shares]
        for worker in workers:
            worker.start()
        for _ in workers:
            ready.acquire()
        client.post(f"/v1/jobs/{blocker}/cancel")
        lags: list[float] = []
        received = 0
        for _ in workers:
            part, count = results.get()
            lags += part
            received += count
        for worker in workers:
            worker.join()
    return lags, received


async def idle_stream_bytes(live: LiveService, clients: int) -> float:
    """API memory per open stream on a job that stays queued (no worker): nothing but keep-alives."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, limits=limits, timeout=60) as client:
        dataset = (await client.post("/v1/datasets/examples/side-effects")).json()
        job = (await client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset["id"]})).json()
        before = live.api_rss_bytes()
        attached = [0]
        tasks = [asyncio.create_task(follow(client, job["id"], [], attached)) for _ in range(clients)]
        while attached[0] < clients:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        after = live.api_rss_bytes()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return (after - before) / clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--backend", default="postgres-redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--idle-clients", type=int, default=10_000)
    args = parser.parse_args()
    p50s, p99s, maxes = [], [], []
    with service(args.backend) as live:
        for run in range(args.runs):
            lags, received = one_run(live, args.clients, args.processes, args.epochs)
            expected = args.clients * args.epochs
            p50s.append(percentile(lags, 0.5))
            p99s.append(percentile(lags, 0.99))
            maxes.append(max(lags))
            print(f"run {run + 1}: {received}/{expected} epoch events; lag p50 {p50s[-1] * 1000:.1f} ms, p99 {p99s[-1] * 1000:.1f} ms, max {maxes[-1] * 1000:.1f} ms")
            assert received == expected, "a stream missed an epoch"
    with service(args.backend, workers=0) as idle:
        per_stream = asyncio.run(idle_stream_bytes(idle, args.idle_clients))
    p99 = statistics.median(p99s)
    print(
        f"stream lag, {args.clients} clients in {args.processes} client processes, {args.backend}: median of {args.runs} runs: "
        f"p50 {statistics.median(p50s) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {statistics.median(maxes) * 1000:.1f} ms "
        f"(target p99 <= 250 ms); API memory per idle stream, {args.idle_clients} open: {per_stream / 1024:.1f} KiB (target <= 20 KiB)"
    )
    report({
        "figure": "4. streams", "clients": args.clients, "p99_lag_ms": round(p99 * 1000, 1), "target_p99_lag_ms": 250,
        "p50_lag_ms": round(statistics.median(p50s) * 1000, 1), "idle_streams": args.idle_clients,
        "kib_per_idle_stream": round(per_stream / 1024, 1), "target_kib_per_idle_stream": 20,
        "met": p99 <= 0.25 and per_stream <= 20 * 1024,
    })


if __name__ == "__main__":
    main()
