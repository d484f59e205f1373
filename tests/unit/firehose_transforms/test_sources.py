"""The Kafka and Kinesis sources with fake clients: positions, end-of-stream, commits,
throttling, expired iterators, broker errors. (Real services: tests/integration.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from firehose_transforms.exceptions import DeliveryConfigurationError, DeliveryError
from firehose_transforms.kafka import KafkaSource
from firehose_transforms.kinesis import KinesisSource
from firehose_transforms.memory import MemoryCheckpointStore


def _client_error(code: str, op: str = "GetRecords") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, op)


class FakeKinesis:
    """Two shards; ``script`` maps shard -> list of GetRecords answers (or errors)."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.iterator_calls: list[dict[str, Any]] = []

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": [{"ShardId": s} for s in self.script]}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterator_calls.append(kwargs)
        return {"ShardIterator": f"it-{kwargs['ShardId']}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard = ShardIterator.removeprefix("it-")
        answers = self.script[shard]
        answer = answers.pop(0) if answers else {"Records": [], "MillisBehindLatest": 0}
        if isinstance(answer, Exception):
            raise answer
        answer.setdefault("NextShardIterator", ShardIterator)
        return answer


def _rec(seq: int, data: bytes = b"x") -> dict[str, Any]:
    return {
        "SequenceNumber": str(seq),
        "Data": data,
        "PartitionKey": "k",
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }


class TestKinesisSource:
    def test_reads_every_shard_and_reports_drained_at_the_tip(self) -> None:
        fake = FakeKinesis(
            {
                "shardId-0": [{"Records": [_rec(1), _rec(2)], "MillisBehindLatest": 5}],
                "shardId-1": [{"Records": [_rec(7)], "MillisBehindLatest": 0}],
            }
        )
        source = KinesisSource("s", MemoryCheckpointStore(), client=fake)
        records = source.poll(100, 0)
        assert [(r.partition, r.position) for r in records] == [
            ("shardId-0", "1"),
            ("shardId-0", "2"),
            ("shardId-1", "7"),
        ]
        assert records[0].arrival_ms == 1_767_225_600_000
        assert not source.drained()
        assert source.poll(100, 0) == []
        assert source.drained()

    def test_resumes_after_the_checkpoint(self) -> None:
        checkpoints = MemoryCheckpointStore()
        checkpoints.save("s", "shardId-0", "41")
        fake = FakeKinesis({"shardId-0": []})
        KinesisSource("s", checkpoints, client=fake).poll(10, 0)
        assert fake.iterator_calls == [
            {
                "StreamName": "s",
                "ShardId": "shardId-0",
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": "41",
            }
        ]

    def test_commit_saves_per_shard(self) -> None:
        checkpoints = MemoryCheckpointStore()
        source = KinesisSource("s", checkpoints, client=FakeKinesis({}))
        source.commit({"shardId-0": "5", "shardId-1": "9"})
        assert checkpoints.load("s", "shardId-1") == "9"

    def test_throttling_backs_off_and_continues(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("firehose_transforms.kinesis.time.sleep", lambda _s: None)
        fake = FakeKinesis(
            {
                "shardId-0": [
                    _client_error("ProvisionedThroughputExceededException"),
                    {"Records": [_rec(3)], "MillisBehindLatest": 0},
                ]
            }
        )
        source = KinesisSource("s", MemoryCheckpointStore(), client=fake)
        assert source.poll(10, 0) == []
        assert [r.position for r in source.poll(10, 0)] == ["3"]

    def test_expired_iterator_is_renewed_after_the_last_record(self) -> None:
        fake = FakeKinesis(
            {
                "shardId-0": [
                    {"Records": [_rec(10)], "MillisBehindLatest": 0},
                    _client_error("ExpiredIteratorException"),
                ]
            }
        )
        source = KinesisSource("s", MemoryCheckpointStore(), client=fake)
        source.poll(10, 0)
        source.poll(10, 0)
        assert fake.iterator_calls[-1]["StartingSequenceNumber"] == "10"

    def test_closed_shard_counts_as_drained(self) -> None:
        fake = FakeKinesis(
            {
                "shardId-0": [
                    {"Records": [_rec(1)], "MillisBehindLatest": 0, "NextShardIterator": None}
                ]
            }
        )
        source = KinesisSource("s", MemoryCheckpointStore(), client=fake)
        assert len(source.poll(10, 0)) == 1
        source.poll(10, 0)
        assert source.drained()

    def test_missing_stream_is_a_configuration_error(self) -> None:
        class NoStream(FakeKinesis):
            def list_shards(self, **kwargs: Any) -> dict[str, Any]:
                raise _client_error("ResourceNotFoundException", "ListShards")

        with pytest.raises(DeliveryConfigurationError):
            KinesisSource("s", MemoryCheckpointStore(), client=NoStream({})).poll(1, 0)

    def test_other_errors_are_retryable_delivery_errors(self) -> None:
        fake = FakeKinesis({"shardId-0": [_client_error("InternalFailure")]})
        with pytest.raises(DeliveryError) as info:
            KinesisSource("s", MemoryCheckpointStore(), client=fake).poll(1, 0)
        assert info.value.retryable and info.value.code == "InternalFailure"


class FakeError:
    def __init__(self, code: int, name: str = "X", retriable: bool = False) -> None:
        self._code, self._name, self._retriable = code, name, retriable

    def code(self) -> int:
        return self._code

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._name

    def fatal(self) -> bool:
        return False

    def retriable(self) -> bool:
        return self._retriable


class FakeMessage:
    def __init__(
        self, partition: int, offset: int, value: bytes | None = b"v", error: Any = None
    ) -> None:
        self._p, self._o, self._v, self._e = partition, offset, value, error

    def error(self) -> Any:
        return self._e

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes:
        return b"acc-1"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_767_225_600_000)


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches
        self.commits: list[list[Any]] = []
        self.closed = False

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append(offsets)

    def close(self) -> None:
        self.closed = True


class TestKafkaSource:
    def test_messages_become_source_records_and_eof_marks_drained(self) -> None:
        from confluent_kafka import KafkaError

        consumer = FakeConsumer(
            [
                [FakeMessage(0, 5), FakeMessage(1, 9, value=None)],
                [
                    FakeMessage(0, 0, error=FakeError(KafkaError._PARTITION_EOF)),
                    FakeMessage(1, 0, error=FakeError(KafkaError._PARTITION_EOF)),
                ],
            ]
        )
        source = KafkaSource("topic", "g", consumer=consumer)
        source._assigned_cb(
            consumer, [type("TP", (), {"partition": 0})(), type("TP", (), {"partition": 1})()]
        )
        records = source.poll(10, 0)
        assert [(r.partition, r.position, r.value, r.key) for r in records] == [
            ("p0000", "5", b"v", "acc-1"),
            ("p0001", "9", b"", "acc-1"),
        ]
        assert not source.drained()
        assert source.poll(10, 0) == []
        assert source.drained()

    def test_commit_is_synchronous_offset_plus_one(self) -> None:
        consumer = FakeConsumer([])
        source = KafkaSource("topic", "g", consumer=consumer)
        source.commit({"p0003": "41", "p0000": "7"})
        assert sorted((tp.partition, tp.offset) for tp in consumer.commits[0]) == [(0, 8), (3, 42)]

    def test_non_retriable_consumer_error_raises(self) -> None:
        consumer = FakeConsumer([[FakeMessage(0, 0, error=FakeError(-1, "UNKNOWN_TOPIC_OR_PART"))]])
        with pytest.raises(DeliveryError) as info:
            KafkaSource("topic", "g", consumer=consumer).poll(10, 0)
        assert info.value.code == "UNKNOWN_TOPIC_OR_PART"

    def test_retriable_consumer_error_is_logged_and_skipped(self) -> None:
        consumer = FakeConsumer(
            [[FakeMessage(0, 0, error=FakeError(-1, "_TRANSPORT", retriable=True))]]
        )
        assert KafkaSource("topic", "g", consumer=consumer).poll(10, 0) == []

    def test_revocation_flushes_first(self) -> None:
        consumer = FakeConsumer([])
        source = KafkaSource("topic", "g", consumer=consumer)
        calls: list[str] = []
        source.on_revoke = lambda: calls.append("flush")
        tp = type("TP", (), {"partition": 2})()
        source._assigned_cb(consumer, [tp])
        source._revoked_cb(consumer, [tp])
        assert calls == ["flush"] and not source.drained()

    def test_close_leaves_the_group(self) -> None:
        consumer = FakeConsumer([])
        source = KafkaSource("topic", "g", consumer=consumer)
        source.close()
        assert consumer.closed
