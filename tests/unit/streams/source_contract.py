"""The contract of every stream reader (:class:`sluice.streams.base.Source`), run
against the memory source here and the Kafka and Kinesis readers in
tests/integration/streams."""

from __future__ import annotations

import time
from typing import Protocol

from sluice.streams.base import Source
from sluice.streams.models import PartitionKey, StreamRecord


class SourceHarness(Protocol):
    """One stream and one reader identity (consumer group / lease table)."""

    def publish(self, values: list[bytes]) -> None:
        """Put ``values`` on the stream (acknowledged on return)."""
        ...

    def open(self) -> Source:
        """A fresh reader that starts after the identity's checkpoints."""
        ...


def read_until_caught_up(source: Source, *, timeout: float = 60.0) -> list[StreamRecord]:
    """Poll until the reader says every partition it reads is at its end."""
    deadline = time.monotonic() + timeout
    records: list[StreamRecord] = []
    while time.monotonic() < deadline:
        batch = source.poll(500, 0.5)
        records.extend(batch)
        if not batch and source.caught_up():
            return records
    raise AssertionError(f"reader not caught up within {timeout} s ({len(records)} records)")


def last_offsets(records: list[StreamRecord]) -> dict[PartitionKey, int]:
    out: dict[PartitionKey, int] = {}
    for record in records:
        out[record.tp] = max(out.get(record.tp, record.offset), record.offset)
    return out


class SourceContract:
    """Subclasses provide a ``harness`` fixture (a fresh, empty stream)."""

    def test_reads_every_record_once_in_partition_order(self, harness: SourceHarness) -> None:
        values = [f"v{i}".encode() for i in range(30)]
        harness.publish(values)
        source = harness.open()
        try:
            records = read_until_caught_up(source)
            assert source.assignment() == {r.tp for r in records} | source.assignment()
        finally:
            source.close()
        assert sorted(r.value for r in records) == sorted(values)
        keys = {(r.tp, r.offset, r.sub_sequence) for r in records}
        assert len(keys) == len(records)
        by_partition: dict[PartitionKey, list[tuple[int, int]]] = {}
        for r in records:
            by_partition.setdefault(r.tp, []).append((r.offset, r.sub_sequence or 0))
        assert all(p == sorted(p) for p in by_partition.values())
        assert all((r.timestamp_ms or 0) > 0 for r in records)

    def test_a_new_reader_resumes_after_the_checkpoint(self, harness: SourceHarness) -> None:
        harness.publish([f"a{i}".encode() for i in range(10)])
        first = harness.open()
        try:
            first.checkpoint(last_offsets(read_until_caught_up(first)))
        finally:
            first.close()
        harness.publish([f"b{i}".encode() for i in range(5)])
        second = harness.open()
        try:
            again = read_until_caught_up(second)
        finally:
            second.close()
        assert sorted(r.value for r in again) == sorted(f"b{i}".encode() for i in range(5))

    def test_records_not_checkpointed_are_read_again(self, harness: SourceHarness) -> None:
        values = [f"c{i}".encode() for i in range(8)]
        harness.publish(values)
        first = harness.open()
        try:
            assert len(read_until_caught_up(first)) == 8
        finally:
            first.close()
        second = harness.open()
        try:
            assert sorted(r.value for r in read_until_caught_up(second)) == sorted(values)
        finally:
            second.close()

    def test_rewind_reads_from_the_given_offsets_again(self, harness: SourceHarness) -> None:
        values = [f"d{i}".encode() for i in range(6)]
        harness.publish(values)
        source = harness.open()
        try:
            records = read_until_caught_up(source)
            firsts: dict[PartitionKey, int] = {}
            for r in records:
                firsts[r.tp] = min(firsts.get(r.tp, r.offset), r.offset)
            source.rewind(firsts)
            again = read_until_caught_up(source)
        finally:
            source.close()
        assert sorted(r.value for r in again) == sorted(values)
