"""Per-key rate limiting: a token bucket per API key (pure logic, clock passed in)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of taking tokens: allowed, or the seconds until enough tokens exist."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``capacity``.

    Invariants: ``0 <= tokens <= capacity``; time going backwards never adds tokens.
    """

    __slots__ = ("_tokens", "_updated", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._updated = now

    @property
    def tokens(self) -> float:
        """Tokens available as of the last update."""
        return self._tokens

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now

    def take(self, now: float, cost: float = 1.0) -> RateDecision:
        """Take ``cost`` tokens if available; otherwise say when they will be."""
        self._refill(now)
        if cost > self.capacity:
            # Can never be served at once; tell the caller when a full bucket is there.
            return RateDecision(
                False, (self.capacity - self._tokens) / self.rate + cost / self.rate
            )
        if self._tokens >= cost:
            self._tokens -= cost
            return RateDecision(True)
        return RateDecision(False, (cost - self._tokens) / self.rate)


class RateLimiter:
    """One :class:`TokenBucket` per key id, created on first use.

    ``rate=None`` means unlimited. The bucket of a key holds ``burst_s`` seconds' worth
    of its rate (at least one token).
    """

    def __init__(self, burst_s: float = 2.0, max_keys: int = 100_000) -> None:
        self._burst_s = burst_s
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key_id: str, rate: float | None, now: float) -> RateDecision:
        """Take one token from ``key_id``'s bucket."""
        if rate is None:
            return RateDecision(True)
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()
            bucket = TokenBucket(rate, max(1.0, rate * self._burst_s), now)
            self._buckets[key_id] = bucket
        return bucket.take(now)
