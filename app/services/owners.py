"""API keys (records, scopes, expiry, revocation), the key cache on the request path, and per-owner limits."""

import hashlib
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from app.db import publish_control_after_commit
from app.errors import KeyNotFound, PayloadTooLarge, QuotaExceeded
from app.models import ApiKey, Owner, utcnow
from app.repositories import owners as owners_repo
from app.repositories.pagination import Page
from app.settings import Settings

# A recognisable prefix lets secret scanners find leaked keys.
KEY_PREFIX = "ek_"
KEY_RANDOM_BYTES = 32  # token_urlsafe(32) gives 43 URL-safe characters
# How many characters after `ek_` a key's record shows.
SHOWN_PREFIX = 8
Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
# last_used_at is written at most this often per key.
TOUCH_INTERVAL = timedelta(minutes=1)
# The bus message that makes every API process forget a key (and close its streams).
KEY_REVOKED = "key.revoked"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def create_key(
    session: Session, owner_name: str, *, name: str = "key", scope: Scope = "write", expires_in_s: int | None = None
) -> tuple[ApiKey, str]:
    """A new key for the owner (created if new); the only time the key itself exists in clear."""
    owner = owners_repo.by_name(session, owner_name) or owners_repo.add(session, Owner(name=owner_name))
    return create_owned_key(session, owner.id, name=name, scope=scope, expires_in_s=expires_in_s)


def create_owned_key(
    session: Session, owner_id: str, *, name: str = "key", scope: Scope = "write", expires_in_s: int | None = None
) -> tuple[ApiKey, str]:
    if scope not in SCOPES:
        raise ValueError(f"scope must be read or write, not {scope!r}")
    secret = new_secret()
    now = utcnow()
    record = ApiKey(
        owner_id=owner_id,
        key_hash=hash_key(secret),
        prefix=secret[len(KEY_PREFIX) : len(KEY_PREFIX) + SHOWN_PREFIX],
        name=name,
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in_s) if expires_in_s is not None else None,
    )
    return owners_repo.add_key(session, record), secret


def list_keys(session: Session, *, owner_id: str, cursor: str | None, limit: int) -> Page[ApiKey]:
    return owners_repo.key_page(session, owner_id, cursor=cursor, limit=limit)


def all_keys(session: Session, owner_name: str | None = None) -> list[tuple[ApiKey, Owner]]:
    """Every key (of one owner, by name), for the server-side `epochly keys list`."""
    if owner_name is None:
        return owners_repo.all_keys(session, None)
    owner = owners_repo.by_name(session, owner_name)
    return owners_repo.all_keys(session, owner.id) if owner is not None else []


def revoke_key(session: Session, key_id: str, *, owner_id: str | None) -> ApiKey:
    """Revoke a key (a no-op if it is already revoked). Once committed, every API process is told to
    forget it: the bus carries the news, and the caller drops it from its own cache at once."""
    key = owners_repo.get_key(session, key_id, owner_id=owner_id)
    if key is None:
        raise KeyNotFound(f"no API key with id {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    publish_control_after_commit(session, {"type": KEY_REVOKED, "key_id": key.id})
    return key


def find_key(session: Session, key: str) -> tuple[ApiKey, Owner] | None:
    """The key's record and owner, revoked and expired ones included (the caller refuses those)."""
    if not key.startswith(KEY_PREFIX):
        return None
    return owners_repo.key_by_hash(session, hash_key(key))


def expired_detail(expires_at: datetime | None) -> str:
    if expires_at is None:
        return "the API key expired"
    return f"the API key expired at {expires_at.isoformat().replace('+00:00', 'Z')}; create a new one"


def any_keys(session: Session) -> bool:
    return owners_repo.key_count(session) > 0


def hold_quotas(session: Session, owner_id: str) -> None:
    """Call in the transaction that writes, before its quota check: another upload or submit of the
    same owner then waits for this one's commit and counts what it wrote."""
    owners_repo.hold(session, owner_id)


def check_job_quota(session: Session, settings: Settings, owner_id: str) -> None:
    active = owners_repo.active_job_count(session, owner_id)
    if active >= settings.owner_max_active_jobs:
        raise QuotaExceeded(
            f"you have {active} queued or running jobs; the limit is {settings.owner_max_active_jobs}. "
            "Wait for one to finish or cancel one."
        )


def storage_room(session: Session, settings: Settings, owner_id: str) -> int:
    """How many more bytes the owner may store (OWNER_MAX_STORED_BYTES counts stored, not uploaded, bytes)."""
    return max(0, settings.owner_max_stored_bytes - owners_repo.stored_bytes(session, owner_id))


def check_storage_quota(session: Session, settings: Settings, owner_id: str, incoming_bytes: int) -> None:
    stored = owners_repo.stored_bytes(session, owner_id)
    if stored + incoming_bytes > settings.owner_max_stored_bytes:
        raise PayloadTooLarge(
            f"this dataset of {incoming_bytes:,} stored bytes would bring your stored datasets to {stored + incoming_bytes:,} "
            f"bytes; the limit is {settings.owner_max_stored_bytes:,}. Delete datasets you no longer need."
        )


@dataclass(frozen=True)
class CachedKey:
    """What a request needs to know about its key, without a database round trip."""

    key_id: str
    owner: Owner  # detached and loaded: shared by later requests
    scope: str
    expires_at: datetime | None
    expires_ts: float | None  # expires_at as time.time(), for a cheap comparison per request

    def expired(self) -> bool:
        return self.expires_ts is not None and self.expires_ts <= time.time()


class KeyCache:
    """Valid keys seen recently, so a poller's every request does not pay a database round trip.

    Only valid keys are kept (a wrong or revoked key always reaches the database), for `ttl_s` at
    most. Revocation does not wait for the TTL: the revoking process drops the key at once and the
    event bus tells every other API process to (app/events/hub.py); a process whose bus subscription
    was interrupted drops everything. Expiry is checked on every request from the cached time."""

    def __init__(self, ttl_s: float = 30.0, size: int = 1024) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._entries: OrderedDict[str, tuple[float, CachedKey]] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedKey | None:
        digest = hash_key(key)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(digest, None)
                return None
            return entry[1]

    def put(self, key: str, record: ApiKey, owner: Owner) -> CachedKey:
        expires_ts = record.expires_at.timestamp() if record.expires_at is not None else None
        cached = CachedKey(record.id, owner, record.scope, record.expires_at, expires_ts)
        with self._lock:
            self._entries[hash_key(key)] = (time.monotonic() + self._ttl_s, cached)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return cached

    def drop(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, c) in self._entries.items() if c.key_id == key_id]:
                del self._entries[digest]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def touch_due(self, key_id: str) -> bool:
        """True at most once per TOUCH_INTERVAL per key in this process: time to write last_used_at."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -1e18) < TOUCH_INTERVAL.total_seconds():
                return False
            self._touched[key_id] = now
            if len(self._touched) > 4 * self._size:
                self._touched.clear()
            return True


class RefusalCounter:
    """Refused calls (401, 403, 429) per key, counted in memory and added to key_refusal now and then
    (app/main.py), so a flood of refusals is not a flood of writes."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def count(self, key_id: str, status: int) -> None:
        with self._lock:
            self._counts[(key_id, status)] += 1

    def drain(self) -> dict[tuple[str, int], int]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts


def save_refusals(session: Session, counts: dict[tuple[str, int], int]) -> None:
    now = utcnow()
    for (key_id, status), count in counts.items():
        if owners_repo.get_key(session, key_id, owner_id=None) is not None:
            owners_repo.add_refusals(session, key_id, status, count, now)


def touch_key(session: Session, key_id: str) -> None:
    owners_repo.touch_key(session, key_id, utcnow(), TOUCH_INTERVAL)
