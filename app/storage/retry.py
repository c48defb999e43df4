"""Patience with an object store that is away for a while: keep trying with backoff."""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("epochly.storage")
T = TypeVar("T")
MAX_DELAY_S = 5.0


def with_retry(what: str, action: Callable[[], T], *, give_up: Callable[[], bool] = lambda: False) -> T:
    """`action`'s result once it succeeds. A missing object (FileNotFoundError) is an answer, not an
    outage, so it is raised at once; so is the last error once `give_up()` says so."""
    delay = 0.2
    while True:
        try:
            return action()
        except FileNotFoundError:
            raise
        except Exception as exc:
            if give_up():
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(MAX_DELAY_S, delay * 2)
