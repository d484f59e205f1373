"""Errors of the streams layer; every one is a Sluice error of a known kind."""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import FatalError, RetryableError


class CheckpointError(RetryableError):
    """The checkpoint store could not be read or written right now."""

    default_code: ClassVar[str] = "checkpoint_failed"


class LeaseLostError(RetryableError):
    """A conditional lease write failed: another worker owns the shard now."""

    default_code: ClassVar[str] = "lease_lost"


class LeaseTableError(RetryableError):
    """The DynamoDB lease table could not be read or written."""

    default_code: ClassVar[str] = "lease_table_failed"


class KafkaConsumerError(RetryableError):
    """librdkafka reported an error while consuming."""

    default_code: ClassVar[str] = "kafka_error"


class KafkaConfigurationError(FatalError):
    """librdkafka refused the configuration or a topic does not exist."""

    default_code: ClassVar[str] = "kafka_configuration"


class KinesisReadError(RetryableError):
    """Kinesis could not be read right now (throttling, an expired iterator, a lost connection)."""

    default_code: ClassVar[str] = "kinesis_read_failed"


class StreamNotFoundError(FatalError):
    """The Kinesis stream or Kafka topic does not exist."""

    default_code: ClassVar[str] = "stream_not_found"


class NoAssignmentError(FatalError):
    """A reader got no partition or shard within its bounded wait (group stuck or full)."""

    default_code: ClassVar[str] = "no_assignment"
