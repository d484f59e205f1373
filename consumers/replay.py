"""Replay: move a group's checkpoints to the earliest, the latest, a time or given offsets.

The plan (pure) shows per partition / shard the current and target positions and how
many records will be read again. Kafka: refused while the group has live members
(unless forced), then the group's committed offsets are rewritten. Kinesis: the lease
checkpoints are rewritten (TRIM_HORIZON, LATEST, AT_TIMESTAMP:ms or
AT_SEQUENCE_NUMBER:seq), refused while a worker renews a lease (unless forced).
Replayed events reach the warehouse without duplicates because the sink MERGEs on
``event_id``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from consumers.config import ConsumerSettings
from consumers.exceptions import ReplayRefusedError
from consumers.models import ReplayRow
from sluice.streams.kinesis import count_backlog
from sluice.streams.leases import AT_SEQUENCE_PREFIX, AT_TIMESTAMP_PREFIX, checkpoint_position
from sluice.streams.models import LATEST, SHARD_END, TRIM_HORIZON, PartitionKey


class TargetKind(StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"
    TIMESTAMP = "timestamp"
    OFFSETS = "offsets"


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """Where to move: one of the kinds, with a time (epoch ms) or explicit positions.

    Explicit positions are the first offset / sequence number to read again.
    """

    kind: TargetKind
    timestamp_ms: int | None = None
    offsets: Mapping[PartitionKey, int] | None = None


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds from ISO-8601 (with offset or ``Z``) or a number of epoch ms."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayRefusedError(f"not a timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise ReplayRefusedError(f"timestamp needs an offset or Z: {text!r}")
    return int(moment.timestamp() * 1000)


def parse_offsets(document: Any) -> dict[PartitionKey, int]:
    """``{"<topic or stream>": {"<partition or shard>": <first offset to read>}}``."""
    if not isinstance(document, dict):
        raise ReplayRefusedError("offsets file must hold a JSON object")
    out: dict[PartitionKey, int] = {}
    for stream, partitions in document.items():
        if not isinstance(partitions, dict):
            raise ReplayRefusedError(f"offsets of {stream} must be an object")
        for partition, offset in partitions.items():
            try:
                value = int(offset)
            except (TypeError, ValueError) as exc:
                raise ReplayRefusedError(
                    f"bad offset for {stream}/{partition}: {offset!r}"
                ) from exc
            if value < 0:
                raise ReplayRefusedError(f"negative offset for {stream}/{partition}")
            out[PartitionKey(str(stream), str(partition))] = value
    return out


def load_offsets_file(path: Path) -> dict[PartitionKey, int]:
    try:
        return parse_offsets(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ReplayRefusedError(f"cannot read offsets file {path}: {exc}") from exc


# ------------------------------------------------------------------------ Kafka


def plan_kafka(
    current: Mapping[PartitionKey, int | None],
    targets: Mapping[PartitionKey, int],
    watermarks: Mapping[PartitionKey, tuple[int, int]],
) -> list[ReplayRow]:
    """Rows of a Kafka replay (positions are next offsets to read; pure)."""
    rows = []
    for tp in sorted(targets):
        low, high = watermarks[tp]
        target = min(max(targets[tp], low), high)
        now_at = current.get(tp)
        effective = low if now_at is None else max(now_at, low)
        rows.append(
            ReplayRow(
                stream=tp.stream,
                partition=tp.partition,
                current="none" if now_at is None else str(now_at),
                target=str(target),
                records_to_reread=max(0, effective - target),
            )
        )
    return rows


def kafka_targets(
    admin: Any, topics: Sequence[str], target: ReplayTarget
) -> dict[PartitionKey, int]:
    partitions: list[PartitionKey] = []
    for topic in topics:
        partitions.extend(admin.partitions(topic))
    marks = admin.watermarks(partitions)
    if target.kind is TargetKind.EARLIEST:
        return {tp: marks[tp][0] for tp in partitions}
    if target.kind is TargetKind.LATEST:
        return {tp: marks[tp][1] for tp in partitions}
    if target.kind is TargetKind.TIMESTAMP:
        assert target.timestamp_ms is not None
        return admin.offsets_for_time(partitions, target.timestamp_ms)  # type: ignore[no-any-return]
    given = dict(target.offsets or {})
    unknown = set(given) - set(partitions)
    if unknown:
        raise ReplayRefusedError(f"offsets name unknown partitions: {sorted(map(str, unknown))}")
    return given


def replay_kafka(
    admin: Any,
    topics: Sequence[str],
    target: ReplayTarget,
    *,
    dry_run: bool,
    force: bool,
) -> list[ReplayRow]:
    """Plan (and unless ``dry_run`` apply) a Kafka replay of ``admin.group``."""
    targets = kafka_targets(admin, topics, target)
    committed = admin.committed(list(targets))
    marks = admin.watermarks(list(targets))
    rows = plan_kafka({tp: c.offset for tp, c in committed.items()}, targets, marks)
    if dry_run:
        return rows
    membership = admin.describe()
    if membership.live and not force:
        raise ReplayRefusedError(
            f"group {admin.group} has live members (state {membership.state}, "
            f"{membership.members} member(s)); stop them or pass --force"
        )
    admin.commit({PartitionKey(r.stream, r.partition): int(r.target) for r in rows})
    return rows


# ------------------------------------------------------------------------ Kinesis


def kinesis_target_checkpoint(shard: str, stream: str, target: ReplayTarget) -> str | None:
    """The checkpoint a shard's lease gets; None leaves it as it is (pure)."""
    if target.kind is TargetKind.EARLIEST:
        return TRIM_HORIZON
    if target.kind is TargetKind.LATEST:
        return LATEST
    if target.kind is TargetKind.TIMESTAMP:
        return f"{AT_TIMESTAMP_PREFIX}{target.timestamp_ms}"
    seq = (target.offsets or {}).get(PartitionKey(stream, shard))
    return None if seq is None else f"{AT_SEQUENCE_PREFIX}{seq}"


def replay_kinesis(
    stream: str,
    table: Any,
    client: Any,
    target: ReplayTarget,
    *,
    dry_run: bool,
    force: bool,
    settings: ConsumerSettings | None = None,
) -> list[ReplayRow]:
    """Plan (and unless ``dry_run`` apply) a Kinesis replay by rewriting lease checkpoints."""
    settings = settings or ConsumerSettings()
    leases = table.list()
    rows: list[ReplayRow] = []
    changes: dict[str, str] = {}
    for lease in leases:
        new = kinesis_target_checkpoint(lease.lease_key, stream, target)
        if new is None:
            continue
        done = checkpoint_position(lease.checkpoint)
        if new == LATEST or (done is None and lease.checkpoint != SHARD_END):
            reread: int | None = 0
        else:
            count, _, exact = count_backlog(client, stream, lease.lease_key, new)
            if lease.checkpoint == SHARD_END:
                reread = count
            else:
                after, _, _ = count_backlog(client, stream, lease.lease_key, lease.checkpoint)
                reread = max(0, count - after) if exact else None
        rows.append(ReplayRow(stream, lease.lease_key, lease.checkpoint, new, reread))
        changes[lease.lease_key] = new
    if dry_run:
        return rows
    now = time.time()
    live = [
        key
        for key, at in table.last_renewed().items()
        if now - at < 2 * settings.consumer_lease_duration_s
        and any(le.lease_key == key and le.owner for le in leases)
    ]
    if live and not force:
        raise ReplayRefusedError(
            f"{len(live)} shard lease(s) of {stream} are held by live workers; "
            "stop them or pass --force"
        )
    for key, checkpoint in changes.items():
        table.set_checkpoint(key, checkpoint)
    return rows
