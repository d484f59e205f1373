"""The publisher contract against the in-memory publisher."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import pytest

from producers.base import Publisher, publish_sync
from producers.memory import Fault, MemoryPublisher
from tests.unit.producers.contract import Harness, PublisherContract, ReadRecord, make_records


@pytest.fixture(params=["memory"])
def harness(request: pytest.FixtureRequest) -> Harness:
    counter = itertools.count()
    made: list[MemoryPublisher] = []

    def make_publisher() -> Publisher:
        made.append(MemoryPublisher())
        return made[-1]

    def read_back(stream: str, expected: int) -> list[ReadRecord]:
        return [
            ReadRecord(s.record.partition_key, s.record.value, str(s.partition))
            for publisher in made
            for s in publisher.records(stream)
        ]

    @contextlib.contextmanager
    def down() -> Iterator[Publisher]:
        publisher = MemoryPublisher()
        publisher.set_unavailable()
        yield publisher

    return Harness(
        name=request.param,
        make_publisher=make_publisher,
        new_stream=lambda: f"stream-{next(counter)}",
        read_back=read_back,
        down=down,
        down_timeout=0.5,
    )


class TestMemoryPublisher(PublisherContract):
    pass


def test_publish_sync_from_plain_code() -> None:
    publisher = MemoryPublisher()
    results = publish_sync(publisher, "dlq", make_records(3))
    assert [r.status for r in results] == ["ok"] * 3
    assert len(publisher.records("dlq")) == 3


def test_memory_fault_hooks() -> None:
    publisher = MemoryPublisher(streams=["known"])
    publisher.fail_next(1)
    publisher.fail_when(
        lambda stream, record: (
            Fault("InternalFailure") if record.partition_key == "acct-2" else None
        )
    )
    results = publish_sync(publisher, "known", make_records(4))
    assert [r.status for r in results] == ["failed", "ok", "failed", "ok"]
    assert results[0].error_code == "_MSG_TIMED_OUT"
    assert results[2].error_code == "InternalFailure"
    unknown = publish_sync(publisher, "unknown", make_records(1))
    assert (unknown[0].error_code, unknown[0].retryable) == ("UNKNOWN_TOPIC_OR_PART", False)
    publisher.clear_faults()
    publisher.set_unavailable()
    assert publish_sync(publisher, "known", make_records(1))[0].error_code == "_TRANSPORT"
    publisher.set_available()
    assert publish_sync(publisher, "known", make_records(1))[0].ok
