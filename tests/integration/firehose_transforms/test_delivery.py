"""End to end on the local stack: events published to Kafka (Tansu) and Kinesis (moto)
come out in S3 (moto) with the right names, content, error records and no manifest, and
the source position is checkpointed."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from firehose_transforms.config import DeliverySettings
from firehose_transforms.delivery import run_delivery
from firehose_transforms.models import DeliveryOptions, SourceKind
from sluice.config import EventType, ZoneSettings
from sluice.streams.dynamodb import DynamoCheckpointStore, DynamoLeaseTable
from sluice.streams.models import PartitionKey
from sluice.zone import parse_object_name
from tests.integration.firehose_transforms.helpers import (
    list_keys,
    mixed_batch,
    publish,
    read_gz_lines,
)
from tests.unit.firehose_transforms import builders as b

pytestmark = pytest.mark.integration

# Firehose's object name (docs: s3-object-name) under the dynamic-partitioning prefix
KEY_RE = re.compile(
    r"^clean/event_type=insurance-claim/dt=\d{4}-\d{2}-\d{2}/(?P<source>[\w.-]+)-1-"
    r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.gz$"
)


def _deliver(kind: str, stream: str, bucket: str, **extra: Any) -> Any:
    options = DeliveryOptions(
        source=SourceKind(kind),
        event_type=EventType.INSURANCE_CLAIM,
        buffer_mib=1,
        buffer_seconds=1,
        once=True,
        max_seconds=90,
        stream=stream,
        group_id=extra.pop("group_id", f"g-{uuid.uuid4().hex[:8]}"),
        quiet=True,
    )
    return run_delivery(options, zone=ZoneSettings(s3_bucket=bucket), **extra)


@pytest.fixture
def env(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SLUICE_PII_HMAC_KEY", b.HMAC_KEY)
    from firehose_transforms.lambda_function import get_transformer

    get_transformer.cache_clear()
    yield settings_env
    get_transformer.cache_clear()


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_published_events_come_out_in_s3(
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
    publish(kind, stream, records)

    settings = DeliverySettings(firehose_checkpoint_table=table)
    group = f"g-{uuid.uuid4().hex[:8]}"
    summary = _deliver(kind, stream, bucket, settings=settings, group_id=group)

    s3 = stack.aws_client("s3")
    clean = list_keys(s3, bucket, "clean/")
    assert clean, "no clean objects"
    rows: list[dict[str, Any]] = []
    for key in clean:
        match = KEY_RE.match(key)
        assert match, key
        assert match["source"] == stream
        rows.extend(read_gz_lines(s3, bucket, key))
    assert {r["event_id"] for r in rows} == expected["ok_ids"]
    assert len(rows) == len(expected["ok_ids"])
    assert all(
        r["claimant_national_id"] is None or r["claimant_national_id"].startswith("hmac-")
        for r in rows
    )
    assert all(r["occurred_at"].endswith("Z") for r in rows)

    errors = [
        e
        for key in list_keys(s3, bucket, "errors/processing-failed/")
        for e in read_gz_lines(s3, bucket, key)
    ]
    assert sorted(e["errorMessage"].split(":")[0] for e in errors) == expected["failed"]
    assert all(e["errorCode"] == "Lambda.ProcessingFailedStatus" for e in errors)
    assert set(errors[0]) == {
        "attemptsMade",
        "arrivalTimestamp",
        "errorCode",
        "errorMessage",
        "attemptEndingTimestamp",
        "rawData",
        "lambdaArn",
    }
    # one error record per failed event, raw bytes as published (Kinesis: the delivery
    # split the publisher's KPL aggregates into user records first)
    raw = {base64.b64decode(e["rawData"]) for e in errors}
    assert b"not an event" in raw

    # what Firehose writes, and nothing else: no manifest; names as Firehose names them
    assert list_keys(s3, bucket, "manifests/") == []
    assert all(parse_object_name(key) is not None for key in clean)

    assert summary.ok + summary.dropped + summary.failed == summary.records
    assert summary.dropped >= 1
    # the source record backup is off by default
    assert list_keys(s3, bucket, "raw/") == [] and summary.raw_objects == []

    # checkpointed: a second run from the same position delivers nothing new
    again = _deliver(kind, stream, bucket, settings=settings, group_id=group)
    assert again.records == 0
    assert list_keys(s3, bucket, "clean/") == clean

    if kind == "kinesis":
        leases = DynamoLeaseTable(f"{table}.{stream}", client=stack.aws_client("dynamodb"))
        shards = stack.aws_client("kinesis").list_shards(StreamName=stream)["Shards"]
        positions = DynamoCheckpointStore(leases).load(
            [PartitionKey(stream, s["ShardId"]) for s in shards]
        )
        assert any(position is not None for position in positions.values())


def test_unreachable_kafka_delivers_nothing_and_commits_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploy.local.base import free_port
    from firehose_transforms.memory import MemoryObjectStore

    monkeypatch.setenv("SLUICE_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    store = MemoryObjectStore("zone")
    options = DeliveryOptions(
        source=SourceKind.KAFKA,
        event_type=EventType.INSURANCE_CLAIM,
        buffer_seconds=1,
        once=True,
        max_seconds=3,
        stream="nowhere",
        group_id=f"g-{uuid.uuid4().hex[:8]}",
    )
    summary = run_delivery(options, store=store, zone=ZoneSettings(s3_bucket="zone"))
    assert summary.records == 0
    assert store.puts == []
