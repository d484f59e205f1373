"""Idempotency: the same event (by ``event_id`` or ``Idempotency-Key``) gets the same answer.

:class:`IdempotencyCache` is pure (an LRU map with a TTL, clock passed in).
:class:`Coalescer` adds in-flight coalescing on top: while the first request with a key
is being published, later requests with the same key wait for its outcome instead of
publishing again. Only successful answers are remembered: a failed publish leaves
nothing behind, so the client's retry publishes again.

The cache is per process. Across processes (several uvicorn workers, Lambda
containers) the :class:`IdempotencyStore` holds: a conditional write claims a key
(``IN_PROGRESS``) before the event is published and the answer is stored
(``COMPLETED``) after the broker acknowledged it, so another process that gets the same
event replays the answer instead of publishing again. :class:`MemoryIdempotencyStore`
is the in-process implementation (tests); ``ingest_api.dynamodb`` the shared one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, runtime_checkable

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


# --------------------------------------------------------------------------- shared store

ClaimState = Literal["claimed", "completed", "in_progress"]
"""``claimed``: this caller owns the key now and publishes; ``completed``: an answer was
remembered (``answer``); ``in_progress``: another process is publishing it right now."""

IN_PROGRESS: Final = "IN_PROGRESS"
COMPLETED: Final = "COMPLETED"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a key: see :data:`ClaimState`."""

    state: ClaimState
    fingerprint: str | None = None
    answer: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record of the shared store (the DynamoDB item's attributes).

    ``expiration`` (epoch seconds) is the record's end of life (DynamoDB TTL
    attribute); ``in_progress_expiration`` bounds how long an ``IN_PROGRESS`` claim
    blocks other callers, so a process that died mid-publish blocks nobody for long.
    """

    status: str
    fingerprint: str
    expiration: float
    in_progress_expiration: float
    answer: Mapping[str, Any] | None = None


def existing_claim(record: StoredRecord | None, now: float) -> Claim | None:
    """What a stored record means for a new claim at ``now``; ``None``: it may be taken.

    The same rule as the DynamoDB condition of :class:`~ingest_api.dynamodb.DynamoIdempotencyStore`:
    a record blocks while it has not expired and, when in progress, while its
    in-progress bound has not passed.
    """
    if record is None or record.expiration <= now:
        return None
    if record.status == COMPLETED:
        return Claim("completed", record.fingerprint, record.answer)
    if record.in_progress_expiration <= now:
        return None
    return Claim("in_progress", record.fingerprint)


@runtime_checkable
class IdempotencyStore(Protocol):
    """Remembered answers shared by every process (Powertools' idempotency states).

    ``claim`` writes ``IN_PROGRESS`` for a key no live record holds (a conditional write)
    and returns ``claimed``; otherwise it returns the live record's state. The owner
    then calls ``complete`` (the answer is kept for the TTL) or ``release`` (nothing
    was published: the key is free again). Keys are opaque strings; the caller puts the
    tenant in them, so tenants never see each other's records.

    Raises (every method): :class:`IdempotencyStoreError` when the store cannot be used.
    """

    backend: str

    async def claim(self, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` for an event with ``fingerprint``."""
        ...

    async def complete(self, key: str, fingerprint: str, answer: Mapping[str, Any]) -> None:
        """Remember ``answer`` for ``key`` (status ``COMPLETED``) for the TTL."""
        ...

    async def release(self, key: str, fingerprint: str) -> None:
        """Drop this caller's ``IN_PROGRESS`` claim (nothing was published)."""
        ...

    async def close(self) -> None:
        """Release clients."""
        ...


class MemoryIdempotencyStore:
    """:class:`IdempotencyStore` in this process's memory (tests, one process).

    Args:
        ttl_s: how long a completed answer is kept.
        in_progress_s: how long an ``IN_PROGRESS`` claim blocks others.
        clock: wall-clock seconds.
        max_entries: records kept at most (the oldest are dropped beyond).
    """

    backend = "memory"

    def __init__(
        self,
        ttl_s: float,
        in_progress_s: float,
        clock: Callable[[], float] = time.time,
        max_entries: int = 100_000,
    ) -> None:
        self.ttl_s = ttl_s
        self.in_progress_s = in_progress_s
        self._clock = clock
        self._max_entries = max_entries
        self.records: OrderedDict[str, StoredRecord] = OrderedDict()

    async def claim(self, key: str, fingerprint: str) -> Claim:
        """See :meth:`IdempotencyStore.claim`."""
        now = self._clock()
        found = existing_claim(self.records.get(key), now)
        if found is not None:
            return found
        self.records[key] = StoredRecord(
            IN_PROGRESS, fingerprint, now + self.ttl_s, now + self.in_progress_s
        )
        self.records.move_to_end(key)
        while len(self.records) > self._max_entries:
            self.records.popitem(last=False)
        return Claim("claimed", fingerprint)

    async def complete(self, key: str, fingerprint: str, answer: Mapping[str, Any]) -> None:
        """See :meth:`IdempotencyStore.complete`."""
        now = self._clock()
        self.records[key] = StoredRecord(COMPLETED, fingerprint, now + self.ttl_s, now, answer)

    async def release(self, key: str, fingerprint: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        record = self.records.get(key)
        if (
            record is not None
            and record.status == IN_PROGRESS
            and record.fingerprint == fingerprint
        ):
            del self.records[key]

    async def close(self) -> None:
        """Nothing to release."""
