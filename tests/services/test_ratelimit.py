"""The shared token bucket on a real Redis: two limiters (as two API processes) taking leases from one
bucket never let more through than the limit allows, and leave little of it unused; many requests at
once on an empty lease share one Redis round trip."""
import asyncio
import time

import redis

from app.services.ratelimit import RedisRateLimiter
from tests.conftest import REDIS_HOST, REDIS_PORT, require_service


def test_two_processes_leasing_from_one_bucket_stay_within_the_limit():
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/15"
    redis.Redis.from_url(url).flushdb()
    limit = 1200  # a lease of 2 tokens; refills 20 a second
    first, second = RedisRateLimiter(url, limit), RedisRateLimiter(url, limit)

    async def run() -> tuple[list, float, bool]:
        started = time.monotonic()
        verdicts = [await (first if i % 2 else second).acquire("key_a") for i in range(3 * limit)]
        return verdicts, time.monotonic() - started, (await first.acquire("key_b")).allowed

    verdicts, elapsed, other_key_allowed = asyncio.run(run())
    allowed = sum(v.allowed for v in verdicts)
    refilled = elapsed * limit / 60
    assert allowed <= limit + refilled + 1
    # Unused at the end: at most a lease and the renewal taken when it ran down to half, per process.
    assert allowed >= limit - 2 * (2 + 2)
    refused = next(v for v in verdicts if not v.allowed)
    assert refused.remaining == 0 and refused.retry_after_s >= 1
    assert other_key_allowed  # buckets are per key


def test_requests_arriving_together_share_one_renewal(monkeypatch):
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/15"
    redis.Redis.from_url(url).flushdb()
    limiter = RedisRateLimiter(url, 6000)  # leases of 10
    calls = []
    renew = limiter._renew

    async def counted(key_id):
        calls.append(key_id)
        return await renew(key_id)

    monkeypatch.setattr(limiter, "_renew", counted)

    async def together(count: int) -> list:
        return await asyncio.wait_for(asyncio.gather(*(limiter.acquire("key_c") for _ in range(count))), timeout=10)

    verdicts = asyncio.run(together(10))
    assert all(v.allowed for v in verdicts)
    # One renewal for the ten, and the background one started when the lease ran down to half.
    assert len(calls) <= 2, calls
    # More at once than a lease holds: those left over wait for the next renewal (one at a time).
    verdicts = asyncio.run(together(35))
    assert all(v.allowed for v in verdicts) and len(calls) <= 2 + 5, calls
