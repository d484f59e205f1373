"""Pure lease decisions of the Kinesis worker, in the spirit of the KCL.

A lease is *expired* when its counter has not changed for ``lease_duration_s`` as seen
by this worker's own clock (workers never compare clocks). A worker aims at
``ceil(active leases / workers)`` leases: it takes expired or unowned leases first and
steals from the most loaded worker only when nothing is free. A shard is processed only
once its parent shards reached SHARD_END, so records of one key stay in order across a
reshard.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.streams.models import LATEST, SHARD_END, TRIM_HORIZON, Lease

AT_TIMESTAMP_PREFIX = "AT_TIMESTAMP:"
AT_SEQUENCE_PREFIX = "AT_SEQUENCE_NUMBER:"


@dataclass(frozen=True, slots=True)
class Observation:
    """The counter of a lease and when (local clock) this worker saw it change."""

    counter: int
    changed_at: float


@dataclass(frozen=True, slots=True)
class TakePlan:
    """Leases a worker should take now: free ones first, then at most a few stolen."""

    take: tuple[str, ...]
    steal: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.take and not self.steal


def observe(
    previous: Mapping[str, Observation], leases: Iterable[Lease], now: float
) -> dict[str, Observation]:
    """Update the observations with a fresh scan of the lease table."""
    out: dict[str, Observation] = {}
    for lease in leases:
        seen = previous.get(lease.lease_key)
        if seen is None or seen.counter != lease.counter:
            out[lease.lease_key] = Observation(lease.counter, now)
        else:
            out[lease.lease_key] = seen
    return out


def expired(
    leases: Iterable[Lease],
    observations: Mapping[str, Observation],
    now: float,
    lease_duration_s: float,
    *,
    worker_id: str | None = None,
) -> set[str]:
    """Keys of leases that are free: unowned, or not renewed for a lease duration.

    A worker never considers its own leases expired.
    """
    out: set[str] = set()
    for lease in leases:
        if lease.finished:
            continue
        if lease.owner is None:
            out.add(lease.lease_key)
            continue
        if lease.owner == worker_id:
            continue
        seen = observations.get(lease.lease_key)
        if seen is not None and now - seen.changed_at > lease_duration_s:
            out.add(lease.lease_key)
    return out


def parents_finished(lease: Lease, by_key: Mapping[str, Lease]) -> bool:
    """True when every parent shard reached SHARD_END (a parent without lease was trimmed)."""
    for parent in lease.parent_shard_ids:
        parent_lease = by_key.get(parent)
        if parent_lease is not None and not parent_lease.finished:
            return False
    return True


def plan_take(
    leases: Sequence[Lease],
    worker_id: str,
    expired_keys: set[str],
    *,
    max_steal: int = 1,
) -> TakePlan:
    """Which leases ``worker_id`` takes now to reach its fair share."""
    active = [lease for lease in leases if not lease.finished]
    if not active:
        return TakePlan((), ())
    live_owner_counts: Counter[str] = Counter(
        lease.owner
        for lease in active
        if lease.owner is not None and lease.lease_key not in expired_keys
    )
    workers = set(live_owner_counts) | {worker_id}
    target = math.ceil(len(active) / len(workers))
    mine = live_owner_counts.get(worker_id, 0)
    need = target - mine
    if need <= 0:
        return TakePlan((), ())
    by_key = {lease.lease_key: lease for lease in leases}
    free = sorted(
        (lease for lease in active if lease.lease_key in expired_keys),
        # shards that can be processed now first, then parents before children
        key=lambda le: (not parents_finished(le, by_key), le.lease_key),
    )
    take = tuple(lease.lease_key for lease in free[:need])
    if take:
        return TakePlan(take, ())
    busiest, count = max(
        ((owner, n) for owner, n in live_owner_counts.items() if owner != worker_id),
        key=lambda item: (item[1], item[0]),
        default=(None, 0),
    )
    if busiest is None or count <= target or max_steal <= 0:
        return TakePlan((), ())
    victims = sorted(lease.lease_key for lease in active if lease.owner == busiest)
    return TakePlan((), tuple(victims[: min(max_steal, need, count - target)]))


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What ``ListShards`` says about one shard."""

    shard_id: str
    parent_shard_id: str | None = None
    adjacent_parent_shard_id: str | None = None
    closed: bool = False

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(p for p in (self.parent_shard_id, self.adjacent_parent_shard_id) if p)


def new_leases(
    shards: Sequence[ShardInfo], existing: Iterable[str], initial_position: str = TRIM_HORIZON
) -> list[Lease]:
    """Leases to create for shards without one.

    Children of a reshard start at TRIM_HORIZON whatever the initial position, since
    their records come right after their parents' (the KCL does the same).
    """
    known = set(existing)
    out: list[Lease] = []
    for shard in shards:
        if shard.shard_id in known:
            continue
        start = TRIM_HORIZON if shard.parents else initial_position
        out.append(Lease(shard.shard_id, None, 0, start, shard.parents))
    return out


def iterator_request(checkpoint: str) -> dict[str, Any]:
    """``GetShardIterator`` arguments that resume after ``checkpoint``."""
    if checkpoint in (TRIM_HORIZON, LATEST):
        return {"ShardIteratorType": checkpoint}
    if checkpoint.startswith(AT_TIMESTAMP_PREFIX):
        millis = int(checkpoint[len(AT_TIMESTAMP_PREFIX) :])
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": millis / 1000.0}
    if checkpoint.startswith(AT_SEQUENCE_PREFIX):
        return {
            "ShardIteratorType": "AT_SEQUENCE_NUMBER",
            "StartingSequenceNumber": checkpoint[len(AT_SEQUENCE_PREFIX) :],
        }
    if checkpoint == SHARD_END:
        raise ValueError("a finished shard has no iterator")
    return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": checkpoint}


def checkpoint_position(checkpoint: str) -> int | None:
    """The last processed sequence number of a checkpoint, or None for a sentinel."""
    return int(checkpoint) if checkpoint.isdigit() else None
