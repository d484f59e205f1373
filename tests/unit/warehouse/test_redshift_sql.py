"""Every statement the Redshift warehouse sends, parsed by a real Redshift-dialect parser.

The statements are captured from :class:`RedshiftWarehouse` on a recording DB-API fake
while it does everything the loader, the sink and reconcile ask of it (migrations, job
claims and leases, COPY from a manifest with rejected lines, rows inserted directly, a
merge with a tenant conflict, audit, failure records, reads). Each must parse with
sqlglot's ``redshift`` dialect, and none may read a system view that exists only on
provisioned clusters (STL/STV/SVL/SVCS): Redshift Serverless has only the SYS views.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlglot
from sqlglot import exp

from sluice.config import ZoneSettings
from sluice.zone import manifest_body
from sluice.zonestore import MemoryZone
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.test_redshift import FakeConnection, make
from tests.unit.warehouse.zonefixtures import ndjson_gz
from warehouse.loader import Loader, LoaderOptions
from warehouse.models import LoadJob, LoadState, ManifestEntry, TargetTable

FT = TargetTable.FINANCIAL_TRANSACTIONS
PROVISIONED_ONLY = re.compile(r"^(stl|stv|svl|svcs)_", re.IGNORECASE)
"""System view families Redshift Serverless does not have."""


def _captured() -> list[str]:
    conn = FakeConnection()
    now = datetime.now(UTC)
    conn.jobs = [("ld-x", "s3://b/m.manifest", FT.value, "ready", 0, None, 0, 0, 0, 0, now)]
    row = ft_row()
    conn.conflicts = [tuple(row.values())]
    wh = make(conn)
    wh.migrate()
    wh.schema_version()
    zone = MemoryZone()
    url = "s3://b/clean/event_type=financial-transaction/dt=2026-11-22/f.gz"
    zone.write(url, ndjson_gz([ft_row()]))
    manifest = "s3://b/manifests/financial-transaction/loader-1.manifest"
    zone.write(manifest, manifest_body([ManifestEntry(url, True)]))
    loader = Loader(
        wh,
        zone,
        zone_settings=ZoneSettings(s3_bucket="b"),
        options=LoaderOptions(retry_delays=()),
        sleep=lambda s: None,
    )
    loader.load_manifest(manifest)  # claim, lock, COPY ... MANIFEST, errors, merge, audit
    with wh.batch() as b:  # the consumers' sink: rows inserted, merged
        b.lock(list(TargetTable))
        b.stage(FT, [ft_row(), ft_row()], source="kafka:t/0@1")
        b.merge()
    job = loader.read_job(manifest)
    wh.fail_load(job, 1, error="boom", retry=True, files=[url])
    wh.renew_lease(job.load_id, 1)
    wh.jobs([LoadState.RUNNING, LoadState.FAILED])
    wh.job_states([job.load_id])
    wh.loaded_files([url])
    wh.load_record(job.load_id)
    wh.event_ids(FT, now, now)
    wh.count("quarantine")
    assert isinstance(job, LoadJob)
    return [sql for sql, _ in conn.statements]


STATEMENTS = _captured()


def test_the_capture_covers_every_kind_of_statement() -> None:
    heads = {" ".join(s.split()[:2]).upper() for s in STATEMENTS}
    for head in (
        "CREATE TABLE",
        "CREATE TEMP",
        "LOCK DW.LOAD_JOBS",
        "COPY DW.STG_FINANCIAL_TRANSACTIONS",
        "MERGE INTO",
        "INSERT INTO",
        "UPDATE DW.LOAD_JOBS",
        "DELETE FROM",
        "DROP TABLE",
    ):
        assert head in heads, head
    # the loader locks its target and the audit; the sink both targets
    assert "LOCK dw.financial_transactions, dw.load_audit" in STATEMENTS
    assert "LOCK dw.financial_transactions, dw.insurance_claims" in STATEMENTS
    text = "\n".join(STATEMENTS)
    assert "sys_load_error_detail" in text and "sys_load_detail" in text
    assert "INSERT INTO dw.quarantine" in text  # the tenant conflict was quarantined


@pytest.mark.parametrize("sql", STATEMENTS, ids=lambda s: " ".join(s.split()[:4])[:60])
def test_statement_parses_as_redshift(sql: str) -> None:
    # %s placeholders are the driver's; Redshift sees literals there
    text = sql.replace("%s", "'x'")
    if text.upper().startswith("COPY "):
        # sqlglot parses COPY's leading clauses and keeps the rest as options;
        # the grammar of the options is checked in test_sqlgen.py
        parsed = sqlglot.parse(text, read="redshift")
    else:
        parsed = sqlglot.parse(text, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
    assert parsed and all(p is not None for p in parsed)
    for tree in parsed:
        assert tree is not None
        for table in tree.find_all(exp.Table):
            assert not PROVISIONED_ONLY.match(table.name), f"provisioned-only view {table.name}"


def test_no_provisioned_only_view_anywhere_in_the_sql() -> None:
    for sql in STATEMENTS:
        assert not re.search(r"\b(stl|stv|svl|svcs)_\w+", sql, re.IGNORECASE), sql


def test_the_check_catches_a_provisioned_only_view() -> None:
    tree = sqlglot.parse_one(
        "SELECT filename FROM stl_load_errors WHERE query = pg_last_copy_id()", read="redshift"
    )
    names = [t.name for t in tree.find_all(exp.Table)]
    assert names == ["stl_load_errors"] and PROVISIONED_ONLY.match(names[0])
