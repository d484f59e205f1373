"""The delivery's boundaries against the real local services (moto S3 and DynamoDB)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from firehose_transforms.exceptions import DeliveryConfigurationError
from firehose_transforms.kafka import KafkaSource
from firehose_transforms.kinesis import DynamoDBCheckpointStore, KinesisSource
from firehose_transforms.s3 import S3ObjectStore
from producers.models import OutgoingRecord
from sluice.config import KafkaSettings
from tests.integration.firehose_transforms.helpers import publish
from tests.unit.firehose_transforms.contract import (
    CheckpointStoreContract,
    ObjectStoreContract,
    SourceContract,
)

pytestmark = pytest.mark.integration


class TestS3ObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, stack: Any, bucket_factory: Callable[..., str]) -> S3ObjectStore:
        return S3ObjectStore(bucket_factory(), client=stack.aws_client("s3"))


class TestDynamoDBCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(
        self, stack: Any, dynamodb_table_factory: Callable[..., str]
    ) -> DynamoDBCheckpointStore:
        return DynamoDBCheckpointStore(
            dynamodb_table_factory(), client=stack.aws_client("dynamodb")
        )

    def test_table_is_created_on_first_use(
        self, stack: Any, dynamodb_table_factory: Callable[..., str]
    ) -> None:
        table = dynamodb_table_factory()
        client = stack.aws_client("dynamodb")
        DynamoDBCheckpointStore(table, client=client).save("s", "shardId-000000000000", "5")
        assert client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
        # a second store on the same table sees the checkpoint
        assert (
            DynamoDBCheckpointStore(table, client=client).load("s", "shardId-000000000000") == "5"
        )


def test_missing_bucket_is_a_configuration_error(stack: Any) -> None:
    store = S3ObjectStore("no-such-bucket-firehose", client=stack.aws_client("s3"))
    with pytest.raises(DeliveryConfigurationError) as info:
        store.put("k", b"x", "application/json")
    assert info.value.code == "NoSuchBucket"


def _outgoing(values: list[bytes]) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(str(uuid.uuid4()), "insurance-claim", f"pol-{uuid.uuid4().hex[:6]}", v)
        for v in values
    ]


class KafkaHarness:
    def __init__(self, stack: Any, topic: str) -> None:
        self.topic = topic
        self.group = f"g-{uuid.uuid4().hex[:8]}"
        self.kafka = KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap)

    def publish(self, values: list[bytes]) -> None:
        publish("kafka", self.topic, _outgoing(values))

    def open(self) -> KafkaSource:
        return KafkaSource(self.topic, self.group, kafka=self.kafka, session_timeout_ms=6000)


class KinesisHarness:
    def __init__(self, stack: Any, stream: str, table: str) -> None:
        self.stream = stream
        self.client = stack.aws_client("kinesis")
        self.checkpoints = DynamoDBCheckpointStore(table, client=stack.aws_client("dynamodb"))

    def publish(self, values: list[bytes]) -> None:
        publish("kinesis", self.stream, _outgoing(values))

    def open(self) -> KinesisSource:
        return KinesisSource(self.stream, self.checkpoints, client=self.client)


class TestKafkaSource(SourceContract):
    @pytest.fixture
    def harness(
        self, stack: Any, settings_env: dict[str, str], topic_factory: Callable[..., str]
    ) -> KafkaHarness:
        return KafkaHarness(stack, topic_factory(partitions=3))


class TestKinesisSource(SourceContract):
    @pytest.fixture
    def harness(
        self,
        stack: Any,
        settings_env: dict[str, str],
        stream_factory: Callable[..., str],
        dynamodb_table_factory: Callable[..., str],
    ) -> KinesisHarness:
        return KinesisHarness(stack, stream_factory(shards=2), dynamodb_table_factory())
