"""Figure 6, bigger than memory: training on a dataset larger than the worker's memory budget
streams batches from memory-mapped arrays; its peak RSS stays bounded while a run that loads the
same data grows with it. Memory is peak anonymous RSS (RssAnon, sampled every 50 ms):
mapped file pages are left out, since the kernel reclaims them under pressure. Target: streamed samples/s within 10 % of in-memory training.

Each mode runs in a fresh process (so peak RSS, VmHWM, is its own): in-memory first, then
streamed with a budget far below the dataset's size. MLP 256-256-10, batch 1024, 1 epoch.
Usage: python -m bench.out_of_core [--rows 2000000] [--features 100] [--runs 3]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import median, report

CHILD = """
import json, sys, threading, time, tempfile
from pathlib import Path
import numpy as np
from app.specs import TrainingSpec
from app.training.trainer import EpochReporter, NullHooks, train

folder, in_memory = Path(sys.argv[1]), sys.argv[2] == "memory"
x = np.load(folder / "x.npy", mmap_mode=None if in_memory else "r")
y = np.load(folder / "y.npy", mmap_mode=None if in_memory else "r")
spec = TrainingSpec.model_validate({
    "model": {"layers": [{"type": "Dense", "units": 256, "activation": "relu"}, {"type": "Dense", "units": 256, "activation": "relu"},
                         {"type": "Dense", "units": 10, "activation": "softmax"}]},
    "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
    "fit": {"epochs": 1, "batch_size": 1024},
})
# Anonymous memory only: mapped file pages count in RSS but the kernel can drop them at any time.
peak = [0]
done = threading.Event()
def sample():
    while not done.wait(0.05):
        anon = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon")) * 1024
        peak[0] = max(peak[0], anon)
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
train(spec, x, y, reporter=EpochReporter(NullHooks()), model_path=Path(tempfile.mkdtemp()) / "m.keras", in_memory=in_memory)
seconds = time.perf_counter() - started
done.set()
print(json.dumps({"samples_per_s": len(x) / seconds, "peak_rss": peak[0]}))
"""


def make_dataset(folder: Path, rows: int, features: int) -> int:
    x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float32, shape=(rows, features))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 100_000):
        x[start : start + 100_000] = rng.normal(size=(min(100_000, rows - start), features))
    x.flush()
    np.save(folder / "y.npy", rng.integers(0, 10, rows).astype(np.int32))
    return rows * features * 4 + rows * 4


def run_mode(folder: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="epochly-ooc-") as tmp:
        folder = Path(tmp)
        size = make_dataset(folder, args.rows, args.features)
        memory, streamed = [], []
        for run in range(args.runs):
            memory.append(run_mode(folder, "memory"))
            streamed.append(run_mode(folder, "streamed"))
            print(f"run {run + 1}: in memory {memory[-1]['samples_per_s']:.0f} samples/s, peak RSS {memory[-1]['peak_rss'] / 2**20:.0f} MiB; "
                  f"streamed {streamed[-1]['samples_per_s']:.0f} samples/s, peak RSS {streamed[-1]['peak_rss'] / 2**20:.0f} MiB")
    ratio = median([s["samples_per_s"] for s in streamed]) / median([m["samples_per_s"] for m in memory])
    peak_memory = median([m["peak_rss"] for m in memory]) / 2**20
    peak_streamed = median([s["peak_rss"] for s in streamed]) / 2**20
    print(f"dataset {size / 2**20:.0f} MiB: streamed runs at {ratio:.2f}x the in-memory samples/s (target >= 0.90); "
          f"peak RSS {peak_streamed:.0f} MiB streamed vs {peak_memory:.0f} MiB in memory")
    report({
        "figure": "6. bigger than memory", "dataset_mib": round(size / 2**20), "streamed_over_in_memory_samples_per_s": round(ratio, 2),
        "target_ratio": 0.9, "peak_rss_mib_streamed": round(peak_streamed), "peak_rss_mib_in_memory": round(peak_memory), "met": ratio >= 0.9,
    })


if __name__ == "__main__":
    main()
