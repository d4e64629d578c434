"""Per-source rate limits: a token bucket for every source with ``rate_limit``.

Checked before the body is read, so a source flooding the gateway costs a dictionary lookup
and a little arithmetic per request, not the reading and verification of its bodies. A
refused request gets 429 with Retry-After: the whole seconds until a token is available.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from hookbus.config import RateLimit, SourceConfig

Clock = Callable[[], float]


class TokenBucket:
    """``burst`` tokens at most, refilled at ``per_second``; each request takes one."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self._per_second = limit.per_second
        self._capacity = float(limit.burst)
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()

    def take(self) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be (nothing taken)."""
        now = self._clock()
        # max(): a clock that stepped back must not drain the bucket.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._per_second)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._per_second


class RateLimiter:
    """The buckets of every rate-limited source, by source name."""

    def __init__(self, sources: Iterable[SourceConfig], *, clock: Clock = time.monotonic) -> None:
        self._buckets = {
            source.name: TokenBucket(source.rate_limit, clock) for source in sources if source.rate_limit is not None
        }

    def retry_after(self, source: str) -> int | None:
        """``None`` when ``source`` may send now (a token was taken), else whole seconds to wait, at least 1."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        wait = bucket.take()
        return max(1, math.ceil(wait)) if wait > 0 else None
