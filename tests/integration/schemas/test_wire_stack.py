"""The wire format and the text rules against the real services of the local stack.

* Framed values of every schema version go through a real Kafka topic and a real
  Kinesis stream unchanged, with the contract's headers, and decode to the same record.
* Text the codec accepts is storable in PostgreSQL (which refuses NUL characters), and
  the codec refuses what PostgreSQL would refuse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import schemas
from tests.integration.conftest import LocalStack

pytestmark = pytest.mark.integration


def _events() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for sv in schemas.catalogue():
        event = schemas.example_event(sv.event_type, version=sv.version)
        event["event_id"] = str(uuid.uuid4())
        event["metadata"] = {"note": "naïve café \u2013 東京 🚗", "empty": ""}
        out.append((sv.event_type, schemas.parse_event(sv.event_type, event)))
    return out


def test_framed_values_through_kafka(stack: LocalStack, topic_factory: Callable[..., str]) -> None:
    from confluent_kafka import Consumer, Producer

    topic = topic_factory(partitions=1)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": False})
    sent = []
    for event_type, record in _events():
        value = schemas.encode(event_type, record)
        headers = {
            "event_type": event_type,
            "event_id": record["event_id"],
            "schema_version": str(record["schema_version"]),
            "content-type": schemas.CONTENT_TYPE_AVRO,
        }
        producer.produce(topic, value=value, key=record["event_id"], headers=list(headers.items()))
        sent.append((event_type, record, value))
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"schemas-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic])
        received = []
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            received.append(message)
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert len(received) == len(sent)
    for (event_type, record, value), message in zip(sent, received, strict=True):
        assert message.value() == value
        headers = {k: v.decode() for k, v in message.headers() or []}
        decoded = schemas.decode_value(message.value(), content_type=headers["content-type"])
        assert (decoded.event_type, decoded.version) == (event_type, record["schema_version"])
        assert decoded.record == record


def test_framed_values_through_kinesis(
    stack: LocalStack, stream_factory: Callable[..., str]
) -> None:
    client = stack.aws_client("kinesis")
    stream = stream_factory(shards=1)
    sent = [(t, r, schemas.encode(t, r)) for t, r in _events()]
    result = client.put_records(
        StreamName=stream,
        Records=[{"Data": value, "PartitionKey": r["event_id"]} for _, r, value in sent],
    )
    assert result["FailedRecordCount"] == 0
    shard = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = client.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert [r["Data"] for r in records] == [value for _, _, value in sent]
    for (_, record, _), got in zip(sent, records, strict=True):
        assert schemas.decode(got["Data"]).record == record


def test_accepted_text_is_storable_in_postgres(
    stack: LocalStack, pg_schema_factory: Callable[..., str]
) -> None:
    import psycopg
    from psycopg import sql

    schema = pg_schema_factory()
    table = sql.Identifier(schema, "texts")
    rows = [json.dumps(schemas.to_json(r), ensure_ascii=False) for _, r in _events()]
    with psycopg.connect(stack.warehouse_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (body jsonb, note text)").format(table))
        for row in rows:
            note = json.loads(row)["metadata"]["note"]
            conn.execute(
                sql.SQL("INSERT INTO {} (body, note) VALUES (%s::jsonb, %s)").format(table),
                (row, note),
            )
        stored = conn.execute(sql.SQL("SELECT body, note FROM {}").format(table)).fetchall()
        assert [json.loads(r) for r in rows] == [body for body, _ in stored]
        # What the codec refuses, PostgreSQL refuses too.
        with pytest.raises(psycopg.errors.DataError):
            conn.execute(sql.SQL("INSERT INTO {} (note) VALUES (%s)").format(table), ("a\x00b",))
    event = schemas.example_event("financial-transaction")
    event["metadata"] = {"note": "a\x00b"}
    with pytest.raises(schemas.ValidationError):
        schemas.parse_event("financial-transaction", event)
