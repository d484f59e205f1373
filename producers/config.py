"""Publisher settings (``SLUICE_PUBLISH_*``, ``SLUICE_KAFKA_*``, ``SLUICE_KINESIS_*``).

Connection settings (bootstrap servers, AWS endpoint) and stream names live in the
shared :mod:`sluice.config` classes; this class holds what governs publishing itself:
how long a record may take to be acknowledged, and the producer tuning per backend.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from sluice.config import SluiceSettings

KafkaCompression = Literal["none", "gzip", "snappy", "lz4", "zstd"]


class PublisherSettings(SluiceSettings):
    """How records are published, for both backends.

    ``publish_delivery_timeout_s`` bounds every publish: a record not acknowledged
    within it comes back failed (retryable), never hangs. The Kafka producer's
    ``message.timeout.ms`` and the Kinesis retry loop both derive from it.
    """

    publish_delivery_timeout_s: float = Field(
        default=5.0, gt=0, description="Upper bound for one record to be acknowledged."
    )

    # Kafka (acks=all is fixed; not a setting).
    kafka_enable_idempotence: bool = Field(
        default=True,
        description="Idempotent producer (MSK: on). Off: one request in flight per connection.",
    )
    kafka_compression: KafkaCompression = Field(default="zstd", description="compression.type")
    kafka_linger_ms: int = Field(default=5, ge=0, description="linger.ms")
    kafka_batch_bytes: int = Field(default=1_000_000, gt=0, description="batch.size")
    kafka_queue_max_messages: int = Field(
        default=100_000, gt=0, description="queue.buffering.max.messages"
    )
    kafka_poll_interval_s: float = Field(
        default=0.05, gt=0, description="How often the poll thread serves delivery reports."
    )

    # Kinesis.
    kinesis_aggregation: bool = Field(
        default=True, description="KPL aggregation of user records into Kinesis records."
    )
    kinesis_retry_budget_s: float = Field(
        default=4.0, gt=0, description="Time within which failed records are retried."
    )
    kinesis_max_attempts: int = Field(
        default=6, ge=1, description="PutRecords attempts per record."
    )
    kinesis_backoff_base_s: float = Field(default=0.1, gt=0, description="First backoff cap.")
    kinesis_backoff_max_s: float = Field(default=1.0, gt=0, description="Largest backoff cap.")
    kinesis_shard_map_ttl_s: float = Field(
        default=60.0, gt=0, description="How long the shard map used for aggregation is cached."
    )

    def kafka_producer_config(self) -> dict[str, Any]:
        """librdkafka producer properties (without the connection part)."""
        conf: dict[str, Any] = {
            "acks": "all",
            "enable.idempotence": self.kafka_enable_idempotence,
            "compression.type": self.kafka_compression,
            "linger.ms": self.kafka_linger_ms,
            "batch.size": self.kafka_batch_bytes,
            "queue.buffering.max.messages": self.kafka_queue_max_messages,
            "message.timeout.ms": int(self.publish_delivery_timeout_s * 1000),
            # The same partition for the same key as the Java client (murmur2).
            "partitioner": "murmur2_random",
        }
        if not self.kafka_enable_idempotence:
            # Without idempotence, ordering per key holds only with one request in flight.
            conf["max.in.flight.requests.per.connection"] = 1
        return conf


class SimulateSettings(SluiceSettings):
    """What ``sluice simulate`` reads from the environment.

    ``SLUICE_API_KEY``: the key sent as ``X-API-Key`` to the HTTP API (``sluice stack
    up`` writes a local one).
    """

    api_key: SecretStr | None = Field(default=None, description="API key for --url targets.")
