"""Idempotency: the same event (by ``event_id`` or ``Idempotency-Key``) gets the same answer.

:class:`IdempotencyCache` is pure (an LRU map with a TTL, clock passed in).
:class:`Coalescer` adds in-flight coalescing on top: while the first request with a key
is being published, later requests with the same key wait for its outcome instead of
publishing again. Only successful answers are remembered: a failed publish leaves
nothing behind, so the client's retry publishes again.

The cache is per process. Across processes (several uvicorn workers, Lambda instances)
a duplicate may be published twice; the warehouse MERGE on ``event_id`` removes it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CachedAnswer(Generic[V]):
    """A remembered answer and the fingerprint of the event it answered."""

    fingerprint: str
    value: V
    expires_at: float


class IdempotencyCache(Generic[V]):
    """An LRU map of key -> :class:`CachedAnswer` whose entries expire after ``ttl_s``.

    Invariants: at most ``max_entries`` entries; an expired entry is never returned.
    """

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("ttl_s must be positive and max_entries at least 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedAnswer[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now: float) -> CachedAnswer[V] | None:
        """The live entry for ``key`` (marked most recently used), or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, fingerprint: str, value: V, now: float) -> None:
        """Remember ``value`` for ``key``; evicts the least recently used beyond the cap."""
        self._entries[key] = CachedAnswer(fingerprint, value, now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def purge_expired(self, now: float) -> int:
        """Drop every expired entry; returns how many were dropped."""
        expired = [k for k, e in self._entries.items() if e.expires_at <= now]
        for key in expired:
            del self._entries[key]
        return len(expired)


@dataclass(frozen=True, slots=True)
class Replay(Generic[V]):
    """How a key was served (``source``) and its answer (``None`` for conflict/abandoned)."""

    value: V | None
    source: str  # fresh | cached | coalesced | duplicate | conflict | abandoned


class Coalescer(Generic[V]):
    """Runs an async action once per key: remembered answers and in-flight coalescing.

    ``succeeded(value)`` decides whether an outcome is remembered (accepted answers are,
    retryable failures are not). Waiters on an in-flight key receive the very outcome
    the first caller got, success or failure.
    """

    def __init__(
        self,
        cache: IdempotencyCache[V],
        clock: Callable[[], float],
        succeeded: Callable[[V], bool],
    ) -> None:
        self.cache = cache
        self._clock = clock
        self._succeeded = succeeded
        self._in_flight: dict[Hashable, tuple[str, asyncio.Future[V]]] = {}

    @property
    def in_flight(self) -> int:
        """Keys being served right now."""
        return len(self._in_flight)

    def lookup(self, key: Hashable, fingerprint: str) -> Replay[V] | None:
        """A remembered answer for ``key`` (or a conflict), without running anything."""
        entry = self.cache.get(key, self._clock())
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            return Replay(entry.value, "conflict")
        return Replay(entry.value, "cached")

    async def run(
        self, key: Hashable, fingerprint: str, action: Callable[[], Awaitable[V]]
    ) -> Replay[V]:
        """The answer for one key: remembered, shared with an in-flight call, or fresh.

        The same as :meth:`run_many` with one item, without its bookkeeping.
        """
        replay = self.lookup(key, fingerprint)
        if replay is not None:
            return replay
        pending = self._in_flight.get(key)
        if pending is not None:
            if pending[0] != fingerprint:
                return Replay(None, "conflict")
            return await self._wait(pending[1])
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (fingerprint, future)
        try:
            value = await action()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._in_flight[key]
        if self._succeeded(value):
            self.cache.put(key, fingerprint, value, self._clock())
        future.set_result(value)
        return Replay(value, "fresh")

    @staticmethod
    async def _wait(future: asyncio.Future[V]) -> Replay[V]:
        # asyncio.wait never cancels what it waits on: a cancelled waiter leaves the
        # first caller's work running.
        await asyncio.wait((future,))
        if future.cancelled() or future.exception() is not None:
            return Replay(None, "abandoned")
        return Replay(future.result(), "coalesced")

    async def run_many(
        self,
        items: Sequence[tuple[Hashable, str]],
        action: Callable[[Sequence[int]], Awaitable[list[V]]],
    ) -> list[Replay[V]]:
        """Answers for several ``(key, fingerprint)`` items, in order.

        Items with a remembered answer get it (``cached``), or ``conflict`` when the
        fingerprint differs; items whose key is in flight elsewhere wait for that call
        (``coalesced``); a key repeated within ``items`` shares the first one's answer
        (``duplicate``). ``action(indexes)`` runs once for the remaining items and must
        return one value per index, in order. When the call that an item waited on
        ended without a value, the item's replay has ``value=None`` (``abandoned``).
        """
        replays: list[Replay[V] | None] = [None] * len(items)
        owner: dict[Hashable, int] = {}
        duplicates: list[tuple[int, int]] = []
        waiting: list[tuple[int, asyncio.Future[V]]] = []
        for index, (key, fingerprint) in enumerate(items):
            first = owner.get(key)
            if first is not None:
                if items[first][1] != fingerprint:
                    replays[index] = Replay(None, "conflict")
                else:
                    duplicates.append((index, first))
                continue
            replay = self.lookup(key, fingerprint)
            if replay is not None:
                replays[index] = replay
                continue
            pending = self._in_flight.get(key)
            if pending is not None:
                if pending[0] != fingerprint:
                    replays[index] = Replay(None, "conflict")
                else:
                    waiting.append((index, pending[1]))
                continue
            owner[key] = index

        run = list(owner.values())
        if run:
            loop = asyncio.get_running_loop()
            futures = [loop.create_future() for _ in run]
            for index, future in zip(run, futures, strict=True):
                self._in_flight[items[index][0]] = (items[index][1], future)
            try:
                values = await action(run)
                if len(values) != len(run):
                    raise RuntimeError("action returned a different number of values")
            except BaseException as exc:
                for future in futures:
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                        future.exception()  # retrieved: no "never retrieved" warning
                raise
            finally:
                for index in run:
                    del self._in_flight[items[index][0]]
            now = self._clock()
            for index, future, value in zip(run, futures, values, strict=True):
                key, fingerprint = items[index]
                if self._succeeded(value):
                    self.cache.put(key, fingerprint, value, now)
                future.set_result(value)
                replays[index] = Replay(value, "fresh")

        for index, future in waiting:
            replays[index] = await self._wait(future)
        for index, first in duplicates:
            earlier = replays[first]
            assert earlier is not None
            replays[index] = Replay(earlier.value, "duplicate")
        return [r if r is not None else Replay(None, "abandoned") for r in replays]
