"""The pure SQL builder shared by the PostgreSQL and Redshift warehouses.

Every statement both backends run comes from here, built from one definition per
operation. Where the dialects differ (DDL types, COPY), the builder renders each
from the same source; everything else is the common subset both accept:

- ``MERGE INTO target USING source_table AS s ON ... WHEN MATCHED THEN UPDATE SET ...
  WHEN NOT MATCHED THEN INSERT (...) VALUES (...)``: Redshift takes no subquery as the
  source, no extra ``AND`` condition on ``WHEN MATCHED`` and no target alias, so the
  newest-wins filter and the de-duplication run first, into a temporary table.
- No ``ON CONFLICT`` and no ``RETURNING`` (Redshift has neither): job state changes
  are conditional ``UPDATE`` statements checked by their row count.
- ``DELETE`` empties staging (``TRUNCATE`` would commit a Redshift transaction).

Identifiers come only from the code (table specs, the validated schema name); values
travel as ``%s`` parameters (psycopg and redshift-connector both use that style),
except inside ``COPY``, where Redshift needs literals (quoted by :func:`literal`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

from warehouse.models import TableSpec, TargetTable
from warehouse.tables import spec_for


class Dialect(StrEnum):
    """SQL dialects the builder writes."""

    POSTGRES = "postgres"
    REDSHIFT = "redshift"


MIGRATIONS_TABLE = "schema_migrations"
MERGE_SOURCE_PREFIX = "sluice_merge_"
MATCHED_FLAG = "sluice_matched"
RANK_COLUMN = "sluice_rn"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PLACEHOLDER = re.compile(r"\{\{(pg|rs):(.*?)\}\}", re.DOTALL)
_JSON_TYPE = {Dialect.POSTGRES: "JSONB", Dialect.REDSHIFT: "SUPER"}


def ident(name: str) -> str:
    """``name`` checked as a plain lower-case identifier (no quoting needed)."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def qualified(schema: str, name: str) -> str:
    """``schema.name`` with both parts checked."""
    return f"{ident(schema)}.{ident(name)}"


def literal(value: str) -> str:
    """A single-quoted SQL string literal (quotes doubled; control characters refused)."""
    if any(ord(ch) < 32 for ch in value) or "\\" in value:
        raise ValueError("literal contains a control character or a backslash")
    return "'" + value.replace("'", "''") + "'"


# --- DDL and migrations -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file from ``warehouse/sql``."""

    version: int
    name: str
    text: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("warehouse").joinpath("sql").iterdir():
        match = re.match(r"^(\d{3})_([a-z0-9_]+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def render_ddl(text: str, dialect: Dialect, schema: str) -> list[str]:
    """Render a migration for ``dialect`` and split it into statements."""
    rendered = text.replace("{{schema}}", ident(schema)).replace("{{json}}", _JSON_TYPE[dialect])
    keep = "pg" if dialect is Dialect.POSTGRES else "rs"
    rendered = _PLACEHOLDER.sub(lambda m: m.group(2) if m.group(1) == keep else "", rendered)
    lines = [line for line in rendered.splitlines() if not line.lstrip().startswith("--")]
    statements: list[str] = []
    current: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        current.append(line.rstrip())
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip(";").strip())
            current = []
    if current:
        statements.append("\n".join(current).strip())
    return statements


def create_schema(schema: str) -> str:
    """``CREATE SCHEMA IF NOT EXISTS`` (both dialects)."""
    return f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}"


def create_migrations_table(schema: str) -> str:
    """The schema-version table every migration records itself in."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, MIGRATIONS_TABLE)} (\n"
        "    version INTEGER NOT NULL,\n"
        "    name VARCHAR(256) NOT NULL,\n"
        "    applied_at TIMESTAMPTZ NOT NULL\n"
        ")"
    )


def lock_migrations(schema: str) -> str:
    """Serialise concurrent migrations (``LOCK TABLE`` exists in both dialects)."""
    return f"LOCK TABLE {qualified(schema, MIGRATIONS_TABLE)}"


def applied_versions(schema: str) -> str:
    """Versions already applied."""
    return f"SELECT version FROM {qualified(schema, MIGRATIONS_TABLE)} ORDER BY version"


def record_migration(schema: str) -> str:
    """Record one applied migration (params: version, name, applied_at)."""
    return (
        f"INSERT INTO {qualified(schema, MIGRATIONS_TABLE)} (version, name, applied_at) "
        "VALUES (%s, %s, %s)"
    )


# --- staging --------------------------------------------------------------------------


def staging_name(schema: str, table: TargetTable) -> str:
    """The qualified staging table of ``table``."""
    return qualified(schema, table.staging)


def column_list(spec: TableSpec) -> str:
    """``a, b, c`` in DDL order."""
    return ", ".join(spec.column_names)


def copy_from_stdin(schema: str, table: TargetTable) -> str:
    """PostgreSQL: ``COPY staging (cols) FROM STDIN`` in text format."""
    spec = spec_for(table)
    return f"COPY {staging_name(schema, table)} ({column_list(spec)}) FROM STDIN"


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Options of Redshift's ``COPY ... MANIFEST`` (from :class:`WarehouseSettings`)."""

    iam_role: str
    region: str | None = None
    max_errors: int = 0
    extra: str = ""


def copy_from_manifest(
    schema: str, table: TargetTable, manifest_url: str, options: CopyOptions
) -> str:
    """Redshift: stage every file of a manifest (gzip NDJSON in the warehouse row shape).

    ``COPY staging (cols) FROM 's3://.../x.manifest' IAM_ROLE '...' MANIFEST
    FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' DATEFORMAT 'auto' [REGION '...']
    MAXERROR n [extra]``.
    """
    if not manifest_url.startswith("s3://"):
        raise ValueError("a COPY manifest must be an s3:// URL")
    spec = spec_for(table)
    parts = [
        f"COPY {staging_name(schema, table)} ({column_list(spec)})",
        f"FROM {literal(manifest_url)}",
        f"IAM_ROLE {literal(options.iam_role)}",
        "MANIFEST",
        "FORMAT AS JSON 'auto'",
        "GZIP",
        "TIMEFORMAT 'auto'",
        "DATEFORMAT 'auto'",
    ]
    if options.region:
        parts.append(f"REGION {literal(options.region)}")
    parts.append(f"MAXERROR {int(options.max_errors)}")
    if options.extra.strip():
        if ";" in options.extra:
            raise ValueError("COPY extra options may not contain ';'")
        parts.append(options.extra.strip())
    return "\n".join(parts)


def last_copy_count() -> str:
    """Redshift: rows the last COPY of this session loaded."""
    return "SELECT pg_last_copy_count()"


SYS_LOAD_ERROR_DETAIL = "sys_load_error_detail"
SYS_LOAD_DETAIL = "sys_load_detail"


def copy_load_errors() -> str:
    """Redshift: the lines the last COPY of this session rejected (file, line, column,
    reason) from ``SYS_LOAD_ERROR_DETAIL``, which Serverless and provisioned clusters
    both have (it holds no raw line)."""
    return (
        "SELECT TRIM(file_name), line_number, TRIM(column_name), TRIM(error_message) "
        f"FROM {SYS_LOAD_ERROR_DETAIL} WHERE query_id = pg_last_copy_id() "
        "ORDER BY file_name, line_number"
    )


def copy_load_commits() -> str:
    """Redshift: lines the last COPY of this session read, per file (``SYS_LOAD_DETAIL``)."""
    return (
        "SELECT TRIM(file_name), SUM(lines_scanned) "
        f"FROM {SYS_LOAD_DETAIL} WHERE query_id = pg_last_copy_id() GROUP BY TRIM(file_name)"
    )


def insert_staging_rows(schema: str, table: TargetTable, count: int) -> str:
    """Multi-row ``INSERT`` into staging (Redshift's path for rows not in S3)."""
    spec = spec_for(table)
    one = "(" + ", ".join(_cast_placeholder(spec, name) for name in spec.column_names) + ")"
    return f"INSERT INTO {staging_name(schema, table)} ({column_list(spec)}) VALUES " + ", ".join(
        [one] * count
    )


def _cast_placeholder(spec: TableSpec, name: str) -> str:
    from warehouse.models import ColumnKind

    kind = next(c.kind for c in spec.columns if c.name == name)
    if kind is ColumnKind.JSON:
        return "JSON_PARSE(%s)"
    return "%s"


def lock_targets(
    schema: str, tables: Iterable[TargetTable], dialect: Dialect, *, audit: bool = False
) -> str:
    """Serialise writers of these targets for the rest of the transaction.

    Every writer (loader, consumer sink) takes this lock before it touches staging, so
    loads of one target run one after the other: no serializable-isolation abort on
    Redshift, and each MERGE sees the rows the one before it committed (exactly once
    by ``event_id`` without relying on a key constraint, which Redshift does not
    enforce). Tables are locked in name order, so two writers never deadlock.
    PostgreSQL's ``SHARE ROW EXCLUSIVE`` conflicts with itself and with writers but
    not with readers; Redshift's ``LOCK`` has a single mode.

    ``audit``: a loader's transaction also reads and writes the load audit, so it locks
    ``load_audit`` too, after the targets: loads of different targets then never overlap
    on it either (Redshift's serializable isolation works per table).
    """
    names = ", ".join(
        [qualified(schema, t.value) for t in sorted(set(tables))]
        + ([qualified(schema, "load_audit")] if audit else [])
    )
    if dialect is Dialect.REDSHIFT:
        return f"LOCK {names}"
    return f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE"


def clear_staging(schema: str, table: TargetTable) -> str:
    """Empty the staging table inside the transaction."""
    return f"DELETE FROM {staging_name(schema, table)}"


# --- merge ----------------------------------------------------------------------------


def merge_source_name(table: TargetTable) -> str:
    """The temporary table the MERGE reads (deduplicated, newest-wins filtered)."""
    return MERGE_SOURCE_PREFIX + table.value


OWNER_COLUMN = "sluice_owner"
CONFLICT_FLAG = "sluice_conflict"
TENANT_COLUMN = "tenant_id"
TENANT_CONFLICT = "tenant_conflict"
"""Quarantine reason code of a row whose ``event_id`` belongs to another tenant."""


def build_merge_source(schema: str, table: TargetTable) -> str:
    """One row per event and tenant, kept when it is new, newer, or a tenant conflict.

    The owner of an event id is the tenant of the target's row, or, for an event not in
    the target yet, the tenant of the staged row ingested first (then the earliest
    ``occurred_at``, then the smallest tenant id: deterministic). Per event id and tenant,
    ``ROW_NUMBER()`` picks the newest staged row (``occurred_at``, then ``ingested_at``).
    A row of the owner is kept when the event is new or its ``occurred_at`` is strictly
    newer; a row of any other tenant is kept flagged ``sluice_conflict`` (it is
    quarantined, never merged).
    """
    spec = spec_for(table)
    target = qualified(schema, table.value)
    key = spec.key
    version = spec.version_column
    cols = ", ".join(f"s.{c}" for c in spec.column_names)
    out = ", ".join(f"r.{c}" for c in spec.column_names)
    return (
        f"CREATE TEMP TABLE {merge_source_name(table)} AS\n"
        f"SELECT {out}, r.{MATCHED_FLAG},\n"
        f"    (r.{TENANT_COLUMN} <> r.{OWNER_COLUMN}) AS {CONFLICT_FLAG}\n"
        f"FROM (\n"
        f"    SELECT {cols}, (t.{key} IS NOT NULL) AS {MATCHED_FLAG},\n"
        f"        t.{version} AS sluice_target_version,\n"
        f"        COALESCE(t.{TENANT_COLUMN}, FIRST_VALUE(s.{TENANT_COLUMN}) OVER (\n"
        f"            PARTITION BY s.{key} ORDER BY s.ingested_at ASC NULLS LAST, "
        f"s.{version} ASC, s.{TENANT_COLUMN} ASC\n"
        f"            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING\n"
        f"        )) AS {OWNER_COLUMN},\n"
        f"        ROW_NUMBER() OVER (\n"
        f"            PARTITION BY s.{key}, s.{TENANT_COLUMN} "
        f"ORDER BY s.{version} DESC, s.ingested_at DESC NULLS LAST\n"
        f"        ) AS {RANK_COLUMN}\n"
        f"    FROM {staging_name(schema, table)} AS s\n"
        f"    LEFT JOIN {target} AS t ON t.{key} = s.{key}\n"
        f") AS r\n"
        f"WHERE r.{RANK_COLUMN} = 1\n"
        f"  AND (r.{TENANT_COLUMN} <> r.{OWNER_COLUMN}\n"
        f"       OR NOT r.{MATCHED_FLAG} OR r.{version} > r.sluice_target_version)"
    )


def merge_counts(schema: str, table: TargetTable) -> str:
    """One row: staged rows, distinct staged events, events to merge, of which matched,
    tenant conflicts."""
    stg = staging_name(schema, table)
    src = merge_source_name(table)
    key = spec_for(table).key
    return (
        f"SELECT (SELECT COUNT(*) FROM {stg}), "
        f"(SELECT COUNT(DISTINCT {key}) FROM {stg}), "
        f"(SELECT COUNT(*) FROM {src} WHERE NOT {CONFLICT_FLAG}), "
        f"(SELECT COUNT(*) FROM {src} WHERE {MATCHED_FLAG} AND NOT {CONFLICT_FLAG}), "
        f"(SELECT COUNT(*) FROM {src} WHERE {CONFLICT_FLAG})"
    )


def select_tenant_conflicts(table: TargetTable) -> str:
    """The staged rows whose event id belongs to another tenant (to quarantine)."""
    spec = spec_for(table)
    return (
        f"SELECT {column_list(spec)} FROM {merge_source_name(table)} "
        f"WHERE {CONFLICT_FLAG} ORDER BY {spec.key}, {TENANT_COLUMN}"
    )


def drop_tenant_conflicts(table: TargetTable) -> str:
    """Remove the tenant conflicts from the merge source (they are quarantined)."""
    return f"DELETE FROM {merge_source_name(table)} WHERE {CONFLICT_FLAG}"


def merge(schema: str, table: TargetTable) -> str:
    """The MERGE on ``event_id`` (one text for both dialects).

    ``WHEN MATCHED`` never sets ``event_id`` or ``tenant_id``: a row keeps its tenant.
    """
    spec = spec_for(table)
    target = qualified(schema, table.value)
    key = spec.key
    updates = ",\n        ".join(
        f"{c} = s.{c}" for c in spec.column_names if c not in (key, TENANT_COLUMN)
    )
    values = ", ".join(f"s.{c}" for c in spec.column_names)
    return (
        f"MERGE INTO {target}\n"
        f"USING {merge_source_name(table)} AS s\n"
        f"ON {table.value}.{key} = s.{key}\n"
        f"WHEN MATCHED THEN UPDATE SET\n        {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({column_list(spec)})\n"
        f"    VALUES ({values})"
    )


def drop_merge_source(table: TargetTable) -> str:
    """Drop the temporary merge source (inside the same transaction)."""
    return f"DROP TABLE {merge_source_name(table)}"


@dataclass(frozen=True, slots=True)
class MergeSteps:
    """The statements of one merge step, in the order they run.

    ``conflicts`` and ``drop_conflicts`` run only when ``counts`` reports a tenant
    conflict; the rows ``conflicts`` returns are quarantined in between.
    """

    build: str
    counts: str
    conflicts: str
    drop_conflicts: str
    merge: str
    drop: str
    clear: str


def merge_steps(schema: str, table: TargetTable) -> MergeSteps:
    """Every statement of the merge step of ``table``."""
    return MergeSteps(
        build=build_merge_source(schema, table),
        counts=merge_counts(schema, table),
        conflicts=select_tenant_conflicts(table),
        drop_conflicts=drop_tenant_conflicts(table),
        merge=merge(schema, table),
        drop=drop_merge_source(table),
        clear=clear_staging(schema, table),
    )


def merge_statements(schema: str, table: TargetTable) -> list[str]:
    """The merge step's statements for a batch with no tenant conflict, in order."""
    steps = merge_steps(schema, table)
    return [steps.build, steps.counts, steps.merge, steps.drop, steps.clear]


# --- load jobs, audit, quarantine --------------------------------------------------------

JOB_COLUMNS = (
    "load_id, manifest_url, target_table, state, attempts, last_error, rows_staged, "
    "rows_rejected, rows_inserted, rows_updated, updated_at"
)


def insert_job_if_missing(schema: str) -> str:
    """Create a job in ``ready`` unless it exists.

    Params: load_id, manifest_url, target_table, created_at, updated_at, load_id.
    """
    jobs = qualified(schema, "load_jobs")
    return (
        f"INSERT INTO {jobs} (load_id, manifest_url, target_table, state, attempts, "
        "rows_staged, rows_rejected, rows_inserted, rows_updated, created_at, updated_at) "
        "SELECT %s, %s, %s, 'ready', 0, 0, 0, 0, 0, %s, %s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {jobs} WHERE load_id = %s)"
    )


def select_job(schema: str) -> str:
    """One job row by id (param: load_id)."""
    return f"SELECT {JOB_COLUMNS} FROM {qualified(schema, 'load_jobs')} WHERE load_id = %s"


def claim_job(schema: str) -> str:
    """Move a job to running if nobody moved it since it was read.

    Params: updated_at, load_id, expected state, expected attempts. Row count 1 = claimed.
    """
    return (
        f"UPDATE {qualified(schema, 'load_jobs')} "
        "SET state = 'running', attempts = attempts + 1, updated_at = %s "
        "WHERE load_id = %s AND state = %s AND attempts = %s"
    )


def lock_jobs(schema: str, dialect: Dialect) -> str:
    """Serialise job claims: ``load_id`` is unique only because claims take this lock
    (Redshift does not enforce the primary key)."""
    jobs = qualified(schema, "load_jobs")
    if dialect is Dialect.REDSHIFT:
        return f"LOCK {jobs}"
    return f"LOCK TABLE {jobs} IN SHARE ROW EXCLUSIVE MODE"


def renew_job(schema: str) -> str:
    """Extend a running job's lease. Params: updated_at, load_id, attempts.

    Row count 0: the job is no longer this attempt's (completed, or taken over).
    """
    return (
        f"UPDATE {qualified(schema, 'load_jobs')} SET updated_at = %s "
        "WHERE load_id = %s AND state = 'running' AND attempts = %s"
    )


def select_jobs_in_states(schema: str, count: int) -> str:
    """Jobs in any of ``count`` states, oldest change first (params: the states)."""
    marks = ", ".join(["%s"] * count)
    return (
        f"SELECT {JOB_COLUMNS} FROM {qualified(schema, 'load_jobs')} "
        f"WHERE state IN ({marks}) ORDER BY updated_at"
    )


def select_job_states(schema: str, count: int) -> str:
    """``(load_id, state)`` of ``count`` job ids."""
    marks = ", ".join(["%s"] * count)
    return f"SELECT load_id, state FROM {qualified(schema, 'load_jobs')} WHERE load_id IN ({marks})"


def complete_job(schema: str) -> str:
    """Params: rows_staged, rows_rejected, rows_inserted, rows_updated, updated_at, load_id."""
    return (
        f"UPDATE {qualified(schema, 'load_jobs')} SET state = 'completed', last_error = NULL, "
        "rows_staged = %s, rows_rejected = %s, rows_inserted = %s, rows_updated = %s, "
        "updated_at = %s WHERE load_id = %s"
    )


def fail_job(schema: str) -> str:
    """Params: state, last_error, updated_at, load_id, attempts (only that attempt)."""
    return (
        f"UPDATE {qualified(schema, 'load_jobs')} SET state = %s, last_error = %s, "
        "updated_at = %s WHERE load_id = %s AND attempts = %s"
    )


AUDIT_COLUMNS = (
    "load_id, manifest_url, file_url, target_table, outcome, attempt, rows_read, "
    "rows_staged, rows_rejected, error, recorded_at"
)


def insert_audit(schema: str, count: int) -> str:
    """Multi-row insert into the load audit (11 params per row)."""
    one = "(" + ", ".join(["%s"] * 11) + ")"
    return f"INSERT INTO {qualified(schema, 'load_audit')} ({AUDIT_COLUMNS}) VALUES " + ", ".join(
        [one] * count
    )


def loaded_files(schema: str, count: int) -> str:
    """Which of ``count`` file URLs a completed load already took."""
    marks = ", ".join(["%s"] * count)
    return (
        f"SELECT DISTINCT file_url FROM {qualified(schema, 'load_audit')} "
        f"WHERE outcome = 'completed' AND file_url IN ({marks})"
    )


QUARANTINE_COLUMNS = "load_id, source, line_no, target_table, reason, raw_line, quarantined_at"


def insert_quarantine(schema: str, count: int) -> str:
    """Multi-row insert into the quarantine table (7 params per row)."""
    one = "(" + ", ".join(["%s"] * 7) + ")"
    return (
        f"INSERT INTO {qualified(schema, 'quarantine')} ({QUARANTINE_COLUMNS}) VALUES "
        + ", ".join([one] * count)
    )


def quarantine_reason_counts(schema: str) -> str:
    """Quarantined rows per reason code (the text before the first colon)."""
    return (
        "SELECT SPLIT_PART(reason, ':', 1) AS code, COUNT(*) "
        f"FROM {qualified(schema, 'quarantine')} GROUP BY SPLIT_PART(reason, ':', 1)"
    )


def select_event_ids(schema: str, table: TargetTable, *, start: bool, end: bool) -> str:
    """Event ids of a target in a window (params: start and/or end when given)."""
    where = []
    if start:
        where.append("occurred_at >= %s")
    if end:
        where.append("occurred_at < %s")
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    return f"SELECT event_id FROM {qualified(schema, table.value)}{clause}"


COUNTABLE = frozenset(
    {
        "financial_transactions",
        "insurance_claims",
        "stg_financial_transactions",
        "stg_insurance_claims",
        "load_jobs",
        "load_audit",
        "quarantine",
        MIGRATIONS_TABLE,
    }
)


def count_rows(schema: str, relation: str) -> str:
    """``SELECT COUNT(*)`` of one of the package's tables."""
    if relation not in COUNTABLE:
        raise ValueError(f"not a warehouse table: {relation!r}")
    return f"SELECT COUNT(*) FROM {qualified(schema, relation)}"
