"""The one record type of every stream reader, its partition key, positions and leases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

#: KCL checkpoint sentinels stored in the lease table instead of a sequence number.
TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
SHARD_END = "SHARD_END"

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, order=True)
class PartitionKey:
    """One Kafka partition (``"0"``) or one Kinesis shard (``"shardId-000000000001"``)."""

    stream: str
    partition: str

    def __str__(self) -> str:
        return f"{self.stream}/{self.partition}"


Positions = Mapping[PartitionKey, int]
"""The last processed offset (Kafka) or sequence number (Kinesis) per partition."""


class StreamRecord(NamedTuple):
    """One record as read from a Kafka topic or a Kinesis stream (immutable, cheap).

    ``offset`` is the Kafka offset or the Kinesis sequence number (as an integer: both
    grow within a partition; the checkpoint unit). The user records of one KPL
    aggregate share its sequence number and carry their ``sub_sequence`` (0, 1, ...),
    their own ``key`` (partition key) and ``explicit_hash_key`` from the aggregate's
    tables. ``timestamp_ms`` is the broker's append time (Kafka record timestamp,
    Kinesis ApproximateArrivalTimestamp).
    """

    stream: str
    partition: str
    offset: int
    value: bytes
    key: bytes | None = None
    headers: Mapping[str, str] = NO_HEADERS
    timestamp_ms: int | None = None
    sub_sequence: int | None = None
    explicit_hash_key: str | None = None

    @property
    def tp(self) -> PartitionKey:
        return PartitionKey(self.stream, self.partition)

    @property
    def key_text(self) -> str | None:
        """The key as text (Kinesis partition keys are always text)."""
        key = self.key
        return None if key is None else key.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of the Kinesis lease table (names follow the KCL's)."""

    lease_key: str
    owner: str | None
    counter: int
    checkpoint: str
    parent_shard_ids: tuple[str, ...] = ()
    last_checkpoint_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END
