"""The reconcile report as text for an 80-column terminal (pure rendering)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from warehouse.reconcile import Sighting, Window, reconcile
from warehouse.reconcile_view import MAX_IDS, render_reconcile


def test_fits_80_columns_with_every_missing_id_whole() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    report = reconcile(
        Window(),
        {
            "accepted": None,
            "stream": [Sighting(i, at) for i in ids] * 1000 + [Sighting(None, at)],
            "s3_clean": [Sighting(i, at) for i in ids[:5]],
            "s3_errors": [],
            "warehouse": [Sighting(i, at) for i in ids[:4]],
        },
    )
    lines = render_reconcile(report, 80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert lines[0].split() == [
        "stage",
        "events",
        "distinct",
        "diff",
        "dups",
        "missing",
        "unident",
        "tests",
    ]
    assert lines[1].split() == ["accepted", "n/a"]
    assert lines[2].split()[:2] == ["stream", "30001"]
    missing_s3 = [line for line in lines if line.startswith("missing at s3_clean: ")]
    assert len(missing_s3) == MAX_IDS
    assert all(line.split(": ")[1] in ids for line in missing_s3)
    assert "... and 5 more missing at s3_clean (--json)" in lines
    assert f"missing at warehouse: {ids[4]}" in lines
    assert lines[-1] == "MISMATCH"


def test_withheld_and_quarantined_fit_80_columns() -> None:
    from warehouse.reconcile import Hold

    at = datetime(2026, 1, 1, tzinfo=UTC)
    eid = str(uuid.uuid4())
    hold = Hold(
        load_id="load-" + "0" * 40,
        status="running",
        lease_expires_at="2026-01-01T00:05:00+00:00",
        event_ids=frozenset({eid}),
    )
    report = reconcile(
        Window(),
        {
            "accepted": None,
            "stream": [Sighting(eid, at)],
            "s3_clean": [Sighting(eid, at)],
            "s3_errors": [],
            "warehouse": [],
        },
        holds=[hold],
        quarantined={"tenant_conflict": 2},
    )
    lines = render_reconcile(report, 80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert f"withheld: {eid}" in lines
    assert f"  behind load {hold.load_id}" in lines
    assert f"  (running, lease until {hold.lease_expires_at})" in lines
    assert "quarantined (tenant_conflict): 2" in lines
