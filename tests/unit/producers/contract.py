"""The publisher contract: one test class run against every Publisher implementation.

A test module subclasses :class:`PublisherContract` and provides a parametrized
``harness`` fixture giving a :class:`Harness` per implementation (memory in the unit
tests; Kafka and Kinesis on the local stack in the integration tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from producers.base import Publisher, SyncPublisher
from producers.exceptions import PublisherClosedError
from producers.models import OutgoingRecord, PublishResult

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass(frozen=True)
class ReadRecord:
    """A record read back from the backend: key, value, where it is, in read order."""

    key: str
    value: bytes
    position: str  # partition or shard id


@dataclass
class Harness:
    """What the contract needs from an implementation.

    ``make_publisher()`` builds a fresh publisher; ``new_stream()`` a fresh topic/stream;
    ``read_back(stream, n)`` reads at least ``n`` records (per partition/shard, in the
    order stored); ``down()`` yields a publisher whose backend does not answer, with
    the delivery timeout given by ``down_timeout``.
    """

    name: str
    make_publisher: Callable[[], Publisher]
    new_stream: Callable[[], str]
    read_back: Callable[[str, int], list[ReadRecord]]
    down: Callable[[], contextlib.AbstractContextManager[Publisher]]
    down_timeout: float


def make_records(count: int, keys: int = 3, size: int = 64) -> list[OutgoingRecord]:
    """Records over ``keys`` partition keys; the value carries key and sequence."""
    records = []
    for i in range(count):
        key = f"acct-{i % keys}"
        event_id = str(uuid.uuid4())
        body = f"{key}|{i:06d}|{event_id}|".encode()
        records.append(
            OutgoingRecord(
                event_id=event_id,
                event_type="financial-transaction",
                partition_key=key,
                value=body + b"x" * max(size - len(body), 0),
                headers={"event_id": event_id, "content-type": "application/json"},
            )
        )
    return records


class PublisherContract:
    """Behaviour every publisher shares."""

    @pytest.fixture
    def publisher(self, harness: Harness) -> Iterator[Publisher]:
        publisher = harness.make_publisher()
        yield publisher
        run(publisher.close())

    def test_empty_batch_gives_no_results(self, harness: Harness, publisher: Publisher) -> None:
        assert run(publisher.publish(harness.new_stream(), [])) == []

    def test_one_ok_result_per_record_in_order(
        self, harness: Harness, publisher: Publisher
    ) -> None:
        stream = harness.new_stream()
        records = make_records(25)
        results = run(publisher.publish(stream, records))
        assert [r.event_id for r in results] == [r.event_id for r in records]
        assert all(isinstance(r, PublishResult) for r in results)
        assert {r.status for r in results} == {"ok"}, [r.error_code for r in results]
        assert all(r.stream == stream and r.position is not None for r in results)
        assert all(not r.error_code for r in results)

    def test_read_back_equals_what_was_sent_with_per_key_order(
        self, harness: Harness, publisher: Publisher
    ) -> None:
        stream = harness.new_stream()
        records = make_records(60, keys=4)
        first = run(publisher.publish(stream, records[:30]))
        second = run(publisher.publish(stream, records[30:]))
        assert all(r.ok for r in first + second)
        read = harness.read_back(stream, len(records))
        assert sorted((r.key, r.value) for r in read) == sorted(
            (r.partition_key, r.value) for r in records
        )
        # One key lives in one partition / shard, and its records keep their order.
        for key in {r.partition_key for r in records}:
            mine = [r for r in read if r.key == key]
            assert len({r.position for r in mine}) == 1
            assert [r.value for r in mine] == [r.value for r in records if r.partition_key == key]

    def test_same_key_same_position(self, harness: Harness, publisher: Publisher) -> None:
        stream = harness.new_stream()
        results = run(publisher.publish(stream, make_records(12, keys=2)))
        where = {}
        for record_index, result in enumerate(results):
            position = result.partition if result.partition is not None else result.shard_id
            where.setdefault(record_index % 2, set()).add(position)
        assert all(len(positions) == 1 for positions in where.values())

    def test_oversized_record_fails_without_blocking_the_others(
        self, harness: Harness, publisher: Publisher
    ) -> None:
        stream = harness.new_stream()
        records = make_records(3)
        big = OutgoingRecord("big-1", "financial-transaction", "acct-0", b"y" * (1024 * 1024 + 1))
        results = run(publisher.publish(stream, [records[0], big, records[1], records[2]]))
        assert [r.status for r in results] == ["ok", "failed", "ok", "ok"]
        assert results[1].event_id == "big-1"
        assert results[1].retryable is False
        assert results[1].error_code

    def test_flush_and_ready(self, harness: Harness, publisher: Publisher) -> None:
        stream = harness.new_stream()
        run(publisher.publish(stream, make_records(5)))
        assert run(publisher.flush(5.0)) == 0
        assert run(publisher.ready(5.0)) is True

    def test_publish_after_close_raises(self, harness: Harness) -> None:
        publisher = harness.make_publisher()
        stream = harness.new_stream()
        assert all(r.ok for r in run(publisher.publish(stream, make_records(2))))
        run(publisher.close())
        with pytest.raises(PublisherClosedError):
            run(publisher.publish(stream, make_records(1)))

    def test_sync_facade_publishes(self, harness: Harness) -> None:
        stream = harness.new_stream()
        facade = SyncPublisher(harness.make_publisher())
        try:
            results = facade.publish(stream, make_records(4))
        finally:
            facade.close()
        assert [r.status for r in results] == ["ok"] * 4

    def test_backend_down_gives_retryable_failures_in_bounded_time(self, harness: Harness) -> None:
        stream = harness.new_stream()
        records = make_records(10)
        with harness.down() as publisher:
            started = time.monotonic()
            results = run(publisher.publish(stream, records))
            elapsed = time.monotonic() - started
            run(publisher.close())
        assert [r.event_id for r in results] == [r.event_id for r in records]
        assert {r.status for r in results} == {"failed"}
        assert all(r.retryable for r in results), {r.error_code for r in results}
        assert all(r.error_code for r in results)
        assert elapsed < harness.down_timeout + 3.0


def deaggregate(records: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """User records ``(partition key, data)`` of Kinesis records as get_records returns them."""
    import base64

    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    out: list[tuple[str, bytes]] = []
    for record in records:
        boto_record = {"ApproximateArrivalTimestamp": None, **record}
        for user in iter_deaggregate_records([boto_record], data_format="Boto3"):
            body = user["kinesis"]
            # Sub-records of an aggregate come back base64-encoded, plain ones raw.
            data = base64.b64decode(body["data"]) if body.get("aggregated") else body["data"]
            out.append((body["partitionKey"], data))
    return out
