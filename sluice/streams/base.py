"""The boundaries of the streams layer: a reader, a checkpoint store, a lease store.

Every component that reads a topic or stream (the consumers, the local delivery, lag,
replay, reconcile, the demo) reads through these and the Kafka / Kinesis modules beside
them; nothing else talks to a broker to read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from sluice.streams.models import Lease, PartitionKey, Positions, StreamRecord


class Source(Protocol):
    """One group member's view of its topic or stream (Kafka member / Kinesis worker)."""

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_s``.

        The user records of one KPL aggregate always come in the same poll, so a batch
        never ends inside an aggregate (its sequence number is the checkpoint unit).
        """
        ...

    def checkpoint(self, positions: Positions) -> None:
        """Durably record the last processed offset of each partition (synchronous)."""
        ...

    def rewind(self, positions: Positions) -> None:
        """Read again from these offsets (the first offsets of a failed batch)."""
        ...

    def caught_up(self) -> bool:
        """True when every partition this member reads is at its end."""
        ...

    def assignment(self) -> frozenset[PartitionKey]:
        """The partitions / shards this member reads now."""
        ...

    def waiting_reason(self) -> str:
        """One line for a member holding nothing: its group, stream(s) and group state."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class GroupMember(Protocol):
    """A reader whose partitions come and go with its group (Kafka member, Kinesis worker).

    ``on_assigned`` gets the checkpoints of newly assigned partitions; ``on_revoked``
    is called before partitions go, so their pending records are committed first.
    """

    on_assigned: Callable[[Mapping[PartitionKey, int | None]], None] | None
    on_revoked: Callable[[list[PartitionKey]], None] | None


class CheckpointStore(Protocol):
    """Checkpoints of one group on one topic / stream, as replay and lag see them.

    A checkpoint is the offset of the last processed record of a partition (Kafka
    stores ``last + 1`` as its committed offset); ``None`` means nothing processed yet.
    """

    def load(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, int | None]: ...

    def save(self, positions: Positions) -> None:
        """Write checkpoints as given (replay may move them backwards)."""
        ...


class LeaseStore(Protocol):
    """The Kinesis lease table: DynamoDB (``DynamoLeaseTable``) or memory."""

    def exists(self) -> bool: ...

    def list(self) -> list[Lease]: ...

    def create(self, lease: Lease) -> bool: ...

    def take(self, lease: Lease, worker_id: str) -> Lease: ...

    def renew(self, lease: Lease, worker_id: str) -> Lease: ...

    def checkpoint(self, lease: Lease, worker_id: str, checkpoint: str) -> Lease: ...

    def release(self, lease: Lease, worker_id: str) -> None: ...

    def set_checkpoint(self, lease_key: str, checkpoint: str) -> None: ...

    def last_renewed(self) -> dict[str, float]: ...
