"""Where events travel for a given configuration: a Redis channel pattern or a local datagram socket."""

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from app.settings import Settings

CHANNEL_PREFIX = "epochly:job:"
# Messages for the API processes themselves (a revoked key), not for any job's streams.
CONTROL_CHANNEL = "epochly:control"
# Unix socket paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100


def uses_redis(settings: Settings) -> bool:
    return settings.resolved_broker_url.startswith(("redis://", "rediss://"))


def socket_dir(settings: Settings) -> Path:
    """Where each API process of the embedded default binds its datagram socket (api-<pid>.sock);
    publishers send every message to each socket there."""
    preferred = settings.data_dir.resolve() / "events"
    # Room for "/api-<pid>.sock" within the limit.
    if len(str(preferred)) <= MAX_SOCKET_PATH - 20:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"epochly-{digest}"


def channel(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(raw: bytes | str) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return message if isinstance(message, dict) and isinstance(message.get("job_id"), str) else None


def decode_control(raw: bytes | str) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return message if isinstance(message, dict) and message.get("control") is True else None
