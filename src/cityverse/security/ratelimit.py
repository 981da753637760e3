"""Requests per second per identity: a token bucket for each caller.

Each caller (an identity's subject, or the client address of an anonymous caller) may
make ``rate`` requests per second, in bursts of up to twice as many; 0 is no limit. The
buckets live in the process: with several server processes each applies the limit::

    limiter = RateLimiter(100.0)
    limiter.allow("key:3f2a")      # False once the caller is over its rate
"""

from __future__ import annotations

import time

MAX_CALLERS = 100_000


class RateLimiter:
    """A token bucket per caller."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str) -> bool:
        """Take one token from ``caller``'s bucket; False when it is empty."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return False
        if len(self._buckets) >= MAX_CALLERS:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)
        return True
