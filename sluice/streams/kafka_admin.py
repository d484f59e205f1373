"""Kafka group administration: committed offsets and their metadata, watermarks, members,
and the group's checkpoint store (replay and lag read and rewrite a group's offsets
through it); the error wrapping the reader shares."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.config import KafkaSettings
from sluice.errors import RetryableError
from sluice.streams.exceptions import (
    CheckpointError,
    KafkaConfigurationError,
    KafkaConsumerError,
)
from sluice.streams.models import PartitionKey, Positions

METADATA_KEY = "committed_at_ms"


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


def wrap_error(
    exc: Exception, what: str, kind: type[RetryableError] = KafkaConsumerError
) -> Exception:
    code = None
    if exc.args and hasattr(exc.args[0], "name"):
        code = str(exc.args[0].name())
    return kind(f"{what}: {exc}", code=code)


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
            raise wrap_error(exc, f"listing offsets of group {self.group}") from exc
        return sorted({tp.topic for tp in result.topic_partitions or [] if tp.offset >= 0})

    def committed(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, CommittedOffset]:
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(tp.stream, int(tp.partition)) for tp in partitions]
        try:
            result = self.consumer.committed(tps, timeout=10)
        except KafkaException as exc:
            raise wrap_error(
                exc, f"reading offsets of group {self.group}", CheckpointError
            ) from exc
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
            raise wrap_error(
                exc, f"committing offsets of group {self.group}", CheckpointError
            ) from exc

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
                raise wrap_error(exc, f"watermarks of {tp}") from exc
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
            raise wrap_error(exc, "offsets for time") from exc
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
            raise wrap_error(exc, f"describing group {self.group}") from exc
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
