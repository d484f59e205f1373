"""Reconcile: count events per stage of the path for a time window and say what is missing.

Stages, in path order: ``accepted`` (what the API said yes to), ``stream`` (Kafka topic
or Kinesis stream), ``s3_clean`` and ``s3_errors`` (the zone), ``warehouse`` (the target
tables). Each stage is read by a small *stage source*: a function from a
:class:`Window` to the list of :class:`Sighting` s at that stage (one per copy, so
duplicates show), or ``None`` when the stage cannot be read. The pure
:func:`reconcile` compares them; the source functions below are the I/O edges, and
callers (``sluice reconcile``, the demo) may pass their own.

What "missing" means at each stage (an event may sit in the error prefix instead of
the warehouse, with its reason: that is accounted for, not missing):

- ``stream``: accepted but not on the stream;
- ``s3``: on the stream but neither in ``s3_clean`` nor in ``s3_errors``;
- ``warehouse``: in ``s3_clean`` but not in the warehouse.

Events in clean files that a load job holds right now (running under its lease, or
taken over, ready or waiting for a retry) are *withheld*, not missing: the report names
the job and its lease expiry. Rows the warehouse quarantined are counted per reason
(``tenant_conflict`` included).

The window is on ``occurred_at`` (``start <= occurred_at < end``), the one timestamp
every stage carries. When no accepted-events source is given, the stream stands for
it: the API answers 202 only after the broker acknowledged the write.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.config import AwsSettings, KafkaSettings, ZoneSettings
from sluice.errors import SluiceError
from sluice.streams import kpl
from sluice.streams.kafka import scan_topics
from sluice.streams.kinesis import scan_streams
from sluice.zone import gunzip
from sluice.zonestore import Zone
from warehouse.base import Warehouse
from warehouse.models import TargetTable

log = logging.getLogger(__name__)

STAGES = ("accepted", "stream", "s3_clean", "s3_errors", "warehouse")


@dataclass(frozen=True, slots=True)
class Window:
    """``start <= occurred_at < end``; either side open when ``None``."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, ts: datetime | None) -> bool:
        """True when ``ts`` is inside (an unknown time counts as inside)."""
        if ts is None:
            return True
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One copy of an event at a stage (``event_id`` ``None`` when it cannot be read).

    ``test`` marks a test event, which the transform drops on purpose (``Dropped``,
    reason ``test_event``): it is expected on the stream and nowhere after it.
    """

    event_id: str | None
    occurred_at: datetime | None = None
    test: bool = False


StageSource = Callable[[Window], "list[Sighting] | None"]


@dataclass(frozen=True, slots=True)
class Hold:
    """Events of clean files a load job has not committed yet: withheld, not lost."""

    load_id: str
    status: str
    lease_expires_at: str | None
    event_ids: frozenset[str]


HoldSource = Callable[[], "list[Hold]"]


@dataclass(frozen=True, slots=True)
class StageCount:
    """Counts of one stage."""

    stage: str
    available: bool
    total: int = 0
    distinct: int = 0
    unidentified: int = 0
    test_events: int = 0
    duplicates: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    difference: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "stage": self.stage,
            "available": self.available,
            "total": self.total,
            "distinct": self.distinct,
            "unidentified": self.unidentified,
            "test_events": self.test_events,
            "duplicates": len(self.duplicates),
            "duplicate_ids": list(self.duplicates),
            "missing": len(self.missing),
            "missing_ids": list(self.missing),
            "difference": self.difference,
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The per-stage counts for a window, and the overall verdict."""

    window: Window
    stages: tuple[StageCount, ...]
    lost: tuple[str, ...] = field(default=())
    withheld: tuple[tuple[str, Hold], ...] = field(default=())
    """``(event_id, the job holding it)``: in the zone, behind a load not committed yet."""
    quarantined: Mapping[str, int] = field(default_factory=dict)
    """Rows the warehouse quarantined, per reason code."""

    def stage(self, name: str) -> StageCount:
        """The counts of ``name``."""
        return next(s for s in self.stages if s.stage == name)

    @property
    def ok(self) -> bool:
        """No event missing anywhere and no duplicate in the warehouse."""
        return (
            not self.lost
            and all(not s.missing for s in self.stages)
            and not self.stage("warehouse").duplicates
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "window": {
                "from": self.window.start.isoformat() if self.window.start else None,
                "to": self.window.end.isoformat() if self.window.end else None,
            },
            "ok": self.ok,
            "lost": list(self.lost),
            "withheld": [
                {
                    "event_id": eid,
                    "load_id": hold.load_id,
                    "status": hold.status,
                    "lease_expires_at": hold.lease_expires_at,
                }
                for eid, hold in self.withheld
            ],
            "quarantined": dict(self.quarantined),
            "stages": [s.as_dict() for s in self.stages],
        }


def _ids(sightings: Sequence[Sighting] | None) -> Counter[str]:
    return Counter(s.event_id for s in sightings or () if s.event_id is not None)


def reconcile(
    window: Window,
    seen: Mapping[str, Sequence[Sighting] | None],
    holds: Sequence[Hold] = (),
    quarantined: Mapping[str, int] | None = None,
) -> ReconcileReport:
    """Compare stages (pure). ``seen[stage]`` is ``None`` for a stage that was not read;
    events in ``holds`` that the warehouse lacks are withheld, not missing or lost."""
    inside = {
        name: None if s is None else [x for x in s if window.contains(x.occurred_at)]
        for name, s in seen.items()
    }
    counts = {name: _ids(inside.get(name)) for name in STAGES}
    dropped = {s.event_id for s in inside.get("stream") or () if s.test and s.event_id}
    accepted_avail = inside.get("accepted") is not None
    expected = counts["accepted"] if accepted_avail else counts["stream"]
    zone = set(counts["s3_clean"]) | set(counts["s3_errors"])
    missing: dict[str, set[str]] = {
        "accepted": set(),
        "stream": set(expected) - set(counts["stream"]) if accepted_avail else set(),
        "s3_clean": set(counts["stream"]) - zone - dropped
        if inside.get("s3_clean") is not None
        else set(),
        "s3_errors": set(),
        "warehouse": set(counts["s3_clean"]) - set(counts["warehouse"])
        if inside.get("warehouse") is not None
        else set(),
    }
    # difference: distinct events at this stage minus at the stage it is fed from
    # (s3_clean counts clean and error events together against the stream).
    compare = {
        "stream": ("accepted", len(counts["stream"])),
        "s3_clean": ("stream", len(zone)),
        "warehouse": ("s3_clean", len(counts["warehouse"])),
    }
    stages = []
    for name in STAGES:
        sightings = inside.get(name)
        if sightings is None:
            stages.append(StageCount(name, available=False))
            continue
        c = counts[name]
        diff = 0
        if name in compare and inside.get(compare[name][0]) is not None:
            diff = compare[name][1] - len(counts[compare[name][0]])
        stages.append(
            StageCount(
                stage=name,
                available=True,
                total=len(sightings),
                distinct=len(c),
                unidentified=sum(1 for s in sightings if s.event_id is None),
                test_events=len({s.event_id for s in sightings if s.test}),
                duplicates=tuple(sorted(k for k, n in c.items() if n > 1)),
                missing=tuple(sorted(missing[name])),
                difference=diff,
            )
        )
    end_avail = inside.get("warehouse") is not None and inside.get("s3_errors") is not None
    lost: set[str] = set()
    if end_avail:
        lost = set(expected) - set(counts["warehouse"]) - set(counts["s3_errors"]) - dropped
    held = {eid: hold for hold in holds for eid in hold.event_ids}
    withheld = sorted(
        (eid, held[eid])
        for eid in (set(missing["warehouse"]) | lost) & set(held)
        if eid not in counts["warehouse"]
    )
    gone = {eid for eid, _ in withheld}
    stages = [
        s
        if s.stage != "warehouse"
        else StageCount(
            stage=s.stage,
            available=s.available,
            total=s.total,
            distinct=s.distinct,
            unidentified=s.unidentified,
            test_events=s.test_events,
            duplicates=s.duplicates,
            missing=tuple(e for e in s.missing if e not in gone),
            difference=s.difference,
        )
        for s in stages
    ]
    return ReconcileReport(
        window,
        tuple(stages),
        tuple(sorted(lost - gone)),
        tuple((eid, hold) for eid, hold in withheld),
        dict(quarantined or {}),
    )


# --- stage sources (I/O edges) ----------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A timestamp from an ISO-8601 string, a datetime, or epoch micros (UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1_000_000, tz=UTC)
    return None


def sighting_of(obj: Mapping[str, Any], *, test: bool = False) -> Sighting:
    """A sighting from an event or row dict."""
    eid = obj.get("event_id")
    return Sighting(str(eid).lower() if eid else None, parse_time(obj.get("occurred_at")), test)


def _test_sources() -> tuple[str, ...]:
    from firehose_transforms.config import TransformSettings

    return TransformSettings().test_source_prefixes()


def identify_payload(payload: bytes, test_sources: tuple[str, ...] | None = None) -> list[Sighting]:
    """Sightings of a stream payload: KPL aggregate, framed Avro or JSON, best effort.

    Test events (the transform's rule, ``firehose_transforms.clean.is_test_event``) are
    marked, since the transform drops them on purpose.
    """
    from firehose_transforms.base import decode_payload
    from firehose_transforms.clean import is_test_event

    prefixes = _test_sources() if test_sources is None else test_sources
    out = []
    for part in kpl.user_payloads(payload):
        try:
            event = decode_payload(part)
            out.append(sighting_of(event, test=is_test_event(event, prefixes)))
            continue
        except SluiceError:
            pass
        try:
            obj = json.loads(part)
        except (ValueError, UnicodeDecodeError):
            obj = None
        out.append(sighting_of(obj) if isinstance(obj, dict) else Sighting(None))
    return out


def accepted_log_source(path: Path) -> StageSource:
    """Accepted events from an NDJSON log (``event_id``, ``occurred_at`` per line), as
    the API writes it (``SLUICE_API_ACCEPTED_LOG=file``). A line that is not a JSON
    object (cut short by a full disk, say) counts as unidentified, not as an error."""

    def read(window: Window) -> list[Sighting] | None:
        if not path.exists():
            return None
        out = []
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        out.append(Sighting(None))
                        continue
                    out.append(sighting_of(obj) if isinstance(obj, dict) else Sighting(None))
        return out

    return read


def kafka_stream_source(
    settings: KafkaSettings, topics: Sequence[str], *, timeout: float = 10.0, settle: float = 1.5
) -> StageSource:
    """Every record on ``topics`` from the beginning to the current end.

    Reading stops once every partition reached the end offset the broker reported and
    nothing arrived for ``settle`` seconds (some brokers report stale end offsets, so
    the end offsets are a lower bound, not the stop condition alone), or after
    ``timeout`` seconds without a record.
    """

    def read(window: Window) -> list[Sighting] | None:
        prefixes = _test_sources()
        out: list[Sighting] = []
        for records in scan_topics(
            topics, kafka=settings, group="sluice-reconcile", idle_s=timeout, settle_s=settle
        ):
            for record in records:
                out.extend(identify_payload(record.value, prefixes))
        return out

    return read


def kinesis_stream_source(
    aws: AwsSettings, streams: Sequence[str], *, client: Any = None
) -> StageSource:
    """Every record on ``streams`` (all shards, from TRIM_HORIZON to the current end)."""

    def read(window: Window) -> list[Sighting] | None:
        kinesis = client or aws.client("kinesis")
        prefixes = _test_sources()
        out: list[Sighting] = []
        # User records come deaggregated, so an aggregate is identified once.
        for records in scan_streams(kinesis, streams):
            for record in records:
                out.extend(identify_payload(record.value, prefixes))
        return out

    return read


def zone_clean_source(zone: Zone, zs: ZoneSettings) -> StageSource:
    """Rows of every clean file in the zone."""

    def read(window: Window) -> list[Sighting] | None:
        out = []
        for obj in zone.list(zs.s3_bucket, zs.s3_clean_prefix):
            for line in gunzip(zone.read(obj.url), obj.url).split(b"\n"):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        out.append(Sighting(None))
                        continue
                    out.append(sighting_of(row) if isinstance(row, dict) else Sighting(None))
        return out

    return read


def zone_error_source(zone: Zone, zs: ZoneSettings) -> StageSource:
    """Events of the error records (Firehose format: base64 ``rawData``)."""

    def read(window: Window) -> list[Sighting] | None:
        out: list[Sighting] = []
        prefixes = _test_sources()
        for obj in zone.list(zs.s3_bucket, zs.s3_error_prefix):
            for line in gunzip(zone.read(obj.url), obj.url).split(b"\n"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    raw = base64.b64decode(record["rawData"])
                except (ValueError, KeyError, TypeError, binascii.Error):
                    out.append(Sighting(None))
                    continue
                out.extend(identify_payload(raw, prefixes))
        return out

    return read


def warehouse_source(
    warehouse: Warehouse, tables: Iterable[TargetTable] = tuple(TargetTable)
) -> StageSource:
    """Event ids in the target tables (the window applied in SQL)."""
    wanted = tuple(tables)

    def read(window: Window) -> list[Sighting] | None:
        out: list[Sighting] = []
        for table in wanted:
            out.extend(
                Sighting(eid, None) for eid in warehouse.event_ids(table, window.start, window.end)
            )
        return out

    return read


def pending_loads_source(warehouse: Warehouse, zone: Zone, *, lease_seconds: float) -> HoldSource:
    """The events of the clean files each load job not yet committed holds."""
    from sluice.zone import parse_manifest
    from warehouse.leases import job_status

    def read() -> list[Hold]:
        holds: list[Hold] = []
        for job in job_status(warehouse, lease_seconds=lease_seconds):
            if job["status"] == "failed":
                continue
            url = str(job["manifest_url"])
            files = parse_manifest(zone.read(url), url).file_urls
            loaded = warehouse.loaded_files(files)
            ids: set[str] = set()
            for file_url in files:
                if file_url in loaded:
                    continue
                for line in gunzip(zone.read(file_url), file_url).split(b"\n"):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(row, dict) and isinstance(row.get("event_id"), str):
                            ids.add(row["event_id"])
            expires = job["lease_expires_at"]
            holds.append(
                Hold(
                    str(job["load_id"]),
                    str(job["status"]),
                    str(expires) if expires else None,
                    frozenset(ids),
                )
            )
        return holds

    return read


def run(
    window: Window,
    sources: Mapping[str, StageSource | None],
    *,
    holds: HoldSource | None = None,
    quarantined: Callable[[], Mapping[str, int]] | None = None,
) -> ReconcileReport:
    """Read every stage through its source and :func:`reconcile` them."""
    seen: dict[str, list[Sighting] | None] = {}
    for name in STAGES:
        source = sources.get(name)
        seen[name] = source(window) if source is not None else None
        log.info(
            "reconcile: stage %s read (%s)",
            name,
            "n/a" if seen[name] is None else len(seen[name] or ()),
        )
    return reconcile(
        window,
        seen,
        holds() if holds is not None else (),
        quarantined() if quarantined is not None else None,
    )


def default_sources(
    warehouse: Warehouse,
    *,
    accepted_log: Path | None = None,
    read_stream: bool = True,
    zone: Zone | None = None,
) -> dict[str, StageSource | None]:
    """The stage sources of the configured pipeline (settings from the environment)."""
    from sluice.config import StreamBackend, StreamSettings
    from sluice.zonestore import S3Zone

    zs = ZoneSettings()
    zone = zone or S3Zone(aws=AwsSettings())
    streams = StreamSettings()
    names = [streams.stream_financial_transaction, streams.stream_insurance_claim]
    stream: StageSource | None = None
    if read_stream:
        if streams.stream_backend is StreamBackend.KINESIS:
            stream = kinesis_stream_source(AwsSettings(), names)
        else:
            stream = kafka_stream_source(KafkaSettings(), names)
    return {
        "accepted": accepted_log_source(accepted_log) if accepted_log else None,
        "stream": stream,
        "s3_clean": zone_clean_source(zone, zs),
        "s3_errors": zone_error_source(zone, zs),
        "warehouse": warehouse_source(warehouse),
    }


def reconcile_pipeline(
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    accepted_log: Path | None = None,
    read_stream: bool = True,
    warehouse: Warehouse | None = None,
) -> ReconcileReport:
    """Reconcile the configured pipeline for ``[start, end)`` (what ``sluice reconcile`` runs).

    The demo calls this in Python; pass ``warehouse`` to reuse an open one.
    """
    from sluice.zonestore import S3Zone
    from warehouse.config import WarehouseSettings
    from warehouse.factory import create_warehouse

    wh = warehouse or create_warehouse()
    zone = S3Zone(aws=AwsSettings())
    try:
        return run(
            Window(start, end),
            default_sources(wh, accepted_log=accepted_log, read_stream=read_stream, zone=zone),
            holds=pending_loads_source(
                wh, zone, lease_seconds=WarehouseSettings().warehouse_load_lease_seconds
            ),
            quarantined=wh.quarantine_counts,
        )
    finally:
        if warehouse is None:
            wh.close()
