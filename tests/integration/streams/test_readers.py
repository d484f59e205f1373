"""The streams layer's Kafka and Kinesis readers against the readers' contract, on the
real local broker (Tansu) and moto (Kinesis, DynamoDB leases)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from producers.models import OutgoingRecord
from sluice.config import KafkaSettings
from sluice.streams.config import ReaderOptions
from sluice.streams.dynamodb import DynamoLeaseTable
from sluice.streams.kafka import KafkaSource
from sluice.streams.kinesis import KinesisSource
from tests.integration.firehose_transforms.helpers import publish
from tests.unit.streams.source_contract import SourceContract

pytestmark = pytest.mark.integration


def _outgoing(values: list[bytes]) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(str(uuid.uuid4()), "insurance-claim", f"pol-{uuid.uuid4().hex[:6]}", v)
        for v in values
    ]


class KafkaHarness:
    def __init__(self, stack: Any, topic: str) -> None:
        self.topic = topic
        self.options = ReaderOptions(group=f"g-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000)
        self.kafka = KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap)

    def publish(self, values: list[bytes]) -> None:
        publish("kafka", self.topic, _outgoing(values))

    def open(self) -> KafkaSource:
        return KafkaSource([self.topic], options=self.options, kafka=self.kafka)


class KinesisHarness:
    def __init__(self, stack: Any, stream: str, table: str) -> None:
        self.stream = stream
        self.stack = stack
        self.table = table
        self.options = ReaderOptions(group="g", idle_read_interval_s=0.1)

    def publish(self, values: list[bytes]) -> None:
        publish("kinesis", self.stream, _outgoing(values))

    def open(self) -> KinesisSource:
        return KinesisSource(
            self.stream,
            options=self.options,
            kinesis_client=self.stack.aws_client("kinesis"),
            leases=DynamoLeaseTable(self.table, client=self.stack.aws_client("dynamodb")),
        )


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
