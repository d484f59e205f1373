"""Reconcile's pure comparison and its zone stage sources."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from sluice.config import ZoneSettings
from sluice.zonestore import MemoryZone
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.zonefixtures import ndjson_gz
from warehouse.memory import MemoryWarehouse
from warehouse.models import TargetTable
from warehouse.reconcile import (
    Sighting,
    Window,
    accepted_log_source,
    reconcile,
    run,
    warehouse_source,
    zone_clean_source,
    zone_error_source,
)

T0 = datetime(2026, 11, 22, 3, tzinfo=UTC)


def s(*ids: str) -> list[Sighting]:
    return [Sighting(i, T0) for i in ids]


def test_all_present_is_ok() -> None:
    report = reconcile(
        Window(),
        {
            "accepted": s("a", "b", "c"),
            "stream": s("a", "b", "b", "c"),
            "s3_clean": s("a", "b"),
            "s3_errors": s("c"),
            "warehouse": s("a", "b"),
        },
    )
    assert report.ok
    stream = report.stage("stream")
    assert (stream.total, stream.distinct, stream.duplicates) == (4, 3, ("b",))
    assert report.stage("warehouse").difference == 0


def test_missing_at_each_stage() -> None:
    report = reconcile(
        Window(),
        {
            "accepted": s("a", "b", "c", "d"),
            "stream": s("a", "b", "c"),
            "s3_clean": s("a"),
            "s3_errors": s(),
            "warehouse": s(),
        },
    )
    assert not report.ok
    assert report.stage("stream").missing == ("d",)
    assert report.stage("s3_clean").missing == ("b", "c")
    assert report.stage("warehouse").missing == ("a",)
    assert report.lost == ("a", "b", "c", "d")
    assert report.stage("stream").difference == -1


def test_window_and_unavailable_stages() -> None:
    late = Sighting("z", datetime(2026, 11, 23, tzinfo=UTC))
    report = reconcile(
        Window(T0, datetime(2026, 11, 22, 4, tzinfo=UTC)),
        {
            "accepted": None,
            "stream": [*s("a"), late],
            "s3_clean": s("a"),
            "s3_errors": [Sighting(None)],
            "warehouse": s("a", "a"),
        },
    )
    assert not report.stage("accepted").available
    assert report.stage("stream").total == 1
    assert report.stage("s3_errors").unidentified == 1
    assert report.stage("warehouse").duplicates == ("a",)
    assert not report.ok
    assert report.as_dict()["stages"][0] == {**report.as_dict()["stages"][0], "available": False}


def test_zone_and_warehouse_sources() -> None:
    zone = MemoryZone()
    zs = ZoneSettings(s3_bucket="z")
    rows = [ft_row(), ft_row()]
    zone.write("s3://z/clean/event_type=financial-transaction/dt=2026-11-22/a.gz", ndjson_gz(rows))
    bad_event = json.dumps(
        {
            "event_id": "0e0e0e0e-0000-4000-8000-000000000000",
            "event_type": "financial-transaction",
            "amount": "-1",
        }
    ).encode()
    error = {
        "attemptsMade": 1,
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "invalid_event: bad",
        "rawData": base64.b64encode(bad_event).decode(),
    }
    zone.write(
        "s3://z/errors/processing-failed/2026/11/22/03/e.gz",
        gzip.compress(json.dumps(error).encode() + b"\n"),
    )
    wh = MemoryWarehouse()
    b = wh.begin()
    b.stage(TargetTable.FINANCIAL_TRANSACTIONS, rows[:1], source="t")
    b.merge()
    b.commit()
    report = run(
        Window(),
        {
            "s3_clean": zone_clean_source(zone, zs),
            "s3_errors": zone_error_source(zone, zs),
            "warehouse": warehouse_source(wh),
        },
    )
    assert report.stage("s3_clean").distinct == 2
    assert report.stage("s3_errors").distinct == 1
    assert report.stage("warehouse").missing == (rows[1]["event_id"],)


def test_test_events_are_expected_to_stop_at_the_stream() -> None:
    stream = [*s("a", "b"), Sighting("t", T0, test=True)]
    report = reconcile(
        Window(),
        {
            "accepted": None,
            "stream": stream,
            "s3_clean": s("a", "b"),
            "s3_errors": s(),
            "warehouse": s("a", "b"),
        },
    )
    assert report.ok
    assert report.stage("stream").test_events == 1
    assert report.stage("s3_clean").missing == ()


def test_identify_payload_marks_test_events() -> None:
    from schemas import codec
    from warehouse.reconcile import identify_payload

    event = codec.example_event("insurance-claim")
    event["metadata"] = {"test": "true"}
    framed = codec.encode("insurance-claim", codec.parse_event("insurance-claim", event))
    (sighting,) = identify_payload(framed, ())
    assert sighting.test and sighting.event_id == event["event_id"]
    (plain,) = identify_payload(json.dumps(ft_row()).encode(), ())
    assert not plain.test
    assert identify_payload(b"\x00garbage", ()) == [Sighting(None)]


def test_accepted_log_counts_a_torn_line_as_unidentified(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    path.write_bytes(
        b'{"event_id": "A1", "occurred_at": "2026-11-22T03:00:00Z"}\n'
        b'{"event_id": "b2", "occ\n'
        b"[1]\n"
        b"\n"
        b'{"event_id": "c3"}\n'
    )
    sightings = accepted_log_source(path)(Window())
    assert sightings == [
        Sighting("a1", datetime(2026, 11, 22, 3, tzinfo=UTC)),
        Sighting(None),
        Sighting(None),
        Sighting("c3"),
    ]
    assert accepted_log_source(tmp_path / "absent.ndjson")(Window()) is None


def test_rows_behind_a_running_load_are_withheld_not_lost() -> None:
    from warehouse.reconcile import Hold

    hold = Hold("ld-1", "running", "2026-11-22T03:00:15+00:00", frozenset({"b"}))
    seen = {
        "accepted": None,
        "stream": s("a", "b", "c"),
        "s3_clean": s("a", "b", "c"),
        "s3_errors": [],
        "warehouse": s("a"),
    }
    report = reconcile(Window(), seen, [hold], {"tenant_conflict": 2})
    assert report.lost == ("c",)  # c is behind no job: lost
    assert report.withheld == (("b", hold),)
    assert report.stage("warehouse").missing == ("c",)
    out = report.as_dict()
    assert out["withheld"] == [
        {
            "event_id": "b",
            "load_id": "ld-1",
            "status": "running",
            "lease_expires_at": "2026-11-22T03:00:15+00:00",
        }
    ]
    assert out["quarantined"] == {"tenant_conflict": 2}


def test_pending_loads_source_names_the_job_and_its_lease() -> None:
    from warehouse.loader import Loader, LoaderOptions
    from warehouse.reconcile import pending_loads_source

    wh = MemoryWarehouse()
    wh.migrate()
    zone = MemoryZone()
    zs = ZoneSettings(s3_bucket="z")
    row = ft_row()
    url = "s3://z/clean/event_type=financial-transaction/dt=2026-11-22/a.gz"
    zone.write(url, ndjson_gz([row]))
    loader = Loader(wh, zone, zone_settings=zs, options=LoaderOptions())
    from warehouse.models import ManifestEntry

    manifest = loader.write_manifest(TargetTable.FINANCIAL_TRANSACTIONS, [ManifestEntry(url)])
    job = loader.read_job(manifest)
    assert wh.claim_load(job, lease_seconds=30, max_attempts=5) == 1  # a loader is on it
    report = run(
        Window(),
        {
            "stream": lambda w: [Sighting(row["event_id"])],
            "s3_clean": zone_clean_source(zone, zs),
            "s3_errors": zone_error_source(zone, zs),
            "warehouse": warehouse_source(wh),
        },
        holds=pending_loads_source(wh, zone, lease_seconds=30),
        quarantined=wh.quarantine_counts,
    )
    assert report.lost == () and report.ok
    ((eid, hold),) = report.withheld
    assert eid == row["event_id"] and hold.load_id == job.load_id
    assert hold.status == "running" and hold.lease_expires_at
