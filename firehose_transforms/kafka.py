"""The Kafka (MSK) source: a consumer group with manual commits.

The consumer is created on first poll. Offsets are committed synchronously, only when
the delivery calls :meth:`KafkaSource.commit` after its S3 writes. When the group takes
partitions away, the ``on_revoke`` hook (set by the delivery) flushes the buffer first,
so no record of a revoked partition is delivered by two members' commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from firehose_transforms.exceptions import DeliveryError
from firehose_transforms.models import SourceRecord
from sluice.config import KafkaSettings
from sluice.zone import kafka_partition_label

logger = logging.getLogger(__name__)


class KafkaSource:
    """Reads one topic in consumer group ``group_id``.

    Args:
        topic: the topic.
        group_id: the consumer group (fresh per test; stable in operation).
        kafka: connection settings.
        consumer: an already built consumer (tests); created lazily otherwise.
        session_timeout_ms: group session timeout (short in tests; see docs/local-stack.md).
        max_poll_interval_ms: longest pause between polls before the group evicts us.
    """

    kind = "kafka"

    def __init__(
        self,
        topic: str,
        group_id: str,
        *,
        kafka: KafkaSettings | None = None,
        consumer: Any = None,
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.name = topic
        self.group_id = group_id
        self._kafka = kafka
        self._consumer = consumer
        self._session_timeout_ms = session_timeout_ms
        self._max_poll_interval_ms = max(max_poll_interval_ms, session_timeout_ms)
        self._assigned: set[int] = set()
        self._eof: set[int] = set()
        self.on_revoke: Callable[[], None] | None = None

    def _ensure(self) -> Any:
        if self._consumer is None:
            from confluent_kafka import Consumer

            conf = (self._kafka or KafkaSettings()).client_config()
            conf.update(
                {
                    "group.id": self.group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": True,
                    "session.timeout.ms": self._session_timeout_ms,
                    "heartbeat.interval.ms": max(1000, self._session_timeout_ms // 5),
                    "max.poll.interval.ms": self._max_poll_interval_ms,
                }
            )
            self._consumer = Consumer(conf)
            self._consumer.subscribe(
                [self.name], on_assign=self._assigned_cb, on_revoke=self._revoked_cb
            )
        return self._consumer

    def _assigned_cb(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned |= {p.partition for p in partitions}
        logger.info("assigned partitions %s of %s", sorted(self._assigned), self.name)

    def _revoked_cb(self, consumer: Any, partitions: list[Any]) -> None:
        if self.on_revoke is not None:
            self.on_revoke()
        revoked = {p.partition for p in partitions}
        self._assigned -= revoked
        self._eof -= revoked

    def poll(self, max_records: int, timeout: float) -> list[SourceRecord]:
        """Up to ``max_records`` messages (waits at most ``timeout`` seconds)."""
        from confluent_kafka import KafkaError, KafkaException

        consumer = self._ensure()
        try:
            messages = consumer.consume(num_messages=max_records, timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0]
            raise DeliveryError(f"consuming {self.name}: {err.str()}", code=err.name()) from exc
        records: list[SourceRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof.add(msg.partition())
                    continue
                if err.fatal() or not err.retriable():
                    raise DeliveryError(f"consuming {self.name}: {err.str()}", code=err.name())
                logger.warning("consumer error on %s: %s", self.name, err.str())
                continue
            self._eof.discard(msg.partition())
            _type, ts = msg.timestamp()
            key = msg.key()
            records.append(
                SourceRecord(
                    partition=kafka_partition_label(msg.partition()),
                    position=str(msg.offset()),
                    arrival_ms=int(ts) if ts and ts > 0 else 0,
                    value=msg.value() or b"",
                    key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
                )
            )
        return records

    def drained(self) -> bool:
        """Every assigned partition reported end-of-partition since its last message."""
        return bool(self._assigned) and self._assigned <= self._eof

    def commit(self, positions: Mapping[str, str]) -> None:
        """Commit ``offset + 1`` of each partition's last delivered record (synchronous)."""
        from confluent_kafka import KafkaException, TopicPartition

        if not positions:
            return
        offsets = [
            TopicPartition(self.name, int(label.lstrip("p")), int(position) + 1)
            for label, position in positions.items()
        ]
        try:
            self._ensure().commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            raise DeliveryError(f"committing {self.name}: {err.str()}", code=err.name()) from exc

    def close(self) -> None:
        """Leave the group (so the next member does not wait for a session timeout)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
