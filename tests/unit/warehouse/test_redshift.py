"""The Redshift warehouse against a recording DB-API fake (no cluster here)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.warehouse.contract import ft_row
from warehouse.config import WarehouseSettings
from warehouse.exceptions import WarehouseConflictError, WarehouseUnavailableError
from warehouse.models import TargetTable
from warehouse.redshift import RedshiftWarehouse
from warehouse.sqlgen import CopyOptions

FT = TargetTable.FINANCIAL_TRANSACTIONS


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rowcount = 0
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.conn.statements.append((sql, params))
        self._rows = self.conn.answer(sql)
        self.rowcount = len(self._rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.commits = 0
        self.rollbacks = 0
        self._sock = object()

    conflicts: list[tuple[Any, ...]] = []
    jobs: list[tuple[Any, ...]] = []

    def answer(self, sql: str) -> list[tuple[Any, ...]]:
        if sql.startswith("SELECT pg_last_copy_count()"):
            return [(3,)]
        if "FROM sys_load_error_detail" in sql:
            return [("s3://b/clean/f.gz", 7, "amount", "Invalid digit, Value 'x'")]
        if sql.startswith("SELECT (SELECT COUNT(*)"):
            return [(3, 3, 2, 1, len(self.conflicts))]
        if "WHERE sluice_conflict ORDER BY" in sql:
            return self.conflicts
        if "FROM sys_load_detail" in sql:
            return [("s3://b/clean/event_type=financial-transaction/f0.gz", 5)]
        if (
            "FROM dw.load_jobs WHERE load_id = %s" in sql
            or "FROM dw.load_jobs WHERE state IN" in sql
        ):
            return self.jobs
        if sql.startswith("UPDATE dw.load_jobs"):
            return [()]
        if sql.startswith("SELECT COUNT(*) FROM"):
            return [(0,)]
        return []

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        self._sock = None


def make(conn: FakeConnection) -> RedshiftWarehouse:
    return RedshiftWarehouse(
        schema="dw",
        connection=conn,
        copy_options=CopyOptions(iam_role="arn:aws:iam::1:role/r", max_errors=10),
    )


def test_stage_manifest_copies_and_quarantines_load_errors() -> None:
    conn = FakeConnection()
    wh = make(conn)
    with wh.batch() as b:
        b.load_id = "ld-1"
        result = b.stage_manifest(FT, "s3://b/manifests/financial-transaction/m.manifest")
        (merge,) = b.merge()
    sqls = [s for s, _ in conn.statements]
    assert sqls[0] == "LOCK dw.financial_transactions"  # before staging: writers serialised
    assert sqls[1].startswith("COPY dw.stg_financial_transactions (")
    assert "MANIFEST\nFORMAT AS JSON 'auto'\nGZIP\nTIMEFORMAT 'auto'" in sqls[1]
    assert (result.rows_staged, result.rows_rejected) == (3, 1)
    (rej,) = result.rejected
    assert (rej.source, rej.line_no, rej.reason) == (
        "s3://b/clean/f.gz",
        7,
        "amount: Invalid digit, Value 'x'",
    )
    quarantine = next(p for s, p in conn.statements if s.startswith("INSERT INTO dw.quarantine"))
    assert quarantine[:3] == ["ld-1", "s3://b/clean/f.gz", 7]
    assert any(s.startswith("MERGE INTO dw.financial_transactions") for s in sqls)
    assert (merge.inserted, merge.updated) == (1, 1)
    assert conn.commits == 1
    assert not any("TRUNCATE" in s for s in sqls)


def test_stage_rows_uses_multi_row_insert_with_json_parse() -> None:
    conn = FakeConnection()
    wh = make(conn)
    with wh.batch() as b:
        b.stage(FT, [ft_row(), ft_row()], source="kafka")
    assert conn.statements[0][0] == "LOCK dw.financial_transactions"
    sql, params = conn.statements[1]
    assert sql.startswith("INSERT INTO dw.stg_financial_transactions (")
    assert sql.count("JSON_PARSE(%s)") == 2 and len(params) == 38


def test_migrate_renders_the_redshift_dialect() -> None:
    conn = FakeConnection()
    make(conn).migrate()
    text = "\n".join(s for s, _ in conn.statements)
    assert "DISTKEY (event_id)" in text and "SUPER" in text and "UNLOGGED" not in text


def test_from_settings_reads_the_dsn_and_copy_options() -> None:
    settings = WarehouseSettings(
        warehouse_backend="redshift",
        warehouse_dsn="redshift://loader:p%40ss@cluster.example.com:5439/analytics",
        warehouse_schema="dw",
        warehouse_iam_role="arn:aws:iam::1:role/r",
        warehouse_copy_region="eu-west-1",
    )
    wh = RedshiftWarehouse.from_settings(settings)
    assert wh._params["host"] == "cluster.example.com" and wh._params["password"] == "p@ss"
    assert wh._params["database"] == "analytics"
    assert wh.copy_options is not None and wh.copy_options.region == "eu-west-1"


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [("40001", WarehouseConflictError), ("57P01", WarehouseUnavailableError)],
)
def test_errors_keep_their_sqlstate(sqlstate: str, kind: type) -> None:
    from redshift_connector.error import ProgrammingError

    err = make(FakeConnection()).translate(ProgrammingError({"C": sqlstate, "M": "boom"}))
    assert isinstance(err, kind) and err.code == sqlstate


def test_serializable_isolation_violation_is_retryable() -> None:
    from redshift_connector.error import ProgrammingError

    message = (
        "1023 DETAIL: Serializable isolation violation on table - 1234, "
        "transactions forming the cycle are: 1, 2"
    )
    err = make(FakeConnection()).translate(ProgrammingError({"C": "XX000", "M": message}))
    assert isinstance(err, WarehouseConflictError) and err.retryable


def test_loader_copies_the_manifest_or_a_manifest_of_the_remaining_files() -> None:
    from sluice.config import ZoneSettings
    from sluice.zone import parse_manifest
    from sluice.zonestore import MemoryZone
    from warehouse.loader import Loader
    from warehouse.models import LoadJob, Manifest, ManifestEntry

    conn = FakeConnection()
    wh = make(conn)
    zone = MemoryZone()
    entries = tuple(
        ManifestEntry(f"s3://b/clean/event_type=financial-transaction/f{i}.gz", True, 10, 4)
        for i in range(3)
    )
    url = "s3://b/manifests/financial-transaction/m.manifest"
    job = LoadJob(url, FT, Manifest(entries, url))
    loader = Loader(wh, zone, zone_settings=ZoneSettings(s3_bucket="b"))
    b = wh.begin()
    audits, total = loader._stage(b, job, list(entries), 1)
    b.rollback()
    assert f"FROM '{url}'" in conn.statements[1][0]
    # lines per file from SYS_LOAD_DETAIL where Redshift reports them, else the manifest's
    assert [(a.rows_read, a.rows_staged, a.rows_rejected) for a in audits] == [
        (5, 5, 0),
        (4, 4, 0),
        (4, 4, 0),
    ]
    assert total.rows_rejected == 1

    conn.statements.clear()
    b = wh.begin()
    loader._stage(b, job, list(entries[1:]), 2)
    b.rollback()
    copied = conn.statements[1][0].split("\n")[1].split("'")[1]
    assert copied != url and "/loader-" in copied
    assert parse_manifest(zone.read(copied)).file_urls == tuple(e.url for e in entries[1:])
