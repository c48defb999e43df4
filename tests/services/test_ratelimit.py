"""The shared token bucket on a real Redis: two limiters (as two API processes) taking leases from one
bucket never let more through than the limit allows, and leave little of it unused."""
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
    started = time.monotonic()
    verdicts = [(first if i % 2 else second).take("key_a") for i in range(3 * limit)]
    elapsed = time.monotonic() - started
    allowed = sum(v.allowed for v in verdicts)
    refilled = elapsed * limit / 60
    assert allowed <= limit + refilled + 1
    assert allowed >= limit - 2 * 2  # at most one unused lease per process
    refused = next(v for v in verdicts if not v.allowed)
    assert refused.remaining == 0 and refused.retry_after_s >= 1
    assert first.take("key_b").allowed  # buckets are per key
