"""The source record backup on the local stack: with it on, every record published to
Kafka (Tansu) or Kinesis (moto) is in S3 (moto) under ``raw/``, byte for byte, whatever
the transform made of it (Ok, Dropped, ProcessingFailed); with it off, ``raw/`` stays
empty."""

from __future__ import annotations

import base64
import gzip
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from firehose_transforms.config import DeliverySettings
from firehose_transforms.delivery import run_delivery
from firehose_transforms.models import DeliveryOptions, DeliverySummary, SourceKind
from sluice.config import EventType, ZoneSettings
from sluice.zone import RAW_CONTENT_TYPE, unframe_raw
from tests.integration.firehose_transforms.helpers import (
    list_keys,
    mixed_batch,
    publish,
    read_gz_lines,
)
from tests.unit.firehose_transforms import builders as b

pytestmark = pytest.mark.integration

# Firehose's object name under its default time prefix
RAW_KEY = re.compile(
    r"^raw/(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/(?P<stem>(?P<source>[\w.-]+)-1-"
    r"(?P<stamp>\d{4}-\d{2}-\d{2}-\d{2})-\d{2}-\d{2}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.gz$"
)


@pytest.fixture
def env(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("SLUICE_PII_HMAC_KEY", b.HMAC_KEY)
    from firehose_transforms.lambda_function import get_transformer

    get_transformer.cache_clear()
    yield settings_env
    get_transformer.cache_clear()


def _deliver(
    kind: str, stream: str, bucket: str, table: str, group: str, raw_backup: bool | None
) -> DeliverySummary:
    options = DeliveryOptions(
        source=SourceKind(kind),
        event_type=EventType.INSURANCE_CLAIM,
        buffer_mib=1,
        buffer_seconds=1,
        once=True,
        max_seconds=90,
        stream=stream,
        group_id=group,
        quiet=True,
        raw_backup=raw_backup,
    )
    return run_delivery(
        options,
        zone=ZoneSettings(s3_bucket=bucket),
        settings=DeliverySettings(firehose_checkpoint_table=table),
    )


def _stem(key: str) -> str:
    return key.rsplit("/", 1)[1].removesuffix(".gz")


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_every_source_record_is_backed_up_byte_for_byte(
    kind: str,
    env: dict[str, str],
    stack: Any,
    topic_factory: Callable[..., str],
    stream_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
) -> None:
    stream = topic_factory(partitions=4) if kind == "kafka" else stream_factory(shards=2)
    bucket = bucket_factory()
    table = dynamodb_table_factory()
    records, expected = mixed_batch()
    records.append(records[0])  # the same event twice: a duplicate for the transform
    publish(kind, stream, records)
    group = f"g-{uuid.uuid4().hex[:8]}"

    summary = _deliver(kind, stream, bucket, table, group, raw_backup=True)

    s3 = stack.aws_client("s3")
    raw_keys = list_keys(s3, bucket, "raw/")
    assert raw_keys and sorted(summary.raw_objects) == raw_keys
    backed_up: list[bytes] = []
    for key in raw_keys:
        match = RAW_KEY.match(key)
        assert match, key
        assert match["source"] == stream
        assert match["hour"].replace("/", "-") == match["stamp"]  # Firehose's YYYY/MM/DD/HH
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == RAW_CONTENT_TYPE
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        backed_up.extend(unframe_raw(body))

    # every published record exactly once, byte for byte (Kinesis: the delivery split
    # the publisher's KPL aggregates into user records, i.e. the published values)
    assert Counter(backed_up) == Counter(r.value for r in records)
    assert summary.records == len(records)
    assert summary.failed == len(expected["failed"]) and summary.dropped >= 1

    # the records the transform failed and dropped are among them
    errors = [
        e
        for key in list_keys(s3, bucket, "errors/processing-failed/")
        for e in read_gz_lines(s3, bucket, key)
    ]
    failed_raw = [base64.b64decode(e["rawData"]) for e in errors]
    assert len(failed_raw) == len(expected["failed"])
    assert b"not an event" in failed_raw
    assert all(value in backed_up for value in failed_raw)
    delivered = {
        r["event_id"]
        for key in list_keys(s3, bucket, "clean/")
        for r in read_gz_lines(s3, bucket, key)
    }
    assert delivered == expected["ok_ids"]
    not_delivered = [r.value for r in records if r.event_id not in delivered]
    assert not_delivered and all(value in backed_up for value in not_delivered)

    # the raw objects are named like the batch's clean and error objects
    output = {_stem(k) for k in list_keys(s3, bucket, "clean/") + list_keys(s3, bucket, "errors/")}
    assert output <= {_stem(k) for k in raw_keys}

    # checkpointed after the backup: a second run backs up nothing again
    again = _deliver(kind, stream, bucket, table, group, raw_backup=True)
    assert again.records == 0 and again.raw_objects == []
    assert list_keys(s3, bucket, "raw/") == raw_keys


@pytest.mark.parametrize("raw_backup", [None, False])
def test_nothing_is_written_under_raw_when_the_backup_is_off(
    raw_backup: bool | None,
    env: dict[str, str],
    stack: Any,
    stream_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
) -> None:
    stream = stream_factory(shards=2)
    bucket = bucket_factory()
    records, _ = mixed_batch()
    publish("kinesis", stream, records)

    summary = _deliver(
        "kinesis", stream, bucket, dynamodb_table_factory(), "unused", raw_backup=raw_backup
    )

    s3 = stack.aws_client("s3")
    assert summary.records == len(records)
    assert list_keys(s3, bucket, "clean/") and list_keys(s3, bucket, "errors/")
    assert list_keys(s3, bucket, "raw/") == [] and summary.raw_objects == []
