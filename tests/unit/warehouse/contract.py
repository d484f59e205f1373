"""The Warehouse contract: one test class run against every implementation.

A module using it defines a ``warehouse`` fixture (parametrised over the backends it
covers) that yields a migrated, empty warehouse.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from sluice.errors import SluiceError
from warehouse.base import Warehouse
from warehouse.models import LoadJob, LoadState, Manifest, ManifestEntry, TargetTable

FT = TargetTable.FINANCIAL_TRANSACTIONS
IC = TargetTable.INSURANCE_CLAIMS


def ft_row(**over: Any) -> dict[str, Any]:
    """A valid financial-transaction warehouse row."""
    row: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "financial-transaction",
        "schema_version": 1,
        "occurred_at": "2026-11-22T03:00:00.123456Z",
        "ingested_at": "2026-11-22T03:00:01.000000Z",
        "source": "mobile-app",
        "tenant_id": "tenant-1",
        "metadata": {"channel": "ios", "note": "tab\there"},
        "transaction_id": "tx-1",
        "account_id": "acc-1",
        "amount": "125.40",
        "currency": "EUR",
        "transaction_type": "card_payment",
        "channel": "pos",
        "status": "authorized",
        "card_number": "411111******1111",
        "merchant_name": "Back\\slash Café",
        "merchant_mcc": "5411",
        "merchant_country": "DE",
    }
    row.update(over)
    return row


def ic_row(**over: Any) -> dict[str, Any]:
    """A valid insurance-claim warehouse row."""
    row: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "insurance-claim",
        "schema_version": 1,
        "occurred_at": "2026-11-22T03:00:00.000000Z",
        "ingested_at": None,
        "source": "portal",
        "tenant_id": "tenant-2",
        "metadata": {},
        "claim_id": "cl-1",
        "policy_id": "pol-1",
        "policyholder_id": "ph-1",
        "line_of_business": "motor",
        "loss_date": "2026-11-20",
        "reported_at": "2026-11-21T10:00:00.000000Z",
        "claim_amount": "1000",
        "currency": "JPY",
        "status": "open",
        "cause_of_loss": "collision",
        "claimant_national_id": "hmac-sha256:" + "ab" * 32,
        "loss_location_country": "JP",
        "loss_location_region": "Tokyo",
        "loss_location_postal_code": "100-0001",
    }
    row.update(over)
    return row


def job(name: str = "m1", table: TargetTable = FT, files: int = 1) -> LoadJob:
    """A load job for a made-up manifest."""
    url = f"s3://zone/manifests/{table.event_type.value}/{name}-{uuid.uuid4().hex[:6]}.manifest"
    entries = tuple(ManifestEntry(f"s3://zone/clean/{name}-{i}.gz") for i in range(files))
    return LoadJob(url, table, Manifest(entries, url))


class WarehouseContract:
    """Behaviour every :class:`Warehouse` implementation must show."""

    def test_is_a_warehouse(self, warehouse: Warehouse) -> None:
        assert isinstance(warehouse, Warehouse)

    def test_migrate_is_idempotent(self, warehouse: Warehouse) -> None:
        assert warehouse.migrate() == []
        assert warehouse.schema_version() >= 1

    def test_merge_inserts_new_events(self, warehouse: Warehouse) -> None:
        rows = [ft_row(), ft_row()]
        with warehouse.batch() as b:
            staged = b.stage(FT, rows, source="t")
            (result,) = b.merge()
        assert staged.rows_staged == 2 and staged.rejected == ()
        assert (result.inserted, result.updated, result.unchanged) == (2, 0, 0)
        assert sorted(warehouse.event_ids(FT)) == sorted(r["event_id"] for r in rows)
        assert warehouse.count("stg_financial_transactions") == 0

    def test_identical_reload_changes_nothing(self, warehouse: Warehouse) -> None:
        rows = [ft_row(), ic_row()]
        for _ in range(2):
            with warehouse.batch() as b:
                b.stage(FT, rows[:1], source="t")
                b.stage(IC, rows[1:], source="t")
                results = b.merge()
        assert {(r.table, r.inserted, r.updated, r.unchanged) for r in results} == {
            (FT, 0, 0, 1),
            (IC, 0, 0, 1),
        }
        assert warehouse.count("financial_transactions") == 1
        assert warehouse.count("insurance_claims") == 1

    def test_newest_occurred_at_wins(self, warehouse: Warehouse) -> None:
        first = ft_row(occurred_at="2026-11-22T03:00:00Z", status="authorized")
        newer = dict(first, occurred_at="2026-11-22T04:00:00Z", status="settled")
        older = dict(first, occurred_at="2026-11-22T02:00:00Z", status="stale")
        with warehouse.batch() as b:
            b.stage(FT, [first], source="t")
            b.merge()
        with warehouse.batch() as b:
            b.stage(FT, [older], source="t")
            (r_old,) = b.merge()
        with warehouse.batch() as b:
            b.stage(FT, [newer], source="t")
            (r_new,) = b.merge()
        assert (r_old.updated, r_old.unchanged) == (0, 1)
        assert (r_new.updated, r_new.inserted) == (1, 0)
        assert warehouse.count("financial_transactions") == 1

    def test_another_tenants_event_id_is_quarantined_never_merged(
        self, warehouse: Warehouse
    ) -> None:
        first = ft_row(tenant_id="tenant-a", amount="1000.00", occurred_at="2026-11-22T03:00:00Z")
        other = dict(first, tenant_id="tenant-b", amount="0.01", occurred_at="2026-11-22T04:00:00Z")
        with warehouse.batch() as b:
            b.stage(FT, [first], source="t")
            b.merge()
        before = warehouse.count("quarantine")
        with warehouse.batch() as b:
            b.stage(FT, [other], source="t")
            (result,) = b.merge()
        assert (result.inserted, result.updated, result.tenant_conflicts) == (0, 0, 1)
        assert warehouse.count("financial_transactions") == 1
        assert warehouse.count("quarantine") == before + 1
        assert warehouse.quarantine_counts().get("tenant_conflict") == 1
        # the owner's own correction still merges
        newer = dict(first, amount="999.00", occurred_at="2026-11-22T05:00:00Z")
        with warehouse.batch() as b:
            b.stage(FT, [newer], source="t")
            (result,) = b.merge()
        assert (result.updated, result.tenant_conflicts) == (1, 0)

    def test_two_tenants_in_one_batch_the_first_ingested_owns_the_event(
        self, warehouse: Warehouse
    ) -> None:
        a = ft_row(tenant_id="tenant-a", ingested_at="2026-11-22T03:00:01Z")
        b_row = dict(a, tenant_id="tenant-b", ingested_at="2026-11-22T03:00:02Z")
        with warehouse.batch() as b:
            b.stage(FT, [b_row, a], source="t")
            (result,) = b.merge()
        assert (result.inserted, result.tenant_conflicts) == (1, 1)
        assert warehouse.count("financial_transactions") == 1
        assert warehouse.quarantine_counts() == {"tenant_conflict": 1}

    def test_duplicates_in_one_batch_merge_once_newest_wins(self, warehouse: Warehouse) -> None:
        a = ft_row(occurred_at="2026-11-22T03:00:00Z")
        b_newer = dict(a, occurred_at="2026-11-22T05:00:00Z")
        with warehouse.batch() as b:
            b.stage(FT, [a, b_newer, a], source="t")
            (result,) = b.merge()
        assert (result.staged, result.distinct, result.inserted, result.duplicates) == (3, 1, 1, 2)
        assert warehouse.count("financial_transactions") == 1

    def test_rollback_leaves_nothing(self, warehouse: Warehouse) -> None:
        def crash() -> None:
            with warehouse.batch() as b:
                b.stage(FT, [ft_row()], source="t")
                b.merge()
                raise RuntimeError("crash before commit")

        with pytest.raises(RuntimeError):
            crash()
        assert warehouse.count("financial_transactions") == 0
        assert warehouse.count("stg_financial_transactions") == 0

    def test_explicit_begin_commit(self, warehouse: Warehouse) -> None:
        b = warehouse.begin()
        b.stage(IC, [ic_row()], source="t")
        b.merge()
        b.commit()
        b.rollback()  # after commit: a no-op
        assert warehouse.count("insurance_claims") == 1

    def test_rejected_rows_are_quarantined_and_the_rest_loads(self, warehouse: Warehouse) -> None:
        good = ft_row()
        bad = ft_row(amount="12.34567")
        with warehouse.batch() as b:
            staged = b.stage(FT, [good, bad, ft_row(event_id="nope")], source="kafka:t/0@10")
            b.merge()
        assert staged.rows_staged == 1
        assert [(r.line_no, r.reason.split(":")[0]) for r in staged.rejected] == [
            (2, "amount"),
            (3, "event_id"),
        ]
        assert warehouse.count("quarantine") == 2
        assert warehouse.event_ids(FT) == [good["event_id"]]

    def test_stage_lines_reports_file_line_and_reason(self, warehouse: Warehouse) -> None:
        import json

        lines = [json.dumps(ft_row()).encode(), b"{not json", b"", json.dumps(ft_row()).encode()]
        with warehouse.batch() as b:
            staged = b.stage_lines(FT, lines, source="s3://zone/clean/f.gz")
            b.merge()
        assert (staged.rows_read, staged.rows_staged) == (3, 2)
        (rej,) = staged.rejected
        assert (rej.source, rej.line_no, rej.raw) == ("s3://zone/clean/f.gz", 2, "{not json")
        assert rej.reason.startswith("malformed JSON")
        assert warehouse.count("financial_transactions") == 2

    def test_event_ids_window(self, warehouse: Warehouse) -> None:
        early = ft_row(occurred_at="2026-11-22T01:00:00Z")
        late = ft_row(occurred_at="2026-11-22T05:00:00Z")
        with warehouse.batch() as b:
            b.stage(FT, [early, late], source="t")
            b.merge()
        start = datetime(2026, 11, 22, 2, tzinfo=UTC)
        assert warehouse.event_ids(FT, start, None) == [late["event_id"]]
        assert warehouse.event_ids(FT, None, start) == [early["event_id"]]

    def test_load_state_machine(self, warehouse: Warehouse) -> None:
        j = job()
        assert warehouse.claim_load(j, lease_seconds=600, max_attempts=2) == 1
        rec = warehouse.load_record(j.load_id)
        assert rec is not None and rec.state is LoadState.RUNNING
        assert warehouse.claim_load(j, lease_seconds=600, max_attempts=2) is None  # running
        state = warehouse.fail_load(j, 1, error="boom", retry=True, files=j.manifest.file_urls)
        assert state is LoadState.RETRY
        assert warehouse.claim_load(j, lease_seconds=600, max_attempts=2) == 2
        state = warehouse.fail_load(
            j, 2, error="boom again", retry=False, files=j.manifest.file_urls
        )
        assert state is LoadState.FAILED
        assert warehouse.claim_load(j, lease_seconds=600, max_attempts=2) is None
        rec = warehouse.load_record(j.load_id)
        assert rec is not None and (rec.state, rec.attempts, rec.last_error) == (
            LoadState.FAILED,
            2,
            "boom again",
        )
        assert warehouse.count("load_audit") == 2

    def test_completed_load_is_not_claimed_again(self, warehouse: Warehouse) -> None:
        from warehouse.models import FileAudit

        j = job(files=2)
        attempt = warehouse.claim_load(j, lease_seconds=600, max_attempts=3)
        assert attempt == 1
        with warehouse.batch() as b:
            staged = b.stage(FT, [ft_row()], source=j.manifest.file_urls[0])
            (merge,) = b.merge()
            b.record(
                [
                    FileAudit(j.load_id, j.manifest_url, u, FT, LoadState.COMPLETED, 1, 1, 1, 0)
                    for u in j.manifest.file_urls
                ]
            )
            b.complete_load(j.load_id, merge, staged)
        assert warehouse.claim_load(j, lease_seconds=0, max_attempts=3) is None
        rec = warehouse.load_record(j.load_id)
        assert rec is not None and rec.state is LoadState.COMPLETED and rec.rows_inserted == 1
        assert warehouse.loaded_files([*j.manifest.file_urls, "s3://zone/other.gz"]) == set(
            j.manifest.file_urls
        )

    def test_expired_lease_is_claimed_again(self, warehouse: Warehouse) -> None:
        j = job()
        assert warehouse.claim_load(j, lease_seconds=600, max_attempts=3) == 1
        assert warehouse.claim_load(j, lease_seconds=0, max_attempts=3) == 2

    def test_batch_cannot_be_used_after_commit(self, warehouse: Warehouse) -> None:
        b = warehouse.begin()
        b.commit()
        with pytest.raises(SluiceError):
            b.stage(FT, [ft_row()], source="t")
