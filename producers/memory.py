"""An in-memory :class:`~producers.base.Publisher` for tests and dry runs.

Records are kept per stream and partition (partition = a stable hash of the key), with
offsets, so tests can read back what was acknowledged. Fault injection hooks make it
fail the way real brokers do: the next N records, records matching a predicate, or
everything while "unavailable".
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from producers.base import MAX_BYTES_PER_RECORD
from producers.exceptions import PublisherClosedError
from producers.models import OutgoingRecord, PublishResult


@dataclass(frozen=True, slots=True)
class Fault:
    """How a record fails: the backend's code, a message, retryable or not."""

    code: str = "_MSG_TIMED_OUT"
    message: str = "injected failure"
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record the memory broker acknowledged, with where it landed."""

    stream: str
    partition: int
    offset: int
    record: OutgoingRecord


FaultRule = Callable[[str, OutgoingRecord], Fault | None]


class MemoryPublisher:
    """Keeps acknowledged records in memory; one list per (stream, partition).

    Args:
        partitions: partitions per stream (the key picks one, stably).
        streams: when given, publishing to any other stream fails (non-retryable,
            ``UNKNOWN_TOPIC_OR_PART``) as it would on a broker without auto-creation.
        latency: seconds each publish call waits, to imitate a round trip.
    """

    def __init__(
        self,
        *,
        partitions: int = 4,
        streams: Iterable[str] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.partitions = partitions
        self.latency = latency
        self._known = set(streams) if streams is not None else None
        self._log: dict[str, list[list[StoredRecord]]] = {}
        self._fail_next: list[Fault] = []
        self._rules: list[FaultRule] = []
        self._unavailable: Fault | None = None
        self._closed = False
        self.calls: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ fault hooks

    def fail_next(self, count: int, fault: Fault | None = None) -> None:
        """Fail the next ``count`` records published (any stream)."""
        self._fail_next.extend([fault or Fault()] * count)

    def fail_when(self, rule: FaultRule) -> None:
        """Fail every record for which ``rule(stream, record)`` returns a :class:`Fault`."""
        self._rules.append(rule)

    def set_unavailable(self, fault: Fault | None = None) -> None:
        """Fail everything (as a broker that is down) until :meth:`set_available`."""
        self._unavailable = fault or Fault("_TRANSPORT", "broker unavailable", True)

    def set_available(self) -> None:
        """End :meth:`set_unavailable`."""
        self._unavailable = None

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._fail_next.clear()
        self._rules.clear()
        self._unavailable = None

    # ------------------------------------------------------------------ read back

    def records(self, stream: str) -> list[StoredRecord]:
        """Every acknowledged record of ``stream``, partition by partition, in offset order."""
        return [stored for part in self._log.get(stream, []) for stored in part]

    def partition_of(self, key: str) -> int:
        """The partition a key maps to (stable across runs)."""
        return zlib.crc32(key.encode("utf-8")) % self.partitions

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # ------------------------------------------------------------------ Publisher

    def _fault_for(self, stream: str, record: OutgoingRecord) -> Fault | None:
        if self._unavailable is not None:
            return self._unavailable
        if record.size > MAX_BYTES_PER_RECORD:
            return Fault("RecordTooLarge", "record larger than 1 MiB", False)
        if self._known is not None and stream not in self._known:
            return Fault("UNKNOWN_TOPIC_OR_PART", f"stream {stream!r} does not exist", False)
        if self._fail_next:
            return self._fail_next.pop(0)
        for rule in self._rules:
            fault = rule(stream, record)
            if fault is not None:
                return fault
        return None

    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """Acknowledge or fail each record; one result per record, in order."""
        if self._closed:
            raise PublisherClosedError("publish after close")
        self.calls.append((stream, len(records)))
        if self.latency:
            await asyncio.sleep(self.latency)
        results: list[PublishResult] = []
        for record in records:
            fault = self._fault_for(stream, record)
            if fault is not None:
                results.append(
                    PublishResult.failure(
                        record,
                        stream,
                        code=fault.code,
                        message=fault.message,
                        retryable=fault.retryable,
                    )
                )
                continue
            parts = self._log.setdefault(stream, [[] for _ in range(self.partitions)])
            partition = self.partition_of(record.partition_key)
            offset = len(parts[partition])
            parts[partition].append(StoredRecord(stream, partition, offset, record))
            results.append(
                PublishResult(
                    event_id=record.event_id,
                    status="ok",
                    stream=stream,
                    partition=partition,
                    offset=offset,
                )
            )
        return results

    async def flush(self, timeout: float | None = None) -> int:
        """Nothing is ever in flight: returns 0."""
        return 0

    async def ready(self, timeout: float = 2.0) -> bool:
        """False only while :meth:`set_unavailable` is in effect."""
        return self._unavailable is None

    async def close(self) -> None:
        """Refuse further publishing; stored records stay readable."""
        self._closed = True
