"""Kafka (Amazon MSK) reader: a consumer-group source, its checkpoint store, group admin,
and a whole-topic scan (reconcile, the demo).

The group consumer runs with ``enable.auto.commit=false`` and
``enable.auto.offset.store=false``: offsets are committed synchronously, explicitly,
after the sink committed (Kafka stores ``last processed + 1``). The commit carries the
commit time in its metadata, which ``sluice lag`` shows. On revoke, the records of the
revoked partitions that were polled but not yet committed are committed or rolled back
before the partitions go. Every client is created on first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sluice.config import KafkaSettings
from sluice.errors import RetryableError
from sluice.streams.config import ReaderOptions
from sluice.streams.exceptions import (
    CheckpointError,
    KafkaConfigurationError,
    KafkaConsumerError,
)
from sluice.streams.kafka_admin import KafkaGroupAdmin, commit_metadata, wrap_error
from sluice.streams.models import NO_HEADERS, PartitionKey, Positions, StreamRecord

logger = logging.getLogger(__name__)

OFFSET_INVALID = -1001


def consumer_config(
    kafka: KafkaSettings, options: ReaderOptions, *, group: str | None = None
) -> dict[str, Any]:
    """The librdkafka properties of a group member (pure)."""
    conf = kafka.client_config()
    conf.update(
        {
            "group.id": group or options.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": options.start_position,
            "session.timeout.ms": options.session_timeout_ms,
            "heartbeat.interval.ms": max(500, options.session_timeout_ms // 5),
            "max.poll.interval.ms": max(options.max_poll_interval_ms, options.session_timeout_ms),
            # end-of-partition events tell when a member is caught up (see caught_up)
            "enable.partition.eof": True,
        }
    )
    return conf


_PARTITIONS = tuple(str(i) for i in range(4096))
_NO_HEADERS = NO_HEADERS
_new_record = tuple.__new__  # builds a StreamRecord without its Python-level __new__
_STREAM_PARTITION = itemgetter(0, 1)  # a StreamRecord's (stream, partition)


def _partition_name(partition: int) -> str:
    return _PARTITIONS[partition] if 0 <= partition < 4096 else str(partition)


def _decode_headers(raw_headers: list[tuple[str, bytes | None]]) -> dict[str, str]:
    return {k: v.decode("utf-8", errors="replace") for k, v in raw_headers if v is not None}


def to_stream_record(message: Any) -> StreamRecord:
    """A confluent-kafka message as a :class:`StreamRecord`."""
    raw_headers = message.headers()
    ts_type, ts = message.timestamp()
    return StreamRecord(
        message.topic(),
        _partition_name(message.partition()),
        message.offset(),
        message.value() or b"",
        message.key(),
        _decode_headers(raw_headers) if raw_headers else _NO_HEADERS,
        ts if ts_type and ts >= 0 else None,
    )


def to_stream_records(messages: Iterable[Any]) -> list[StreamRecord]:
    """The error-free messages of a poll as :class:`StreamRecord` s, in order.

    The same as :func:`to_stream_record` per message, in one loop (it runs for every
    record read, so it avoids a function call and the named tuple's ``__new__``).
    """
    out: list[StreamRecord] = []
    append = out.append
    partitions = _PARTITIONS
    for m in messages:
        if m.error() is not None:
            continue
        partition = m.partition()
        raw_headers = m.headers()
        ts_type, ts = m.timestamp()
        append(
            _new_record(
                StreamRecord,
                (
                    m.topic(),
                    partitions[partition] if 0 <= partition < 4096 else str(partition),
                    m.offset(),
                    m.value() or b"",
                    m.key(),
                    _decode_headers(raw_headers) if raw_headers else _NO_HEADERS,
                    ts if ts_type and ts >= 0 else None,
                    None,
                    None,
                ),
            )
        )
    return out


class KafkaSource:
    """One member of a consumer group reading ``topics`` (see the module docstring).

    ``on_assigned`` gets the committed checkpoints of newly assigned partitions;
    ``on_revoked`` is called before partitions go (inside ``poll``).
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        options: ReaderOptions,
        kafka: KafkaSettings | None = None,
        consumer: Any = None,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = list(topics)
        self.options = options
        self.kafka = kafka or KafkaSettings()
        self._consumer = consumer
        self._factory = consumer_factory
        self.on_assigned: Callable[[Mapping[PartitionKey, int | None]], None] | None = None
        self.on_revoked: Callable[[list[PartitionKey]], None] | None = None
        self._assigned: set[PartitionKey] = set()
        self._at_end: set[tuple[str, str]] = set()
        self._clock = clock
        self._last_news = clock()
        self._closed = False

    # -- lazily created group consumer
    @property
    def consumer(self) -> Any:
        if self._consumer is None:
            conf = consumer_config(self.kafka, self.options)
            if self._factory is not None:
                self._consumer = self._factory(conf)
            else:
                from confluent_kafka import Consumer

                self._consumer = Consumer(conf)
            self._consumer.subscribe(
                self.topics,
                on_assign=self._handle_assign,
                on_revoke=self._handle_revoke,
                on_lost=self._handle_revoke,
            )
        return self._consumer

    @property
    def assigned(self) -> set[PartitionKey]:
        return set(self._assigned)

    def assignment(self) -> frozenset[PartitionKey]:
        return frozenset(self._assigned)

    def waiting_reason(self) -> str:
        """Group, topics and the group's state as the broker reports it."""
        state = "unknown"
        try:
            membership = KafkaGroupAdmin(self.options.group, kafka=self.kafka).describe()
            state = f"{membership.state}, {membership.members} member(s)"
        except RetryableError as exc:
            state = f"unknown ({exc.message})"
        return (
            f"Kafka group {self.options.group} on topic(s) {', '.join(self.topics)}: "
            f"no partition assigned (group state: {state})"
        )

    def _handle_assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [PartitionKey(p.topic, str(p.partition)) for p in partitions]
        self._assigned.update(keys)
        self._last_news = self._clock()
        if self.on_assigned is None or not partitions:
            return
        committed: dict[PartitionKey, int | None] = {}
        try:
            for tp in consumer.committed(partitions, timeout=10):
                key = PartitionKey(tp.topic, str(tp.partition))
                committed[key] = tp.offset - 1 if tp.offset >= 0 else None
        except Exception as exc:  # noqa: BLE001 - the tracker just starts empty
            logger.warning("could not read committed offsets on assign: %s", exc)
        self.on_assigned(committed)

    def _handle_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [PartitionKey(p.topic, str(p.partition)) for p in partitions]
        logger.info("partitions revoked: %s", ", ".join(map(str, keys)))
        if self.on_revoked is not None:
            self.on_revoked(keys)
        self._assigned.difference_update(keys)
        self._at_end.difference_update((k.stream, k.partition) for k in keys)

    # -- Source
    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            messages = self.consumer.consume(num_messages=max(1, max_records), timeout=timeout_s)
        except KafkaException as exc:
            raise wrap_error(exc, "consume failed") from exc
        records = to_stream_records(messages)
        at_end = self._at_end  # (stream, partition) pairs
        if records:
            self._last_news = self._clock()
            if at_end:
                # A partition with a record is no longer at its end: one C-level pass per
                # poll (this runs for every record read), not a discard per record.
                at_end.difference_update(map(_STREAM_PARTITION, records))
        if len(records) == len(messages):
            return records
        # An end counts only when no record of its partition follows it in the poll;
        # ``before`` counts the records ahead of the message at hand.
        before = 0
        for message in messages:
            error = message.error()
            if error is None:
                before += 1
                continue
            if error.code() == KafkaError._PARTITION_EOF:
                key = (message.topic(), _partition_name(message.partition()))
                if key not in set(map(_STREAM_PARTITION, records[before:])):
                    at_end.add(key)
                continue
            if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaConfigurationError(f"consume failed: {error.str()}", code=error.name())
            logger.warning("consume: %s", error.str())
        return records

    def checkpoint(self, positions: Positions) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if not positions:
            return
        metadata = commit_metadata(int(time.time() * 1000))
        offsets = [
            TopicPartition(tp.stream, int(tp.partition), last + 1, metadata)
            for tp, last in sorted(positions.items())
        ]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise wrap_error(exc, "offset commit failed", CheckpointError) from exc

    def rewind(self, positions: Positions) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        for tp, first in positions.items():
            if tp not in self._assigned:
                continue
            self._at_end.discard((tp.stream, tp.partition))
            self._last_news = self._clock()
            try:
                self.consumer.seek(TopicPartition(tp.stream, int(tp.partition), first))
            except KafkaException as exc:
                # A partition not fetched yet starts from the committed offset anyway.
                logger.info("seek %s to %s: %s", tp, first, exc)

    def caught_up(self) -> bool:
        """Every assigned partition reported its end (librdkafka's end-of-partition
        event) since its last record or rewind, and nothing arrived for
        ``options.end_settle_s`` since (an end reported from a lagging high watermark
        is not taken at its word)."""
        at_end = self._at_end
        if not self._assigned or any((k.stream, k.partition) not in at_end for k in self._assigned):
            return False
        return self._clock() - self._last_news >= self.options.end_settle_s

    def close(self) -> None:
        if self._consumer is not None and not self._closed:
            self._closed = True
            self._consumer.close()


def scan_topics(
    topics: Sequence[str],
    *,
    kafka: KafkaSettings | None = None,
    group: str = "sluice-scan",
    idle_s: float = 10.0,
    settle_s: float = 1.5,
) -> Generator[list[StreamRecord], None, None]:
    """Every record of ``topics`` from the beginning, in polled batches (no commits).

    The scan ends once every partition reached the end offset the broker reported and
    nothing arrived for ``settle_s`` seconds (some brokers report stale end offsets, so
    they are a lower bound, not the stop condition alone), or after ``idle_s`` seconds
    without a record. Closing the generator early closes the consumer.

    Raises:
        KafkaConsumerError: the broker could not be read.
    """
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    conf = (kafka or KafkaSettings()).client_config()
    conf.update({"group.id": group, "enable.auto.commit": False, "enable.partition.eof": False})
    consumer = Consumer(conf)
    try:
        remaining: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            for p in meta.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > 0:
                    remaining[(topic, p)] = high
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        if not assignment:
            return
        consumer.assign(assignment)
        idle_since = time.monotonic()
        while True:
            idle = time.monotonic() - idle_since
            if idle >= idle_s or (not remaining and idle >= settle_s):
                return
            messages = consumer.consume(num_messages=1000, timeout=0.2)
            for message in messages:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal():
                        raise KafkaConsumerError(f"scan failed: {error.str()}", code=error.name())
                    logger.warning("scan: %s", error.str())
            records = to_stream_records(messages)
            if not records:
                continue
            idle_since = time.monotonic()
            for record in records:
                key = (record.stream, int(record.partition))
                if key in remaining and record.offset + 1 >= remaining[key]:
                    del remaining[key]
            yield records
    except KafkaException as exc:
        raise wrap_error(exc, "reading the topics failed") from exc
    finally:
        consumer.close()
