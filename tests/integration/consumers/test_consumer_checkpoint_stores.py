"""The checkpoint-store contract against every implementation: memory, Kafka, DynamoDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.config import KafkaSettings
from sluice.streams.dynamodb import DynamoCheckpointStore, DynamoLeaseTable
from sluice.streams.kafka_admin import KafkaCheckpointStore, KafkaGroupAdmin
from sluice.streams.memory import MemoryCheckpointStore
from sluice.streams.models import PartitionKey
from tests.unit.consumers.checkpoint_contract import CheckpointStoreContract

pytestmark = pytest.mark.integration


class TestCheckpointStores(CheckpointStoreContract):
    @pytest.fixture(params=["memory", "kafka", "dynamodb"])
    def store_factory(
        self,
        request: pytest.FixtureRequest,
        stack: Any,
        topic_factory: Any,
        dynamodb_table_factory: Any,
    ) -> Iterator[Any]:
        admins: list[KafkaGroupAdmin] = []
        if request.param == "memory":
            shared = MemoryCheckpointStore()
            parts = [PartitionKey("t", "0"), PartitionKey("t", "1")]
            yield lambda: (shared, parts)
        elif request.param == "kafka":
            topic = topic_factory(partitions=2)
            group = f"g-{uuid.uuid4().hex[:10]}"
            parts = [PartitionKey(topic, "0"), PartitionKey(topic, "1")]

            def make_kafka() -> tuple[Any, list[PartitionKey]]:
                admin = KafkaGroupAdmin(
                    group, kafka=KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap)
                )
                admins.append(admin)
                return KafkaCheckpointStore(admin), parts

            yield make_kafka
        else:
            name = dynamodb_table_factory()
            client = stack.aws_client("dynamodb")
            parts = [
                PartitionKey("s", "shardId-000000000000"),
                PartitionKey("s", "shardId-000000000001"),
            ]
            yield lambda: (DynamoCheckpointStore(DynamoLeaseTable(name, client=client)), parts)
            client.delete_table(TableName=name)
        for admin in admins:
            admin.close()
