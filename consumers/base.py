"""The consumer framework: protocols of its boundaries and the pure batch logic.

A consumer reads a *batch* (at most ``max_records``, at most ``max_wait_s``), decodes
it, hands it to a :class:`Sink` inside one sink transaction, and moves its checkpoint
only after the sink committed. The commit runs as numbered steps
(:class:`~consumers.models.CommitStep`): 1. sink commit, 2. dead letters published,
3. checkpoint. A checkpoint that does not move forward raises.

On a sink failure the sink is rolled back and the batch is written again with backoff.
When the batch keeps failing with a transient error the consumer rewinds its source to
the last checkpoint and tries again later (nothing is dropped); when it keeps failing
with a non-transient error the batch is split in halves until the failing records are
isolated; those go to the dead-letter queue with their origin and reason, the rest of
the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from consumers.exceptions import (
    CheckpointNotForwardError,
    ConsumerInterrupted,
    DecodeError,
    SinkUnavailableError,
)
from consumers.models import (
    Batch,
    BatchOutcome,
    CommitStep,
    DeadLetter,
    DecodedRecord,
)
from sluice.errors import RetryableError, is_retryable
from sluice.streams.base import CheckpointStore, Source
from sluice.streams.models import PartitionKey, Positions, StreamRecord

if TYPE_CHECKING:
    from schemas.registry.base import SchemaResolver

logger = logging.getLogger(__name__)

AVRO_CONTENT_TYPE = "application/vnd.sluice.avro"
JSON_CONTENT_TYPE = "application/json"
MAX_ERROR_MESSAGE = 1000

__all__ = ["CheckpointStore", "Positions", "Sink", "Source", "StreamRecord"]


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class Sink(Protocol):
    """Where a batch goes. One transaction per ``begin`` .. ``commit``/``rollback``.

    ``write`` may be called more than once inside a transaction. A sink must make a
    rewritten batch harmless (MERGE on ``event_id``, deterministic object keys).
    """

    def begin(self, batch_id: str) -> None: ...

    def write(self, records: Sequence[DecodedRecord]) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class DeadLetterSink(Protocol):
    """Where records go that cannot be decoded or keep failing."""

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Publish every letter durably or raise :class:`~consumers.exceptions.DeadLetterError`."""
        ...


Decoder = Callable[[StreamRecord], DecodedRecord]


# --------------------------------------------------------------------------- pure logic


def ensure_forward(committed: Positions, positions: Positions) -> None:
    """Raise unless every position is beyond the committed one of its partition."""
    for tp, offset in positions.items():
        previous = committed.get(tp)
        if previous is not None and offset <= previous:
            raise CheckpointNotForwardError(
                f"checkpoint of {tp} would move from {previous} to {offset}"
            )


class CheckpointTracker:
    """The last committed offset per partition, as this member knows it."""

    def __init__(self) -> None:
        self._committed: dict[PartitionKey, int] = {}

    @property
    def committed(self) -> dict[PartitionKey, int]:
        return dict(self._committed)

    def seed(self, positions: Mapping[PartitionKey, int | None]) -> None:
        """Take the store's checkpoints of newly assigned partitions."""
        for tp, offset in positions.items():
            if offset is not None:
                self._committed[tp] = offset

    def validate(self, positions: Positions) -> None:
        ensure_forward(self._committed, positions)

    def mark(self, positions: Positions) -> None:
        self.validate(positions)
        self._committed.update(positions)

    def forget(self, partitions: Iterable[PartitionKey]) -> None:
        for tp in partitions:
            self._committed.pop(tp, None)


class BatchAssembler:
    """Collects polled records into a batch: full at ``max_records`` (or ``max_bytes`` of
    record values, when given) or due at ``max_wait_s`` after its first poll."""

    def __init__(
        self,
        max_records: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.max_records = max_records
        self.max_wait_s = max_wait_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._records: list[StreamRecord] = []
        self._started: float | None = None
        self._bytes = 0

    def start(self) -> None:
        if self._started is None:
            self._started = self._clock()

    def add(self, records: Sequence[StreamRecord]) -> None:
        self.start()
        self._records.extend(records)
        if self.max_bytes is not None:
            self._bytes += sum(len(r[3]) for r in records)

    @property
    def pending(self) -> int:
        return len(self._records)

    def capacity(self) -> int:
        if self.max_bytes is not None and self._bytes >= self.max_bytes:
            return 0
        return max(0, self.max_records - len(self._records))

    def time_left(self) -> float:
        if self._started is None:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (self._clock() - self._started))

    def ready(self) -> bool:
        return self.capacity() == 0 or (self._started is not None and self.time_left() == 0.0)

    def take(self) -> Batch:
        batch = Batch(tuple(self._records))
        self._records = []
        self._started = None
        self._bytes = 0
        return batch

    def drop(self, partitions: Iterable[PartitionKey]) -> list[StreamRecord]:
        """Remove and return the pending records of ``partitions`` (on revoke)."""
        gone = set(partitions)
        removed = [r for r in self._records if r.tp in gone]
        self._records = [r for r in self._records if r.tp not in gone]
        self._bytes = sum(len(r.value) for r in self._records) if self.max_bytes else 0
        if not self._records:
            self._started = None
        return removed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a batch and an isolated record are written, and the backoff between."""

    attempts: int = 3
    record_attempts: int = 2
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    multiplier: float = 2.0
    isolate: bool = True
    """Split a batch failing with a non-transient error to dead-letter the failing
    records; ``False`` raises that error instead (a sink with no dead-letter queue)."""

    def delay(self, attempt: int) -> float:
        """Backoff after the ``attempt``-th failure (1-based), capped exponential."""
        if attempt < 1:
            return 0.0
        return float(min(self.max_delay_s, self.base_delay_s * self.multiplier ** (attempt - 1)))


def bisect(records: Sequence[DecodedRecord]) -> tuple[list[DecodedRecord], list[DecodedRecord]]:
    """Split a failing batch in halves to find the records that fail on their own."""
    middle = (len(records) + 1) // 2
    return list(records[:middle]), list(records[middle:])


def batch_id_of(records: Sequence[DecodedRecord]) -> str:
    """A sink transaction id stable across retries of the same records."""
    return Batch(tuple(d.record for d in records)).batch_id


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    """Headers of a dead-lettered record: its origin, the reason, and the original headers."""
    record = letter.record
    headers = {k: v for k, v in record.headers.items() if not k.startswith("dlq-")}
    headers.update(
        {
            "dlq-source-stream": record.stream,
            "dlq-source-partition": record.partition,
            "dlq-source-offset": str(record.offset),
            "dlq-error-class": letter.error_class,
            "dlq-error-message": letter.message[:MAX_ERROR_MESSAGE],
            "dlq-attempts": str(letter.attempts),
        }
    )
    if record.sub_sequence is not None:
        headers["dlq-source-sub-sequence"] = str(record.sub_sequence)
    if record.timestamp_ms is not None:
        headers["dlq-source-timestamp-ms"] = str(record.timestamp_ms)
    return headers


def error_summary(exc: BaseException) -> tuple[str, str]:
    """The class name and one-line message recorded for a failure."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return type(exc).__name__, message[:MAX_ERROR_MESSAGE]


def decode_record(record: StreamRecord, registry: SchemaResolver | None = None) -> DecodedRecord:
    """Decode a framed Avro (Confluent or Glue framing) or a JSON record value with the
    schemas codec; schema ids are resolved by ``registry`` (default: the process's).

    Raises:
        DecodeError: the value cannot be decoded (fatal: dead-lettered).
        RetryableError: the schema registry cannot be asked now; the batch is read
            again, nothing is dead-lettered.
    """
    from schemas.codec import decode_value  # at the edge: the codec loads every schema

    try:
        decoded = decode_value(
            record.value,
            content_type=record.headers.get("content-type") or None,
            event_type=record.headers.get("event_type") or None,
            registry=registry,
        )
    except RetryableError:
        raise
    except Exception as exc:
        name, message = error_summary(exc)
        raise DecodeError(f"{name}: {message}") from exc
    event_type, version, event = decoded
    return DecodedRecord(record, str(event_type), int(version), event)


_NO_EVENT: Mapping[str, object] = MappingProxyType({})


def passthrough_decoder(event_type: str, schema_version: int = 1) -> Decoder:
    """A decoder that decodes nothing: every record with an empty event of one type.

    For dry runs and benchmarks with a sink that never reads the event (``NoopSink``).
    """
    new = tuple.__new__  # skips the named tuple's Python-level __new__ (runs per record)

    def passthrough(record: StreamRecord) -> DecodedRecord:
        return new(DecodedRecord, (record, event_type, schema_version, _NO_EVENT))

    return passthrough


# --------------------------------------------------------------------------- processing


@dataclass
class _Attempts:
    rollbacks: int = 0
    writes: int = 0
    written: int = 0
    steps: list[CommitStep] = field(default_factory=list)


class BatchProcessor:
    """Writes one batch through a sink, isolates failing records, then checkpoints.

    ``sleep(seconds)`` waits between retries and returns ``False`` when the consumer
    was asked to stop meanwhile (the batch is then rolled back and not checkpointed).
    """

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetterSink,
        *,
        policy: RetryPolicy | None = None,
        decoder: Decoder = decode_record,
        sleep: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.dead_letters = dead_letters
        self.policy = policy or RetryPolicy()
        self.decoder = decoder
        self.tracker = CheckpointTracker()
        self._sleep = sleep or _plain_sleep
        self._clock = clock
        self.last_steps: list[CommitStep] = []

    def close(self) -> None:
        """Close the sink and the dead-letter queue when they hold resources."""
        for part in (self.sink, self.dead_letters):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def decode(self, batch: Batch) -> tuple[list[DecodedRecord], list[DeadLetter]]:
        decoder = self.decoder
        try:
            return [decoder(record) for record in batch.records], []
        except DecodeError:
            pass  # at least one record is undecodable: decode one by one below
        decoded: list[DecodedRecord] = []
        letters: list[DeadLetter] = []
        for record in batch.records:
            try:
                decoded.append(self.decoder(record))
            except DecodeError as exc:
                letters.append(DeadLetter(record, "DecodeError", exc.message, attempts=1))
        return decoded, letters

    def process(self, batch: Batch, checkpoint: Callable[[Positions], None]) -> BatchOutcome:
        """Write, dead-letter and checkpoint ``batch``; raise to have it read again."""
        started = self._clock()
        positions = batch.last_offsets()
        self.tracker.validate(positions)
        decoded, letters = self.decode(batch)
        state = _Attempts()
        if decoded:
            whole = batch.batch_id if len(decoded) == len(batch) else None
            letters.extend(self._write_with_retries(decoded, state, whole))
        state.steps.append(CommitStep.SINK_COMMIT)
        if letters:
            self.dead_letters.send(letters)
        state.steps.append(CommitStep.DEAD_LETTERS)
        checkpoint(positions)
        self.tracker.mark(positions)
        state.steps.append(CommitStep.CHECKPOINT)
        self.last_steps = state.steps
        return BatchOutcome(
            batch_id=batch.batch_id,
            records=len(batch),
            written=state.written,
            dead_letters=tuple(letters),
            attempts=state.writes,
            rollbacks=state.rollbacks,
            checkpoint=positions,
            duration_s=self._clock() - started,
        )

    def _transaction(
        self, records: Sequence[DecodedRecord], state: _Attempts, batch_id: str | None = None
    ) -> Exception | None:
        """One sink transaction; returns the failure after rolling back, or None."""
        state.writes += 1
        try:
            self.sink.begin(batch_id or batch_id_of(records))
            self.sink.write(records)
            self.sink.commit()
        except Exception as exc:  # noqa: BLE001 - any sink failure rolls back; decided below
            logger.warning("sink transaction of %d records failed: %s", len(records), exc)
            self.sink.rollback()
            state.rollbacks += 1
            return exc
        state.written += len(records)
        return None

    def _backoff(self, attempt: int) -> None:
        if not self._sleep(self.policy.delay(attempt)):
            raise ConsumerInterrupted("stopped while retrying a batch; rolled back")

    def _write_with_retries(
        self, records: list[DecodedRecord], state: _Attempts, batch_id: str | None
    ) -> list[DeadLetter]:
        failure: Exception | None = None
        for attempt in range(1, self.policy.attempts + 1):
            failure = self._transaction(records, state, batch_id)
            if failure is None:
                return []
            if attempt < self.policy.attempts:
                self._backoff(attempt)
        assert failure is not None
        if not self.policy.isolate and not is_retryable(failure):
            raise failure
        if is_retryable(failure):
            raise SinkUnavailableError(
                f"batch of {len(records)} records failed {self.policy.attempts} times: "
                f"{error_summary(failure)[1]}"
            ) from failure
        return self._isolate(records, self.policy.attempts, failure, state)

    def _isolate(
        self,
        records: list[DecodedRecord],
        prior_attempts: int,
        failure: Exception,
        state: _Attempts,
    ) -> list[DeadLetter]:
        """Find the records of a failed group that fail on their own (bisection)."""
        if len(records) == 1:
            return self._retry_single(records[0], prior_attempts, failure, state)
        letters: list[DeadLetter] = []
        for half in bisect(records):
            half_failure = self._transaction(half, state)
            if half_failure is None:
                continue
            if is_retryable(half_failure):
                raise SinkUnavailableError(
                    f"sink failed while isolating records: {error_summary(half_failure)[1]}"
                ) from half_failure
            letters.extend(self._isolate(half, prior_attempts + 1, half_failure, state))
        return letters

    def _retry_single(
        self, record: DecodedRecord, prior_attempts: int, failure: Exception, state: _Attempts
    ) -> list[DeadLetter]:
        attempts = prior_attempts
        while attempts < prior_attempts + self.policy.record_attempts - 1:
            self._backoff(attempts)
            next_failure = self._transaction([record], state)
            attempts += 1
            if next_failure is None:
                return []
            if is_retryable(next_failure):
                raise SinkUnavailableError(
                    f"sink failed while retrying a record: {error_summary(next_failure)[1]}"
                ) from next_failure
            failure = next_failure
        name, message = error_summary(failure)
        logger.warning(
            "dead-lettering %s offset %s: %s", record.record.tp, record.record.offset, name
        )
        return [DeadLetter(record.record, name, message, attempts)]


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True
