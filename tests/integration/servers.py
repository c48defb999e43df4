"""The private PostgreSQL and Redis servers of bench/servers.py, for tests: a missing server binary
skips the test, or fails it on CI (CI=true), where every binary is meant to be installed."""
import os

import pytest

from bench import servers
from bench.servers import find_binary


def _require(binary: str) -> str:
    path = find_binary(binary)
    if path is None:
        message = f"{binary} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class PrivateRedis(servers.PrivateRedis):
    require = staticmethod(_require)


class PrivatePostgres(servers.PrivatePostgres):
    require = staticmethod(_require)


__all__ = ["PrivatePostgres", "PrivateRedis"]
