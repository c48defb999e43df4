"""Per-key token buckets (RATE_LIMIT_PER_MIN): in Redis on the production pair, shared by every API
process; in-process on the embedded default. One call per request, no database round trip.

A bucket holds up to `limit` tokens and refills at limit/60 per second; a request takes one.
The answer carries what the IETF RateLimit header fields draft sends: the limit, the tokens
left, and the seconds until the bucket is full again."""

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

log = logging.getLogger("epochly.ratelimit")
WINDOW_S = 60.0
# Keys remembered at once; past that the table starts afresh (a forgotten key just takes a new lease).
LEASE_TABLE_SIZE = 100_000


class Verdict(NamedTuple):
    """A tuple, not a frozen dataclass: one is made per request, and a frozen dataclass's __init__
    (an object.__setattr__ per field) took a microsecond of a 45 µs poll."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the bucket is full again
    retry_after_s: int  # until one token is back (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
        ]


class RateLimiter(Protocol):
    async def acquire(self, key_id: str) -> Verdict | None:
        """One request's token, or a refusal; None when no limit applies. Runs on the event loop."""
        ...


def _verdict(limit: int, tokens: float, allowed: bool) -> Verdict:
    rate = limit / WINDOW_S
    remaining = math.floor(tokens) if tokens > 0 else 0
    reset_s = math.ceil((limit - tokens) / rate) if tokens < limit else 0
    if allowed:
        return Verdict(True, limit, remaining, reset_s, 0)
    return Verdict(False, limit, remaining, reset_s, max(1, math.ceil((1 - tokens) / rate)))


class MemoryRateLimiter:
    def __init__(self, limit_per_min: int, size: int = 100_000) -> None:
        self._limit = limit_per_min
        self._rate = limit_per_min / WINDOW_S
        self._buckets: dict[str, tuple[float, float]] = {}
        self._size = size
        self._lock = threading.Lock()

    async def acquire(self, key_id: str) -> Verdict:
        return self.take(key_id)

    def take(self, key_id: str) -> Verdict:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self._limit), now))
            tokens = min(float(self._limit), tokens + (now - at) * self._rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= self._size and key_id not in self._buckets:
                self._buckets.clear()  # a full bucket is what a forgotten key gets anyway
            self._buckets[key_id] = (tokens, now)
        return _verdict(self._limit, tokens, allowed)


# KEYS[1]: the bucket; ARGV: limit, rate per second, tokens wanted. Takes up to that many whole tokens
# (at least one, or none and refused). Redis' own clock, so API hosts' clocks don't matter.
_TAKE = """
local limit = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or limit
local at = tonumber(state[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(limit / rate * 1000) + 1000)
return {granted, tostring(tokens)}
"""
# A process takes tokens from the shared bucket in small leases, so most requests need no Redis round
# trip. A lease is used within LEASE_S or dropped: tokens a quiet process took are lost to the others,
# which only makes the limit stricter, never looser.
LEASE_FRACTION = 1 / 600  # 10 tokens at the default 6,000 a minute: a tenth of a second of allowance
# Reached only by limits over 30,000 a minute, where a lease of a tenth of a second would still mean
# a renewal every few hundred requests.
LEASE_MAX = 500
LEASE_S = 1.0


@dataclass
class _Lease:
    tokens: int
    shared_left: float  # the shared bucket's tokens after the last renewal, for the headers
    until: float


class RedisRateLimiter:
    """A key's requests take tokens from the process's lease. When the lease runs down to half, one
    renewal per key starts in the background, so a busy key's requests seldom wait for Redis, and
    however many arrive at once, one round trip is in flight for them. The Redis client is asyncio's:
    no threadpool hop on a poll.

    Fails open: with Redis away, requests are let through (the broker is down too; nothing would run)."""

    def __init__(self, url: str, limit_per_min: int) -> None:
        self._url = url
        self._limit = limit_per_min
        self._lease_size = max(1, min(LEASE_MAX, int(limit_per_min * LEASE_FRACTION)))
        self._leases: dict[str, _Lease] = {}
        self._renewals: dict[str, asyncio.Task[Verdict | None]] = {}
        # A client belongs to the event loop that made it (tests run apps on several loops in turn).
        self._client: tuple[asyncio.AbstractEventLoop, AsyncScript] | None = None

    async def acquire(self, key_id: str) -> Verdict:
        while True:
            verdict = self._from_lease(key_id)
            if verdict is not None:
                return verdict
            refused_or_open = await asyncio.shield(self._renewal(key_id))
            if refused_or_open is not None:
                return refused_or_open

    def _from_lease(self, key_id: str) -> Verdict | None:
        lease = self._leases.get(key_id)
        if lease is None or lease.tokens <= 0 or lease.until <= time.monotonic():
            return None
        lease.tokens -= 1
        if lease.tokens * 2 <= self._lease_size:
            self._renewal(key_id)
        return _verdict(self._limit, lease.shared_left + lease.tokens, True)

    def _renewal(self, key_id: str) -> "asyncio.Task[Verdict | None]":
        task = self._renewals.get(key_id)
        # A finished renewal may still be here (its awaiters resume before any done callback would
        # run): awaiting it again returns at once, so a new one starts instead.
        if task is None or task.done():
            task = self._renewals[key_id] = asyncio.get_running_loop().create_task(self._renew(key_id))
            task.add_done_callback(lambda done: self._forget(key_id, done))
        return task

    def _forget(self, key_id: str, renewal: "asyncio.Task[Verdict | None]") -> None:
        if self._renewals.get(key_id) is renewal:
            del self._renewals[key_id]

    async def _renew(self, key_id: str) -> Verdict | None:
        """Adds a lease's worth of tokens from the shared bucket. Returns the verdict for requests
        waiting on it when they cannot take from the lease: refused (the bucket is empty) or let
        through (Redis is away); None when they can."""
        try:
            granted, tokens = await self._script()(
                keys=[f"epochly:ratelimit:{key_id}"], args=[self._limit, self._limit / WINDOW_S, self._lease_size]
            )
        except redis.RedisError as exc:
            log.debug("rate limit not checked: %s", exc)
            return _verdict(self._limit, float(self._limit), True)
        granted, shared_left = int(granted), float(tokens)
        now = time.monotonic()
        lease = self._leases.get(key_id)
        if lease is None or lease.until <= now:
            if len(self._leases) >= LEASE_TABLE_SIZE:
                self._leases.clear()
            lease = self._leases[key_id] = _Lease(0, shared_left, now)
        lease.tokens += granted
        lease.shared_left = shared_left
        lease.until = now + LEASE_S
        return None if granted > 0 else _verdict(self._limit, shared_left, False)

    def _script(self) -> AsyncScript:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            client = aioredis.Redis.from_url(self._url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._client = (loop, client.register_script(_TAKE))
        return self._client[1]


class NoRateLimiter:
    """RATE_LIMIT_PER_MIN=0: no limit and no RateLimit headers (for measuring the limiter's own cost)."""

    async def acquire(self, key_id: str) -> Verdict | None:
        return None


def make_rate_limiter(broker_url: str, limit_per_min: int) -> RateLimiter:
    if limit_per_min <= 0:
        return NoRateLimiter()
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(broker_url, limit_per_min)
    return MemoryRateLimiter(limit_per_min)
