"""The S3 zone sink against moto's S3: objects named by offsets, rewritten in place."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import pytest

from consumers.api import ConsumerContext, build_consumer
from consumers.replay import ReplayTarget, TargetKind, replay_kinesis
from consumers.sinks import ZoneSink, default_row_builder
from sluice.config import ZoneSettings
from sluice.streams.dynamodb import DynamoLeaseTable
from sluice.zone import parse_object_name
from tests.integration.consumers.consumer_support import make_events, put_kinesis

pytestmark = pytest.mark.integration


def keys(s3: Any, bucket: str) -> dict[str, Any]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listing}


def test_zone_sink_writes_the_same_objects_when_a_batch_is_read_again(
    stack: Any, stream_factory: Any, bucket_factory: Any, settings_env: Any
) -> None:
    stream = stream_factory(shards=1)
    bucket = bucket_factory()
    s3 = stack.aws_client("s3")
    events = make_events(20)
    put_kinesis(stack.aws_client("kinesis"), stream, events)
    group = f"g-{uuid.uuid4().hex[:8]}"
    ctx = ConsumerContext.from_env(
        consumer_group=group,
        consumer_batch_max_records=100,
        consumer_lease_take_interval_s=0.5,
        consumer_idle_read_interval_s=0.2,
    )

    def run() -> None:
        sink = ZoneSink(
            zone=ZoneSettings(s3_bucket=bucket), s3_client=s3, row_builder=default_row_builder()
        )
        build_consumer(ctx=ctx, backend="kinesis", streams=[stream], sink=sink).run(
            until_caught_up=True, timeout_s=60
        )

    run()
    first = keys(s3, bucket)
    data = [k for k in first if k.endswith(".gz")]
    assert len(data) == 1 and len(first) == 1  # no manifest: the loader writes its own
    assert data[0].startswith("clean/event_type=financial-transaction/dt=")
    parsed = parse_object_name(data[0])  # named as Firehose names its objects
    assert parsed is not None and parsed.stream == stream
    body = s3.get_object(Bucket=bucket, Key=data[0])["Body"].read()
    rows = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)

    table = DynamoLeaseTable(ctx.consumer.lease_table(stream), client=stack.aws_client("dynamodb"))
    replay_kinesis(
        stream,
        table,
        stack.aws_client("kinesis"),
        ReplayTarget(TargetKind.EARLIEST),
        dry_run=False,
        force=True,
    )
    run()
    assert keys(s3, bucket) == first  # same keys, same content
