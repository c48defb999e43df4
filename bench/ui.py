"""Figure 9, dashboard: the /ui pages in the system's Chromium (Playwright), against a live API.

- A job page's first load, in a fresh browser profile: bytes on the wire (every response, headers
  included) and the time from navigation to its first curve drawn. Targets: ≤ 300 KB, ≤ 1 s.
- The compare view of 10 runs × 1,000 epochs: each appended epoch is written and published as the
  worker does it (row committed, then the event); the time the page spends drawing it is measured
  inside the page (performance.measure around the redraw), and the time from publish to the chart
  showing it. Target: draw ≤ 50 ms.

The epoch rows are synthetic (written straight to the database, with no worker): training
10,000 epochs would measure the worker, not the page.
Usage: python -m bench.ui [--appends 20] [--loads 5]
"""

import argparse
import math
import os
import statistics
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from app.admin import create_api_key
from app.db import make_engine, make_session_factory, session_scope
from app.events.messages import epoch_message
from app.events.publisher import make_publisher
from app.models import EpochMetric, utcnow
from app.serve import api_command
from app.settings import Settings
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS
from bench.common import percentile, report
from bench.harness import ROOT, _wait, free_port

CHROMIUM = os.environ.get("EPOCHLY_CHROMIUM", "/usr/bin/chromium")
RUNS, EPOCHS = 10, 1000


def logs(run: int, epoch: int) -> dict[str, float]:
    decay = math.exp(-epoch / (80 + 25 * run))
    return {
        "loss": 0.25 + 0.45 * decay,
        "accuracy": 0.93 - 0.45 * decay,
        "val_loss": 0.27 + 0.45 * decay,
        "val_accuracy": 0.91 - 0.45 * decay,
    }


def add_epochs(session_factory, job_id: str, run: int, epochs: range) -> list[EpochMetric]:
    start = utcnow()
    with session_scope(session_factory) as session:
        rows = [
            EpochMetric(job_id=job_id, epoch=e, logs=logs(run, e), duration_s=0.3, finished_at=start + timedelta(milliseconds=e))
            for e in epochs
        ]
        session.add_all(rows)
        session.flush()
        return [
            EpochMetric(job_id=r.job_id, epoch=r.epoch, logs=r.logs, duration_s=r.duration_s, finished_at=r.finished_at)
            for r in rows
        ]


def job_page_first_load(browser, url: str, key: str, job_id: str) -> tuple[int, float]:
    context = browser.new_context(base_url=url)
    context.add_init_script(f"sessionStorage.setItem('epochly.api_key', {key!r})")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    finished: dict[str, int] = {}
    received: dict[str, int] = {}
    cdp.on("Network.loadingFinished", lambda e: finished.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    # A stream still open (a live job's events) counts what it has sent so far.
    cdp.on(
        "Network.dataReceived",
        lambda e: received.__setitem__(e["requestId"], received.get(e["requestId"], 0) + int(e["encodedDataLength"])),
    )
    page.goto(f"/ui/jobs/{job_id}")
    page.wait_for_function("Number(document.querySelector('.chart')?.dataset.epochs) > 0", polling="raf")
    drawn_ms = page.evaluate("performance.now() - performance.getEntriesByType('navigation')[0].startTime")
    page.wait_for_timeout(500)
    context.close()
    return sum(finished.values()) + sum(n for request, n in received.items() if request not in finished), drawn_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="epochly-bench-ui-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "var", database_url="", broker_url="")
        key = create_api_key("bench", settings)
        env = {**os.environ, "DATA_DIR": str(settings.data_dir), "DATABASE_URL": "", "BROKER_URL": ""}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(
            api_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=(Path(tmp) / "api.log").open("wb"), stderr=subprocess.STDOUT
        )
        engine = make_engine(settings.resolved_database_url)
        session_factory = make_session_factory(engine)
        publisher = make_publisher(settings)
        try:
            _wait(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, api, "API")
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            dataset = http.post("/v1/datasets/examples/side-effects").json()["id"]
            # No worker runs: the jobs stay queued and their epochs are the rows written here.
            spec = {
                "dataset_id": dataset,
                "model": {"layers": TUTORIAL_LAYERS},
                "compile": TUTORIAL_COMPILE,
                "fit": {**TUTORIAL_FIT, "epochs": 2000},
            }
            ids = [
                http.post("/v1/jobs", json={**spec, "name": f"run {i + 1}"}).raise_for_status().json()["id"] for i in range(RUNS)
            ]
            for run, job_id in enumerate(ids):
                add_epochs(session_factory, job_id, run, range(1, EPOCHS + 1))
            tutorial_sized = http.post("/v1/jobs", json={**spec, "name": "tutorial-sized"}).raise_for_status().json()["id"]
            add_epochs(session_factory, tutorial_sized, 0, range(1, TUTORIAL_FIT["epochs"] + 1))

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                loads = [job_page_first_load(browser, url, key, tutorial_sized) for _ in range(args.loads)]
                transfer_kb = statistics.median(b for b, _ in loads) / 1024
                first_curve_ms = statistics.median(ms for _, ms in loads)
                print(
                    f"job page, first load: {transfer_kb:.0f} KB on the wire, first curve at {first_curve_ms:.0f} ms (median of {args.loads})"
                )

                context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
                context.add_init_script(f"sessionStorage.setItem('epochly.api_key', {key!r})")
                page = context.new_page()
                page.goto(f"/ui/compare?jobs={','.join(ids)}")
                page.wait_for_selector(f".chart[data-metric=loss][data-epochs='{EPOCHS}']", timeout=60_000)
                page.wait_for_selector("#live.on")
                draws, seen = [], []
                for n in range(args.appends):
                    epoch, run = EPOCHS + 1 + n, n % RUNS
                    page.evaluate("performance.clearMeasures('epochly:draw')")
                    # Every run gets the epoch, so the chart's epoch count moves on each round.
                    for r in range(RUNS):
                        if r != run:
                            add_epochs(session_factory, ids[r], r, range(epoch, epoch + 1))
                    (row,) = add_epochs(session_factory, ids[run], run, range(epoch, epoch + 1))
                    for r in range(RUNS):
                        if r != run:
                            publisher.publish(
                                epoch_message(
                                    EpochMetric(
                                        job_id=ids[r],
                                        epoch=epoch,
                                        logs=logs(r, epoch),
                                        duration_s=0.3,
                                        finished_at=row.finished_at,
                                    )
                                )
                            )
                    page.wait_for_timeout(50)
                    page.evaluate("performance.clearMeasures('epochly:draw')")
                    published = time.perf_counter()
                    publisher.publish(epoch_message(row))
                    page.wait_for_function(
                        f"document.querySelector('#runs tbody tr:nth-child({run + 1}) td:nth-child(3)').textContent.startsWith('{epoch}/')",
                        polling="raf",
                    )
                    seen.append((time.perf_counter() - published) * 1000)
                    page.wait_for_timeout(30)
                    measures = page.evaluate("performance.getEntriesByName('epochly:draw').map(m => m.duration)")
                    draws.extend(measures)
                browser.close()
            draw_ms = statistics.median(draws)
            print(
                f"compare, {RUNS} runs × {EPOCHS} epochs: an appended epoch draws in {draw_ms:.1f} ms (median; p95 {percentile(draws, 0.95):.1f} ms, max {max(draws):.1f} ms)"
            )
            print(f"  publish → on the page: median {statistics.median(seen):.0f} ms, p95 {percentile(seen, 0.95):.0f} ms")
            met = transfer_kb <= 300 and first_curve_ms <= 1000 and draw_ms <= 50
            report(
                {
                    "figure": "9. dashboard",
                    "job_page_transfer_kb": round(transfer_kb, 1),
                    "job_page_first_curve_ms": round(first_curve_ms),
                    "compare_10x1000_append_draw_ms": round(draw_ms, 1),
                    "compare_append_draw_p95_ms": round(percentile(draws, 0.95), 1),
                    "publish_to_page_ms": round(statistics.median(seen)),
                    "target": "≤ 300 KB, first curve ≤ 1 s, append draw ≤ 50 ms",
                    "met": met,
                }
            )
        finally:
            api.terminate()
            api.wait(timeout=30)
            engine.dispose()


if __name__ == "__main__":
    main()
