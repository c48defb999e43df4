"""The API's handle on the warm inference process (app.services.warm_process): spawned on first
use, kept warm with its model cache, restarted once if it dies mid-request."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.inference import helper
from app.inference.helper import Blob, Stamp
from app.services.warm_process import WarmProcess

T = TypeVar("T")


class Predictor:
    def __init__(self, cache_bytes: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._helper = WarmProcess("the inference process", helper.warm_up, cache_bytes)

    def start(self) -> None:
        self._helper.start()

    def describe(self, stamp: Stamp) -> tuple[str, list[tuple[str, tuple[int | None, ...], str]]]:
        return self._call(helper.describe, stamp)

    def predict_blobs(self, stamp: Stamp, inputs: dict[str, Blob]) -> tuple[str, dict[str, Blob]]:
        return self._call(helper.predict_blobs, stamp, inputs)

    def predict_files(self, stamp: Stamp, inputs: dict[str, Path], out_path: Path, fmt: str) -> tuple[str, int, str]:
        return self._call(helper.predict_files, stamp, {k: str(v) for k, v in inputs.items()}, str(out_path), fmt)

    def evaluate_files(
        self, stamp: Stamp, x_path: Path | dict[str, Path], y_path: Path | dict[str, Path]
    ) -> tuple[str, dict[str, float], int]:
        def text(paths: Path | dict[str, Path]) -> str | dict[str, str]:
            return {name: str(p) for name, p in paths.items()} if isinstance(paths, dict) else str(paths)

        return self._call(helper.evaluate_files, stamp, text(x_path), text(y_path))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._helper.call(
            fn,
            *args,
            timeout_s=self.timeout_s,
            too_slow=f"the model took longer than {self.timeout_s:.0f} s; try again or send fewer rows",
        )

    def shutdown(self) -> None:
        self._helper.shutdown(wait=True)
