"""Value objects of the transform and of the delivery: small, frozen, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from sluice.config import EventType

Result = Literal["Ok", "Dropped", "ProcessingFailed"]
"""The three results of the Firehose data-transformation status model."""

SourceShape = Literal["direct_put", "kinesis", "msk"]
"""Which Firehose source the invocation came from (decides field names)."""


class Reason(StrEnum):
    """Stable reason codes of ``Dropped`` and ``ProcessingFailed`` records."""

    # Dropped (successfully processed, intentionally not delivered)
    TEST_EVENT = "test_event"
    DUPLICATE = "duplicate"
    # ProcessingFailed
    UNDECODABLE = "undecodable"
    INVALID_EVENT = "invalid_event"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_CURRENCY = "unknown_currency"
    INVALID_AMOUNT = "invalid_amount"
    NEGATIVE_AMOUNT = "negative_amount"
    NEGATIVE_CLAIM_AMOUNT = "negative_claim_amount"
    LOSS_DATE_AFTER_REPORT_DATE = "loss_date_after_report_date"
    INVALID_CODE = "invalid_code"
    INVALID_TIMESTAMP = "invalid_timestamp"
    PAN_IN_IDENTIFIER = "pan_in_identifier"
    PII_KEY_MISSING = "pii_key_missing"
    MIXED_EVENT_TYPES = "mixed_event_types"
    RESPONSE_SIZE_LIMIT = "response_size_limit"


DROP_REASONS: frozenset[Reason] = frozenset({Reason.TEST_EVENT, Reason.DUPLICATE})


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One record of a Firehose transformation event, source-independent.

    Attributes:
        record_id: Firehose's ``recordId``.
        data: the record bytes (base64-decoded ``data`` or ``kafkaRecordValue``), or
            ``None`` when the field was missing or not base64.
        arrival_ms: ``approximateArrivalTimestamp`` (epoch milliseconds).
    """

    record_id: str
    data: bytes | None
    arrival_ms: int


@dataclass(frozen=True, slots=True)
class TransformResult:
    """The transform's answer for one ``recordId``.

    Attributes:
        record_id: the input's ``recordId``.
        result: ``Ok``, ``Dropped`` or ``ProcessingFailed``.
        data: ``Ok``: NDJSON rows (every line ends with ``\\n``); ``ProcessingFailed``: a
            JSON object ``{"errorCode", "errorMessage"}`` the delivery copies into the
            error record; ``Dropped``: empty.
        partition_keys: ``{"event_type", "dt"}`` for ``Ok`` records.
        reason: the reason code of a ``Dropped``/``ProcessingFailed`` record.
        message: a sentence about the reason, free of payload values.
        rows: how many events (NDJSON lines) ``data`` holds.
    """

    record_id: str
    result: Result
    data: bytes = b""
    partition_keys: Mapping[str, str] | None = None
    reason: Reason | None = None
    message: str | None = None
    rows: int = 0


class SourceKind(StrEnum):
    """Which stream the delivery reads."""

    KAFKA = "kafka"
    KINESIS = "kinesis"


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """What ``run_delivery`` does (the Python API behind ``sluice firehose run``).

    Attributes:
        source: ``kafka`` or ``kinesis``.
        event_type: which event type's topic/stream to deliver.
        buffer_mib: size hint, 1-128 MiB.
        buffer_seconds: interval hint, 0-900 s (0 flushes after every poll with data).
        once: deliver until every partition / shard is read to its end, flush, exit
            (non-zero when no partition / shard is assigned in time).
        metrics_port: serve Prometheus metrics here when set.
        stream: topic/stream name; defaults to the event type's name in StreamSettings.
        group_id: Kafka consumer group; defaults to ``<group prefix>-<event type>``.
        max_seconds: stop after this long (``None``: until interrupted or drained).
        quiet: no console progress.
        raw_backup: also write every source record, as it arrived, under the raw
            prefix (Firehose's source record backup); ``None``: as
            ``SLUICE_FIREHOSE_RAW_BACKUP`` says (off by default).
    """

    source: SourceKind
    event_type: EventType
    buffer_mib: int = 5
    buffer_seconds: int = 300
    once: bool = False
    metrics_port: int | None = None
    stream: str | None = None
    group_id: str | None = None
    max_seconds: float | None = None
    quiet: bool = False
    raw_backup: bool | None = None


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one delivery batch did."""

    records: int
    ok: int
    dropped: int
    failed: int
    rows: int
    objects: tuple[str, ...]
    error_objects: tuple[str, ...]
    invocation_attempts: int
    raw_objects: tuple[str, ...] = ()


@dataclass(slots=True)
class DeliverySummary:
    """Totals of a ``run_delivery`` call."""

    source: str
    stream: str
    event_type: str
    batches: int = 0
    records: int = 0
    ok: int = 0
    dropped: int = 0
    failed: int = 0
    rows: int = 0
    objects: list[str] = field(default_factory=list)
    error_objects: list[str] = field(default_factory=list)
    raw_objects: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, report: BatchReport) -> None:
        """Fold one batch into the totals."""
        self.batches += 1
        self.records += report.records
        self.ok += report.ok
        self.dropped += report.dropped
        self.failed += report.failed
        self.rows += report.rows
        self.objects.extend(report.objects)
        self.error_objects.extend(report.error_objects)
        self.raw_objects.extend(report.raw_objects)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready totals (for ``--json``)."""
        return {
            "source": self.source,
            "stream": self.stream,
            "event_type": self.event_type,
            "batches": self.batches,
            "records": self.records,
            "ok": self.ok,
            "dropped": self.dropped,
            "failed": self.failed,
            "rows": self.rows,
            "objects": list(self.objects),
            "error_objects": list(self.error_objects),
            "raw_objects": list(self.raw_objects),
            "seconds": round(self.seconds, 3),
        }
