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

import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.config import KafkaSettings
from sluice.errors import RetryableError
from sluice.streams.config import ReaderOptions
from sluice.streams.exceptions import (
    CheckpointError,
    KafkaConfigurationError,
    KafkaConsumerError,
)
from sluice.streams.models import NO_HEADERS, PartitionKey, Positions, StreamRecord

logger = logging.getLogger(__name__)

OFFSET_INVALID = -1001
METADATA_KEY = "committed_at_ms"


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
            "enable.partition.eof": False,
        }
    )
    return conf


def commit_metadata(now_ms: int) -> str:
    """The metadata stored with a committed offset (the commit time)."""
    return json.dumps({METADATA_KEY: now_ms}, separators=(",", ":"))


def parse_commit_metadata(metadata: str | None) -> float | None:
    """The commit time (epoch seconds) from a committed offset's metadata, if any."""
    if not metadata:
        return None
    try:
        value = json.loads(metadata).get(METADATA_KEY)
    except (ValueError, AttributeError):
        return None
    return None if value is None else float(value) / 1000.0


_PARTITIONS = tuple(str(i) for i in range(4096))
_NO_HEADERS = NO_HEADERS
_new_record = tuple.__new__  # builds a StreamRecord without its Python-level __new__


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


def _wrap(exc: Exception, what: str, kind: type[RetryableError] = KafkaConsumerError) -> Exception:
    code = None
    if exc.args and hasattr(exc.args[0], "name"):
        code = str(exc.args[0].name())
    return kind(f"{what}: {exc}", code=code)


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
    ) -> None:
        self.topics = list(topics)
        self.options = options
        self.kafka = kafka or KafkaSettings()
        self._consumer = consumer
        self._factory = consumer_factory
        self.on_assigned: Callable[[Mapping[PartitionKey, int | None]], None] | None = None
        self.on_revoked: Callable[[list[PartitionKey]], None] | None = None
        self._assigned: set[PartitionKey] = set()
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

    # -- Source
    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            messages = self.consumer.consume(num_messages=max(1, max_records), timeout=timeout_s)
        except KafkaException as exc:
            raise _wrap(exc, "consume failed") from exc
        records = to_stream_records(messages)
        if len(records) == len(messages):
            return records
        for message in messages:
            error = message.error()
            if error is None:
                continue
            if error.code() == KafkaError._PARTITION_EOF:
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
            raise _wrap(exc, "offset commit failed", CheckpointError) from exc

    def rewind(self, positions: Positions) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        for tp, first in positions.items():
            if tp not in self._assigned:
                continue
            try:
                self.consumer.seek(TopicPartition(tp.stream, int(tp.partition), first))
            except KafkaException as exc:
                # A partition not fetched yet starts from the committed offset anyway.
                logger.info("seek %s to %s: %s", tp, first, exc)

    def caught_up(self) -> bool:
        from confluent_kafka import TopicPartition

        assignment = self.consumer.assignment()
        if not assignment:
            return False
        for tp in self.consumer.position(assignment):
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=5, cached=False
            )
            position = tp.offset
            if position < 0:
                committed = self.consumer.committed([tp], timeout=5)[0].offset
                position = committed if committed >= 0 else low
            if position < high:
                return False
        return True

    def close(self) -> None:
        if self._consumer is not None and not self._closed:
            self._closed = True
            self._consumer.close()


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """A committed Kafka offset (next to read) and its commit time when known."""

    offset: int | None
    committed_at: float | None


#: Group states in which the group has (or is getting) live members.
LIVE_STATES = frozenset({"STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE"})


@dataclass(frozen=True, slots=True)
class GroupMembership:
    """What DescribeGroups says: the state, the member count and who owns what.

    Some brokers (the local Tansu) answer STABLE with no member list; the state alone
    then tells that the group is live.
    """

    state: str
    members: int
    owners: dict[PartitionKey, str]

    @property
    def live(self) -> bool:
        return self.members > 0 or self.state in LIVE_STATES

    def partition_live(self, tp: PartitionKey) -> bool:
        """Whether a live member reads ``tp`` (the group's liveness when unknown)."""
        if self.owners:
            return tp in self.owners
        return self.live


class KafkaGroupAdmin:
    """Reads and rewrites one group's offsets; lists members and watermarks (replay, lag)."""

    def __init__(
        self,
        group: str,
        *,
        kafka: KafkaSettings | None = None,
        admin: Any = None,
        consumer: Any = None,
    ) -> None:
        self.group = group
        self.kafka = kafka or KafkaSettings()
        self._admin = admin
        self._consumer = consumer

    @property
    def admin(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self.kafka.client_config())
        return self._admin

    @property
    def consumer(self) -> Any:
        """A consumer of the group that never subscribes (reads and commits offsets)."""
        if self._consumer is None:
            from confluent_kafka import Consumer

            conf = self.kafka.client_config()
            conf.update(
                {
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": False,
                }
            )
            self._consumer = Consumer(conf)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def partitions(self, topic: str) -> list[PartitionKey]:
        meta = self.admin.list_topics(topic, timeout=10)
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaConfigurationError(f"topic {topic} not found", code="UNKNOWN_TOPIC_OR_PART")
        return [PartitionKey(topic, str(p)) for p in sorted(info.partitions)]

    def committed_topics(self) -> list[str]:
        """Topics for which the group has committed offsets."""
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

        try:
            futures = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(self.group)]
            )
            result = futures[self.group].result(timeout=10)
        except KafkaException as exc:
            raise _wrap(exc, f"listing offsets of group {self.group}") from exc
        return sorted({tp.topic for tp in result.topic_partitions or [] if tp.offset >= 0})

    def committed(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, CommittedOffset]:
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(tp.stream, int(tp.partition)) for tp in partitions]
        try:
            result = self.consumer.committed(tps, timeout=10)
        except KafkaException as exc:
            raise _wrap(exc, f"reading offsets of group {self.group}", CheckpointError) from exc
        out: dict[PartitionKey, CommittedOffset] = {}
        for tp in result:
            key = PartitionKey(tp.topic, str(tp.partition))
            offset = tp.offset if tp.offset >= 0 else None
            out[key] = CommittedOffset(offset, parse_commit_metadata(tp.metadata))
        return out

    def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Set the group's committed offsets (next offset to read) as given."""
        from confluent_kafka import KafkaException, TopicPartition

        if not offsets:
            return
        metadata = commit_metadata(int(time.time() * 1000))
        tps = [
            TopicPartition(tp.stream, int(tp.partition), offset, metadata)
            for tp, offset in sorted(offsets.items())
        ]
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise _wrap(exc, f"committing offsets of group {self.group}", CheckpointError) from exc

    def watermarks(self, partitions: Iterable[PartitionKey]) -> dict[PartitionKey, tuple[int, int]]:
        """(low, high) per partition, read from the broker (never cached).

        On Apache Kafka ``high`` is the end offset. (The local Tansu broker reports a
        wrong end offset after idempotent writes; the local stack writes without
        idempotence, see docs/local-stack.md.)
        """
        from confluent_kafka import KafkaException, TopicPartition

        out: dict[PartitionKey, tuple[int, int]] = {}
        for tp in partitions:
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(tp.stream, int(tp.partition)), timeout=10, cached=False
                )
            except KafkaException as exc:
                raise _wrap(exc, f"watermarks of {tp}") from exc
            out[tp] = (int(low), int(high))
        return out

    def offsets_for_time(
        self, partitions: Sequence[PartitionKey], timestamp_ms: int
    ) -> dict[PartitionKey, int]:
        """The first offset at or after ``timestamp_ms`` per partition (end when none)."""
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(tp.stream, int(tp.partition), timestamp_ms) for tp in partitions]
        try:
            result = self.consumer.offsets_for_times(tps, timeout=10)
        except KafkaException as exc:
            raise _wrap(exc, "offsets for time") from exc
        ends = self.watermarks(partitions)
        out: dict[PartitionKey, int] = {}
        for tp in result:
            key = PartitionKey(tp.topic, str(tp.partition))
            out[key] = tp.offset if tp.offset >= 0 else ends[key][1]
        return out

    def describe(self) -> GroupMembership:
        """The group's state and its live members' assignments."""
        from confluent_kafka import KafkaException

        try:
            futures = self.admin.describe_consumer_groups([self.group], request_timeout=10)
            description = futures[self.group].result(timeout=10)
        except KafkaException as exc:
            raise _wrap(exc, f"describing group {self.group}") from exc
        owners: dict[PartitionKey, str] = {}
        members = description.members or []
        for member in members:
            name = f"{member.client_id}@{member.host}".strip("@") or member.member_id
            assignment = member.assignment.topic_partitions if member.assignment else []
            for tp in assignment:
                owners[PartitionKey(tp.topic, str(tp.partition))] = name
        state = getattr(description.state, "name", str(description.state)).upper()
        return GroupMembership(state=state, members=len(members), owners=owners)

    def members(self) -> dict[PartitionKey, str]:
        """Live members' assignments: partition -> member (client id @ host)."""
        return self.describe().owners

    def oldest_timestamps(
        self, positions: Mapping[PartitionKey, int], timeout_s: float = 5.0
    ) -> dict[PartitionKey, float]:
        """The broker timestamp (epoch s) of the record at each offset (the oldest unread)."""
        from confluent_kafka import Consumer, TopicPartition

        if not positions:
            return {}
        conf = self.kafka.client_config()
        conf.update(
            {
                "group.id": f"{self.group}.lag-probe",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        probe = Consumer(conf)
        out: dict[PartitionKey, float] = {}
        try:
            probe.incremental_assign(
                [TopicPartition(tp.stream, int(tp.partition), o) for tp, o in positions.items()]
            )
            deadline = time.monotonic() + timeout_s
            while len(out) < len(positions) and time.monotonic() < deadline:
                for message in probe.consume(num_messages=len(positions), timeout=0.5):
                    if message.error() is not None:
                        continue
                    topic, partition = str(message.topic()), int(message.partition() or 0)
                    key = PartitionKey(topic, str(partition))
                    if key in out:
                        continue
                    ts_type, ts = message.timestamp()
                    out[key] = ts / 1000.0 if ts_type != 0 and ts >= 0 else time.time()
                    probe.incremental_unassign([TopicPartition(topic, partition)])
        finally:
            probe.close()
        return out


class KafkaCheckpointStore:
    """The :class:`~consumers.base.CheckpointStore` of a group: Kafka committed offsets."""

    def __init__(self, admin: KafkaGroupAdmin) -> None:
        self.admin = admin

    def load(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, int | None]:
        committed = self.admin.committed(partitions)
        return {
            tp: (None if c.offset is None else c.offset - 1)
            for tp, c in ((tp, committed[tp]) for tp in partitions)
        }

    def save(self, positions: Positions) -> None:
        self.admin.commit({tp: last + 1 for tp, last in positions.items()})


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
        raise _wrap(exc, "reading the topics failed") from exc
    finally:
        consumer.close()
