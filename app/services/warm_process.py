"""One warm helper process that imports Keras so the API never does: spawned (TensorFlow is not
fork-safe), started on first use, restarted once if it dies mid-call, and gone with its parent.

The spec checker and the inference pool each own one."""

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from app.errors import ServiceUnavailable

T = TypeVar("T")
PARENT_CHECK_S = 1.0


def _follow_parent_then_warm_up(warm_up: Callable[..., None], *args: Any) -> None:
    """The helper exits once its API process is gone. A parent killed with SIGKILL, or one whose
    shutdown was cut short, never tells its pool to stop: without this each such helper stays,
    holding the several hundred MB that TensorFlow takes.

    Ctrl-C in a terminal signals every process of the foreground group, this helper too: it leaves
    stopping to its parent (the pool's shutdown, or the watch below), so a Ctrl-C on `make run` prints
    no KeyboardInterrupt traceback from it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    warm_up(*args)


class WarmProcess:
    def __init__(self, what: str, warm_up: Callable[..., None], *warm_up_args: Any) -> None:
        self.what = what  # for error messages: "the spec checker", "the inference process"
        self._initargs = (warm_up, *warm_up_args)
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_follow_parent_then_warm_up,
                    initargs=self._initargs,
                )

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float, too_slow: str) -> T:
        """`fn(*args)` in the helper. A helper that died (out of memory on a huge model, say) is
        replaced and the call tried once more; `too_slow` is the 503's detail after `timeout_s`."""
        try:
            return self._call_once(fn, args, timeout_s, too_slow)
        except BrokenProcessPool:
            self.shutdown()
        try:
            return self._call_once(fn, args, timeout_s, too_slow)
        except BrokenProcessPool:
            self.shutdown()
            raise ServiceUnavailable(f"{self.what} crashed on this request") from None

    def _call_once(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float, too_slow: str) -> T:
        self.start()
        assert self._pool is not None
        future = self._pool.submit(fn, *args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise ServiceUnavailable(too_slow) from None

    def shutdown(self, *, wait: bool = False) -> None:
        """`wait`: for the process's own end. The pool's queues are then released before Python exits;
        without it the resource tracker reports their semaphores as leaked. A call already running
        finishes first (each is bounded by its timeout)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=wait, cancel_futures=True)
                self._pool = None
