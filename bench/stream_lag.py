"""Figure 4, streams: how long after an epoch row is written does every /events client receive it?

N concurrent SSE clients (spread over several client processes, separate from the API, so the
load generator is not the bottleneck) attach to a queued tutorial job; a blocker job holds the
only worker until every stream is attached, then is cancelled, so every epoch is delivered live.
Lag = arrival time − the row's `finished_at` (same machine clock). Also reports the API's memory
per idle stream. Target: p99 lag ≤ 250 ms at 1,000 clients, ≤ 20 KiB per idle stream at 10,000.
Usage: python -m bench.stream_lag [--clients 1000] [--processes 2] [--backend postgres-redis|embedded] [--runs 3]
"""
import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from bench.common import percentile, report
from bench.harness import LiveService, service
from epochly_client.tutorial import TUTORIAL_JOB

# Every stream opens with a request of the one bench key: thousands within a minute, far past a
# key's burst. The limiter is not what is measured, so it is off.
NO_RATE_LIMIT = {"RATE_LIMIT_PER_MIN": "0"}


async def follow(live: LiveService, job_id: str, lags: list[float], attached: list[int]) -> int:
    """Read one stream to its end over a bare socket; returns the epoch events seen. A hand-written
    GET and a chunked-body parser cost far less per chunk than an HTTP client library, so a thousand
    of them in two processes do not starve the API they share the machine with."""
    url = urlsplit(live.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=1 << 20)
    try:
        writer.write(
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {live.key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"transfer-encoding: chunked" not in head.lower():
            raise RuntimeError(f"unexpected response: {head[:200]!r}")
        attached[0] += 1
        epochs = 0
        buffer = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            buffer += (await reader.readexactly(size + 2))[:-2]
            arrived = time.time()
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if frame.startswith(b"event: epoch"):
                    row = json.loads(frame.split(b"data: ", 1)[1])
                    lags.append(arrived - datetime.fromisoformat(row["finished_at"].replace("Z", "+00:00")).timestamp())
                    epochs += 1
                elif frame.startswith(b"event: end"):
                    return epochs
        return epochs
    finally:
        writer.close()


async def attach(tasks: list[asyncio.Task[int]], attached: list[int]) -> None:
    """Until every stream is open; one that could not open (refused, reset) fails the run."""
    while attached[0] < len(tasks):
        for task in tasks:
            if task.done():
                task.result()
        await asyncio.sleep(0.05)


def client_process(live: LiveService, job_id: str, clients: int, ready, results) -> None:
    async def main() -> None:
        lags: list[float] = []
        attached = [0]
        tasks = [asyncio.create_task(follow(live, job_id, lags, attached)) for _ in range(clients)]
        await attach(tasks, attached)
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
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, timeout=60) as client:
        dataset = (await client.post("/v1/datasets/examples/side-effects")).json()
        job = (await client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset["id"]})).json()
    before = live.api_rss_bytes()
    attached = [0]
    tasks = [asyncio.create_task(follow(live, job["id"], [], attached)) for _ in range(clients)]
    await attach(tasks, attached)
    await asyncio.sleep(2)
    after = live.api_rss_bytes()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (after - before) / clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--backend", default="postgres-redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--idle-clients", type=int, default=10_000)
    args = parser.parse_args()
    p50s, p99s, maxes = [], [], []
    with service(args.backend, env=NO_RATE_LIMIT) as live:
        for run in range(args.runs):
            lags, received = one_run(live, args.clients, args.processes, args.epochs)
            expected = args.clients * args.epochs
            p50s.append(percentile(lags, 0.5))
            p99s.append(percentile(lags, 0.99))
            maxes.append(max(lags))
            print(f"run {run + 1}: {received}/{expected} epoch events; lag p50 {p50s[-1] * 1000:.1f} ms, p99 {p99s[-1] * 1000:.1f} ms, max {maxes[-1] * 1000:.1f} ms")
            assert received == expected, "a stream missed an epoch"
    with service(args.backend, workers=0, env=NO_RATE_LIMIT) as idle:
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
