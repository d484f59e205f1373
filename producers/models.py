"""What goes onto a stream and what comes back: :class:`OutgoingRecord`, :class:`PublishResult`.

Both are small frozen value objects shared by every publisher backend, the ingest API,
the load generator and the consumers' dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

PublishStatus = Literal["ok", "failed"]

AVRO_CONTENT_TYPE = "application/vnd.sluice.avro"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to publish.

    Attributes:
        event_id: the event's id; stable across retries and carried into the result.
        event_type: ``financial-transaction`` or ``insurance-claim`` (or a DLQ type).
        partition_key: Kafka message key / Kinesis partition key (``account_id`` for
            transactions, ``policy_id`` for claims), so one entity's events stay ordered.
        value: the payload: framed Avro binary (Confluent wire format) or JSON bytes.
        headers: Kafka headers; on Kinesis the framed value describes itself and
            headers are not transmitted.
    """

    event_id: str
    event_type: str
    partition_key: str
    value: bytes
    headers: Mapping[str, bytes | str] = field(default_factory=dict)

    @property
    def key_bytes(self) -> bytes:
        """The partition key as UTF-8 bytes."""
        return self.partition_key.encode("utf-8")

    @property
    def size(self) -> int:
        """Bytes counted against the per-record limits: key plus value."""
        return len(self.key_bytes) + len(self.value)

    def header_list(self) -> list[tuple[str, bytes]]:
        """Headers as ``(name, bytes)`` pairs, the shape Kafka clients take."""
        return [
            (name, value.encode("utf-8") if isinstance(value, str) else value)
            for name, value in self.headers.items()
        ]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The outcome of publishing one :class:`OutgoingRecord`.

    ``status == "ok"`` means the broker acknowledged the write (Kafka ``acks=all``
    delivery report; the record's own entry in a Kinesis PutRecords response).
    ``status == "failed"`` carries the backend's own error code (librdkafka names such
    as ``_MSG_TIMED_OUT``; AWS codes such as ``ProvisionedThroughputExceededException``)
    and whether sending the same record again may succeed.

    Attributes:
        event_id: the record's ``event_id``.
        status: ``ok`` or ``failed``.
        stream: the topic / stream name.
        partition: Kafka partition (Kafka only).
        offset: Kafka offset (Kafka only).
        shard_id: Kinesis shard id (Kinesis only).
        sequence_number: Kinesis sequence number (Kinesis only).
        error_code: machine-readable reason of a failure.
        error_message: a sentence about a failure, free of payload data.
        retryable: a failure that may succeed when sent again.
        attempts: how many times the record was sent.
    """

    event_id: str
    status: PublishStatus
    stream: str
    partition: int | None = None
    offset: int | None = None
    shard_id: str | None = None
    sequence_number: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True when the broker acknowledged the record."""
        return self.status == "ok"

    @property
    def position(self) -> str | None:
        """Where the record landed, as text: ``partition:offset`` or ``shard:sequence``."""
        if self.partition is not None:
            return f"{self.partition}:{self.offset}"
        if self.shard_id is not None:
            return f"{self.shard_id}:{self.sequence_number}"
        return None

    @classmethod
    def failure(
        cls,
        record: OutgoingRecord,
        stream: str,
        *,
        code: str,
        message: str,
        retryable: bool,
        attempts: int = 1,
    ) -> PublishResult:
        """A failed result for ``record``."""
        return cls(
            event_id=record.event_id,
            status="failed",
            stream=stream,
            error_code=code,
            error_message=message,
            retryable=retryable,
            attempts=attempts,
        )
