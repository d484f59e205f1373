"""SQL building without a connection: golden strings and documented-syntax checks."""

from __future__ import annotations

import re

import pytest

from warehouse import sqlgen
from warehouse.models import TargetTable
from warehouse.sqlgen import CopyOptions, Dialect
from warehouse.tables import TABLE_SPECS

FT = TargetTable.FINANCIAL_TRANSACTIONS
IC = TargetTable.INSURANCE_CLAIMS

FT_COLS = (
    "event_id, event_type, schema_version, occurred_at, ingested_at, source, tenant_id, "
    "metadata, transaction_id, account_id, amount, currency, transaction_type, channel, "
    "status, card_number, merchant_name, merchant_mcc, merchant_country"
)


def test_copy_from_manifest_golden() -> None:
    sql = sqlgen.copy_from_manifest(
        "sluice",
        FT,
        "s3://sluice-zone/manifests/financial-transaction/a.manifest",
        CopyOptions(
            iam_role="arn:aws:iam::123456789012:role/sluice-copy",
            region="eu-west-1",
            max_errors=100,
            extra="COMPUPDATE OFF STATUPDATE OFF",
        ),
    )
    assert sql == (
        f"COPY sluice.stg_financial_transactions ({FT_COLS})\n"
        "FROM 's3://sluice-zone/manifests/financial-transaction/a.manifest'\n"
        "IAM_ROLE 'arn:aws:iam::123456789012:role/sluice-copy'\n"
        "MANIFEST\n"
        "FORMAT AS JSON 'auto'\n"
        "GZIP\n"
        "TIMEFORMAT 'auto'\n"
        "DATEFORMAT 'auto'\n"
        "REGION 'eu-west-1'\n"
        "MAXERROR 100\n"
        "COMPUPDATE OFF STATUPDATE OFF"
    )


def test_copy_from_manifest_follows_the_documented_grammar() -> None:
    # COPY table-name [ column-list ] FROM data_source authorization
    # [ [ FORMAT ] [ AS ] data_format ] [ parameter [ argument ] [, ... ] ]
    # (Amazon Redshift COPY reference)
    sql = sqlgen.copy_from_manifest("s", IC, "s3://b/m.manifest", CopyOptions(iam_role="arn:r"))
    one_line = " ".join(sql.split("\n"))
    grammar = re.compile(
        r"^COPY s\.stg_insurance_claims \([a-z_, ]+\) FROM 's3://[^']+' IAM_ROLE '[^']+' "
        r"MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' DATEFORMAT 'auto' MAXERROR \d+$"
    )
    assert grammar.match(one_line), one_line


@pytest.mark.parametrize(
    ("url", "role"),
    [("http://b/m.manifest", "arn:r"), ("s3://b/m'; DROP TABLE x; --", "arn:r\nx")],
)
def test_copy_from_manifest_refuses_bad_input(url: str, role: str) -> None:
    with pytest.raises(ValueError):
        sqlgen.copy_from_manifest("s", FT, url, CopyOptions(iam_role=role))


def test_literal_doubles_quotes() -> None:
    assert sqlgen.literal("s3://b/o'k") == "'s3://b/o''k'"


def test_copy_from_stdin_golden() -> None:
    assert sqlgen.copy_from_stdin("w1", FT) == (
        f"COPY w1.stg_financial_transactions ({FT_COLS}) FROM STDIN"
    )


def test_merge_golden() -> None:
    sql = sqlgen.merge("sluice", FT)
    updates = ",\n        ".join(
        f"{c} = s.{c}" for c in FT_COLS.split(", ") if c not in ("event_id", "tenant_id")
    )
    values = ", ".join(f"s.{c}" for c in FT_COLS.split(", "))
    assert sql == (
        "MERGE INTO sluice.financial_transactions\n"
        "USING sluice_merge_financial_transactions AS s\n"
        "ON financial_transactions.event_id = s.event_id\n"
        f"WHEN MATCHED THEN UPDATE SET\n        {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({FT_COLS})\n"
        f"    VALUES ({values})"
    )


def test_merge_uses_only_what_redshift_documents() -> None:
    # MERGE INTO target_table USING source_table [ [ AS ] alias ] ON match_condition
    # [ WHEN MATCHED THEN { UPDATE SET col_name = { expr } [,...] | DELETE }
    #   WHEN NOT MATCHED THEN INSERT [ ( col_name [,...] ) ] VALUES ( { expr } [, ...] ) ]
    for table in TargetTable:
        sql = " ".join(sqlgen.merge("sluice", table).split())
        pattern = (
            r"^MERGE INTO sluice\.\w+ USING \w+ AS s ON \w+\.event_id = s\.event_id "
            r"WHEN MATCHED THEN UPDATE SET (\w+ = s\.\w+, )*\w+ = s\.\w+ "
            r"WHEN NOT MATCHED THEN INSERT \([\w, ]+\) VALUES \([\w., ]+\)$"
        )
        assert re.match(pattern, sql), sql
        # no source subquery, no target alias, no extra condition on WHEN MATCHED
        assert "(SELECT" not in sql and "WHEN MATCHED AND" not in sql
        assert "event_id = s.event_id," not in sql.split("UPDATE SET")[1]
        # a merge never moves a row to another tenant
        assert "tenant_id = s.tenant_id" not in sql.split("UPDATE SET")[1]


def test_merge_source_keeps_newest_per_tenant_and_flags_other_tenants() -> None:
    sql = sqlgen.build_merge_source("sluice", IC)
    assert sql.startswith("CREATE TEMP TABLE sluice_merge_insurance_claims AS\n")
    assert (
        "PARTITION BY s.event_id, s.tenant_id ORDER BY s.occurred_at DESC, "
        "s.ingested_at DESC NULLS LAST" in sql
    )
    # the owner: the target row's tenant, else the staged row ingested first
    assert "COALESCE(t.tenant_id, FIRST_VALUE(s.tenant_id) OVER (" in sql
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING" in sql
    assert "LEFT JOIN sluice.insurance_claims AS t ON t.event_id = s.event_id" in sql
    assert "(r.tenant_id <> r.sluice_owner) AS sluice_conflict" in sql
    assert sql.endswith(
        "WHERE r.sluice_rn = 1\n"
        "  AND (r.tenant_id <> r.sluice_owner\n"
        "       OR NOT r.sluice_matched OR r.occurred_at > r.sluice_target_version)"
    )


def test_merge_statements_order_and_clear_with_delete() -> None:
    steps = sqlgen.merge_statements("x", FT)
    assert [s.split()[0] for s in steps] == ["CREATE", "SELECT", "MERGE", "DROP", "DELETE"]
    assert steps[-1] == "DELETE FROM x.stg_financial_transactions"
    assert not any("TRUNCATE" in s for s in steps)  # would commit a Redshift transaction
    full = sqlgen.merge_steps("x", FT)
    assert (
        full.conflicts.startswith("SELECT event_id, ") and "WHERE sluice_conflict" in full.conflicts
    )
    assert (
        full.drop_conflicts
        == "DELETE FROM sluice_merge_financial_transactions WHERE sluice_conflict"
    )


def test_lock_statements_per_dialect_in_name_order() -> None:
    both = [IC, FT]
    assert sqlgen.lock_targets("x", both, Dialect.POSTGRES) == (
        "LOCK TABLE x.financial_transactions, x.insurance_claims IN SHARE ROW EXCLUSIVE MODE"
    )
    assert sqlgen.lock_targets("x", both, Dialect.REDSHIFT) == (
        "LOCK x.financial_transactions, x.insurance_claims"
    )
    assert sqlgen.lock_jobs("x", Dialect.REDSHIFT) == "LOCK x.load_jobs"
    assert sqlgen.lock_targets("x", [FT], Dialect.REDSHIFT, audit=True) == (
        "LOCK x.financial_transactions, x.load_audit"
    )


def test_job_statements_avoid_on_conflict_and_returning() -> None:
    text = " ".join(
        [
            sqlgen.insert_job_if_missing("s"),
            sqlgen.claim_job("s"),
            sqlgen.complete_job("s"),
            sqlgen.fail_job("s"),
            sqlgen.insert_audit("s", 2),
            sqlgen.insert_quarantine("s", 2),
        ]
    )
    assert "ON CONFLICT" not in text and "RETURNING" not in text
    assert sqlgen.insert_audit("s", 2).count("%s") == 22
    assert sqlgen.insert_quarantine("s", 3).count("%s") == 21


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError):
        sqlgen.qualified("bad-schema", "t")
    with pytest.raises(ValueError):
        sqlgen.count_rows("s", "pg_authid")


def test_redshift_copy_error_queries_use_the_sys_views() -> None:
    assert "FROM sys_load_error_detail WHERE query_id = pg_last_copy_id()" in (
        sqlgen.copy_load_errors()
    )
    assert sqlgen.last_copy_count() == "SELECT pg_last_copy_count()"
    assert "FROM sys_load_detail WHERE query_id = pg_last_copy_id()" in (sqlgen.copy_load_commits())


def _ddl(dialect: Dialect) -> list[str]:
    out: list[str] = []
    for m in sqlgen.migrations():
        out.extend(sqlgen.render_ddl(m.text, dialect, "sluice"))
    return out


def test_ddl_redshift_has_keys_and_super() -> None:
    ddl = _ddl(Dialect.REDSHIFT)
    targets = [s for s in ddl if s.startswith("CREATE TABLE IF NOT EXISTS sluice.financial")]
    assert targets and "DISTKEY (event_id) COMPOUND SORTKEY (occurred_at, tenant_id)" in targets[0]
    assert "metadata          SUPER" in targets[0]
    text = "\n".join(ddl)
    assert "UNLOGGED" not in text and "JSONB" not in text and "CREATE INDEX" not in text
    assert "{{" not in text


def test_ddl_postgres_has_no_redshift_clauses() -> None:
    text = "\n".join(_ddl(Dialect.POSTGRES))
    assert "DISTKEY" not in text and "SORTKEY" not in text and "DISTSTYLE" not in text
    assert "JSONB" in text and "CREATE UNLOGGED TABLE IF NOT EXISTS sluice.stg_" in text
    assert "CREATE INDEX IF NOT EXISTS load_audit_file_idx" in text


@pytest.mark.parametrize("dialect", list(Dialect))
def test_ddl_columns_match_the_table_specs(dialect: Dialect) -> None:
    ddl = _ddl(dialect)
    for table, spec in TABLE_SPECS.items():
        stmt = next(
            s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS sluice.{table.value} (")
        )
        body = stmt.split("(", 1)[1]
        names = [
            line.split()[0]
            for line in body.splitlines()
            if line.strip() and not line.strip().startswith(("PRIMARY", ")"))
        ]
        assert tuple(names) == spec.column_names
        for col in spec.columns:
            line = next(x for x in body.splitlines() if x.split() and x.split()[0] == col.name)
            assert ("NOT NULL" in line) is (not col.nullable), col.name
            if col.max_length and col.kind.value == "text":
                assert f"VARCHAR({col.max_length})" in line, col.name


def test_migrations_are_numbered() -> None:
    ms = sqlgen.migrations()
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))
