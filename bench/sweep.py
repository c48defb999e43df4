"""Figure 13, sweeps: the Keras tutorial's data and model, a grid of 3 learning rates × 3 first-layer
widths × 2 batch sizes (18 trials, 30 epochs each, validation_split 0.2, seed 0, minmax), sampler
"grid", objective val_accuracy maximized, through a real API, the scheduler and real workers on the
embedded back end (SQLite, no broker), each run in a fresh temporary data folder:
  A: pruner none, 1 worker;  B: pruner median, 1 worker;  C: pruner none, 2 workers.
Wall time is from POST /v1/sweeps to the sweep's status being terminal (GET /v1/sweeps/{id} polled).
Targets: epochs trained with median pruning / without (B / A) <= 0.50; |best val_accuracy B - A| <= 0.01;
wall time with 2 workers / with 1 worker (C / A) <= 0.6.
`parallel` (trials queued or running at once) is workers + --extra-parallel (default 1: a worker finds the next
trial already queued; with parallel = workers it idles ~3 s per trial while the next one is added).
Usage: python -m bench.sweep [--epochs 30] [--extra-parallel 1] [--runs A,B,C] [--curves curves.json]
"""

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.admin import create_api_key
from app.specs import TUTORIAL_COMPILE, TUTORIAL_LAYERS
from bench.common import report
from tests.conftest import embedded_settings, start_scheduler, start_worker
from tests.integration.conftest import ApiServer

TARGET_EPOCH_RATIO = 0.50
TARGET_BEST_GAP = 0.01
TARGET_WALL_RATIO = 0.6
FINISHED = ("succeeded", "failed", "cancelled")
SEARCH = {
    "compile.optimizer.learning_rate": {"type": "choice", "values": [0.0001, 0.001, 0.01]},
    "model.layers[0].units": {"type": "choice", "values": [8, 16, 32]},
    "fit.batch_size": {"type": "choice", "values": [10, 32]},
}
RUNS = {"A": ("none", 1), "B": ("median", 1), "C": ("none", 2)}


@dataclass
class Outcome:
    name: str
    pruner: str
    workers: int
    parallel: int
    status: str
    trials: int
    epochs: int
    pruned: int
    best: float
    wall_s: float
    board: list[dict]
    curves: dict[int, list[float]]


def sweep_body(dataset_id: str, pruner: str, parallel: int, epochs: int) -> dict:
    return {
        "dataset_id": dataset_id,
        "name": f"bench grid, pruner {pruner}",
        "model": {"layers": TUTORIAL_LAYERS},
        "compile": TUTORIAL_COMPILE,
        "fit": {"epochs": epochs, "batch_size": 10, "validation_split": 0.2, "seed": 0, "normalize": "minmax"},
        "search": SEARCH,
        "sampler": "grid",
        "pruner": pruner,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parallel": parallel,
        "seed": 0,
    }


def run_sweep(name: str, pruner: str, workers: int, parallel: int, epochs: int) -> Outcome:
    """A fresh service (API, scheduler, `workers` workers) in a temporary folder, one sweep through it."""
    with tempfile.TemporaryDirectory(prefix=f"epochly-bench-sweep-{name}-") as folder:
        tmp = Path(folder)
        settings = embedded_settings(tmp / "var")
        settings.prepare_data_dir()
        api = ApiServer(settings, tmp / "api.log")
        roles = []
        try:
            api.wait_ready()
            roles.append(start_scheduler(settings, tmp / "scheduler.log"))
            roles.extend(start_worker(settings, tmp / f"worker{i}.log") for i in range(workers))
            key = create_api_key("bench", settings)
            with httpx.Client(base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
                dataset = http.post("/v1/datasets/examples/side-effects").json()
                body = sweep_body(dataset["id"], pruner, parallel, epochs)
                started = time.perf_counter()
                response = http.post("/v1/sweeps", json=body)
                assert response.status_code == 202, response.text
                sweep_id = response.json()["id"]
                while True:
                    sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
                    if sweep["status"] in FINISHED:
                        break
                    time.sleep(0.2)
                wall_s = time.perf_counter() - started
                curves = {
                    t["trial"]: [
                        row["logs"]["val_accuracy"] for row in http.get(f"/v1/jobs/{t['job_id']}/metrics").json()["epochs"]
                    ]
                    for t in sweep["leaderboard"]
                }
        finally:
            for role in roles:
                role.stop()
            api.stop()
    board = sweep["leaderboard"]
    objectives = [t["objective"] for t in board if t["objective"] is not None]
    return Outcome(
        name=name,
        pruner=pruner,
        workers=workers,
        parallel=parallel,
        status=sweep["status"],
        trials=len(board),
        epochs=sum(t["epochs_completed"] for t in board),
        pruned=sum(t["stop_reason"] == "pruned" for t in board),
        best=max(objectives) if objectives else float("nan"),
        wall_s=wall_s,
        board=board,
        curves=curves,
    )


def print_run(run: Outcome) -> None:
    print(
        f"\nrun {run.name}: pruner {run.pruner}, {run.workers} worker(s), parallel {run.parallel}: {run.status}, "
        f"{run.trials} trials, {run.epochs} epochs trained, {run.pruned} pruned, best val_accuracy {run.best:.4f}, "
        f"wall {run.wall_s:.1f} s"
    )
    print(f"  {'trial':>5} {'lr':>7} {'units':>5} {'batch':>5} {'epochs':>6} {'stop':<10} {'val_acc':>7}")
    for t in sorted(run.board, key=lambda t: t["trial"]):
        p = t["params"]
        objective = "-" if t["objective"] is None else f"{t['objective']:.4f}"
        print(
            f"  {t['trial']:>5} {p['compile.optimizer.learning_rate']:>7} {p['model.layers[0].units']:>5} "
            f"{p['fit.batch_size']:>5} {t['epochs_completed']:>6} {t['stop_reason'] or '-':<10} {objective:>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--extra-parallel", type=int, default=1, help="parallel = workers + this (1: the next trial waits queued)"
    )
    parser.add_argument("--runs", default="A,B,C")
    parser.add_argument("--curves", type=Path, help="write each run's per-trial val_accuracy curves here (JSON)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; run C puts 2 workers on them (each a solo-pool Celery process training one trial)")
    outcomes: dict[str, Outcome] = {}
    for name in args.runs.split(","):
        pruner, workers = RUNS[name]
        outcome = run_sweep(name, pruner, workers, workers + args.extra_parallel, args.epochs)
        outcomes[name] = outcome
        print_run(outcome)
    print(
        f"\n{'run':<4} {'pruner':<7} {'workers':>7} {'parallel':>8} {'trials':>6} {'epochs':>6} {'pruned':>6} {'best':>7} {'wall s':>7}"
    )
    for o in outcomes.values():
        print(
            f"{o.name:<4} {o.pruner:<7} {o.workers:>7} {o.parallel:>8} {o.trials:>6} {o.epochs:>6} {o.pruned:>6} {o.best:>7.4f} {o.wall_s:>7.1f}"
        )
    result: dict = {
        "cpu_cores": os.cpu_count(),
        "trials": 18,
        "epochs_per_trial": args.epochs,
        "parallel": f"workers+{args.extra_parallel}",
    }
    met = all(o.status == "succeeded" and o.trials == 18 for o in outcomes.values())
    if "A" in outcomes and "B" in outcomes:
        a, b = outcomes["A"], outcomes["B"]
        epoch_ratio = b.epochs / a.epochs
        gap = abs(b.best - a.best)
        print(f"epochs with median pruning / without: {b.epochs}/{a.epochs} = {epoch_ratio:.2f} (target <= {TARGET_EPOCH_RATIO})")
        print(f"|best val_accuracy pruned - unpruned|: |{b.best:.4f} - {a.best:.4f}| = {gap:.4f} (target <= {TARGET_BEST_GAP})")
        result |= {
            "epochs_unpruned": a.epochs,
            "epochs_median": b.epochs,
            "pruned_trials": b.pruned,
            "epoch_ratio": round(epoch_ratio, 3),
            "target_epoch_ratio": TARGET_EPOCH_RATIO,
            "best_unpruned": round(a.best, 4),
            "best_median": round(b.best, 4),
            "best_gap": round(gap, 4),
            "target_best_gap": TARGET_BEST_GAP,
        }
        met = met and epoch_ratio <= TARGET_EPOCH_RATIO and gap <= TARGET_BEST_GAP
    if "A" in outcomes and "C" in outcomes:
        a, c = outcomes["A"], outcomes["C"]
        wall_ratio = c.wall_s / a.wall_s
        print(
            f"wall time 2 workers / 1 worker (unpruned grid): {c.wall_s:.1f}/{a.wall_s:.1f} s = {wall_ratio:.2f} (target <= {TARGET_WALL_RATIO})"
        )
        result |= {
            "wall_s_1_worker": round(a.wall_s, 1),
            "wall_s_2_workers": round(c.wall_s, 1),
            "wall_ratio": round(wall_ratio, 3),
            "target_wall_ratio": TARGET_WALL_RATIO,
        }
        met = met and wall_ratio <= TARGET_WALL_RATIO
    if "B" in outcomes:
        result["wall_s_median_1_worker"] = round(outcomes["B"].wall_s, 1)
    if args.curves:
        args.curves.write_text(json.dumps({o.name: {"board": o.board, "curves": o.curves} for o in outcomes.values()}))
    report({**result, "met": met})
    if not met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
