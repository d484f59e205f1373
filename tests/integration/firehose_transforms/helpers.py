"""Publishing and reading helpers of the firehose_transforms integration tests."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import Any

from producers.base import build_outgoing_record, publish_sync
from producers.config import PublisherSettings
from producers.factory import create_publisher
from producers.models import JSON_CONTENT_TYPE, OutgoingRecord
from tests.unit.firehose_transforms import builders as b


def publish(backend: str, stream: str, records: list[OutgoingRecord]) -> None:
    """Put ``records`` onto ``stream`` through the project's Publisher; all must be acked."""
    publisher = create_publisher(PublisherSettings(), backend=backend)
    results = publish_sync(publisher, stream, records, timeout=60)
    import asyncio

    asyncio.run(publisher.close())
    failed = [r for r in results if not r.ok]
    assert not failed, failed


def mixed_batch() -> tuple[list[OutgoingRecord], dict[str, Any]]:
    """Valid Avro and JSON events plus a test event, a negative claim (Avro bytes that
    bypassed the API), a claim with loss after report, and bytes that are no event.

    Returns the records and what should come out: ``ok_ids`` and ``failed`` reasons.
    """
    good = [b.claim() for _ in range(12)]
    json_good = [b.claim() for _ in range(3)]
    test = b.claim(metadata={"test": "true"})
    negative = b.claim()
    late = b.claim(loss_date="2026-03-01")
    records = [build_outgoing_record("insurance-claim", e, b.as_avro(e)) for e in good]
    records += [
        build_outgoing_record("insurance-claim", e, b.as_json(e), content_type=JSON_CONTENT_TYPE)
        for e in json_good
    ]
    records.append(build_outgoing_record("insurance-claim", test, b.as_avro(test)))
    records.append(
        build_outgoing_record(
            "insurance-claim",
            negative,
            b.as_avro_unchecked(negative, claim_amount=Decimal("-10.0000")),
        )
    )
    records.append(build_outgoing_record("insurance-claim", late, b.as_avro(late)))
    records.append(OutgoingRecord("garbage", "insurance-claim", "pol-77", b"not an event"))
    expected = {
        "ok_ids": {e["event_id"] for e in good + json_good},
        "failed": sorted(["negative_claim_amount", "loss_date_after_report_date", "undecodable"]),
    }
    return records, expected


def read_gz_lines(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line]


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
