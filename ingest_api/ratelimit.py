"""Per-key rate limiting: token buckets per API key, per process or shared.

- :class:`RateLimiter`: one :class:`TokenBucket` per key in this process (pure, clock
  passed in). On Lambda every container has its own: N containers let N times the rate
  through.
- :class:`LeasedRateLimiter`: the bucket lives in a shared store (:class:`SharedBuckets`;
  DynamoDB in ``ingest_api.dynamodb``, memory for tests) and holds across processes and
  containers. A process leases ``rate * lease_s`` tokens (at least one) at a time and
  spends them locally, so the store is called once per lease, not once per request.
  Trade-off: tokens leased by a process that then goes idle are spent later or never,
  so the shared limit can be exceeded by at most one lease per process in a window,
  and a key may briefly see 429 while another container holds unspent tokens.

API Gateway usage plans (per-key throttling at the edge, no code) were the other
choice: they need API Gateway API keys beside the Sluice keys, throttle per stage and
key on AWS's best-effort basis, and cannot run on the local stack; the DynamoDB bucket
runs the same everywhere and is tested against moto.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


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


@dataclass(frozen=True, slots=True)
class BucketState:
    """A shared bucket as stored: tokens left as of ``updated`` (epoch seconds)."""

    tokens: float
    updated: float


def refill(
    state: BucketState | None, rate: float, capacity: float, now: float, wanted: float
) -> tuple[float, BucketState]:
    """Take up to ``wanted`` whole tokens from a bucket: ``(granted, new state)``.

    A missing bucket is full. Invariants: ``0 <= tokens <= capacity``; time going
    backwards adds nothing; nothing is granted unless at least one whole token is there.
    """
    if state is None:
        tokens, updated = capacity, now
    else:
        elapsed = max(0.0, now - state.updated)
        tokens = min(capacity, state.tokens + elapsed * rate)
        updated = max(now, state.updated)
    granted = float(math.floor(min(wanted, tokens))) if tokens >= 1 else 0.0
    return granted, BucketState(tokens - granted, updated)


@runtime_checkable
class SharedBuckets(Protocol):
    """Token buckets every process shares (one per key id)."""

    backend: str

    async def take(
        self, key_id: str, rate: float, capacity: float, wanted: float
    ) -> tuple[float, float]:
        """Take up to ``wanted`` tokens: ``(granted, seconds until one token is there)``.

        Raises:
            StoreUnavailable: the store cannot be used.
        """
        ...


class MemoryTokenBuckets:
    """:class:`SharedBuckets` in this process's memory (tests: several limiters share it)."""

    backend = "memory"

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.states: dict[str, BucketState] = {}
        self.calls = 0

    async def take(
        self, key_id: str, rate: float, capacity: float, wanted: float
    ) -> tuple[float, float]:
        """See :meth:`SharedBuckets.take`."""
        self.calls += 1
        granted, after = refill(self.states.get(key_id), rate, capacity, self._clock(), wanted)
        self.states[key_id] = after
        return granted, 0.0 if granted else (1.0 - after.tokens) / rate


class LeasedRateLimiter:
    """Per-key limits held in :class:`SharedBuckets`, spent locally in leases.

    Args:
        buckets: the shared store.
        burst_s: bucket size in seconds' worth of the key's rate (at least one token).
        lease_s: tokens leased at once, in seconds' worth of the rate (at least one).
    """

    def __init__(self, buckets: SharedBuckets, burst_s: float = 2.0, lease_s: float = 0.1) -> None:
        self.buckets = buckets
        self._burst_s = burst_s
        self._lease_s = lease_s
        self._leased: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key_id: str, rate: float | None, now: float) -> RateDecision:
        """Take one token for ``key_id`` (from the local lease, else a new lease)."""
        if rate is None:
            return RateDecision(True)
        if self._leased.get(key_id, 0.0) >= 1:
            self._leased[key_id] -= 1
            return RateDecision(True)
        lock = self._locks.setdefault(key_id, asyncio.Lock())
        async with lock:
            if self._leased.get(key_id, 0.0) >= 1:  # leased meanwhile by another request
                self._leased[key_id] -= 1
                return RateDecision(True)
            capacity = max(1.0, rate * self._burst_s)
            wanted = min(capacity, max(1.0, math.floor(rate * self._lease_s)))
            granted, wait = await self.buckets.take(key_id, rate, capacity, wanted)
            if granted < 1:
                return RateDecision(False, wait)
            self._leased[key_id] = granted - 1
            return RateDecision(True)


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

    async def acquire(self, key_id: str, rate: float | None, now: float) -> RateDecision:
        """:meth:`check`, with the signature of :meth:`LeasedRateLimiter.acquire`."""
        return self.check(key_id, rate, now)
