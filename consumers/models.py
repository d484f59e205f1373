"""Data shapes of the consumer framework: decoded records, batches, dead letters, lag, replay.

The record read from a stream, its partition key and the leases are the streams layer's
(:mod:`sluice.streams.models`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from sluice.streams.models import PartitionKey, StreamRecord

__all__ = [
    "Batch",
    "BatchOutcome",
    "CommitStep",
    "DeadLetter",
    "DecodedRecord",
    "LagSample",
    "LagStatus",
    "PartitionLag",
    "ReplayRow",
]


class DecodedRecord(NamedTuple):
    """A record with its decoded event (the Avro-ready dict of the schemas codec)."""

    record: StreamRecord
    event_type: str
    schema_version: int
    event: Mapping[str, Any]


@dataclass(frozen=True)
class Batch:
    """The records read after the last checkpoint, in read order.

    ``batch_id`` is derived from the first and last offset of every partition, so it is
    the same when the same records are written again after a rewind.
    """

    records: tuple[StreamRecord, ...]

    @cached_property
    def batch_id(self) -> str:
        spans = ";".join(f"{tp}:{a}-{b}" for tp, (a, b) in sorted(self.spans().items()))
        return hashlib.sha256(spans.encode()).hexdigest()[:24]

    def spans(self) -> dict[PartitionKey, tuple[int, int]]:
        """First and last offset per partition."""
        return dict(self._spans)

    @cached_property
    def _spans(self) -> dict[PartitionKey, tuple[int, int]]:
        # One pass over runs of records of the same partition (a poll delivers them in
        # runs); min/max keep the spans right whatever the order within a run.
        raw: dict[tuple[str, str], tuple[int, int]] = {}
        records = self.records
        if not records:
            return {}
        stream, partition, lo = records[0][0], records[0][1], records[0][2]
        hi = lo
        for record in records:
            offset = record[2]
            if record[1] == partition and record[0] == stream:
                if offset > hi:
                    hi = offset
                elif offset < lo:
                    lo = offset
                continue
            _merge_span(raw, (stream, partition), lo, hi)
            stream, partition, lo, hi = record[0], record[1], offset, offset
        _merge_span(raw, (stream, partition), lo, hi)
        return {PartitionKey(s, p): span for (s, p), span in raw.items()}

    def last_offsets(self) -> dict[PartitionKey, int]:
        """The checkpoint this batch moves every partition to (last processed offset)."""
        return {tp: last for tp, (_, last) in self._spans.items()}

    def first_offsets(self) -> dict[PartitionKey, int]:
        """Where a rewind puts every partition to read this batch again."""
        return {tp: first for tp, (first, _) in self._spans.items()}

    def __len__(self) -> int:
        return len(self.records)


def _merge_span(
    spans: dict[tuple[str, str], tuple[int, int]], key: tuple[str, str], lo: int, hi: int
) -> None:
    known = spans.get(key)
    spans[key] = (lo, hi) if known is None else (min(lo, known[0]), max(hi, known[1]))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be decoded or kept failing in the sink."""

    record: StreamRecord
    error_class: str
    message: str
    attempts: int


class CommitStep(StrEnum):
    """The steps of committing a batch, in the order they run."""

    SINK_COMMIT = "1-sink-commit"
    DEAD_LETTERS = "2-dead-letters"
    CHECKPOINT = "3-checkpoint"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What processing one batch did."""

    batch_id: str
    records: int
    written: int
    dead_letters: tuple[DeadLetter, ...]
    attempts: int
    rollbacks: int
    checkpoint: Mapping[PartitionKey, int]
    duration_s: float


class LagStatus(StrEnum):
    """Per partition / shard and group status, in the spirit of Burrow."""

    OK = "OK"
    WARNING = "WARNING"
    STALLED = "STALLED"
    STOPPED = "STOPPED"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {LagStatus.OK: 0, LagStatus.WARNING: 1, LagStatus.STALLED: 2, LagStatus.STOPPED: 3}


@dataclass(frozen=True, slots=True)
class LagSample:
    """One observation of a partition: when, the committed position and the lag then."""

    at: float
    committed: int | None
    lag: int
    last_commit_at: float | None = None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Lag of one partition / shard at one moment (what ``sluice lag`` prints)."""

    backend: str
    group: str
    stream: str
    partition: str
    committed: int | None
    end: int | None
    lag_records: int
    lag_seconds: float
    last_commit_at: datetime | None
    owner: str | None
    exact: bool = True
    status: LagStatus = LagStatus.OK
    live: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "group": self.group,
            "stream": self.stream,
            "partition": self.partition,
            "committed": None if self.committed is None else str(self.committed),
            "end": None if self.end is None else str(self.end),
            "lag_records": self.lag_records,
            "lag_seconds": round(self.lag_seconds, 3),
            "last_commit_at": self.last_commit_at.isoformat() if self.last_commit_at else None,
            "owner": self.owner,
            "live": self.live,
            "exact": self.exact,
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One line of a replay plan: where a partition is and where it will be."""

    stream: str
    partition: str
    current: str
    target: str
    records_to_reread: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "partition": self.partition,
            "current": self.current,
            "target": self.target,
            "records_to_reread": self.records_to_reread,
        }
