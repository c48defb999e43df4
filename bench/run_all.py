"""`make bench`: run every benchmark, one after another (the machine is small and shared), and write
bench/RESULTS.md with the date, the machine and each figure beside its target."""
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

BENCHES = [
    ("1. overhead", ["bench.overhead"]),
    ("2. beat raw Keras", ["bench.speed"]),
    ("3. pollers", ["bench.pollers"]),
    ("4. streams", ["bench.stream_lag", "--clients", "1000", "--runs", "3"]),
    ("5. ingest", ["bench.ingest"]),
    ("6. bigger than memory", ["bench.out_of_core"]),
    ("7. throughput", ["bench.throughput"]),
    ("8. chaos soak", ["bench.soak"]),
    ("9. dashboard", ["bench.ui"]),
    ("10. predict", ["bench.predict"]),
    ("11. callbacks overhead", ["bench.callbacks"]),
    ("12. rate limiter overhead", ["bench.ratelimit"]),
    ("13. sweeps", ["bench.sweep"]),
    ("14. long histories", ["bench.history"]),
    ("15. object storage", ["bench.storage"]),
    ("16. ASGI server", ["bench.asgi_servers"]),
    ("17. poll profile", ["bench.poll_profile"]),
    ("18. rerun", ["bench.rerun"]),
]
RESULTS = Path(__file__).with_name("RESULTS.md")
# Every figure's latest result, so running one benchmark (`python -m bench.run_all pollers`) keeps the others.
RESULTS_JSON = Path(__file__).with_name("results.json")


def machine() -> str:
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    return f"{os.cpu_count()} cores, {memory_kib / 1024**2:.0f} GiB memory, {platform.platform()}, Python {platform.python_version()}"


def run(module: list[str]) -> dict | None:
    process = subprocess.run([sys.executable, "-m", *module], capture_output=True, text=True)
    sys.stdout.write(process.stdout)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT: ")]
    if process.returncode != 0:
        sys.stdout.write(process.stderr[-3000:])
    # A benchmark that missed its target still prints its figures (and exits 1): they belong in RESULTS.md.
    return json.loads(lines[-1].removeprefix("RESULT: ")) if lines else None


def main() -> None:
    only = set(sys.argv[1:])
    stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    for figure, module in BENCHES:
        if only and module[0].split(".")[-1] not in only:
            continue
        print(f"== {figure}: python -m {' '.join(module)}", flush=True)
        stored[figure] = {"command": " ".join(module), "date": date.today().isoformat(), "result": run(module)}
    RESULTS_JSON.write_text(json.dumps(stored, indent=1) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"Written {date.today().isoformat()} by `make bench` on {machine()}; each row gives the day it was measured.",
        "Medians of several runs; ratios measured within one run. The machine is shared and noisy.",
        "",
        "| figure | command | measured (beside each target) | met |",
        "|---|---|---|---|",
    ]
    for figure, _ in BENCHES:
        if figure not in stored:
            continue
        entry = stored[figure]
        result = entry["result"]
        if result is None:
            lines.append(f"| {figure} | `python -m {entry['command']}` ({entry['date']}) | failed to run | no |")
            continue
        shown = ", ".join(f"{k}: {v}" for k, v in result.items() if k not in ("figure", "met"))
        lines.append(f"| {figure} | `python -m {entry['command']}` ({entry['date']}) | {shown} | {'yes' if result['met'] else 'no'} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
