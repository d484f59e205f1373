"""In-memory implementations of every consumer boundary (tests, demos, the no-op sink)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.base import Positions
from consumers.exceptions import DeadLetterError, LeaseLostError
from consumers.models import DeadLetter, DecodedRecord, Lease, PartitionKey, StreamRecord


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

    def close(self) -> None:
        self.closed = True


@dataclass
class MemorySink:
    """A transactional sink keeping committed events by ``event_id`` (a MERGE in a dict).

    ``fail`` decides per write whether to raise (tests inject failures with it).
    """

    fail: Callable[[Sequence[DecodedRecord]], Exception | None] | None = None
    rows: dict[str, DecodedRecord] = field(default_factory=dict)
    writes: int = 0
    commits: int = 0
    rollbacks: int = 0
    batch_ids: list[str] = field(default_factory=list)
    _pending: list[DecodedRecord] = field(default_factory=list)
    _open: bool = False

    def begin(self, batch_id: str) -> None:
        self._pending = []
        self._open = True
        self.batch_ids.append(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        assert self._open, "write outside a transaction"
        self.writes += 1
        if self.fail is not None:
            exc = self.fail(records)
            if exc is not None:
                raise exc
        self._pending.extend(records)

    def commit(self) -> None:
        for d in self._pending:
            self.rows[str(d.event.get("event_id", f"{d.record.tp}:{d.record.offset}"))] = d
        self.commits += 1
        self._pending = []
        self._open = False

    def rollback(self) -> None:
        self.rollbacks += 1
        self._pending = []
        self._open = False


class NoopSink:
    """Accepts everything and keeps nothing (benchmarks, dry runs)."""

    def __init__(self) -> None:
        self.records = 0

    def begin(self, batch_id: str) -> None:
        return None

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self.records += len(records)

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None


@dataclass
class MemoryDeadLetters:
    """Keeps dead letters in a list; ``fail_times`` makes the next sends fail."""

    letters: list[DeadLetter] = field(default_factory=list)
    fail_times: int = 0

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DeadLetterError("dead-letter queue unavailable")
        self.letters.extend(letters)


class MemoryLeaseTable:
    """The lease table in memory, with the same conditional semantics as DynamoDB's."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        import time

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
        from dataclasses import replace

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
            from dataclasses import replace

            self.items[lease.lease_key] = replace(self.items[lease.lease_key], owner=None)

    def set_checkpoint(self, lease_key: str, checkpoint: str) -> None:
        from dataclasses import replace

        with self._lock:
            current = self.items.get(lease_key) or Lease(lease_key, None, 0, checkpoint)
            self.items[lease_key] = replace(
                current, checkpoint=checkpoint, counter=current.counter + 1
            )

    def last_renewed(self) -> dict[str, float]:
        with self._lock:
            return dict(self.renewed)
