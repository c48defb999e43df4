"""Figure 15, object storage: STORAGE_URL=s3://… against a local S3-compatible server (moto's server
mode, started here), beside the local-folder default, on the same live service code.

  upload     = an .npz of about --gb GB (float32 x with 20 columns, int32 y; ZIP_STORED) streamed to
               `POST /v1/datasets` on a fresh embedded service with no workers; speed = file bytes /
               wall time of the request (parsing, storing and, with S3, the upload to the bucket)
  cold start = the first epoch's start (its finished_at - duration_s) - the moment `POST /v1/jobs`
               answered, for a one-epoch job on that dataset run by a worker just started on a
               DATA_DIR of its own: with S3 its cache is empty, so the dataset is downloaded first
  warm start = the same for the next jobs on the same worker (the median of 3): with S3 the dataset
               is in its cache

Targets: S3 upload speed >= 80 % of the local folder's; cold start <= 1.5x as late as local files;
warm start within 5 % of local files. Ratios within one run (the same machine minute); medians of
--runs runs, the two modes alternating.
Usage: python -m bench.storage [--gb 1] [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

from bench.harness import REDIS_URL, ROOT, LiveService, service
from bench.ingest import FEATURES, write_npz
from bench.servers import MotoS3

MB = 1e6
TARGET_UPLOAD_RATIO = 0.80
TARGET_COLD_RATIO = 1.5
TARGET_WARM_RATIO = 1.05
# Warm starts differ by a few percent at most, below this machine's run-to-run noise: a median of several.
WARM_JOBS = 3
# Tiny on purpose: the figure is when training starts, not how long an epoch of a big dataset takes.
JOB = {
    "model": {
        "layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    },
    "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
    "fit": {"epochs": 1, "batch_size": 65536, "seed": 0},
}


def transfer_speeds(npz: Path, storage_url: str, folder: Path) -> tuple[float, float]:
    """MB/s of the bare store: the file up and down again, no API, no parsing (the server's own pace)."""
    from app.storage import open_store

    store = open_store(storage_url, folder)
    t0 = time.perf_counter()
    store.put_file(npz, "transfer/bench.npz")
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.get_file("transfer/bench.npz", folder / "back.npz")
    down = time.perf_counter() - t0
    (folder / "back.npz").unlink()
    store.delete_prefix("transfer")
    size = npz.stat().st_size / MB
    return size / up, size / down


def upload_seconds(npz: Path, env: dict[str, str]) -> float:
    with (
        service("embedded", workers=0, env=env) as live,
        npz.open("rb") as f,
        httpx.Client(base_url=live.url, headers=live.headers, timeout=None) as client,
    ):
        t0 = time.perf_counter()
        response = client.post("/v1/datasets", files={"file": ("bench.npz", f, "application/octet-stream")})
        seconds = time.perf_counter() - t0
    if response.status_code != 201:
        sys.exit(f"upload answered {response.status_code}: {response.text[:500]}")
    return seconds


@contextmanager
def worker(live: LiveService, env: dict[str, str], data_dir: Path):
    from app.serve import worker_command

    log = data_dir.with_suffix(".log")
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        worker_command(f"bench-{uuid.uuid4().hex[:6]}"),
        cwd=ROOT,
        env={**os.environ, **env, "DATA_DIR": str(data_dir), "DATABASE_URL": live.database_url, "BROKER_URL": REDIS_URL},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while b"worker warm" not in log.read_bytes():  # after its warm-up fit, which would delay the first job
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def start_delay(client: httpx.Client, dataset_id: str) -> float:
    """Seconds from the submit's answer to the start of the job's first epoch."""
    response = client.post("/v1/jobs", json={"dataset_id": dataset_id, **JOB})
    answered = time.time()
    if response.status_code != 202:
        sys.exit(f"submit answered {response.status_code}: {response.text[:500]}")
    job_id = response.json()["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        metrics = client.get(f"/v1/jobs/{job_id}/metrics").json()
        if metrics["status"] == "succeeded":  # the next job starts on an idle worker, not during this one's upload
            first = metrics["epochs"][0]
            finished = datetime.fromisoformat(first["finished_at"].replace("Z", "+00:00")).timestamp()
            return finished - first["duration_s"] - answered
        if metrics["status"] in ("failed", "cancelled"):
            sys.exit(f"job {job_id} {metrics['status']}: {client.get(f'/v1/jobs/{job_id}').json().get('error')}")
        time.sleep(0.05)
    sys.exit(f"job {job_id} did not finish")


def start_delays(npz: Path, env: dict[str, str], folder: Path) -> tuple[float, float]:
    """(cold, warm): the first job of a worker just started on an empty DATA_DIR of its own (a local
    store is the API's DATA_DIR itself, which the worker then reads in place), and the median of its
    next WARM_JOBS."""
    api_dir = folder / f"api-{uuid.uuid4().hex[:6]}"
    with (
        service("postgres-redis", workers=0, env={**env, "DATA_DIR": str(api_dir)}) as live,
        httpx.Client(base_url=live.url, headers=live.headers, timeout=None) as client,
    ):
        with npz.open("rb") as f:
            dataset_id = client.post("/v1/datasets", files={"file": ("bench.npz", f, "application/octet-stream")}).json()["id"]
        worker_dir = api_dir if not env.get("STORAGE_URL") else folder / f"worker-{uuid.uuid4().hex[:6]}"
        with worker(live, env, worker_dir):
            cold = start_delay(client, dataset_id)
            return cold, statistics.median(start_delay(client, dataset_id) for _ in range(WARM_JOBS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help=".npz size in GB (10^9 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    moto = MotoS3()
    moto.start()
    os.environ.update(moto.env())
    try:
        with tempfile.TemporaryDirectory(prefix="epochly-bench-storage-") as tmp:
            folder = Path(tmp)
            npz = folder / "bench.npz"
            rows = write_npz(npz, args.gb)
            size = npz.stat().st_size
            print(f"wrote {size / MB:.0f} MB .npz ({rows:,} rows x {FEATURES} features)", flush=True)
            upload: dict[str, list[float]] = {"local": [], "s3": []}
            cold: dict[str, list[float]] = {"local": [], "s3": []}
            warm: dict[str, list[float]] = {"local": [], "s3": []}
            put_speed, get_speed = transfer_speeds(npz, f"s3://{moto.bucket}/transfer", folder)
            print(f"the S3 server alone: {put_speed:.0f} MB/s up, {get_speed:.0f} MB/s down", flush=True)
            for run in range(args.runs):
                for mode in ("local", "s3") if run % 2 == 0 else ("s3", "local"):
                    env = {"STORAGE_URL": "" if mode == "local" else f"s3://{moto.bucket}/bench-{run}"}
                    upload[mode].append(upload_seconds(npz, env))
                    first, second = start_delays(npz, env, folder)
                    cold[mode].append(first)
                    warm[mode].append(second)
                    print(
                        f"run {run + 1} {mode}: upload {size / MB / upload[mode][-1]:.0f} MB/s; first epoch starts "
                        f"{first:.2f} s after the submit on a fresh worker, {second:.2f} s for its next jobs",
                        flush=True,
                    )
    finally:
        moto.stop()

    upload_ratio = statistics.median(local / s3 for local, s3 in zip(upload["local"], upload["s3"], strict=True))
    cold_ratio = statistics.median(s3 / local for local, s3 in zip(cold["local"], cold["s3"], strict=True))
    warm_ratio = statistics.median(s3 / local for local, s3 in zip(warm["local"], warm["s3"], strict=True))
    local_speed = size / MB / statistics.median(upload["local"])
    s3_speed = size / MB / statistics.median(upload["s3"])
    print(
        f"storage, median of {args.runs} runs, {size / MB:.0f} MB .npz: upload to S3 at {s3_speed:.0f} MB/s vs "
        f"{local_speed:.0f} MB/s to the local folder = {upload_ratio:.0%} (target >= {TARGET_UPLOAD_RATIO:.0%}); "
        f"first epoch on a cold cache starts {cold_ratio:.2f}x as late as with local files (target <= {TARGET_COLD_RATIO}), "
        f"on a warm cache {warm_ratio:.3f}x (target <= {TARGET_WARM_RATIO})"
    )
    met = upload_ratio >= TARGET_UPLOAD_RATIO and cold_ratio <= TARGET_COLD_RATIO and warm_ratio <= TARGET_WARM_RATIO
    print(
        "RESULT: "
        + json.dumps(
            {
                "figure": "storage",
                "runs": args.runs,
                "npz_mb": round(size / MB, 1),
                "upload_local_mb_per_s": round(local_speed, 1),
                "upload_s3_mb_per_s": round(s3_speed, 1),
                "upload_ratio": round(upload_ratio, 3),
                "s3_server_put_mb_per_s": round(put_speed, 1),
                "s3_server_get_mb_per_s": round(get_speed, 1),
                "target_upload_ratio_min": TARGET_UPLOAD_RATIO,
                "cold_start_local_s": round(statistics.median(cold["local"]), 2),
                "cold_start_s3_s": round(statistics.median(cold["s3"]), 2),
                "cold_start_ratio": round(cold_ratio, 2),
                "target_cold_ratio_max": TARGET_COLD_RATIO,
                "warm_start_local_s": round(statistics.median(warm["local"]), 2),
                "warm_start_s3_s": round(statistics.median(warm["s3"]), 2),
                "warm_start_ratio": round(warm_ratio, 3),
                "target_warm_ratio_max": TARGET_WARM_RATIO,
                "met": met,
            }
        )
    )
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
