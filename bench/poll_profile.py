"""Where a poll's time goes, without a network: the ASGI app called directly, one request at a time,
beside the bare endpoint of bench/pollers.py; then cProfile over `GET /v1/jobs/{id}`, grouped by
where the time is spent (routing, dependency solving, our route, middleware).
Usage: python -m bench.poll_profile [--requests 3000]
"""
import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.admin import create_api_key
from app.main import create_app
from bench.bare_app import app as bare
from bench.common import report
from epochly_client.tutorial import TUTORIAL_JOB
from tests.conftest import embedded_settings

GROUPS = {
    "routing": ("fastapi/routing.py:", "starlette/routing.py:"),
    "dependencies": ("fastapi/dependencies/",),
    # The request metrics (app/api/metrics.py) are middleware too: a poll runs nothing else of that file.
    "middleware": ("middleware", "body_limit.py", "app/api/metrics.py"),
    "epochly": ("/app/",),
}


def caller(app: Any, path: str, headers: dict[str, str]) -> Callable[[], Any]:
    route, _, query = path.partition("?")
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()] + [(b"host", b"bench")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    def one() -> Any:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": route, "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
            "headers": raw_headers, "client": ("127.0.0.1", 1), "server": ("bench", 80),
        }
        return app(scope, receive, send)

    return one


async def microseconds(one: Callable[[], Any], requests: int) -> float:
    for _ in range(50):
        await one()
    started = time.perf_counter()
    for _ in range(requests):
        await one()
    return (time.perf_counter() - started) / requests * 1e6


async def main(requests: int) -> None:
    settings = embedded_settings(Path(tempfile.mkdtemp()) / "var").model_copy(update={"rate_limit_per_min": 10**9})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        headers = {"Authorization": f"Bearer {create_api_key('profile', settings)}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench", headers=headers) as client:
            dataset_id = (await client.post("/v1/datasets/examples/side-effects")).json()["id"]
            job_id = (await client.post("/v1/jobs", json=TUTORIAL_JOB | {"dataset_id": dataset_id})).json()["id"]
        poll = caller(app, f"/v1/jobs/{job_id}", headers)
        figures = {
            "bare": await microseconds(caller(bare, "/bare", {}), requests),
            "job": await microseconds(poll, requests),
            "metrics": await microseconds(caller(app, f"/v1/jobs/{job_id}/metrics?after=0", headers), requests),
        }
        for name, value in figures.items():
            print(f"{name:8} {value:7.1f} µs per request in the app (no network, no server)")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            await poll()
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    grouped = dict.fromkeys(GROUPS, 0.0)
    for (filename, _, _), entry in stats.stats.items():  # type: ignore[attr-defined]
        for group, markers in GROUPS.items():
            if any(marker in filename for marker in markers):
                grouped[group] += entry[2]
                break
    print("GET /v1/jobs/{id} under cProfile, own time by where it is spent:")
    for group, seconds in grouped.items():
        print(f"  {group:13} {seconds / total:6.1%}")
    print(f"  {'other':13} {1 - sum(grouped.values()) / total:6.1%}  (asyncio, pydantic-core, the standard library)")
    stats.sort_stats("tottime").print_stats(12)
    report({
        "figure": "17. poll profile", **{f"{name}_us_in_app": round(value, 1) for name, value in figures.items()},
        "job_over_bare": round(figures["job"] / figures["bare"], 2),
        **{f"{group}_share_of_job": round(seconds / total, 3) for group, seconds in grouped.items()},
        "target": "where a poll's time goes (no target of its own)", "met": True,
    })


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(main(parser.parse_args().requests))
