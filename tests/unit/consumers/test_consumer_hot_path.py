"""The per-record paths (Kafka message conversion, batch spans, pass-through decoding)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from consumers.base import BatchProcessor, passthrough_decoder
from consumers.memory import MemoryDeadLetters, NoopSink
from consumers.models import Batch, DecodedRecord
from sluice.streams.kafka import to_stream_record, to_stream_records
from sluice.streams.models import PartitionKey, StreamRecord


class FakeError:
    def code(self) -> int:
        return -191


class FakeMessage:
    """The part of a confluent-kafka message the source reads."""

    def __init__(
        self,
        partition: int,
        offset: int,
        *,
        headers: list[tuple[str, bytes | None]] | None = None,
        timestamp: tuple[int, int] = (1, 1700000000000),
        value: bytes | None = b"v",
        error: FakeError | None = None,
    ) -> None:
        self._partition, self._offset, self._headers = partition, offset, headers
        self._timestamp, self._value, self._error = timestamp, value, error

    def error(self) -> FakeError | None:
        return self._error

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"k"

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp


def test_poll_conversion_matches_single_conversion_and_skips_errors() -> None:
    messages: list[Any] = [
        FakeMessage(0, 5, headers=[("event_id", b"e1"), ("bad", b"\xff"), ("none", None)]),
        FakeMessage(1, 6, timestamp=(0, -1), value=None),
        FakeMessage(2, 7, error=FakeError()),
        FakeMessage(5000, 8),
    ]
    records = to_stream_records(messages)
    assert records == [to_stream_record(m) for m in messages if m.error() is None]
    assert all(type(r) is StreamRecord for r in records)
    first, second, third = records
    assert dict(first.headers) == {"event_id": "e1", "bad": "\ufffd"}
    assert first.tp == PartitionKey("orders", "0")
    assert first.timestamp_ms == 1700000000000
    assert (second.value, second.timestamp_ms, dict(second.headers)) == (b"", None, {})
    assert third.partition == "5000"


def _reference_spans(records: list[StreamRecord]) -> dict[PartitionKey, tuple[int, int]]:
    spans: dict[PartitionKey, tuple[int, int]] = {}
    for r in records:
        first, last = spans.get(r.tp, (r.offset, r.offset))
        spans[r.tp] = (min(first, r.offset), max(last, r.offset))
    return spans


@pytest.mark.parametrize("seed", range(25))
def test_batch_spans_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    records = [
        StreamRecord(rng.choice(["a", "b"]), rng.choice("0123"), rng.randrange(1000), b"")
        for _ in range(rng.randrange(1, 60))
    ]
    if seed % 2:
        records.sort(key=lambda r: (r.stream, r.partition, r.offset))
    spans = Batch(tuple(records)).spans()
    assert spans == _reference_spans(records)
    assert Batch(tuple(records)).last_offsets() == {tp: b for tp, (_, b) in spans.items()}
    assert Batch(tuple(records)).first_offsets() == {tp: a for tp, (a, _) in spans.items()}


def test_batch_spans_of_a_partition_seen_in_several_runs() -> None:
    records = [StreamRecord("t", p, o, b"") for p, o in [("0", 5), ("1", 9), ("0", 3), ("0", 8)]]
    assert Batch(tuple(records)).spans() == {
        PartitionKey("t", "0"): (3, 8),
        PartitionKey("t", "1"): (9, 9),
    }
    assert Batch(()).spans() == {}


def test_passthrough_decoder_writes_every_record_and_checkpoints() -> None:
    sink = NoopSink()
    processor = BatchProcessor(sink, MemoryDeadLetters(), decoder=passthrough_decoder("x", 3))
    records = tuple(StreamRecord("t", "0", i, b"raw") for i in range(3))
    decoded = processor.decoder(records[0])
    assert type(decoded) is DecodedRecord
    assert (decoded.event_type, decoded.schema_version, dict(decoded.event)) == ("x", 3, {})
    checkpoints: list[dict[PartitionKey, int]] = []
    outcome = processor.process(Batch(records), lambda p: checkpoints.append(dict(p)))
    assert (outcome.records, outcome.written) == (3, 3)
    assert checkpoints == [{PartitionKey("t", "0"): 2}]
