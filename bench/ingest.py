"""Figure 5, ingest: upload speed and the API's peak memory for a large CSV and a multi-GB .npz.

A CSV of --rows rows x 20 float columns (%.6f) + 1 integer label column (default 5,000,000 rows,
about 1 GB) and an .npz of about --npz-gb GB (float32 x with 20 columns, int32 y; ZIP_STORED) are
written to a temp folder in chunks, then each is streamed from disk to `POST /v1/datasets` on a
live embedded service with no workers. Every run gets a fresh service, because VmHWM is a
process-lifetime peak (the peak is also reset through /proc/PID/clear_refs where the kernel allows).

  speed     = file bytes / wall time of the upload request (parsing and storing included), MB = 10^6 B
  RSS growth = the API process's VmHWM after the upload - its VmRSS before it
  CSV ratio  = RSS growth / parsed arrays, parsed arrays = rows x 21 x 4 B (float32 x + int32 y)
  npz ratio  = RSS growth / .npz file size

Targets: CSV >= 100 MB/s and RSS growth <= 2x the parsed arrays; the .npz stored without being
loaded whole, read here as RSS growth <= 0.1x its file size. Medians of --runs runs.
Usage: python -m bench.ingest [--rows 5000000] [--npz-gb 2] [--runs 3]
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np

from bench.harness import LiveService, service

MB = 1e6
FEATURES = 20
CSV_CHUNK_ROWS = 100_000
NPZ_CHUNK_ROWS = 2_000_000
TARGET_MB_PER_S = 100.0
TARGET_CSV_RSS_RATIO = 2.0
TARGET_NPZ_RSS_RATIO = 0.1
DEFAULT_MAX_UPLOAD = 2 * 1024**3


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write(",".join([f"f{i}" for i in range(FEATURES)] + ["label"]) + "\n")
        for start in range(0, rows, CSV_CHUNK_ROWS):
            n = min(CSV_CHUNK_ROWS, rows - start)
            block = np.empty((n, FEATURES + 1))
            block[:, :FEATURES] = rng.standard_normal((n, FEATURES))
            block[:, FEATURES] = rng.integers(0, 3, n)
            np.savetxt(f, block, fmt=["%.6f"] * FEATURES + ["%d"], delimiter=",")


def write_npz(path: Path, gb: float) -> int:
    """x.npy and y.npy as memmaps filled in chunks, then stored (not compressed) into one .npz."""
    rows = max(1, int(gb * 1e9 / ((FEATURES + 1) * 4)))
    rng = np.random.default_rng(1)
    parts = {"x.npy": path.with_suffix(".x.npy"), "y.npy": path.with_suffix(".y.npy")}
    x = np.lib.format.open_memmap(parts["x.npy"], mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    y = np.lib.format.open_memmap(parts["y.npy"], mode="w+", dtype=np.int32, shape=(rows,))
    for start in range(0, rows, NPZ_CHUNK_ROWS):
        stop = min(rows, start + NPZ_CHUNK_ROWS)
        x[start:stop] = rng.standard_normal((stop - start, FEATURES), dtype=np.float32)
        y[start:stop] = rng.integers(0, 3, stop - start, dtype=np.int32)
    x.flush()
    y.flush()
    del x, y
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, part in parts.items():
                archive.write(part, name)
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
    return rows


def api_pid(live: LiveService) -> int:
    """The uvicorn child the harness started for this service (our child, its port on the command line)."""
    port = live.url.rsplit(":", 1)[1].encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"uvicorn" in cmdline and port in cmdline:
            return int(entry.name)
    sys.exit("could not find the API process")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def upload_once(path: Path, filename: str, media_type: str) -> tuple[float, int, dict]:
    """One upload on a fresh service: (seconds, API peak RSS growth in bytes, the 201 body)."""
    with service("embedded", workers=0) as live:
        pid = api_pid(live)
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = status_kib(pid, "VmRSS")
        with path.open("rb") as f, httpx.Client(base_url=live.url, headers=live.headers, timeout=None) as client:
            t0 = time.perf_counter()
            response = client.post("/v1/datasets", files={"file": (filename, f, media_type)})
            seconds = time.perf_counter() - t0
        peak = status_kib(pid, "VmHWM")
    if response.status_code != 201:
        sys.exit(f"upload of {filename} answered {response.status_code}: {response.text[:500]}")
    return seconds, (peak - before) * 1024, response.json()


def measure(label: str, path: Path, filename: str, media_type: str, rows: int, runs: int) -> tuple[float, float]:
    size = path.stat().st_size
    speeds, growths = [], []
    for run in range(runs):
        seconds, growth, body = upload_once(path, filename, media_type)
        assert body["n_samples"] == rows and body["x_shape"] == [FEATURES], body
        speeds.append(size / MB / seconds)
        growths.append(growth)
        print(f"{label} run {run + 1}: {size / MB:.1f} MB in {seconds:.2f} s = {speeds[-1]:.1f} MB/s; API peak RSS growth {growth / MB:.1f} MB", flush=True)
    return statistics.median(speeds), statistics.median(growths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="CSV rows (20 features + 1 label)")
    parser.add_argument("--npz-gb", type=float, default=2.0, help=".npz size in GB (10^9 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="epochly-bench-ingest-") as tmp:
        csv_path, npz_path = Path(tmp) / "bench.csv", Path(tmp) / "bench.npz"
        t0 = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"wrote {csv_path.stat().st_size / MB:.1f} MB CSV ({args.rows:,} rows) in {time.perf_counter() - t0:.1f} s", flush=True)
        csv_speed, csv_growth = measure("csv", csv_path, "bench.csv", "text/csv", args.rows, args.runs)
        csv_size = csv_path.stat().st_size
        csv_path.unlink()

        t0 = time.perf_counter()
        npz_rows = write_npz(npz_path, args.npz_gb)
        npz_size = npz_path.stat().st_size
        print(f"wrote {npz_size / MB:.1f} MB .npz ({npz_rows:,} rows) in {time.perf_counter() - t0:.1f} s", flush=True)
        if npz_size > DEFAULT_MAX_UPLOAD and "MAX_UPLOAD_BYTES" not in os.environ:
            os.environ["MAX_UPLOAD_BYTES"] = str(npz_size + 1024**2)
            print(f"note: the .npz is over the default 2 GiB upload cap; MAX_UPLOAD_BYTES set to {os.environ['MAX_UPLOAD_BYTES']}")
        npz_speed, npz_growth = measure("npz", npz_path, "bench.npz", "application/octet-stream", npz_rows, args.runs)

    parsed = args.rows * (FEATURES + 1) * 4
    csv_ratio, npz_ratio = csv_growth / parsed, npz_growth / npz_size
    print(
        f"ingest, median of {args.runs} runs: CSV {csv_size / MB:.0f} MB at {csv_speed:.1f} MB/s (target >= {TARGET_MB_PER_S:.0f}), "
        f"API peak RSS growth {csv_growth / MB:.0f} MB = {csv_ratio:.2f}x the parsed arrays of {parsed / MB:.0f} MB "
        f"(rows x 21 x 4 B; target <= {TARGET_CSV_RSS_RATIO}x); "
        f".npz {npz_size / MB:.0f} MB at {npz_speed:.1f} MB/s, API peak RSS growth {npz_growth / MB:.0f} MB = {npz_ratio:.3f}x the file "
        f"(target <= {TARGET_NPZ_RSS_RATIO}x)"
    )
    met = csv_speed >= TARGET_MB_PER_S and csv_ratio <= TARGET_CSV_RSS_RATIO and npz_ratio <= TARGET_NPZ_RSS_RATIO
    print("RESULT: " + json.dumps({
        "figure": "ingest", "runs": args.runs,
        "csv_rows": args.rows, "csv_mb": round(csv_size / MB, 1), "csv_mb_per_s": round(csv_speed, 1), "target_mb_per_s": TARGET_MB_PER_S,
        "csv_peak_api_rss_growth_mb": round(csv_growth / MB, 1), "parsed_array_mb": round(parsed / MB, 1),
        "csv_peak_api_rss_ratio": round(csv_ratio, 2), "target_csv_rss_ratio_max": TARGET_CSV_RSS_RATIO,
        "npz_mb": round(npz_size / MB, 1), "npz_mb_per_s": round(npz_speed, 1),
        "npz_peak_api_rss_growth_mb": round(npz_growth / MB, 1), "npz_peak_api_rss_ratio": round(npz_ratio, 3),
        "target_npz_rss_ratio_max": TARGET_NPZ_RSS_RATIO, "met": met,
    }))


if __name__ == "__main__":
    main()
