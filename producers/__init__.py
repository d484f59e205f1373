"""Publishing validated events to Kafka (MSK) or Kinesis.

One :class:`~producers.base.Publisher` protocol with Kafka, Kinesis and in-memory
implementations (chosen by :func:`~producers.factory.create_publisher`), and the load
generator behind ``sluice simulate`` (:mod:`producers.simulate`).
"""

from __future__ import annotations

from producers.base import (
    Publisher,
    SyncPublisher,
    build_outgoing_record,
    publish_sync,
)
from producers.config import PublisherSettings
from producers.factory import create_publisher
from producers.models import (
    AVRO_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    OutgoingRecord,
    PublishResult,
)

__all__ = [
    "AVRO_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "OutgoingRecord",
    "PublishResult",
    "Publisher",
    "PublisherSettings",
    "SyncPublisher",
    "build_outgoing_record",
    "create_publisher",
    "publish_sync",
]
