"""What one delivery batch writes, planned before anything is written (pure).

One object per source partition and partition keys under ``clean/``, the error records
under ``errors/processing-failed/``, and with the source record backup on, the batch's
records under ``raw/``; like Firehose, no manifest (the loader finds clean objects
through S3 event notifications and its listing sweep). The raw, clean and error objects
of one partition share one name (:func:`partition_names`). Key layout and object
formats are :mod:`sluice.zone`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from firehose_transforms.invocation import Outcome, arrival_ms, partition_label
from sluice.config import ZoneSettings
from sluice.streams.models import StreamRecord
from sluice.zone import (
    NDJSON_CONTENT_TYPE,
    RAW_CONTENT_TYPE,
    GroupName,
    clean_key,
    error_key,
    error_record,
    frame_raw,
    gzip_bytes,
    ndjson,
    raw_key,
)


@dataclass(frozen=True, slots=True)
class PlannedObject:
    """One object to write."""

    key: str
    body: bytes
    content_type: str
    kind: str  # raw | clean | error
    rows: int = 0
    event_type: str | None = None


def partition_names(
    records: Iterable[StreamRecord], *, kind: str, source: str
) -> dict[str, GroupName]:
    """The object name of each source partition of a batch: its first and last position
    over every record of the batch (whatever became of them), and the arrival time of
    the first. The raw, clean and error objects of one partition share it (pure)."""
    by_partition: dict[str, list[StreamRecord]] = {}
    for record in records:
        by_partition.setdefault(partition_label(kind, record), []).append(record)
    names: dict[str, GroupName] = {}
    for partition, items in by_partition.items():
        ordered = sorted(items, key=_order)
        names[partition] = GroupName(
            kind=kind,
            source=source,
            partition=partition,
            first=str(ordered[0].offset),
            last=str(ordered[-1].offset),
            first_arrival_ms=arrival_ms(ordered[0]),
        )
    return names


def plan_raw_backup(
    records: Sequence[StreamRecord], *, kind: str, source: str, zone: ZoneSettings
) -> list[PlannedObject]:
    """The source record backup of one batch (pure): one object per source partition,
    ``raw/YYYY/MM/DD/HH/<stem>.gz``, holding every record of that partition in source
    order (Ok, Dropped and ProcessingFailed alike), framed by
    :func:`~sluice.zone.frame_raw` and gzip-compressed. ``rows`` is the
    number of records."""
    names = partition_names(records, kind=kind, source=source)
    by_partition: dict[str, list[StreamRecord]] = {}
    for record in records:
        by_partition.setdefault(partition_label(kind, record), []).append(record)
    planned: list[PlannedObject] = []
    for partition in sorted(by_partition):
        items = sorted(by_partition[partition], key=_order)
        planned.append(
            PlannedObject(
                key=raw_key(zone, names[partition]),
                body=gzip_bytes(frame_raw(r.value for r in items)),
                content_type=RAW_CONTENT_TYPE,
                kind="raw",
                rows=len(items),
            )
        )
    return planned


def plan_batch(
    outcomes: Sequence[Outcome],
    *,
    kind: str,
    source: str,
    zone: ZoneSettings,
    lambda_arn: str,
) -> list[PlannedObject]:
    """Every object one batch writes, in write order: clean, then errors (pure)."""
    if not outcomes:
        return []
    by_partition: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_partition.setdefault(partition_label(kind, outcome.record), []).append(outcome)
    names = partition_names((o.record for o in outcomes), kind=kind, source=source)
    cleans: list[PlannedObject] = []
    errors: list[PlannedObject] = []
    for partition in sorted(by_partition):
        items = sorted(by_partition[partition], key=lambda o: _order(o.record))
        name = names[partition]
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for o in items:
            if o.result == "Ok" and o.event_type and o.dt:
                groups.setdefault((o.event_type, o.dt), []).append(o)
        for (event_type, dt), group in sorted(groups.items()):
            body = b"".join(_ensure_newline(o.data) for o in group)
            rows = body.count(b"\n")
            cleans.append(
                PlannedObject(
                    key=clean_key(zone, event_type, dt, name),
                    body=gzip_bytes(body),
                    content_type=NDJSON_CONTENT_TYPE,
                    kind="clean",
                    rows=rows,
                    event_type=event_type,
                )
            )
        failed = [o for o in items if o.result == "ProcessingFailed"]
        if failed:
            body = ndjson(
                error_record(
                    raw=o.record.value,
                    arrival_ms=arrival_ms(o.record),
                    error_code=o.error_code or "Lambda.ProcessingFailedStatus",
                    error_message=o.error_message or "",
                    attempts=o.attempts,
                    attempt_ending_ms=o.ended_ms,
                    lambda_arn=lambda_arn,
                )
                for o in failed
            )
            errors.append(
                PlannedObject(
                    key=error_key(zone, name),
                    body=gzip_bytes(body),
                    content_type=NDJSON_CONTENT_TYPE,
                    kind="error",
                    rows=len(failed),
                )
            )
    return [*cleans, *errors]


def _order(record: StreamRecord) -> tuple[int, int]:
    return (record.offset, record.sub_sequence or 0)


def _ensure_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"
