"""The Kafka reader's end-of-partition bookkeeping with a fake librdkafka consumer."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from sluice.streams.config import ReaderOptions
from sluice.streams.kafka import KafkaSource, consumer_config
from sluice.streams.models import PartitionKey
from tests.unit.consumers.test_consumer_hot_path import FakeMessage


class EndOfPartition:
    def code(self) -> int:
        return KafkaError._PARTITION_EOF

    def fatal(self) -> bool:
        return False


class FakeConsumer:
    def __init__(self) -> None:
        self.polls: list[list[Any]] = []
        self.seeks: list[Any] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return self.polls.pop(0) if self.polls else []

    def seek(self, tp: Any) -> None:
        self.seeks.append(tp)


def eof(partition: int) -> FakeMessage:
    return FakeMessage(partition, -1, error=EndOfPartition())  # type: ignore[arg-type]


def test_caught_up_once_every_assigned_partition_reported_its_end() -> None:
    fake = FakeConsumer()
    now = [0.0]
    source = KafkaSource(
        ["orders"],
        options=ReaderOptions(group="g", end_settle_s=2.0),
        consumer=fake,
        clock=lambda: now[0],
    )
    assert not source.caught_up()  # nothing assigned yet
    source._handle_assign(fake, [TopicPartition("orders", 0), TopicPartition("orders", 1)])
    fake.polls = [
        [FakeMessage(0, 5), eof(0)],
        [FakeMessage(1, 7), eof(1)],
        [FakeMessage(0, 6)],  # new data after the end
        [eof(0)],
    ]
    assert [r.offset for r in source.poll(10, 0)] == [5]
    assert not source.caught_up()  # partition 1 not at its end yet
    assert [r.offset for r in source.poll(10, 0)] == [7]
    assert not source.caught_up()  # both ended, but a record came just now
    now[0] = 2.0
    assert source.caught_up()
    source.poll(10, 0)
    now[0] = 10.0
    assert not source.caught_up()  # a record arrived after the end
    source.poll(10, 0)
    assert source.caught_up()
    source.rewind({PartitionKey("orders", "0"): 5})
    now[0] = 20.0
    assert not source.caught_up() and len(fake.seeks) == 1  # read again from 5


def test_members_ask_for_end_of_partition_events() -> None:
    from sluice.config import KafkaSettings

    conf = consumer_config(KafkaSettings(kafka_bootstrap_servers="b:9"), ReaderOptions(group="g"))
    assert conf["enable.partition.eof"] is True


def test_an_end_counts_only_when_no_record_of_its_partition_follows_in_the_poll() -> None:
    fake = FakeConsumer()
    now = [0.0]
    source = KafkaSource(
        ["orders"],
        options=ReaderOptions(group="g", end_settle_s=1.0),
        consumer=fake,
        clock=lambda: now[0],
    )
    source._handle_assign(fake, [TopicPartition("orders", 0), TopicPartition("orders", 1)])
    fake.polls = [
        [FakeMessage(0, 5), eof(0), FakeMessage(1, 7), eof(1)],
        [eof(0), FakeMessage(0, 6), FakeMessage(1, 8), eof(1)],
        [FakeMessage(1, 9), FakeMessage(0, 7), eof(0), eof(1)],
        [FakeMessage(1, 10)],
    ]
    assert [r.offset for r in source.poll(10, 0)] == [5, 7]
    now[0] = 5.0
    assert source.caught_up()  # both partitions ended after their last record
    assert [r.offset for r in source.poll(10, 0)] == [6, 8]
    now[0] = 10.0
    assert not source.caught_up()  # partition 0's end came before its record 6
    assert [r.offset for r in source.poll(10, 0)] == [9, 7]
    now[0] = 15.0
    assert source.caught_up()
    assert [r.offset for r in source.poll(10, 0)] == [10]  # a poll without events
    now[0] = 20.0
    assert not source.caught_up()  # partition 1 has a record after its end
