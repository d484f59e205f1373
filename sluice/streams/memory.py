"""In-memory implementations of the streams layer's boundaries (tests, demos)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sluice.streams.exceptions import LeaseLostError
from sluice.streams.models import Lease, PartitionKey, Positions, StreamRecord


class MemoryCheckpointStore:
    """Checkpoints in a dict (shared by every member that is given the same store)."""

    def __init__(self) -> None:
        self._positions: dict[PartitionKey, int] = {}
        self._lock = threading.Lock()

    def load(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, int | None]:
        with self._lock:
            return {tp: self._positions.get(tp) for tp in partitions}

    def save(self, positions: Positions) -> None:
        with self._lock:
            self._positions.update(positions)


class MemorySource:
    """A source over in-memory partition logs with a checkpoint store.

    ``logs`` maps each partition to its records in offset order; the source reads every
    partition round-robin from the store's checkpoint.
    """

    def __init__(
        self,
        logs: Mapping[PartitionKey, Sequence[StreamRecord]],
        store: MemoryCheckpointStore | None = None,
    ) -> None:
        self.logs = {tp: list(records) for tp, records in logs.items()}
        self.store = store or MemoryCheckpointStore()
        self.closed = False
        self.checkpoints: list[dict[PartitionKey, int]] = []
        self._next: dict[PartitionKey, int] = {}
        for tp, last in self.store.load(list(self.logs)).items():
            self._next[tp] = self._index_after(tp, last)

    def _index_after(self, tp: PartitionKey, offset: int | None) -> int:
        if offset is None:
            return 0
        return sum(1 for r in self.logs[tp] if r.offset <= offset)

    def append(self, record: StreamRecord) -> None:
        self.logs.setdefault(record.tp, []).append(record)
        self._next.setdefault(record.tp, 0)

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        out: list[StreamRecord] = []
        for tp in sorted(self.logs):
            start = self._next[tp]
            chunk = self.logs[tp][start : start + max(0, max_records - len(out))]
            self._next[tp] = start + len(chunk)
            out.extend(chunk)
        return out

    def checkpoint(self, positions: Positions) -> None:
        self.checkpoints.append(dict(positions))
        self.store.save(positions)

    def rewind(self, positions: Positions) -> None:
        for tp, first in positions.items():
            self._next[tp] = sum(1 for r in self.logs[tp] if r.offset < first)

    def caught_up(self) -> bool:
        return all(self._next[tp] >= len(records) for tp, records in self.logs.items())

    def assignment(self) -> frozenset[PartitionKey]:
        return frozenset(self.logs)

    def waiting_reason(self) -> str:
        return "memory source: no partition"

    def close(self) -> None:
        self.closed = True


class MemoryLeaseTable:
    """The lease table in memory, with the same conditional semantics as DynamoDB's."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self.items: dict[str, Lease] = {}
        self.renewed: dict[str, float] = {}
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return True

    def ensure(self) -> None:
        return None

    def list(self) -> list[Lease]:
        with self._lock:
            return [self.items[k] for k in sorted(self.items)]

    def create(self, lease: Lease) -> bool:
        with self._lock:
            if lease.lease_key in self.items:
                return False
            self.items[lease.lease_key] = lease
            return True

    def _swap(self, lease: Lease, expect_owner: bool, **changes: object) -> Lease:
        with self._lock:
            current = self.items.get(lease.lease_key)
            if current is None or current.counter != lease.counter:
                raise LeaseLostError(f"lease {lease.lease_key} changed hands")
            if expect_owner and current.owner != changes.get("owner", current.owner):
                raise LeaseLostError(f"lease {lease.lease_key} changed hands")
            updated = replace(current, counter=current.counter + 1, **changes)  # type: ignore[arg-type]
            self.items[lease.lease_key] = updated
            self.renewed[lease.lease_key] = self._clock()
            return updated

    def take(self, lease: Lease, worker_id: str) -> Lease:
        return self._swap(lease, False, owner=worker_id)

    def renew(self, lease: Lease, worker_id: str) -> Lease:
        return self._swap(lease, True, owner=worker_id)

    def checkpoint(self, lease: Lease, worker_id: str, checkpoint: str) -> Lease:
        return self._swap(
            lease, True, owner=worker_id, checkpoint=checkpoint, last_checkpoint_at=self._clock()
        )

    def release(self, lease: Lease, worker_id: str) -> None:
        self._swap(lease, True, owner=worker_id)
        with self._lock:
            self.items[lease.lease_key] = replace(self.items[lease.lease_key], owner=None)

    def set_checkpoint(self, lease_key: str, checkpoint: str) -> None:
        with self._lock:
            current = self.items.get(lease_key) or Lease(lease_key, None, 0, checkpoint)
            self.items[lease_key] = replace(
                current, checkpoint=checkpoint, counter=current.counter + 1
            )

    def last_renewed(self) -> dict[str, float]:
        with self._lock:
            return dict(self.renewed)
