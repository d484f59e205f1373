"""Kafka and Kinesis publishers on the local stack (Tansu, moto server).

The contract class runs against both; backend-specific tests cover what only a real
service shows: a broker stopped mid-run, throttled PutRecords retrying only the failed
records, and events read back from the topic / stream decoding to what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from deploy.local.base import free_port
from producers.base import Publisher, build_outgoing_record
from producers.config import PublisherSettings
from producers.kafka import KafkaPublisher
from producers.kinesis import KinesisPublisher
from producers.models import OutgoingRecord
from sluice.config import AwsSettings, KafkaSettings
from tests.unit.producers.contract import (
    Harness,
    PublisherContract,
    ReadRecord,
    deaggregate,
    make_records,
    run,
)

pytestmark = pytest.mark.integration

DOWN_TIMEOUT = 2.0


# ----------------------------------------------------------------------------- helpers


def kafka_publisher(bootstrap: str, timeout: float = 5.0) -> KafkaPublisher:
    # The local stack runs Tansu without idempotence (docs/local-stack.md).
    settings = PublisherSettings(kafka_enable_idempotence=False, publish_delivery_timeout_s=timeout)
    return KafkaPublisher(settings, KafkaSettings(kafka_bootstrap_servers=bootstrap))


def read_topic(
    bootstrap: str, topic: str | Sequence[str], expected: int, timeout: float = 20.0
) -> list[Any]:
    """Messages of ``topic`` (or several) from offset 0 (assign, no group), per partition.

    Reads until ``expected`` messages arrived, then drains briefly so that extra
    messages (duplicates) show. The end offsets are not used: Tansu answers
    ListOffsets(latest) with the last batch's base offset + 1, which is short when a
    produce batch holds several records.
    """
    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        assignment = []
        for name in topics:
            metadata = consumer.list_topics(name, timeout=10)
            assignment += [TopicPartition(name, p, 0) for p in metadata.topics[name].partitions]
        consumer.assign(assignment)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        drain_until: float | None = None
        while time.monotonic() < (drain_until or deadline):
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                messages.append(message)
            if drain_until is None and len(messages) >= expected:
                drain_until = time.monotonic() + 0.5
        return messages
    finally:
        consumer.close()


def kinesis_publisher(
    stack: Any, *, aggregation: bool, timeout: float = 5.0, client: Any = None
) -> KinesisPublisher:
    settings = PublisherSettings(
        kinesis_aggregation=aggregation,
        publish_delivery_timeout_s=timeout,
        kinesis_backoff_base_s=0.02,
        kinesis_backoff_max_s=0.2,
    )
    aws = AwsSettings(
        aws_endpoint_url=stack.aws_endpoint,
        aws_region=stack.env.get("SLUICE_AWS_REGION", "us-east-1"),
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return KinesisPublisher(settings, aws, client=client)


def read_stream(client: Any, stream: str) -> list[tuple[str, str, bytes]]:
    """Every user record of ``stream``: (shard id, partition key, data), per shard order."""
    out: list[tuple[str, str, bytes]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            out.extend((shard["ShardId"], key, data) for key, data in deaggregate(page["Records"]))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


# ----------------------------------------------------------------------------- contract


@pytest.fixture(params=["kafka", "kinesis", "kinesis-plain"])
def harness(
    request: pytest.FixtureRequest,
    stack: Any,
    topic_factory: Callable[..., str],
    stream_factory: Callable[..., str],
) -> Harness:
    if request.param == "kafka":

        def read_kafka(stream: str, expected: int) -> list[ReadRecord]:
            return [
                ReadRecord(m.key().decode(), m.value(), str(m.partition()))
                for m in read_topic(stack.kafka_bootstrap, stream, expected)
            ]

        @contextlib.contextmanager
        def kafka_down() -> Iterator[Publisher]:
            # Nothing listens on this port: a broker that is gone.
            yield kafka_publisher(f"127.0.0.1:{free_port()}", timeout=DOWN_TIMEOUT)

        return Harness(
            name="kafka",
            make_publisher=lambda: kafka_publisher(stack.kafka_bootstrap),
            new_stream=lambda: topic_factory(partitions=4),
            read_back=read_kafka,
            down=kafka_down,
            down_timeout=DOWN_TIMEOUT,
        )

    aggregation = request.param == "kinesis"
    client = stack.aws_client("kinesis")

    def read_kinesis(stream: str, expected: int) -> list[ReadRecord]:
        return [ReadRecord(key, data, shard) for shard, key, data in read_stream(client, stream)]

    @contextlib.contextmanager
    def kinesis_down() -> Iterator[Publisher]:
        class Gone:
            aws_endpoint = f"http://127.0.0.1:{free_port()}"
            env: dict[str, str] = {}

        yield kinesis_publisher(Gone(), aggregation=aggregation, timeout=DOWN_TIMEOUT)

    return Harness(
        name=request.param,
        make_publisher=lambda: kinesis_publisher(stack, aggregation=aggregation),
        new_stream=lambda: stream_factory(shards=2),
        read_back=read_kinesis,
        down=kinesis_down,
        down_timeout=DOWN_TIMEOUT,
    )


class TestPublisherContract(PublisherContract):
    pass


# ----------------------------------------------------------------------------- Kafka


def test_kafka_broker_stopped_mid_run_fails_retryable_and_loses_nothing_acknowledged(
    private_kafka_broker: Callable[[], dict[str, Any]],
) -> None:
    from deploy.local import provision

    broker = private_kafka_broker()
    topic = f"t-{uuid.uuid4().hex[:10]}"
    provision.ensure_topics(KafkaSettings(kafka_bootstrap_servers=broker["bootstrap"]), [topic], 4)
    timeout = 3.0

    async def scenario() -> tuple[list[Any], list[Any], list[Any], float]:
        publisher = kafka_publisher(broker["bootstrap"], timeout=timeout)
        before = await publisher.publish(topic, make_records(40, keys=5))
        os.kill(broker["pid"], signal.SIGSTOP)  # hung broker: connections stay, no answers
        try:
            started = time.monotonic()
            during = await publisher.publish(topic, make_records(20, keys=5))
            elapsed = time.monotonic() - started
        finally:
            os.kill(broker["pid"], signal.SIGCONT)
        after = await publisher.publish(topic, make_records(10, keys=5))
        await publisher.close()
        return before, during, after, elapsed

    before, during, after, elapsed = asyncio.run(scenario())
    assert all(r.ok for r in before)
    assert {r.status for r in during} == {"failed"}
    assert all(r.retryable for r in during)
    assert {r.error_code for r in during} <= {"_MSG_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT"}
    assert elapsed < timeout + 3.0
    acknowledged = {r.event_id for r in before + after if r.ok}
    assert len(acknowledged) >= 40
    landed = {
        m.value().split(b"|")[2].decode()
        for m in read_topic(broker["bootstrap"], topic, len(acknowledged))
    }
    assert acknowledged <= landed


def test_kafka_headers_and_keys_reach_the_topic(
    stack: Any, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=4)
    records = make_records(8, keys=2)
    publisher = kafka_publisher(stack.kafka_bootstrap)
    results = run(publisher.publish(topic, records))
    run(publisher.close())
    by_id = {r.event_id: r for r in results}
    messages = read_topic(stack.kafka_bootstrap, topic, len(records))
    assert len(messages) == len(records)
    sent = {r.event_id: r for r in records}
    for message in messages:
        headers = dict(message.headers())
        event_id = headers["event_id"].decode()
        assert message.key().decode() == sent[event_id].partition_key
        assert (message.partition(), message.offset()) == (
            by_id[event_id].partition,
            by_id[event_id].offset,
        )


# ----------------------------------------------------------------------------- Kinesis


class ThrottlingKinesis:
    """The real moto client, except that the first PutRecords throttles some entries.

    Entries at ``throttled`` positions of the first call are not sent; the response
    carries ``ProvisionedThroughputExceededException`` for them (as Kinesis answers a
    partially failed PutRecords); everything else goes to moto unchanged.
    """

    def __init__(self, client: Any, throttled: set[int]) -> None:
        self._client = client
        self._throttled = throttled
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        if len(self.calls) > 1:
            return dict(self._client.put_records(StreamName=StreamName, Records=Records))
        passed = [r for i, r in enumerate(Records) if i not in self._throttled]
        sent = self._client.put_records(StreamName=StreamName, Records=passed) if passed else {}
        real = iter(sent.get("Records", []))
        answers = [
            {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "Rate exceeded for shard",
            }
            if i in self._throttled
            else next(real)
            for i in range(len(Records))
        ]
        return {"FailedRecordCount": len(self._throttled), "Records": answers}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("aggregation", [False, True])
def test_throttled_put_records_retries_only_the_failed_records(
    stack: Any, stream_factory: Callable[..., str], aggregation: bool
) -> None:
    stream = stream_factory(shards=2)
    real = stack.aws_client("kinesis")
    # Aggregated, 40 records over 8 keys make one Kinesis record per shard.
    throttled = {1} if aggregation else {1, 3}
    wrapper = ThrottlingKinesis(real, throttled=throttled)
    records = make_records(40 if aggregation else 10, keys=8)
    publisher = kinesis_publisher(stack, aggregation=aggregation, client=wrapper)
    results = run(publisher.publish(stream, records))
    assert [r.status for r in results] == ["ok"] * len(records)
    first, second = wrapper.calls[0], wrapper.calls[1]
    assert len(wrapper.calls) == 2
    assert [e["Data"] for e in second] == [first[i]["Data"] for i in sorted(throttled)]
    # Each record is in the stream exactly once.
    stored = read_stream(real, stream)
    assert sorted(data for _, _, data in stored) == sorted(r.value for r in records)
    retried_values = {v for _, v in deaggregate([{**e, "SequenceNumber": "1"} for e in second])}
    for result, record in zip(results, records, strict=True):
        assert result.attempts == (2 if record.value in retried_values else 1)


def test_throttled_until_the_budget_is_spent_reports_failed_not_dropped(
    stack: Any, stream_factory: Callable[..., str]
) -> None:
    stream = stream_factory(shards=1)

    class AlwaysThrottled(ThrottlingKinesis):
        def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
            self.calls = []  # every call behaves like the first one
            return super().put_records(StreamName, Records)

    wrapper = AlwaysThrottled(stack.aws_client("kinesis"), throttled={0})
    records = make_records(3)
    results = run(
        kinesis_publisher(stack, aggregation=False, client=wrapper).publish(stream, records)
    )
    assert [r.status for r in results] == ["failed", "ok", "ok"]
    assert results[0].retryable
    assert results[0].error_code == "ProvisionedThroughputExceededException"
    assert results[0].attempts > 1


# ----------------------------------------------------------------------------- real events


def _events(count: int) -> list[tuple[str, dict[str, Any]]]:
    from producers.simulate import EventGenerator

    generator = EventGenerator(seed=11)
    types = ["financial-transaction", "insurance-claim"] * count
    return [(et, generator.valid_event(et)) for et in types]


def _outgoing(
    events: list[tuple[str, dict[str, Any]]],
) -> list[tuple[OutgoingRecord, dict[str, Any]]]:
    from schemas import codec

    built = []
    for event_type, body in events:
        record = codec.parse_event(event_type, body)
        built.append((build_outgoing_record(event_type, record), record))
    return built


def test_events_read_back_from_kafka_decode_to_what_was_sent(
    stack: Any, topic_factory: Callable[..., str]
) -> None:
    from schemas import codec

    topic = topic_factory(partitions=4)
    built = _outgoing(_events(10))
    publisher = kafka_publisher(stack.kafka_bootstrap)
    results = run(publisher.publish(topic, [o for o, _ in built]))
    run(publisher.close())
    assert all(r.ok for r in results)
    sent = {o.event_id: record for o, record in built}
    messages = read_topic(stack.kafka_bootstrap, topic, len(built))
    assert len(messages) == len(built)
    for message in messages:
        decoded = codec.decode(message.value())
        assert decoded.record == sent[decoded.record["event_id"]]
        headers = {k: v.decode() for k, v in message.headers()}
        assert headers["event_type"] == decoded.event_type
        assert headers["content-type"] == "application/vnd.sluice.avro"


@pytest.mark.parametrize("aggregation", [True, False])
def test_events_read_back_from_kinesis_decode_to_what_was_sent(
    stack: Any, stream_factory: Callable[..., str], aggregation: bool
) -> None:
    from schemas import codec

    stream = stream_factory(shards=2)
    built = _outgoing(_events(10))
    publisher = kinesis_publisher(stack, aggregation=aggregation)
    results = run(publisher.publish(stream, [o for o, _ in built]))
    assert all(r.ok for r in results)
    sent = {o.event_id: (o.partition_key, record) for o, record in built}
    stored = read_stream(stack.aws_client("kinesis"), stream)
    assert len(stored) == len(built)
    for _shard, key, data in stored:
        decoded = codec.decode(data)
        expected_key, expected = sent[decoded.record["event_id"]]
        assert decoded.record == expected
        assert key == expected_key


def test_kinesis_endpoint_frozen_mid_run_fails_retryable_and_loses_nothing_acknowledged(
    stack: Any, stream_factory: Callable[..., str]
) -> None:
    from deploy.local.models import ServiceName

    stream = stream_factory(shards=2)
    timeout = 2.0
    publisher = kinesis_publisher(stack, aggregation=True, timeout=timeout)

    async def scenario() -> tuple[list[Any], list[Any], list[Any], float]:
        before = await publisher.publish(stream, make_records(40, keys=5))
        with stack.paused(ServiceName.AWS):
            started = time.monotonic()
            during = await publisher.publish(stream, make_records(20, keys=5))
            elapsed = time.monotonic() - started
        after = await publisher.publish(stream, make_records(10, keys=5))
        return before, during, after, elapsed

    before, during, after, elapsed = asyncio.run(scenario())
    assert all(r.ok for r in before + after)
    assert {r.status for r in during} == {"failed"}
    assert all(r.retryable for r in during), {r.error_code for r in during}
    assert elapsed < timeout + 1.0
    acknowledged = {r.event_id for r in before + after}
    landed = {
        data.split(b"|")[2].decode()
        for _, _, data in read_stream(stack.aws_client("kinesis"), stream)
    }
    assert acknowledged <= landed
