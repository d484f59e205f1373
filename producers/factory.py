"""Choose and build the publisher the settings ask for (``SLUICE_STREAM_BACKEND``)."""

from __future__ import annotations

from typing import Any

from producers.base import Publisher
from producers.config import PublisherSettings
from sluice.config import AwsSettings, KafkaSettings, StreamBackend, StreamSettings
from sluice.errors import ConfigurationError

MEMORY_BACKEND = "memory"


def create_publisher(
    settings: PublisherSettings | None = None,
    *,
    backend: StreamBackend | str | None = None,
    stream_settings: StreamSettings | None = None,
    kafka_settings: KafkaSettings | None = None,
    aws_settings: AwsSettings | None = None,
    producer: Any = None,
    kinesis_client: Any = None,
) -> Publisher:
    """The publisher for ``backend`` (default: ``SLUICE_STREAM_BACKEND``).

    No connection is opened here: the Kafka producer and the Kinesis client are created
    on first publish, unless passed in (``producer=`` / ``kinesis_client=``).

    Args:
        settings: publisher tuning; read from the environment when omitted.
        backend: ``kafka``, ``kinesis`` or ``memory``.
        stream_settings: where the backend comes from when ``backend`` is omitted.
        kafka_settings: Kafka connection (Kafka backend).
        aws_settings: AWS endpoint and credentials (Kinesis backend).
        producer: a ready confluent-kafka ``Producer`` to use.
        kinesis_client: a ready boto3 Kinesis client to use.

    Raises:
        ConfigurationError: the backend name is unknown.
    """
    settings = settings or PublisherSettings()
    chosen = str(backend) if backend is not None else None
    if chosen is None:
        chosen = str((stream_settings or StreamSettings()).stream_backend)
    if chosen == StreamBackend.KAFKA.value:
        from producers.kafka import KafkaPublisher

        return KafkaPublisher(settings, kafka_settings, producer=producer)
    if chosen == StreamBackend.KINESIS.value:
        from producers.kinesis import KinesisPublisher

        return KinesisPublisher(settings, aws_settings, client=kinesis_client)
    if chosen == MEMORY_BACKEND:
        from producers.memory import MemoryPublisher

        return MemoryPublisher()
    raise ConfigurationError(
        f"unknown stream backend {chosen!r}; SLUICE_STREAM_BACKEND is kafka or kinesis",
        code="unknown_backend",
    )
