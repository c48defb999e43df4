"""Figure 11, callbacks overhead: the wall time of a 100-epoch job (the tutorial's model and data,
validation_split 0.1, through app.training.trainer.train exactly as the worker runs it) with and
without an EarlyStopping that watches val_loss and keeps the best weights (restore_best_weights,
its costliest form) but never stops (patience 100). Pairs alternate their order (without/with, then
with/without) so a drift in the machine's speed falls on both arms alike. On a shared machine the
paired wall times vary by more than the target, so the process CPU time of each run (less disturbed
by other processes' load) and the time spent inside the callbacks (CallbackDriver.epoch_end) are
reported too.
Target: EarlyStopping adds <= 2 % to the wall time.
Usage: python -m bench.callbacks [--runs 5] [--epochs 100]
"""

import argparse
import tempfile
import time
from pathlib import Path

from app.examples import side_effects
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS, TrainingSpec
from app.training.callbacks import CallbackDriver
from app.training.trainer import EpochReporter, NullHooks, Outcome, train
from bench.common import median, report, timed

TARGET = 0.02
STOPPER = {"type": "EarlyStopping", "monitor": "val_loss", "patience": 100, "restore_best_weights": True}


def job(epochs: int, callbacks: list) -> TrainingSpec:
    fit = {**TUTORIAL_FIT, "epochs": epochs, "validation_split": 0.1, "callbacks": callbacks}
    return TrainingSpec.model_validate({"model": {"layers": TUTORIAL_LAYERS}, "compile": TUTORIAL_COMPILE, "fit": fit})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    x, y = side_effects()
    arms = {"without": job(args.epochs, []), "with EarlyStopping": job(args.epochs, [STOPPER])}
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in arms}
    inside = {"s": 0.0}
    epoch_end = CallbackDriver.epoch_end

    def timed_epoch_end(self: CallbackDriver, epoch: int, logs: dict) -> None:
        started = time.perf_counter()
        epoch_end(self, epoch, logs)
        inside["s"] += time.perf_counter() - started

    CallbackDriver.epoch_end = timed_epoch_end  # type: ignore[method-assign]
    callback_fractions: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        train(job(2, []), x, y, reporter=EpochReporter(NullHooks()), model_path=Path(folder) / "warm.keras")  # first-run costs
        for run in range(args.runs):
            order = list(arms.items()) if run % 2 == 0 else list(reversed(arms.items()))
            for name, spec in order:
                inside["s"] = 0.0
                cpu_started = time.process_time()
                elapsed, outcome = timed(
                    lambda spec=spec: train(spec, x, y, reporter=EpochReporter(NullHooks()), model_path=Path(folder) / "m.keras")
                )
                assert outcome is Outcome.COMPLETED, outcome  # never stopped: both arms train every epoch
                seconds[name].append(elapsed)
                cpu_seconds[name].append(time.process_time() - cpu_started)
                if name != "without":
                    callback_fractions.append(inside["s"] / elapsed)
                print(f"run {run + 1}: {name:<20} {elapsed:7.2f} s", flush=True)
    ratios = [b / a for a, b in zip(seconds["without"], seconds["with EarlyStopping"], strict=True)]
    overhead = median(ratios) - 1
    cpu_ratios = [b / a for a, b in zip(cpu_seconds["without"], cpu_seconds["with EarlyStopping"], strict=True)]
    cpu_overhead = median(cpu_ratios) - 1
    in_callbacks = median(callback_fractions)
    print(
        f"{args.epochs}-epoch job: {median(seconds['without']):.2f} s without, {median(seconds['with EarlyStopping']):.2f} s "
        f"with EarlyStopping (restore_best_weights); overhead {overhead * 100:+.2f} % (median of {args.runs} paired runs); "
        f"CPU time {cpu_overhead * 100:+.2f} %; time inside the callbacks: {in_callbacks * 100:.3f} % of the job"
    )
    report(
        {
            "epochs": args.epochs,
            "without_s": round(median(seconds["without"]), 3),
            "with_early_stopping_s": round(median(seconds["with EarlyStopping"]), 3),
            "overhead_pct": round(overhead * 100, 2),
            "cpu_overhead_pct": round(cpu_overhead * 100, 2),
            "time_in_callbacks_pct": round(in_callbacks * 100, 3),
            "target_pct": TARGET * 100,
            "met": overhead <= TARGET,
        }
    )


if __name__ == "__main__":
    main()
