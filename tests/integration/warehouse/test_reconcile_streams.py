"""Reconcile's stream sources on the real Kafka broker (Tansu) and Kinesis (moto)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sluice.config import AwsSettings, KafkaSettings
from warehouse.reconcile import Window, kafka_stream_source, kinesis_stream_source, reconcile

pytestmark = pytest.mark.integration


def events(n: int) -> list[tuple[str, bytes]]:
    from schemas import codec

    out = []
    for _ in range(n):
        event = codec.example_event("financial-transaction")
        event["event_id"] = str(uuid.uuid4())
        record = codec.parse_event("financial-transaction", event)
        out.append((event["event_id"], codec.encode("financial-transaction", record)))
    return out


def test_kafka_source_reads_every_record(stack: Any, topic_factory: Any) -> None:
    from confluent_kafka import Producer

    topic = topic_factory(partitions=2)
    sent = events(6)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    for i, (_, value) in enumerate([*sent, sent[0]]):  # one duplicate
        producer.produce(topic, value=value, key=str(i).encode())
    assert producer.flush(10) == 0
    source = kafka_stream_source(
        KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap), [topic]
    )
    seen = source(Window())
    assert seen is not None
    report = reconcile(
        Window(),
        {"accepted": None, "stream": seen, "s3_clean": None, "s3_errors": None, "warehouse": None},
    )
    stream = report.stage("stream")
    assert (stream.total, stream.distinct, stream.duplicates) == (7, 6, (sent[0][0],))


def test_kinesis_source_reads_every_shard(stack: Any, stream_factory: Any) -> None:
    name = stream_factory(shards=2)
    client = stack.aws_client("kinesis")
    sent = events(5)
    client.put_records(
        StreamName=name,
        Records=[{"Data": value, "PartitionKey": str(i)} for i, (_, value) in enumerate(sent)],
    )
    seen = kinesis_stream_source(AwsSettings(), [name], client=client)(Window())
    assert seen is not None
    assert sorted(s.event_id for s in seen if s.event_id) == sorted(eid for eid, _ in sent)
