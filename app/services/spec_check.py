"""Checks job specs against real Keras in a warm helper process, so the API itself never imports TensorFlow.

The helper is spawned (never forked: TensorFlow is not fork-safe), imports Keras once, and
serves checks one at a time.
"""

import concurrent.futures
import multiprocessing
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from app.errors import ServiceUnavailable


def _warm_up() -> None:
    from app.training.validate import warm_up

    warm_up()


def _check_in_helper(spec_json: dict[str, Any], sample_x: np.ndarray, sample_y: np.ndarray) -> list[dict[str, str]]:
    from app.training.validate import check_spec

    return check_spec(spec_json, sample_x, sample_y)


class SpecChecker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up
                )

    def check(
        self, spec_json: dict[str, Any], sample_x: np.ndarray, sample_y: np.ndarray, timeout_s: float
    ) -> list[dict[str, str]]:
        try:
            return self._run(spec_json, sample_x, sample_y, timeout_s)
        except BrokenProcessPool:
            # The helper died (e.g. out of memory on a huge model): start a fresh one and retry once.
            self.shutdown()
            try:
                return self._run(spec_json, sample_x, sample_y, timeout_s)
            except BrokenProcessPool:
                self.shutdown()
                raise ServiceUnavailable("the spec checker crashed while checking this spec") from None

    def _run(
        self, spec_json: dict[str, Any], sample_x: np.ndarray, sample_y: np.ndarray, timeout_s: float
    ) -> list[dict[str, str]]:
        self.start()
        assert self._pool is not None
        future = self._pool.submit(_check_in_helper, spec_json, sample_x, sample_y)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise ServiceUnavailable(f"checking the spec took longer than {timeout_s:.0f} s; try again") from None

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


spec_checker = SpecChecker()
