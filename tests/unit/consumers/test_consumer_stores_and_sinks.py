from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from consumers.base import decode_record
from consumers.exceptions import DeadLetterError, DecodeError
from consumers.models import DeadLetter, DecodedRecord
from consumers.sinks import (
    PublisherDeadLetters,
    WarehouseSink,
    ZoneSink,
    dead_letter_record,
    zone_objects,
)
from sluice.config import ZoneSettings
from sluice.streams.memory import MemoryCheckpointStore
from sluice.streams.models import PartitionKey, StreamRecord
from sluice.zone import parse_object_name
from tests.unit.consumers.checkpoint_contract import CheckpointStoreContract
from tests.unit.consumers.consumer_fakes import make_record


class TestMemoryCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def store_factory(self) -> Any:
        shared = MemoryCheckpointStore()
        parts = [PartitionKey("t", "0"), PartitionKey("t", "1")]
        return lambda: (shared, parts)


def decoded(
    offset: int, event_type: str = "financial-transaction", partition: str = "0"
) -> DecodedRecord:
    return DecodedRecord(
        make_record(offset, partition), event_type, 1, {"event_id": f"e{offset}", "n": offset}
    )


def test_zone_keys_are_the_same_for_a_rewritten_batch() -> None:
    rows = lambda e: dict(e)  # noqa: E731
    zone = ZoneSettings()
    first = zone_objects([decoded(3), decoded(5), decoded(4, "insurance-claim")], rows, zone)
    again = zone_objects([decoded(4, "insurance-claim"), decoded(5), decoded(3)], rows, zone)
    assert first == again
    (key,) = [k for k in first if "financial-transaction" in k]
    assert key.startswith("clean/event_type=financial-transaction/dt=2023-11-14/")
    parsed = parse_object_name(key)  # Firehose's object name
    assert parsed is not None and parsed.stream == "t" and parsed.extension == ".gz"
    assert [r["n"] for r in first[key][1]] == [3, 5]
    other = zone_objects([decoded(3), decoded(6)], rows, zone)
    assert key not in other  # another offset range, another name


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str = "") -> None:
        self.objects[f"{Bucket}/{Key}"] = Body


def test_zone_sink_writes_objects_on_commit_only_and_no_manifest() -> None:
    s3 = FakeS3()
    sink = ZoneSink(s3_client=s3, row_builder=dict)
    sink.begin("b")
    sink.write([decoded(1), decoded(2)])
    sink.rollback()
    assert s3.objects == {}
    sink.begin("b")
    sink.write([decoded(1), decoded(2)])
    sink.commit()
    data = [k for k in s3.objects if k.endswith(".gz")]
    assert len(data) == 1 and len(s3.objects) == 1  # Firehose writes no manifest either
    lines = gzip.decompress(s3.objects[data[0]]).splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == ["e1", "e2"]


def test_warehouse_sink_stages_and_merges_in_one_transaction() -> None:
    calls: list[Any] = []

    class Batch:
        def lock(self, tables: Any) -> None:
            calls.append(("lock", sorted(str(t) for t in tables)))

        def stage(self, table: Any, rows: Any, *, source: str) -> None:
            calls.append(("stage", str(table), len(list(rows))))

        def merge(self) -> None:
            calls.append("merge")

        def commit(self) -> None:
            calls.append("commit")

        def rollback(self) -> None:
            calls.append("rollback")

    class Warehouse:
        def begin(self) -> Batch:
            calls.append("begin")
            return Batch()

    sink = WarehouseSink(Warehouse(), row_builder=dict)
    sink.begin("b1")
    sink.write([decoded(1), decoded(2, "insurance-claim")])
    sink.commit()
    assert calls == [
        "begin",
        ("lock", ["financial_transactions", "insurance_claims"]),
        ("stage", "financial_transactions", 1),
        ("stage", "insurance_claims", 1),
        "merge",
        "commit",
    ]
    calls.clear()
    sink.begin("b2")
    sink.rollback()
    assert calls == ["begin", "rollback"]


def test_dead_letter_record_for_kafka_and_kinesis() -> None:
    record = StreamRecord("t", "2", 9, b"\x00raw", b"acct-1", {"event_id": "e9", "event_type": "x"})
    letter = DeadLetter(record, "DecodeError", "bad", 1)
    kafka = dead_letter_record(letter, "kafka")
    assert kafka.value == b"\x00raw"
    assert kafka.headers["dlq-source-offset"] == "9"
    assert kafka.event_id == "e9"
    assert kafka.partition_key == "acct-1"
    kinesis = dead_letter_record(letter, "kinesis")
    envelope = json.loads(kinesis.value)
    assert envelope["headers"]["dlq-error-class"] == "DecodeError"
    assert base64.b64decode(envelope["value_b64"]) == b"\x00raw"


def test_publisher_dead_letters_raise_when_not_acknowledged() -> None:
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher(streams=["dlq"])
    dlq = PublisherDeadLetters(publisher, "dlq", "kafka")
    letter = DeadLetter(make_record(1), "E", "m", 2)
    dlq.send([letter])
    assert dlq.published == 1
    publisher.fail_next(1)
    with pytest.raises(DeadLetterError):
        dlq.send([letter])
    bad = PublisherDeadLetters(publisher, "not-a-stream", "kafka")
    with pytest.raises(DeadLetterError):
        bad.send([letter])
    dlq.close()


def test_decode_record_with_the_codec() -> None:
    import schemas

    event = schemas.parse_event(
        "financial-transaction", schemas.example_event("financial-transaction")
    )
    value = schemas.encode("financial-transaction", event)
    rec = StreamRecord("t", "0", 1, value, None, {"content-type": "application/vnd.sluice.avro"})
    d = decode_record(rec)
    assert d.event_type == "financial-transaction"
    assert d.event["event_id"] == event["event_id"]
    with pytest.raises(DecodeError):
        decode_record(StreamRecord("t", "0", 2, b"\x00\x00\x00\x00\x01junk", None, {}))
    with pytest.raises(DecodeError):
        decode_record(
            StreamRecord("t", "0", 3, b"{not json", None, {"content-type": "application/json"})
        )
