"""Contract tests of the delivery's boundaries, run against every implementation
(memory here; S3 and DynamoDB in tests/integration/firehose_transforms)."""

from __future__ import annotations

import time
import uuid
from typing import Protocol

import pytest

from firehose_transforms.delivery import CheckpointStore, ObjectStore, Source, last_positions
from firehose_transforms.models import SourceRecord
from sluice.errors import SluiceError


class ObjectStoreContract:
    """Subclasses provide a ``store`` fixture (an empty bucket)."""

    def test_put_then_get_returns_the_bytes(self, store: ObjectStore) -> None:
        store.put("clean/a/b.gz", b"\x1f\x8bdata", "application/x-ndjson")
        assert store.get("clean/a/b.gz") == b"\x1f\x8bdata"

    def test_put_overwrites(self, store: ObjectStore) -> None:
        store.put("k", b"one", "application/json")
        store.put("k", b"two", "application/json")
        assert store.get("k") == b"two"

    def test_missing_key_raises_key_error(self, store: ObjectStore) -> None:
        with pytest.raises(KeyError):
            store.get(f"missing-{uuid.uuid4().hex}")

    def test_list_keys_is_sorted_and_filtered_by_prefix(self, store: ObjectStore) -> None:
        for key in ["clean/b", "clean/a", "errors/x", "manifests/y"]:
            store.put(key, b"x", "application/json")
        assert store.list_keys("clean/") == ["clean/a", "clean/b"]
        assert store.list_keys("nothing/") == []


class CheckpointStoreContract:
    """Subclasses provide a ``checkpoints`` fixture (empty)."""

    def test_unknown_shard_has_no_checkpoint(self, checkpoints: CheckpointStore) -> None:
        assert checkpoints.load("s", "shardId-000000000000") is None

    def test_save_then_load(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("s", "shardId-000000000000", "4954698668313554428650745793632")
        assert checkpoints.load("s", "shardId-000000000000") == "4954698668313554428650745793632"

    def test_positions_are_per_stream_and_shard(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("s", "a", "10")
        checkpoints.save("s", "b", "20")
        checkpoints.save("t", "a", "30")
        assert (
            checkpoints.load("s", "a"),
            checkpoints.load("s", "b"),
            checkpoints.load("t", "a"),
        ) == (
            "10",
            "20",
            "30",
        )

    def test_moving_forward_and_saving_the_same_position_again_work(
        self, checkpoints: CheckpointStore
    ) -> None:
        checkpoints.save("s", "a", "99")
        checkpoints.save("s", "a", "100")
        checkpoints.save("s", "a", "100")
        assert checkpoints.load("s", "a") == "100"

    def test_going_backwards_raises(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("s", "a", "100")
        with pytest.raises(SluiceError):
            checkpoints.save("s", "a", "99")
        assert checkpoints.load("s", "a") == "100"


class SourceHarness(Protocol):
    """One stream and one reader identity (consumer group / checkpoint table)."""

    def publish(self, values: list[bytes]) -> None:
        """Put ``values`` on the stream (acknowledged on return)."""
        ...

    def open(self) -> Source:
        """A fresh reader that starts after the identity's committed positions."""
        ...


def read_until_drained(source: Source, *, timeout: float = 60.0) -> list[SourceRecord]:
    """Poll until the source reports it read everything there is."""
    deadline = time.monotonic() + timeout
    records: list[SourceRecord] = []
    while time.monotonic() < deadline:
        batch = source.poll(500, 0.5)
        records.extend(batch)
        if not batch and source.drained():
            return records
    raise AssertionError(f"source not drained within {timeout} s ({len(records)} records)")


class SourceContract:
    """Subclasses provide a ``harness`` fixture (a fresh, empty stream)."""

    def test_reads_every_record_once_in_partition_order(self, harness: SourceHarness) -> None:
        values = [f"v{i}".encode() for i in range(30)]
        harness.publish(values)
        source = harness.open()
        try:
            records = read_until_drained(source)
        finally:
            source.close()
        assert sorted(r.value for r in records) == sorted(values)
        assert len({r.record_id for r in records}) == len(records)
        by_partition: dict[str, list[int]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(int(r.position))
        assert all(p == sorted(p) for p in by_partition.values())
        assert all(r.arrival_ms > 0 for r in records)

    def test_a_new_reader_resumes_after_the_commit(self, harness: SourceHarness) -> None:
        harness.publish([f"a{i}".encode() for i in range(10)])
        first = harness.open()
        try:
            first.commit(last_positions(read_until_drained(first)))
        finally:
            first.close()
        harness.publish([f"b{i}".encode() for i in range(5)])
        second = harness.open()
        try:
            again = read_until_drained(second)
        finally:
            second.close()
        assert sorted(r.value for r in again) == sorted(f"b{i}".encode() for i in range(5))

    def test_uncommitted_records_are_read_again(self, harness: SourceHarness) -> None:
        values = [f"c{i}".encode() for i in range(8)]
        harness.publish(values)
        first = harness.open()
        try:
            assert len(read_until_drained(first)) == 8
        finally:
            first.close()
        second = harness.open()
        try:
            assert sorted(r.value for r in read_until_drained(second)) == sorted(values)
        finally:
            second.close()
