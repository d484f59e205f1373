"""The Firehose data-transformation contract as the delivery speaks it.

Builds the event Firehose sends for a chunk of stream records (the MSK-source or the
Kinesis-stream-source shape), splits a batch into invocations, and reads the response
the way Firehose does (pure).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from firehose_transforms.config import LAMBDA_PAYLOAD_LIMIT
from firehose_transforms.exceptions import InvocationFailed
from firehose_transforms.models import SourceKind
from sluice.streams.models import StreamRecord
from sluice.zone import kafka_partition_label

_REQUEST_RECORD_OVERHEAD = 400
"""Bytes a record adds to the request besides its base64 data (ids, metadata)."""


def partition_label(kind: str, record: StreamRecord) -> str:
    """The partition as object names spell it: ``p0003`` (Kafka), the shard id (Kinesis)."""
    if kind == SourceKind.KAFKA:
        return kafka_partition_label(int(record.partition))
    return record.partition


def record_id(kind: str, record: StreamRecord) -> str:
    """The deterministic ``recordId``: ``partition:position[:subsequence]``."""
    base = f"{partition_label(kind, record)}:{record.offset}"
    return base if record.sub_sequence is None else f"{base}:{record.sub_sequence}"


def arrival_ms(record: StreamRecord) -> int:
    """The broker's append time in epoch milliseconds (0 when unknown)."""
    return record.timestamp_ms or 0


def chunk_for_invocation(
    records: Sequence[StreamRecord], max_bytes: int
) -> list[list[StreamRecord]]:
    """Split a batch into invocations: at most ``max_bytes`` of record data each, and
    every request under the Lambda 6 MB limit (a single record always gets its own)."""
    limit = min(max_bytes, (LAMBDA_PAYLOAD_LIMIT - 64 * 1024) * 3 // 4)
    chunks: list[list[StreamRecord]] = []
    current: list[StreamRecord] = []
    size = 0
    for record in records:
        cost = len(record.value) + _REQUEST_RECORD_OVERHEAD
        if current and size + cost > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += cost
    if current:
        chunks.append(current)
    return chunks


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a Firehose event says about its delivery stream and source."""

    kind: str
    stream: str
    delivery_stream: str
    region: str = "us-east-1"
    account: str = "000000000000"

    @property
    def delivery_stream_arn(self) -> str:
        return (
            f"arn:aws:firehose:{self.region}:{self.account}:deliverystream/{self.delivery_stream}"
        )

    @property
    def source_arn(self) -> str:
        if self.kind == SourceKind.KAFKA:
            return f"arn:aws:kafka:{self.region}:{self.account}:cluster/sluice-local/{self.stream}"
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{self.stream}"


def firehose_event(context: EventContext, records: Sequence[StreamRecord]) -> dict[str, Any]:
    """The transformation event Firehose sends for ``records``: the MSK-source shape for
    Kafka, the Kinesis-stream-source shape for Kinesis (one entry per user record of a
    KPL aggregate, with that user record's own partition key and sub-sequence number,
    as Firehose deaggregates before it invokes the transform). ``recordId`` =
    ``partition:position[:subsequence]`` (see :func:`record_id`)."""
    kind = context.kind
    ids = [record_id(kind, r) for r in records]
    seed = f"{context.stream}/{ids[0]}/{ids[-1]}" if records else ""
    event: dict[str, Any] = {
        "invocationId": str(uuid.uuid5(uuid.NAMESPACE_URL, seed)),
        "deliveryStreamArn": context.delivery_stream_arn,
        "region": context.region,
    }
    if context.kind == SourceKind.KAFKA:
        event["sourceMSKArn"] = context.source_arn
        event["records"] = [
            {
                "recordId": rid,
                "approximateArrivalTimestamp": arrival_ms(r),
                "mskRecordMetadata": {
                    "offset": str(r.offset),
                    "partitionId": r.partition,
                    "approximateArrivalTimestamp": arrival_ms(r),
                },
                "kafkaRecordValue": base64.b64encode(r.value).decode("ascii"),
            }
            for rid, r in zip(ids, records, strict=True)
        ]
    else:
        event["sourceKinesisStreamArn"] = context.source_arn
        event["records"] = [
            {
                "recordId": rid,
                "approximateArrivalTimestamp": arrival_ms(r),
                "data": base64.b64encode(r.value).decode("ascii"),
                "kinesisRecordMetadata": {
                    "shardId": r.partition,
                    "partitionKey": r.key_text or "",
                    "approximateArrivalTimestamp": arrival_ms(r),
                    "sequenceNumber": str(r.offset),
                    "subsequenceNumber": r.sub_sequence or 0,
                },
            }
            for rid, r in zip(ids, records, strict=True)
        ]
    return event


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one source record after the transform."""

    record: StreamRecord
    result: str  # Ok | Dropped | ProcessingFailed
    data: bytes = b""
    event_type: str | None = None
    dt: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1
    ended_ms: int = 0


def check_response(
    kind: str, records: Sequence[StreamRecord], response: Any, data_key: str
) -> list[Outcome]:
    """Read a transform response the way Firehose does.

    Raises:
        InvocationFailed: the response breaks the contract (not a records list, a
            missing / unknown / repeated ``recordId``, a bad ``result``, data that is
            not base64, an ``Ok`` record without partition keys).
    """
    if not isinstance(response, Mapping) or not isinstance(response.get("records"), list):
        raise InvocationFailed("response has no records list", code="Lambda.InvalidOutput")
    by_id = {record_id(kind, r): r for r in records}
    answered: dict[str, Outcome] = {}
    for entry in response["records"]:
        if not isinstance(entry, Mapping):
            raise InvocationFailed("response record is not an object", code="Lambda.InvalidOutput")
        rid = entry.get("recordId")
        if not isinstance(rid, str) or rid not in by_id:
            raise InvocationFailed(
                "response names an unknown recordId", code="Lambda.InvalidRecordId"
            )
        if rid in answered:
            raise InvocationFailed(
                f"recordId {rid} answered twice", code="Lambda.DuplicatedRecordId"
            )
        answered[rid] = _outcome(by_id[rid], rid, entry, data_key)
    missing = [rid for rid in by_id if rid not in answered]
    if missing:
        raise InvocationFailed(
            f"{len(missing)} recordId(s) missing from the response", code="Lambda.MissingRecordId"
        )
    return [answered[rid] for rid in by_id]


def _outcome(record: StreamRecord, rid: str, entry: Mapping[str, Any], data_key: str) -> Outcome:
    result = entry.get("result")
    raw = entry.get(data_key)
    if result not in ("Ok", "Dropped", "ProcessingFailed"):
        raise InvocationFailed(
            f"result {str(result)[:32]!r} is not valid", code="Lambda.InvalidOutput"
        )
    if not isinstance(raw, str):
        raise InvocationFailed(f"record {rid} has no {data_key}", code="Lambda.InvalidOutput")
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise InvocationFailed("data is not base64", code="Lambda.InvalidOutput") from exc
    if result == "Ok":
        keys = (entry.get("metadata") or {}).get("partitionKeys") or {}
        event_type, dt = keys.get("event_type"), keys.get("dt")
        if not isinstance(event_type, str) or not isinstance(dt, str):
            raise InvocationFailed(
                "Ok record without partitionKeys event_type and dt", code="Lambda.InvalidOutput"
            )
        return Outcome(record, "Ok", data=data, event_type=event_type, dt=dt)
    if result == "Dropped":
        return Outcome(record, "Dropped")
    code, message = _failure_reason(data)
    return Outcome(
        record,
        "ProcessingFailed",
        error_code="Lambda.ProcessingFailedStatus",
        error_message=f"{code}: {message}",
    )


def _failure_reason(data: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(data)
    except ValueError:
        return "processing_failed", "the transform marked the record ProcessingFailed"
    if not isinstance(doc, Mapping):
        return "processing_failed", "the transform marked the record ProcessingFailed"
    return str(doc.get("errorCode") or "processing_failed"), str(doc.get("errorMessage") or "")
