"""Checks job specs against real Keras in a warm helper process, so the API itself never imports TensorFlow.

The helper is spawned (never forked: TensorFlow is not fork-safe), imports Keras once, and
serves checks one at a time.
"""

from typing import Any

from app.named_arrays import Arrays
from app.services.warm_process import WarmProcess


def _warm_up() -> None:
    from app.training.validate import warm_up

    warm_up()


def _check_in_helper(
    spec_json: dict[str, Any], sample_x: Arrays, sample_y: Arrays, objective: str | None
) -> list[dict[str, str]]:
    from app.training.validate import check_spec

    return check_spec(spec_json, sample_x, sample_y, objective)


class SpecChecker:
    def __init__(self) -> None:
        self._helper = WarmProcess("the spec checker", _warm_up)

    def start(self) -> None:
        self._helper.start()

    def check(
        self, spec_json: dict[str, Any], sample_x: Arrays, sample_y: Arrays, timeout_s: float, objective: str | None = None
    ) -> list[dict[str, str]]:
        return self._helper.call(
            _check_in_helper,
            spec_json,
            sample_x,
            sample_y,
            objective,
            timeout_s=timeout_s,
            too_slow=f"checking the spec took longer than {timeout_s:.0f} s; try again",
        )

    def shutdown(self) -> None:
        self._helper.shutdown(wait=True)


spec_checker = SpecChecker()
