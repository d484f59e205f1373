"""The loader end to end: gzip NDJSON in S3 (moto) -> PostgreSQL, with faults."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from sluice.config import ZoneSettings
from sluice.zonestore import S3Zone
from tests.unit.warehouse.contract import ft_row, ic_row
from tests.unit.warehouse.zonefixtures import put_batch
from warehouse.loader import Loader, LoaderOptions
from warehouse.models import LoadState, TargetTable, load_id_for
from warehouse.postgres import PostgresWarehouse

pytestmark = pytest.mark.integration

FT = TargetTable.FINANCIAL_TRANSACTIONS


def loader_for(wh: PostgresWarehouse, zone: Any, zs: ZoneSettings, **opts: Any) -> Loader:
    options = LoaderOptions(**{"retry_delays": (0.0, 0.0), "sweep_grace": 0.0, **opts})
    return Loader(wh, zone, zone_settings=zs, options=options, sleep=lambda s: None)


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_loads_from_s3_exactly_once(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    bucket = zone_settings.s3_bucket
    rows = [ft_row() for _ in range(50)]
    m1 = put_batch(s3_zone, bucket, "financial-transaction", "b1", [rows[:30], rows[30:]])
    put_batch(s3_zone, bucket, "insurance-claim", "b2", [[ic_row(), ic_row()]])
    # a replayed batch: other keys, some of the same events
    put_batch(s3_zone, bucket, "financial-transaction", "b3", [rows[25:35]])
    summary = loader_for(pg_warehouse, s3_zone, zone_settings).run_once()
    # the sweep groups the clean objects per target: one load each
    assert [o.state for o in summary.outcomes] == [LoadState.COMPLETED] * 2
    assert pg_warehouse.count("financial_transactions") == 50
    assert pg_warehouse.count("insurance_claims") == 2
    assert summary.totals()["inserted"] == 52
    # a manifest naming files already loaded: they are skipped, no new rows or audit rows
    again = loader_for(pg_warehouse, s3_zone, zone_settings)
    outcome = again.load_manifest(m1)
    assert outcome is not None and (outcome.files_loaded, outcome.files_skipped) == (0, 2)
    assert again.run_once().outcomes == []
    assert pg_warehouse.count("financial_transactions") == 50
    assert pg_warehouse.count("load_audit") == 4
    schema = pg_warehouse.schema
    audit = query(
        stack.warehouse_dsn,
        f"SELECT outcome, rows_read, rows_staged FROM {schema}.load_audit ORDER BY file_url",
    )
    assert {a[0] for a in audit} == {"completed"}
    stored = query(
        stack.warehouse_dsn,
        f"SELECT amount::text, metadata->>'note', merchant_name "
        f"FROM {schema}.financial_transactions LIMIT 1",
    )
    assert stored == [("125.4000", "tab\there", "Back\\slash Café")]


def test_malformed_line_is_quarantined_with_file_line_reason(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    good = [ft_row(), ft_row()]
    url = put_batch(
        s3_zone,
        zone_settings.s3_bucket,
        "financial-transaction",
        "bad",
        [[good[0], b'{"event_id": oops}', ft_row(occurred_at="2026-11-22T03:00:00"), good[1]]],
    )
    outcome = loader_for(pg_warehouse, s3_zone, zone_settings).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED
    assert (outcome.rows_staged, outcome.rows_rejected) == (2, 2)
    rows = query(
        stack.warehouse_dsn,
        f"SELECT load_id, source, line_no, reason, raw_line FROM {pg_warehouse.schema}.quarantine "
        "ORDER BY line_no",
    )
    assert [(r[0], r[2]) for r in rows] == [(load_id_for(url), 2), (load_id_for(url), 3)]
    assert rows[0][1].endswith("bad-0.gz") and rows[0][3].startswith("malformed JSON")
    assert rows[0][4] == '{"event_id": oops}'
    assert rows[1][3] == "occurred_at: timestamp without a UTC offset"
    assert sorted(pg_warehouse.event_ids(FT)) == sorted(r["event_id"] for r in good)
    audit = query(
        stack.warehouse_dsn,
        f"SELECT rows_read, rows_staged, rows_rejected FROM {pg_warehouse.schema}.load_audit",
    )
    assert audit == [(4, 2, 2)]


class TerminatingZone:
    """Reads from S3, and kills the loader's PostgreSQL backend before the Nth data file."""

    def __init__(self, inner: S3Zone, dsn: str, wh: PostgresWarehouse, on_read: int) -> None:
        self.inner, self.dsn, self.wh, self.on_read = inner, dsn, wh, on_read
        self.reads = 0

    def list(self, bucket: str, prefix: str) -> Any:
        return self.inner.list(bucket, prefix)

    def write(self, url: str, data: bytes) -> None:
        self.inner.write(url, data)

    def read(self, url: str) -> bytes:
        self.reads += 1
        if self.reads == self.on_read:
            pid = self.wh.backend_pid()
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return self.inner.read(url)


def test_warehouse_down_mid_load_rolls_back_and_retries(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    rows = [ft_row() for _ in range(20)]
    url = put_batch(
        s3_zone, zone_settings.s3_bucket, "financial-transaction", "down", [rows[:10], rows[10:]]
    )
    # reads: 1 = manifest, 2 = first file (staged), 3 = second file -> backend killed
    zone = TerminatingZone(s3_zone, stack.warehouse_dsn, pg_warehouse, on_read=3)
    outcome = loader_for(pg_warehouse, zone, zone_settings).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED and outcome.attempt == 2
    assert pg_warehouse.count("financial_transactions") == 20
    audit = query(
        stack.warehouse_dsn,
        f"SELECT outcome, attempt FROM {pg_warehouse.schema}.load_audit ORDER BY attempt, file_url",
    )
    assert audit == [("retry", 1), ("retry", 1), ("completed", 2), ("completed", 2)]
    assert pg_warehouse.count("stg_financial_transactions") == 0


class Crash(BaseException):
    """A process dying between COPY and COMMIT."""


def test_crash_between_copy_and_commit_commits_nothing_and_rerun_loads_once(
    stack: Any,
    pg_warehouse: PostgresWarehouse,
    s3_zone: S3Zone,
    zone_settings: ZoneSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [ft_row() for _ in range(15)]
    url = put_batch(s3_zone, zone_settings.s3_bucket, "financial-transaction", "crash", [rows])
    from warehouse import sqlbase

    real_complete = sqlbase.SqlBatch.complete_load

    def crash(self: Any, *a: Any, **k: Any) -> None:
        real_complete(self, *a, **k)  # COPY and MERGE done, job marked, not committed
        raise Crash

    monkeypatch.setattr(sqlbase.SqlBatch, "complete_load", crash)
    with pytest.raises(Crash):
        loader_for(pg_warehouse, s3_zone, zone_settings).load_manifest(url)
    monkeypatch.setattr(sqlbase.SqlBatch, "complete_load", real_complete)
    # a new process: nothing was committed, the job is still 'running'
    fresh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_warehouse.schema)
    try:
        assert fresh.count("financial_transactions") == 0
        assert fresh.count("load_audit") == 0
        rec = fresh.load_record(load_id_for(url))
        assert rec is not None and rec.state is LoadState.RUNNING
        assert loader_for(fresh, s3_zone, zone_settings).load_manifest(url) is None  # lease held
        outcome = loader_for(fresh, s3_zone, zone_settings, lease_seconds=0).load_manifest(url)
        assert outcome is not None and outcome.state is LoadState.COMPLETED and outcome.attempt == 2
        assert fresh.count("financial_transactions") == 15
        assert loader_for(fresh, s3_zone, zone_settings, lease_seconds=0).load_manifest(url) is None
        assert fresh.count("financial_transactions") == 15
    finally:
        fresh.close()


def test_concurrent_loaders_load_each_manifest_once(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    rows = [ft_row() for _ in range(40)]
    for i in range(4):
        put_batch(
            s3_zone,
            zone_settings.s3_bucket,
            "financial-transaction",
            f"c{i}",
            [rows[i * 10 : (i + 1) * 10]],
        )
    results: list[int] = []

    def run() -> None:
        wh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_warehouse.schema)
        try:
            summary = loader_for(
                wh, S3Zone(client=stack.aws_client("s3")), zone_settings
            ).run_once()
            results.append(summary.totals()["inserted"])
        finally:
            wh.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 40
    assert pg_warehouse.count("financial_transactions") == 40
    audit = query(
        stack.warehouse_dsn,
        f"SELECT COUNT(*) FROM {pg_warehouse.schema}.load_audit WHERE outcome = 'completed'",
    )
    assert audit == [(4,)]


def test_worker_processes_load_from_s3(
    stack: Any, pg_warehouse: PostgresWarehouse, zone_settings: ZoneSettings
) -> None:
    from sluice.config import AwsSettings

    aws = AwsSettings(
        aws_endpoint_url=stack.aws_endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    zone = S3Zone(aws=aws)
    rows = [ft_row() for _ in range(60)]
    url = put_batch(
        zone,
        zone_settings.s3_bucket,
        "financial-transaction",
        "par",
        [rows[:20], [*rows[20:40], b"not json"], rows[40:]],
    )
    loader = loader_for(pg_warehouse, zone, zone_settings, workers=2)
    try:
        outcome = loader.load_manifest(url)
    finally:
        loader.close()
    assert outcome is not None and outcome.state is LoadState.COMPLETED
    assert (outcome.rows_staged, outcome.rows_rejected) == (60, 1)
    fresh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_warehouse.schema)
    try:
        assert fresh.count("financial_transactions") == 60
        assert fresh.count("quarantine") == 1
    finally:
        fresh.close()


def test_lines_postgres_cannot_store_are_quarantined_not_fatal(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    import json

    good = ft_row()
    lines = [
        json.dumps(ft_row(merchant_name="\ud800")).encode(),  # lone surrogate
        json.dumps(ft_row(merchant_name="nul\u0000")).encode(),
        b'{"event_id": "\x00 raw NUL',
        b"\xff\xfe not UTF-8",
        json.dumps(ft_row(metadata={"note": "line\nbreak \\ and \ttab"})).encode(),
        json.dumps(good).encode(),
    ]
    url = put_batch(s3_zone, zone_settings.s3_bucket, "financial-transaction", "odd", [lines])
    outcome = loader_for(pg_warehouse, s3_zone, zone_settings).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED, outcome
    assert (outcome.rows_staged, outcome.rows_rejected) == (2, 4)
    assert [r.line_no for r in outcome.rejected] == [1, 2, 3, 4]
    notes = query(
        stack.warehouse_dsn,
        f"SELECT metadata->>'note' FROM {pg_warehouse.schema}.financial_transactions "
        "WHERE metadata ? 'note'",
    )
    assert ("line\nbreak \\ and \ttab",) in notes


def test_values_postgres_refuses_are_quarantined_and_the_rest_of_the_file_loads(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    """Each of these once passed validation and failed the whole COPY (and the load)."""
    import json

    poison = [
        ft_row(event_id="9f1c2d3e-0000-4000-8000-00000000000a\n"),
        ft_row(occurred_at="2026-11-22T03:00:00Z\n"),
        ft_row(occurred_at="0000-01-01T00:00:00Z"),
        ft_row(occurred_at="\u0662\u0660\u0662\u0666-11-22T03:00:00Z"),
    ]
    amounts = [ft_row(amount="12.5\n"), ft_row(amount="\u0661\u0662")]
    lines = [json.dumps(r).encode() for r in [*poison, *amounts, ft_row()]]
    url = put_batch(s3_zone, zone_settings.s3_bucket, "financial-transaction", "poison", [lines])
    outcome = loader_for(pg_warehouse, s3_zone, zone_settings).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED, outcome
    assert (outcome.rows_staged, outcome.rows_rejected) == (3, 4)
    assert [r.line_no for r in outcome.rejected] == [1, 2, 3, 4]
    stored = query(
        stack.warehouse_dsn,
        f"SELECT event_id, amount::text FROM {pg_warehouse.schema}.financial_transactions",
    )
    by_id = dict(stored)
    assert by_id[amounts[0]["event_id"]] == "12.5000"
    assert by_id[amounts[1]["event_id"]] == "12.0000"
    assert pg_warehouse.count("quarantine") == 4


def test_two_tenants_with_one_event_id_first_row_unchanged_second_quarantined(
    stack: Any, pg_warehouse: PostgresWarehouse, s3_zone: S3Zone, zone_settings: ZoneSettings
) -> None:
    bucket = zone_settings.s3_bucket
    first = ft_row(tenant_id="tenant-a", amount="1000.00", occurred_at="2026-11-22T03:00:00Z")
    second = dict(first, tenant_id="tenant-b", amount="0.01", occurred_at="2026-11-22T04:00:00Z")
    put_batch(s3_zone, bucket, "financial-transaction", "a", [[first]])
    assert loader_for(pg_warehouse, s3_zone, zone_settings).run_once().totals()["inserted"] == 1
    put_batch(s3_zone, bucket, "financial-transaction", "b", [[second]])
    summary = loader_for(pg_warehouse, s3_zone, zone_settings).run_once()
    assert summary.totals()["tenant_conflicts"] == 1 and not summary.failed
    schema = pg_warehouse.schema
    rows = query(
        stack.warehouse_dsn,
        f"SELECT tenant_id, amount FROM {schema}.financial_transactions "
        f"WHERE event_id = '{first['event_id']}'",
    )
    assert [(t, str(a)) for t, a in rows] == [("tenant-a", "1000.0000")]  # unchanged
    quarantined = query(stack.warehouse_dsn, f"SELECT reason, raw_line FROM {schema}.quarantine")
    assert len(quarantined) == 1
    reason, raw = quarantined[0]
    assert reason.startswith(f"tenant_conflict: event_id {first['event_id']} belongs to")
    assert '"tenant_id": "tenant-b"' in raw and '"amount": "0.0100"' in raw
    # reconcile counts it
    assert pg_warehouse.quarantine_counts() == {"tenant_conflict": 1}
