"""Event builders shared by the firehose_transforms tests (unit, integration, benchmark)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

from aws_kinesis_agg.aggregator import RecordAggregator

from schemas import codec

HMAC_KEY = "unit-test-hmac-key"


def transformer(**settings: Any) -> Any:
    """A Transformer with the test HMAC key and ``settings`` (TransformSettings fields)."""
    from firehose_transforms.base import Transformer
    from firehose_transforms.config import TransformSettings
    from schemas.config import PiiSettings

    return Transformer(TransformSettings(**settings), pii=PiiSettings(pii_hmac_key=HMAC_KEY))


def transaction(**overrides: Any) -> dict[str, Any]:
    """A valid financial-transaction JSON event (fresh event_id) with ``overrides``."""
    event = codec.example_event("financial-transaction")
    event["event_id"] = str(uuid.uuid4())
    event.update(copy.deepcopy(overrides))
    return event


def claim(**overrides: Any) -> dict[str, Any]:
    """A valid insurance-claim JSON event (fresh event_id) with ``overrides``."""
    event = codec.example_event("insurance-claim")
    event["event_id"] = str(uuid.uuid4())
    event.update(copy.deepcopy(overrides))
    return event


def as_json(event: dict[str, Any]) -> bytes:
    """The event as JSON bytes (``content-type: application/json`` on the stream)."""
    return json.dumps(event).encode("utf-8")


def as_avro(event: dict[str, Any]) -> bytes:
    """The event as Confluent-framed Avro (validated first, as the API does)."""
    record = codec.parse_event(event["event_type"], event, allow_server_fields=True)
    return codec.encode(event["event_type"], record, framed=True)


def as_avro_unchecked(event: dict[str, Any], **record_overrides: Any) -> bytes:
    """Framed Avro of ``event`` with ``record_overrides`` applied after validation: bytes
    that break business rules the way a producer bypassing the API could write them."""
    record = codec.parse_event(event["event_type"], event, allow_server_fields=True)
    record.update(record_overrides)
    return codec.encode(event["event_type"], record, framed=True)


def kpl_aggregate(
    payloads: list[bytes], partition_key: str = "pk", keys: list[str] | None = None
) -> bytes:
    """One KPL-aggregated Kinesis record holding ``payloads`` (the official aggregator),
    under ``partition_key``, or each under its own key of ``keys``."""
    aggregator = RecordAggregator()
    for i, payload in enumerate(payloads):
        aggregator.add_user_record(keys[i] if keys else partition_key, payload)
    record = aggregator.clear_and_get()
    assert record is not None
    _pk, _ehk, data = record.get_contents()
    return bytes(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def direct_put_event(
    payloads: list[bytes], *, arrival_ms: int = 1_763_781_605_000
) -> dict[str, Any]:
    """A Direct PUT transformation event (the AWS documentation's shape)."""
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/sluice",
        "region": "us-east-1",
        "records": [
            {"recordId": f"{i:056d}", "approximateArrivalTimestamp": arrival_ms, "data": b64(p)}
            for i, p in enumerate(payloads)
        ],
    }


def kinesis_event(payloads: list[bytes], *, arrival_ms: int = 1_763_781_605_000) -> dict[str, Any]:
    """A Kinesis-stream-source transformation event."""
    return {
        "invocationId": str(uuid.uuid4()),
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/sluice",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/sluice",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"rec-{i}",
                "approximateArrivalTimestamp": arrival_ms,
                "data": b64(p),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "acc-42",
                    "approximateArrivalTimestamp": arrival_ms,
                    "sequenceNumber": str(
                        49546986683135544286507457936321625675700192471156785154 + i
                    ),
                    "subsequenceNumber": 0,
                },
            }
            for i, p in enumerate(payloads)
        ],
    }


def msk_event(payloads: list[bytes], *, arrival_ms: int = 1_763_781_605_000) -> dict[str, Any]:
    """An MSK-source transformation event (``kafkaRecordValue``, ``mskRecordMetadata``)."""
    return {
        "invocationId": str(uuid.uuid4()),
        "sourceMSKArn": "arn:aws:kafka:us-east-1:123456789012:cluster/sluice/abcd",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/sluice",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{i:062d}",
                "approximateArrivalTimestamp": arrival_ms,
                "mskRecordMetadata": {
                    "offset": str(i),
                    "partitionId": "1",
                    "approximateArrivalTimestamp": arrival_ms,
                },
                "kafkaRecordValue": b64(p),
            }
            for i, p in enumerate(payloads)
        ],
    }
