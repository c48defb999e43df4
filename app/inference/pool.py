"""The API's handle on the warm inference process: spawned (TensorFlow is not fork-safe) on first
use, kept warm with its model cache, restarted once if it dies mid-request."""

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from app.errors import ServiceUnavailable
from app.inference import helper
from app.inference.helper import Blob, Stamp

T = TypeVar("T")


class Predictor:
    def __init__(self, cache_bytes: int, timeout_s: float) -> None:
        self.cache_bytes = cache_bytes
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=helper.warm_up,
                    initargs=(self.cache_bytes,),
                )

    def describe(self, stamp: Stamp) -> tuple[str, list[tuple[str, tuple[int | None, ...], str]]]:
        return self._call(helper.describe, stamp)

    def predict_blobs(self, stamp: Stamp, inputs: dict[str, Blob]) -> tuple[str, dict[str, Blob]]:
        return self._call(helper.predict_blobs, stamp, inputs)

    def predict_files(self, stamp: Stamp, inputs: dict[str, Path], out_path: Path, fmt: str) -> tuple[str, int]:
        return self._call(helper.predict_files, stamp, {k: str(v) for k, v in inputs.items()}, str(out_path), fmt)

    def evaluate_files(self, stamp: Stamp, x_path: Path, y_path: Path) -> tuple[str, dict[str, float], int]:
        return self._call(helper.evaluate_files, stamp, str(x_path), str(y_path))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return self._run(fn, *args)
        except BrokenProcessPool:
            # The helper died (out of memory on a huge batch, say): start a fresh one and retry once.
            self.shutdown()
            try:
                return self._run(fn, *args)
            except BrokenProcessPool:
                self.shutdown()
                raise ServiceUnavailable("the inference process crashed on this request") from None

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self.start()
        assert self._pool is not None
        future = self._pool.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            raise ServiceUnavailable(f"the model took longer than {self.timeout_s:.0f} s; try again or send fewer rows") from None

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
