"""API keys and per-owner limits."""

import hashlib
import secrets
import threading
import time
from collections import OrderedDict

from sqlalchemy.orm import Session

from app.errors import PayloadTooLarge, QuotaExceeded
from app.models import ApiKey, Owner
from app.repositories import owners as owners_repo
from app.settings import Settings

# A recognisable prefix lets secret scanners find leaked keys.
KEY_PREFIX = "ek_"
KEY_RANDOM_BYTES = 32  # token_urlsafe(32) gives 43 URL-safe characters


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, owner_name: str) -> str:
    """A new key for the owner (created if new); the only time the key itself exists in clear."""
    owner = owners_repo.by_name(session, owner_name) or owners_repo.add(session, Owner(name=owner_name))
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    owners_repo.add_key(session, ApiKey(owner_id=owner.id, key_hash=hash_key(key), prefix=key[:8]))
    return key


def authenticate(session: Session, key: str) -> Owner | None:
    if not key.startswith(KEY_PREFIX):
        return None
    return owners_repo.owner_for_key_hash(session, hash_key(key))


def any_keys(session: Session) -> bool:
    return owners_repo.key_count(session) > 0


def check_job_quota(session: Session, settings: Settings, owner_id: str) -> None:
    active = owners_repo.active_job_count(session, owner_id)
    if active >= settings.owner_max_active_jobs:
        raise QuotaExceeded(
            f"you have {active} queued or running jobs; the limit is {settings.owner_max_active_jobs}. "
            "Wait for one to finish or cancel one."
        )


def check_storage_quota(session: Session, settings: Settings, owner_id: str, incoming_bytes: int) -> None:
    stored = owners_repo.stored_bytes(session, owner_id)
    if stored + incoming_bytes > settings.owner_max_stored_bytes:
        raise PayloadTooLarge(
            f"this upload of {incoming_bytes:,} bytes would bring your stored datasets to {stored + incoming_bytes:,} bytes; "
            f"the limit is {settings.owner_max_stored_bytes:,}. Delete datasets you no longer need."
        )


class KeyCache:
    """Valid keys seen recently, so a poller's every request does not pay a database round trip.

    Only valid keys are kept (a wrong key always reaches the database), for `ttl_s` at most: a
    revoked key stops working within that time."""

    def __init__(self, ttl_s: float = 30.0, size: int = 1024) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._entries: OrderedDict[str, tuple[float, Owner]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Owner | None:
        digest = hash_key(key)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(digest, None)
                return None
            return entry[1]

    def put(self, key: str, owner: Owner) -> None:
        with self._lock:
            self._entries[hash_key(key)] = (time.monotonic() + self._ttl_s, owner)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
