"""Lag for on-call: per partition / shard and in total, in records and in seconds.

Lag in seconds is the age of the oldest record not yet consumed, so an idle partition
(nothing unconsumed) reads 0 s, never a stale number. The status follows Burrow's
rules over a sliding window of samples (see :func:`evaluate`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from consumers.config import ConsumerSettings
from consumers.models import LagSample, LagStatus, PartitionLag
from sluice.errors import SluiceError
from sluice.streams.kinesis import count_backlog
from sluice.streams.leases import checkpoint_position
from sluice.streams.models import PartitionKey

logger = logging.getLogger(__name__)

KINESIS_COUNT_CAP = 100_000


# ------------------------------------------------------------------------ pure arithmetic


def kafka_lag_records(committed_next: int | None, low: int, high: int) -> int:
    """Records between the group's next offset and the end of the partition.

    A group without a commit starts at the low watermark (``auto.offset.reset=earliest``);
    a committed offset below the low watermark was deleted by retention and reads from low.
    """
    start = low if committed_next is None else max(committed_next, low)
    return max(0, high - start)


def lag_seconds(lag_records: int, oldest_unconsumed_at: float | None, now: float) -> float:
    """Age of the oldest unconsumed record; 0 when nothing is unconsumed."""
    if lag_records <= 0 or oldest_unconsumed_at is None:
        return 0.0
    return max(0.0, now - oldest_unconsumed_at)


def evaluate(
    samples: Sequence[LagSample],
    now: float,
    *,
    owner_alive: bool | None = None,
    stall_after_s: float = 60.0,
) -> LagStatus:
    """The status of one partition from its window of samples (oldest first).

    Burrow's rules, adapted:

    1. lag zero now or at any sample in the window: OK;
    2. lag above zero and no live consumer owns the partition (``owner_alive`` False),
       so nothing can move its commits: STOPPED, in a one-shot sample too, whether or
       not the commits carry a commit time (metadata) of ours;
    3. the committed position did not move across the window (or, with one sample, no
       commit for ``stall_after_s``) while lag is above zero: STALLED when a live
       consumer owns the partition (commits stopped). With owner unknown, Burrow's time
       rule decides: STOPPED when the time since the last commit exceeds the span of
       the window, STALLED otherwise;
    4. the committed position went backwards (a rewind or replay): WARNING;
    5. commits advance but the lag never decreases across the window: WARNING;
    6. otherwise OK.
    """
    if not samples:
        return LagStatus.OK
    current = samples[-1]
    if current.lag == 0 or any(s.lag == 0 for s in samples):
        return LagStatus.OK
    if owner_alive is False and (len(samples) == 1 or samples[-2].committed == current.committed):
        return LagStatus.STOPPED
    first = samples[0]
    if len(samples) == 1:
        last_commit = current.last_commit_at
        if last_commit is None:  # commit time unknown: only a missing owner tells
            return LagStatus.STOPPED if owner_alive is False else LagStatus.OK
        stuck = now - last_commit > stall_after_s
    else:
        stuck = all(s.committed == first.committed for s in samples)
    if stuck:
        if owner_alive is False:
            return LagStatus.STOPPED
        if owner_alive is None and current.last_commit_at is not None and len(samples) > 1:
            span = current.at - first.at
            if now - current.last_commit_at > max(span, stall_after_s):
                return LagStatus.STOPPED
        return LagStatus.STALLED
    positions = [s.committed for s in samples if s.committed is not None]
    if any(b < a for a, b in itertools.pairwise(positions)):
        return LagStatus.WARNING
    if len(samples) > 1 and all(b.lag >= a.lag for a, b in itertools.pairwise(samples)):
        return LagStatus.WARNING
    return LagStatus.OK


def worst(statuses: Sequence[LagStatus]) -> LagStatus:
    """The group status: the worst of its partitions."""
    return max(statuses, key=lambda s: s.severity, default=LagStatus.OK)


@dataclass
class LagWindow:
    """Sliding windows of samples per partition (``sluice lag --watch`` and the metrics)."""

    size: int = 10
    stall_after_s: float = 60.0
    _samples: dict[tuple[str, str, str], deque[LagSample]] = field(default_factory=dict)

    def add(self, rows: Sequence[PartitionLag], now: float) -> list[PartitionLag]:
        """Record a snapshot and return it with each row's status filled in."""
        out: list[PartitionLag] = []
        for row in rows:
            key = (row.backend, row.stream, row.partition)
            window = self._samples.setdefault(key, deque(maxlen=self.size))
            committed_at = row.last_commit_at.timestamp() if row.last_commit_at else None
            if committed_at is None and window:
                # The store keeps no commit time (e.g. a broker dropping commit
                # metadata): a moved position was committed since the previous sample.
                previous = window[-1]
                committed_at = (
                    now if previous.committed != row.committed else previous.last_commit_at
                )
            window.append(
                LagSample(
                    at=now,
                    committed=row.committed,
                    lag=row.lag_records,
                    last_commit_at=committed_at,
                )
            )
            alive = row.live
            if alive is None and row.backend != "kafka":
                alive = row.owner is not None
            status = evaluate(
                list(window), now, owner_alive=alive, stall_after_s=self.stall_after_s
            )
            out.append(replace(row, status=status))
        return out


@dataclass(frozen=True, slots=True)
class LagReport:
    """One view of a group's lag over every backend it uses."""

    group: str
    at: float
    rows: tuple[PartitionLag, ...]
    problems: tuple[str, ...] = ()

    @property
    def total_records(self) -> int:
        return sum(r.lag_records for r in self.rows)

    @property
    def max_seconds(self) -> float:
        return max((r.lag_seconds for r in self.rows), default=0.0)

    @property
    def status(self) -> LagStatus:
        return worst([r.status for r in self.rows])

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "at": datetime.fromtimestamp(self.at, tz=UTC).isoformat(),
            "status": self.status.value,
            "total_lag_records": self.total_records,
            "max_lag_seconds": round(self.max_seconds, 3),
            "partitions": [r.to_json() for r in self.rows],
            "problems": list(self.problems),
        }


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


# ------------------------------------------------------------------------ adapters


def kafka_lag(admin: Any, topics: Sequence[str], now: float | None = None) -> list[PartitionLag]:
    """Lag of a Kafka group (``admin``: :class:`sluice.streams.kafka.KafkaGroupAdmin`)."""
    now = time.time() if now is None else now
    partitions: list[PartitionKey] = []
    for topic in topics:
        partitions.extend(admin.partitions(topic))
    committed = admin.committed(partitions)
    marks = admin.watermarks(partitions)
    try:
        membership = admin.describe()
    except SluiceError as exc:
        logger.info("group members unknown: %s", exc)
        membership = None
    lags: dict[PartitionKey, int] = {}
    starts: dict[PartitionKey, int] = {}
    for tp in partitions:
        low, high = marks[tp]
        lags[tp] = kafka_lag_records(committed[tp].offset, low, high)
        if lags[tp] > 0:
            starts[tp] = max(committed[tp].offset or low, low)
    oldest = admin.oldest_timestamps(starts) if starts else {}
    rows = []
    for tp in partitions:
        c = committed[tp]
        rows.append(
            PartitionLag(
                backend="kafka",
                group=admin.group,
                stream=tp.stream,
                partition=tp.partition,
                committed=c.offset,
                end=marks[tp][1],
                lag_records=lags[tp],
                lag_seconds=lag_seconds(lags[tp], oldest.get(tp), now),
                last_commit_at=_dt(c.committed_at),
                owner=membership.owners.get(tp) if membership else None,
                live=membership.partition_live(tp) if membership else None,
            )
        )
    return rows


def kinesis_lag(
    group: str,
    stream: str,
    table: Any,
    client: Any,
    *,
    settings: ConsumerSettings | None = None,
    now: float | None = None,
) -> list[PartitionLag]:
    """Lag of a Kinesis group on ``stream`` from its lease table (``table``).

    A lease counts as live while its owner renewed it within two lease durations.
    """
    now = time.time() if now is None else now
    settings = settings or ConsumerSettings()
    renewed = table.last_renewed()
    rows = []
    for lease in table.list():
        alive_at = renewed.get(lease.lease_key)
        alive = (
            lease.owner is not None
            and alive_at is not None
            and now - alive_at < 2 * settings.consumer_lease_duration_s
        )
        if lease.finished:
            count, oldest, exact = 0, None, True
        else:
            count, oldest, exact = count_backlog(
                client, stream, lease.lease_key, lease.checkpoint, KINESIS_COUNT_CAP
            )
        position = checkpoint_position(lease.checkpoint)
        rows.append(
            PartitionLag(
                backend="kinesis",
                group=group,
                stream=stream,
                partition=lease.lease_key,
                committed=position,
                end=None,
                lag_records=count,
                lag_seconds=lag_seconds(count, oldest, now),
                last_commit_at=_dt(lease.last_checkpoint_at),
                owner=lease.owner if alive else None,
                exact=exact,
                live=alive,
            )
        )
    return rows
