"""The :class:`Publisher` boundary and the pure logic every backend shares.

A publisher takes a batch of :class:`~producers.models.OutgoingRecord` and answers one
:class:`~producers.models.PublishResult` per record, in order. It never raises for a
per-record failure; a record that could not be written within the delivery timeout
comes back ``failed`` with ``retryable=True``. Nothing is dropped: every record gets
exactly one result.

Pure functions here (no I/O, unit-tested):

- :func:`plan_batches`: split records into PutRecords calls (500 records, 5 MiB per
  call, 1 MiB per record including the partition key).
- :class:`RetryPolicy` and :func:`backoff_delay`: exponential backoff with full
  jitter, bounded by a time budget and an attempt count.
- :func:`classify_put_records`: which entries of a PutRecords response succeeded,
  which to retry (throughput exceeded, internal failure, throttling) and which failed
  for good.
- :func:`build_outgoing_record`: a validated event to an outgoing record (partition
  key and headers per the event contract).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from producers.exceptions import PublishTimeoutError, RecordBuildError
from producers.models import (
    AVRO_CONTENT_TYPE,
    OutgoingRecord,
    PublishResult,
)
from sluice.config import EventType

T = TypeVar("T")

# Kinesis PutRecords limits (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html).
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256

# The partition key of each event type: one entity's events stay in order.
PARTITION_KEY_FIELDS: Mapping[str, str] = {
    EventType.FINANCIAL_TRANSACTION.value: "account_id",
    EventType.INSURANCE_CLAIM.value: "policy_id",
}

# Per-record and whole-call error codes of Kinesis worth sending again.
RETRYABLE_KINESIS_CODES: frozenset[str] = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "KMSThrottlingException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

# librdkafka errors that mean "the broker did not take it now; it may later".
RETRYABLE_KAFKA_CODES: frozenset[str] = frozenset(
    {
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_QUEUE_FULL",
        "_TIMED_OUT_QUEUE",
        "_WAIT_COORD",
        "_UNKNOWN_PARTITION",
        "_PURGE_QUEUE",
        "_PURGE_INFLIGHT",
        "REQUEST_TIMED_OUT",
        "NETWORK_EXCEPTION",
        "NOT_ENOUGH_REPLICAS",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "LEADER_NOT_AVAILABLE",
        "NOT_LEADER_FOR_PARTITION",
        "NOT_LEADER_OR_FOLLOWER",
        "BROKER_NOT_AVAILABLE",
        "KAFKA_STORAGE_ERROR",
        "OUT_OF_ORDER_SEQUENCE_NUMBER",
        "THROTTLING_QUOTA_EXCEEDED",
    }
)


@runtime_checkable
class Publisher(Protocol):
    """Publishes batches of records to a topic / stream.

    Implementations: :class:`producers.kafka.KafkaPublisher`,
    :class:`producers.kinesis.KinesisPublisher`, :class:`producers.memory.MemoryPublisher`.
    """

    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """Publish ``records`` to ``stream``; one result per record, in order.

        Returns only after every record was acknowledged or failed (within the
        delivery timeout). Raises only for misuse (closed publisher, bad settings).
        """
        ...

    async def flush(self, timeout: float | None = None) -> int:
        """Wait for records in flight; returns how many are still not delivered."""
        ...

    async def close(self) -> None:
        """Flush, then release the client. Publishing afterwards raises."""
        ...

    async def ready(self, timeout: float = 2.0) -> bool:
        """True when the broker / stream service answers within ``timeout``."""
        ...


# --------------------------------------------------------------------------- records


def partition_key_for(event_type: str, record: Mapping[str, Any]) -> str:
    """The partition key of a validated event: ``account_id`` or ``policy_id``.

    Raises:
        RecordBuildError: the event type is unknown or the key field is empty.
    """
    field_name = PARTITION_KEY_FIELDS.get(str(event_type))
    if field_name is None:
        raise RecordBuildError(f"no partition key is defined for event type {event_type!r}")
    value = record.get(field_name)
    if value is None or str(value) == "":
        raise RecordBuildError(f"event has no {field_name}; cannot choose a partition")
    key = str(value)
    if len(key) > MAX_PARTITION_KEY_CHARS:
        raise RecordBuildError(f"{field_name} is longer than {MAX_PARTITION_KEY_CHARS} characters")
    return key


def record_headers(
    event_type: str, event_id: str, schema_version: int | str, content_type: str
) -> dict[str, bytes | str]:
    """The headers of the event contract: type, id, schema version, content type."""
    return {
        "event_type": str(event_type),
        "event_id": str(event_id),
        "schema_version": str(schema_version),
        "content-type": content_type,
    }


def build_outgoing_record(
    event_type: EventType | str,
    record: Mapping[str, Any],
    value: bytes | None = None,
    *,
    content_type: str = AVRO_CONTENT_TYPE,
    schema_version: int | None = None,
) -> OutgoingRecord:
    """Turn a validated event (the codec's Avro-ready dict) into an :class:`OutgoingRecord`.

    Args:
        event_type: the event's type.
        record: the validated event (``schemas.codec.parse_event`` output).
        value: the payload; when omitted, the event is encoded as framed Avro with
            ``schemas.codec.encode``.
        content_type: the ``content-type`` header (Avro or JSON).
        schema_version: overrides ``record["schema_version"]`` in the headers.
    """
    et = str(EventType(event_type))
    event_id = record.get("event_id")
    if not event_id:
        raise RecordBuildError("event has no event_id")
    if value is None:
        from schemas import codec  # the codec is only needed when encoding here

        value = codec.encode(et, dict(record), framed=True)
    version = schema_version if schema_version is not None else record.get("schema_version", 1)
    return OutgoingRecord(
        event_id=str(event_id),
        event_type=et,
        partition_key=partition_key_for(et, record),
        value=value,
        headers=record_headers(et, str(event_id), version or 1, content_type),
    )


# --------------------------------------------------------------------------- batching


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Records split into calls: ``batches`` hold indexes into the input, in order;
    ``oversized`` are indexes of records over the per-record limit (never sent)."""

    batches: list[list[int]]
    oversized: list[int]


def plan_batches(
    sizes: Sequence[int],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
    max_record_bytes: int = MAX_BYTES_PER_RECORD,
) -> BatchPlan:
    """Split records (given by their sizes in bytes, key included) into calls.

    Input order is kept inside and across batches. A record larger than
    ``max_record_bytes`` goes to ``oversized`` and in no batch.
    """
    batches: list[list[int]] = []
    oversized: list[int] = []
    current: list[int] = []
    current_bytes = 0
    for index, size in enumerate(sizes):
        if size > max_record_bytes:
            oversized.append(index)
            continue
        if current and (len(current) >= max_records or current_bytes + size > max_bytes):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        batches.append(current)
    return BatchPlan(batches=batches, oversized=oversized)


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter inside a time budget.

    The n-th retry (``attempt`` = 1 for the first retry) waits a uniform random time
    in ``[0, min(max_delay, base_delay * 2 ** (attempt - 1))]``. No retry is planned
    once ``max_attempts`` sends were made or the wait would end past the budget.
    """

    base_delay: float = 0.1
    max_delay: float = 1.0
    budget: float = 4.0
    max_attempts: int = 6


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (1-based), full jitter."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, cap)


def next_retry_delay(
    attempts_made: int,
    elapsed: float,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> float | None:
    """The wait before the next send, or ``None`` when no retry fits.

    Args:
        attempts_made: sends made so far (1 after the first call).
        elapsed: seconds since the first send started.
    """
    if attempts_made >= policy.max_attempts:
        return None
    remaining = policy.budget - elapsed
    if remaining <= 0:
        return None
    delay = backoff_delay(attempts_made, policy, rng)
    # Leave time for the call itself: a wait that eats the whole budget is pointless.
    if delay >= remaining:
        return None
    return delay


@dataclass(slots=True)
class PutRecordsOutcome:
    """A PutRecords response sorted per entry (indexes into the request's entries)."""

    succeeded: dict[int, tuple[str, str]] = field(default_factory=dict)
    """index -> (shard id, sequence number)"""
    retry: list[int] = field(default_factory=list)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)
    """index -> (error code, error message) for errors that retrying will not fix"""
    retry_errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    """index -> (error code, error message) of the entries in ``retry``"""


def is_retryable_kinesis_code(code: str) -> bool:
    """True for the Kinesis error codes that may succeed when sent again."""
    return code in RETRYABLE_KINESIS_CODES


def is_retryable_kafka_code(name: str, retriable_flag: bool = False) -> bool:
    """True for librdkafka errors that may succeed when sent again."""
    return retriable_flag or name in RETRYABLE_KAFKA_CODES


def classify_put_records(response: Mapping[str, Any], entry_count: int) -> PutRecordsOutcome:
    """Sort a PutRecords response: succeeded, to retry, failed for good.

    The response's ``Records`` list matches the request's entries by position. A
    response shorter than the request (never seen from AWS) marks the missing
    entries for retry rather than losing them.
    """
    outcome = PutRecordsOutcome()
    entries = list(response.get("Records") or [])
    for index in range(entry_count):
        if index >= len(entries):
            outcome.retry.append(index)
            outcome.retry_errors[index] = ("InternalFailure", "no result for this record")
            continue
        entry = entries[index]
        code = entry.get("ErrorCode")
        if not code:
            outcome.succeeded[index] = (
                str(entry.get("ShardId", "")),
                str(entry.get("SequenceNumber", "")),
            )
            continue
        message = str(entry.get("ErrorMessage") or code)
        if is_retryable_kinesis_code(str(code)):
            outcome.retry.append(index)
            outcome.retry_errors[index] = (str(code), message)
        else:
            outcome.failed[index] = (str(code), message)
    return outcome


# --------------------------------------------------------------------------- sync facade


class SyncPublisher:
    """A blocking facade over a :class:`Publisher` for code without an event loop.

    It runs the publisher's coroutines on a private event loop in a daemon thread,
    so it works from plain threads (the consumers' DLQ) and even from inside another
    running loop (that loop is blocked while waiting).
    """

    def __init__(self, publisher: Publisher, *, timeout: float | None = 30.0) -> None:
        self._publisher = publisher
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def publisher(self) -> Publisher:
        """The wrapped publisher."""
        return self._publisher

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="sluice-sync-publisher", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        wait = self._timeout if timeout is None else timeout
        try:
            return future.result(timeout=wait)
        except TimeoutError as exc:
            future.cancel()
            raise PublishTimeoutError(f"publish did not finish within {wait} s") from exc

    def publish(
        self, stream: str, records: Sequence[OutgoingRecord], *, timeout: float | None = None
    ) -> list[PublishResult]:
        """Blocking :meth:`Publisher.publish`."""
        return self._run(self._publisher.publish(stream, records), timeout)

    def flush(self, timeout: float | None = None) -> int:
        """Blocking :meth:`Publisher.flush`."""
        return self._run(self._publisher.flush(timeout), None if timeout is None else timeout + 5)

    def close(self) -> None:
        """Close the publisher and stop the private loop."""
        try:
            self._run(self._publisher.close(), None)
        finally:
            with self._lock:
                loop, thread = self._loop, self._thread
                self._loop = self._thread = None
            if loop is not None and thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                loop.close()


def publish_sync(
    publisher: Publisher,
    stream: str,
    records: Sequence[OutgoingRecord],
    *,
    timeout: float | None = 30.0,
) -> list[PublishResult]:
    """Publish from synchronous code with a one-off event loop.

    For repeated calls keep a :class:`SyncPublisher` instead (one loop thread, reused).
    Must not be called from a thread whose event loop is running.
    """

    async def _publish() -> list[PublishResult]:
        return await asyncio.wait_for(publisher.publish(stream, records), timeout)

    try:
        return asyncio.run(_publish())
    except TimeoutError as exc:
        raise PublishTimeoutError(f"publish did not finish within {timeout} s") from exc


def results_in_order(
    records: Sequence[OutgoingRecord], by_index: Mapping[int, PublishResult], stream: str
) -> list[PublishResult]:
    """One result per record, in input order; a record without a result is a failure.

    The last line of defence of "never dropped": an index a backend forgot to answer
    becomes a retryable failure instead of vanishing.
    """
    return [
        by_index.get(index)
        or PublishResult.failure(
            record, stream, code="NoResult", message="no delivery result", retryable=True
        )
        for index, record in enumerate(records)
    ]


Clock = Callable[[], float]


# --------------------------------------------------------------------------- aggregation

# An aggregated record must fit a Kinesis record together with its partition key
# (up to 256 characters, at most 4 UTF-8 bytes each).
MAX_AGGREGATE_DATA_BYTES = MAX_BYTES_PER_RECORD - 4 * MAX_PARTITION_KEY_CHARS

HashRange = tuple[int, int]


@dataclass(frozen=True, slots=True)
class KinesisEntry:
    """One Kinesis record of a PutRecords call and the user records it carries.

    ``members`` are indexes into the publish call's records: one index for a plain
    record, several for a KPL-aggregated one. Every member shares the entry's fate.
    """

    partition_key: str
    data: bytes
    members: tuple[int, ...]
    explicit_hash_key: str | None = None

    @property
    def size(self) -> int:
        """Bytes counted against the PutRecords limits (data plus partition key)."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    def request_entry(self) -> dict[str, Any]:
        """The entry in a PutRecords request."""
        entry: dict[str, Any] = {"Data": self.data, "PartitionKey": self.partition_key}
        if self.explicit_hash_key is not None:
            entry["ExplicitHashKey"] = self.explicit_hash_key
        return entry


def kinesis_hash_key(partition_key: str) -> int:
    """Where Kinesis puts a partition key: its MD5 as a 128-bit unsigned integer."""
    digest = hashlib.md5(partition_key.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest, "big")


def shard_index(hash_key: int, shard_ranges: Sequence[HashRange]) -> int | None:
    """The index of the open shard whose hash key range holds ``hash_key``."""
    for index, (start, end) in enumerate(shard_ranges):
        if start <= hash_key <= end:
            return index
    return None


def plain_entries(records: Sequence[OutgoingRecord], indexes: Sequence[int]) -> list[KinesisEntry]:
    """One Kinesis record per user record (aggregation off)."""
    return [KinesisEntry(records[i].partition_key, records[i].value, (i,)) for i in indexes]


def aggregate_entries(
    records: Sequence[OutgoingRecord],
    indexes: Sequence[int],
    shard_ranges: Sequence[HashRange] | None = None,
    *,
    max_data_bytes: int = MAX_AGGREGATE_DATA_BYTES,
) -> list[KinesisEntry]:
    """Pack user records into KPL aggregated records without breaking per-key order.

    Records are grouped so that every record of an aggregate goes to the shard its
    own partition key maps to:

    - with ``shard_ranges`` (the stream's open shards), records are grouped by shard
      and each aggregate carries the ``ExplicitHashKey`` of its first record's key,
      which lies in that shard's range (as the KPL does);
    - without, records are grouped by partition key.

    Input order is kept within each group; a group of one record is sent plain.
    Entries come out ordered by their first member.
    """
    from aws_kinesis_agg.aggregator import RecordAggregator

    groups: dict[object, list[int]] = {}
    for i in indexes:
        key = records[i].partition_key
        group: object = key
        if shard_ranges:
            found = shard_index(kinesis_hash_key(key), shard_ranges)
            group = ("shard", found) if found is not None else key
        groups.setdefault(group, []).append(i)

    entries: list[KinesisEntry] = []
    for members in groups.values():
        if len(members) == 1:
            entries.extend(plain_entries(records, members))
            continue
        aggregator = RecordAggregator(max_size=max_data_bytes)
        current: list[int] = []

        def emit(agg_record: Any, packed: list[int]) -> None:
            if len(packed) == 1:
                entries.extend(plain_entries(records, packed))
                return
            _pk, _ehk, data = agg_record.get_contents()
            first = records[packed[0]].partition_key
            ehk = str(kinesis_hash_key(first)) if shard_ranges else None
            entries.append(KinesisEntry(first, bytes(data), tuple(packed), ehk))

        for i in members:
            record = records[i]
            try:
                full = aggregator.add_user_record(record.partition_key, record.value)
            except ValueError:
                # Too large to share an aggregate: it travels on its own.
                entries.extend(plain_entries(records, [i]))
                continue
            if full is not None:
                emit(full, current)
                current = []
            current.append(i)
        rest = aggregator.clear_and_get()
        if rest is not None:
            emit(rest, current)
    entries.sort(key=lambda entry: entry.members[0])
    return entries
