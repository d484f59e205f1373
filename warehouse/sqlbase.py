"""The SQL warehouse shared by PostgreSQL and Redshift (DB-API cursors, one connection).

Subclasses supply the connection, the dialect, the error translation and staging;
everything else (migrations, MERGE, jobs, audit, quarantine, reads) runs the same
statements from :mod:`warehouse.sqlgen` on both.

A warehouse object holds one connection and is not thread-safe; use one per thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.errors import SluiceError
from warehouse import sqlgen
from warehouse.base import BatchMixin, claimable, tenant_conflict
from warehouse.exceptions import (
    BatchClosedError,
    UnsupportedOperationError,
    WarehouseSchemaError,
    WarehouseUnavailableError,
)
from warehouse.models import (
    FileAudit,
    LoadJob,
    LoadRecord,
    LoadState,
    MergeResult,
    RejectedRow,
    StageResult,
    TargetTable,
)
from warehouse.rows import EncodedBatch
from warehouse.tables import spec_for

log = logging.getLogger(__name__)

CHUNK = 500
MAX_ERROR_TEXT = 4000


def utcnow() -> datetime:
    """Now, in UTC (the clock every job and audit row uses)."""
    return datetime.now(UTC)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _record(r: Sequence[Any]) -> LoadRecord:
    return LoadRecord(
        load_id=r[0],
        manifest_url=r[1],
        table=TargetTable(r[2]),
        state=LoadState(r[3]),
        attempts=int(r[4]),
        last_error=r[5],
        rows_staged=int(r[6]),
        rows_rejected=int(r[7]),
        rows_inserted=int(r[8]),
        rows_updated=int(r[9]),
        updated_at=r[10],
    )


class SqlWarehouse(BatchMixin):
    """Common implementation of :class:`warehouse.base.Warehouse` over a DB-API driver."""

    backend = "sql"
    copies_from_s3 = False
    dialect = sqlgen.Dialect.POSTGRES

    def __init__(self, schema: str, *, connection: Any = None) -> None:
        self.schema = sqlgen.ident(schema)
        self._connection = connection
        self._in_batch = False

    # --- to be provided by the backend -----------------------------------------------

    def _connect(self) -> Any:  # pragma: no cover - backend specific
        raise NotImplementedError

    def _is_broken(self, conn: Any) -> bool:  # pragma: no cover - backend specific
        raise NotImplementedError

    def translate(self, exc: BaseException) -> SluiceError:  # pragma: no cover
        """A driver exception as a retryable or fatal Sluice error."""
        raise NotImplementedError

    def driver_errors(self) -> tuple[type[BaseException], ...]:  # pragma: no cover
        """The driver's exception classes to translate."""
        raise NotImplementedError

    # --- connection -------------------------------------------------------------------

    @property
    def connection(self) -> Any:
        """The open connection (connected lazily, reconnected after a loss)."""
        if self._connection is None or self._is_broken(self._connection):
            if self._connection is not None:
                self._close_quietly()
            try:
                self._connection = self._connect()
            except self.driver_errors() as exc:
                raise self.translate(exc) from exc
        return self._connection

    def _close_quietly(self) -> None:
        conn, self._connection = self._connection, None
        if conn is None:
            return
        try:
            conn.close()
        except self.driver_errors() as exc:
            log.debug("closing a broken warehouse connection failed: %s", exc)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.driver_errors() as exc:
            raise self.translate(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one statement on the open transaction; returns the cursor (closed later)."""
        with self._translated():
            cur = self.connection.cursor()
            cur.execute(sql, params) if params is not None else cur.execute(sql)
            return cur

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one query."""
        cur = self.execute(sql, params)
        with self._translated():
            rows = [tuple(r) for r in cur.fetchall()]
            cur.close()
        return rows

    def rowcount(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Affected rows of one statement."""
        cur = self.execute(sql, params)
        n = int(cur.rowcount)
        with self._translated():
            cur.close()
        return n

    def commit(self) -> None:
        """Commit the connection's transaction."""
        with self._translated():
            self.connection.commit()

    def rollback(self) -> None:
        """Roll back; a broken connection is dropped instead (its transaction is gone)."""
        conn = self._connection
        if conn is None:
            return
        if self._is_broken(conn):
            self._close_quietly()
            return
        try:
            conn.rollback()
        except self.driver_errors() as exc:
            log.warning("rollback failed, dropping the connection: %s", exc)
            self._close_quietly()

    # --- migrations -------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply every migration not yet recorded, each in its own transaction."""
        try:
            self.execute(sqlgen.create_schema(self.schema)).close()
            self.execute(sqlgen.create_migrations_table(self.schema)).close()
            self.commit()
            applied: list[int] = []
            for migration in sqlgen.migrations():
                self.execute(sqlgen.lock_migrations(self.schema)).close()
                done = {int(r[0]) for r in self.fetchall(sqlgen.applied_versions(self.schema))}
                if migration.version in done:
                    self.rollback()
                    continue
                for statement in sqlgen.render_ddl(migration.text, self.dialect, self.schema):
                    self.execute(statement).close()
                self.execute(
                    sqlgen.record_migration(self.schema),
                    (migration.version, migration.name, utcnow()),
                ).close()
                self.commit()
                applied.append(migration.version)
                log.info(
                    "warehouse schema %s: applied migration %03d", self.schema, migration.version
                )
            return applied
        except BaseException:
            self.rollback()
            raise

    def schema_version(self) -> int:
        """The highest applied migration (0 when the schema has none)."""
        try:
            rows = self.fetchall(sqlgen.applied_versions(self.schema))
        except WarehouseSchemaError:  # no migrations table yet
            self.rollback()
            return 0
        self.rollback()
        return max((int(r[0]) for r in rows), default=0)

    # --- batches ----------------------------------------------------------------------

    def begin(self) -> SqlBatch:
        """Open a transaction (the driver begins it at the first statement)."""
        if self._in_batch:
            raise BatchClosedError("a batch is already open on this warehouse connection")
        self.rollback()
        self._in_batch = True
        return SqlBatch(self)

    def _stage_encoded(self, table: TargetTable, text: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _stage_manifest(self, batch: SqlBatch, table: TargetTable, url: str) -> StageResult:
        raise UnsupportedOperationError(f"{self.backend} cannot COPY a manifest from S3")

    # --- load jobs ----------------------------------------------------------------------

    def claim_load(
        self, job: LoadJob, *, lease_seconds: float, max_attempts: int = 5
    ) -> int | None:
        """Create the job when new, then move it to running if it may run now."""
        now = utcnow()
        try:
            self.execute(sqlgen.lock_jobs(self.schema, self.dialect)).close()
            self.execute(
                sqlgen.insert_job_if_missing(self.schema),
                (job.load_id, job.manifest_url, job.table.value, now, now, job.load_id),
            ).close()
            rec = self._job(job.load_id)
            if rec is None:  # pragma: no cover - inserted just above
                self.rollback()
                return None
            expired = rec.updated_at is None or now - rec.updated_at >= timedelta(
                seconds=lease_seconds
            )
            if not claimable(
                rec.state, lease_expired=expired, attempts=rec.attempts, max_attempts=max_attempts
            ):
                if rec.state is LoadState.RUNNING and expired and rec.attempts >= max_attempts:
                    self.execute(
                        sqlgen.fail_job(self.schema),
                        (
                            "failed",
                            "lease expired after the last attempt",
                            now,
                            job.load_id,
                            rec.attempts,
                        ),
                    ).close()
                self.commit()
                return None
            claimed = self.rowcount(
                sqlgen.claim_job(self.schema), (now, job.load_id, rec.state.value, rec.attempts)
            )
            self.commit()
        except SluiceError as exc:
            self.rollback()
            if exc.retryable and not isinstance(exc, WarehouseUnavailableError):
                log.info("load %s claimed concurrently: %s", job.load_id, exc)
                return None
            raise
        return rec.attempts + 1 if claimed == 1 else None

    def fail_load(
        self, job: LoadJob, attempt: int, *, error: str, retry: bool, files: Sequence[str]
    ) -> LoadState:
        """Record the failed attempt (job state and one audit row per file)."""
        state = LoadState.RETRY if retry else LoadState.FAILED
        now = utcnow()
        text = error[:MAX_ERROR_TEXT]
        try:
            self.execute(
                sqlgen.fail_job(self.schema), (state.value, text, now, job.load_id, attempt)
            ).close()
            audits = [
                FileAudit(job.load_id, job.manifest_url, url, job.table, state, attempt, error=text)
                for url in files
            ]
            self._insert_audit(audits, now)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return state

    def renew_lease(self, load_id: str, attempt: int) -> bool:
        """Extend the lease of a running attempt (own short transaction); ``False`` when
        the job is no longer that attempt's."""
        try:
            n = self.rowcount(sqlgen.renew_job(self.schema), (utcnow(), load_id, attempt))
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return n == 1

    def jobs(self, states: Sequence[LoadState]) -> list[LoadRecord]:
        """Job rows in any of ``states``, oldest change first."""
        try:
            rows = self.fetchall(
                sqlgen.select_jobs_in_states(self.schema, len(states)), [s.value for s in states]
            )
        finally:
            self.rollback()
        return [_record(r) for r in rows]

    def job_states(self, load_ids: Iterable[str]) -> dict[str, LoadState]:
        """The state of each existing job among ``load_ids``."""
        wanted = list(dict.fromkeys(load_ids))
        found: dict[str, LoadState] = {}
        try:
            for part in _chunks(wanted):
                for load_id, state in self.fetchall(
                    sqlgen.select_job_states(self.schema, len(part)), part
                ):
                    found[str(load_id)] = LoadState(state)
        finally:
            self.rollback()
        return found

    def _job(self, load_id: str) -> LoadRecord | None:
        rows = self.fetchall(sqlgen.select_job(self.schema), (load_id,))
        if not rows:
            return None
        return _record(rows[0])

    def _loaded_files_in_transaction(self, urls: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(list(dict.fromkeys(urls))):
            found.update(
                r[0] for r in self.fetchall(sqlgen.loaded_files(self.schema, len(part)), part)
            )
        return found

    def load_record(self, load_id: str) -> LoadRecord | None:
        """The job row of ``load_id``."""
        try:
            return self._job(load_id)
        finally:
            self.rollback()

    def loaded_files(self, urls: Iterable[str]) -> set[str]:
        """Those of ``urls`` that a completed load took."""
        wanted = list(dict.fromkeys(urls))
        found: set[str] = set()
        try:
            for part in _chunks(wanted):
                found.update(
                    r[0] for r in self.fetchall(sqlgen.loaded_files(self.schema, len(part)), part)
                )
        finally:
            self.rollback()
        return found

    def _insert_audit(self, audits: Sequence[FileAudit], now: datetime) -> None:
        for part in _chunks(audits):
            params: list[Any] = []
            for a in part:
                params.extend(
                    (
                        a.load_id,
                        a.manifest_url,
                        a.file_url,
                        a.table.value,
                        a.outcome.value,
                        a.attempt,
                        a.rows_read,
                        a.rows_staged,
                        a.rows_rejected,
                        a.error,
                        now,
                    )
                )
            self.execute(sqlgen.insert_audit(self.schema, len(part)), params).close()

    def _insert_quarantine(self, rejected: Sequence[RejectedRow], load_id: str | None) -> None:
        now = utcnow()
        for part in _chunks(rejected, 200):
            params: list[Any] = []
            for r in part:
                params.extend(
                    (
                        load_id,
                        r.source,
                        r.line_no,
                        r.table.value if r.table else None,
                        r.reason[:1000],
                        r.raw,
                        now,
                    )
                )
            self.execute(sqlgen.insert_quarantine(self.schema, len(part)), params).close()

    # --- reads ------------------------------------------------------------------------

    def event_ids(
        self, table: TargetTable, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """Event ids of ``table`` in ``[start, end)`` of ``occurred_at``."""
        params = [p for p in (start, end) if p is not None]
        sql = sqlgen.select_event_ids(
            self.schema, table, start=start is not None, end=end is not None
        )
        try:
            return [str(r[0]) for r in self.fetchall(sql, params)]
        finally:
            self.rollback()

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows per reason code."""
        try:
            return {
                str(code): int(n)
                for code, n in self.fetchall(sqlgen.quarantine_reason_counts(self.schema))
            }
        finally:
            self.rollback()

    def count(self, relation: str) -> int:
        """Rows in one of the package's tables."""
        try:
            return int(self.fetchall(sqlgen.count_rows(self.schema, relation))[0][0])
        finally:
            self.rollback()

    def close(self) -> None:
        """Close the connection."""
        self._close_quietly()


class SqlBatch:
    """One transaction on a :class:`SqlWarehouse` connection."""

    def __init__(self, warehouse: SqlWarehouse) -> None:
        self._wh = warehouse
        self._staged: list[TargetTable] = []
        self._locked: set[TargetTable] = set()
        self._audit_locked = False
        self._closed = False
        self.load_id: str | None = None

    def _open(self) -> SqlWarehouse:
        if self._closed:
            raise BatchClosedError("the warehouse batch is already committed or rolled back")
        return self._wh

    def _note(self, table: TargetTable) -> None:
        if table not in self._staged:
            self._staged.append(table)

    def lock(self, tables: Iterable[TargetTable], *, audit: bool = False) -> None:
        """Take the writers' lock on these targets (held until commit or rollback), and
        with ``audit`` on the load audit too (a loader's transaction).

        Staging a table locks it too; a writer that will touch several tables locks
        them all first, in one statement, so two writers never deadlock.
        """
        wh = self._open()
        todo = set(tables) - self._locked
        if todo or (audit and not self._audit_locked):
            wh.execute(
                sqlgen.lock_targets(
                    wh.schema, todo, wh.dialect, audit=audit and not self._audit_locked
                )
            ).close()
            self._locked |= todo
            self._audit_locked = self._audit_locked or audit

    def loaded_files(self, urls: Sequence[str]) -> set[str]:
        """Those of ``urls`` a committed load took, as seen inside this transaction
        (after :meth:`lock`: every load of the target that committed before)."""
        return self._open()._loaded_files_in_transaction(urls)

    def stage(
        self, table: TargetTable, rows: Iterable[Mapping[str, Any]], *, source: str = "batch"
    ) -> StageResult:
        """Validate row dicts, stage the good ones, quarantine the rest."""
        from warehouse.rows import encode_rows

        wh = self._open()
        encoded = encode_rows(table, rows, source=source)
        return self._stage(wh, table, encoded)

    def stage_lines(
        self, table: TargetTable, lines: Iterable[bytes | str], *, source: str
    ) -> StageResult:
        """Validate NDJSON lines, stage the good ones, quarantine the rest."""
        from warehouse.rows import encode_lines

        wh = self._open()
        encoded = encode_lines(table, lines, source=source)
        return self._stage(wh, table, encoded)

    def stage_encoded(self, table: TargetTable, encoded: EncodedBatch) -> StageResult:
        """Stage pre-encoded rows, quarantine the rejected ones."""
        return self._stage(self._open(), table, encoded)

    def _stage(self, wh: SqlWarehouse, table: TargetTable, encoded: EncodedBatch) -> StageResult:
        self.lock([table])
        if encoded.text:
            wh._stage_encoded(table, encoded.text)
        if encoded.rejected:
            wh._insert_quarantine(encoded.rejected, self.load_id)
        self._note(table)
        return StageResult(
            encoded.source, encoded.rows_read, encoded.rows_staged, tuple(encoded.rejected)
        )

    def stage_manifest(self, table: TargetTable, manifest_url: str) -> StageResult:
        """COPY a manifest from S3 (Redshift only)."""
        wh = self._open()
        self.lock([table])
        result = wh._stage_manifest(self, table, manifest_url)
        self._note(table)
        return result

    def quarantine(self, rejected: Sequence[RejectedRow]) -> None:
        """Write rejected rows to the quarantine table."""
        self._open()._insert_quarantine(rejected, self.load_id)

    def merge(self, tables: Iterable[TargetTable] | None = None) -> list[MergeResult]:
        """MERGE each staged table (dedupe, newest wins), then empty its staging."""
        wh = self._open()
        todo = list(tables) if tables is not None else list(self._staged)
        results: list[MergeResult] = []
        for table in todo:
            self.lock([table])
            steps = sqlgen.merge_steps(wh.schema, table)
            wh.execute(steps.build).close()
            staged, distinct, to_merge, matched, conflicts = (
                int(v or 0) for v in wh.fetchall(steps.counts)[0]
            )
            if conflicts:
                self._quarantine_conflicts(wh, table, wh.fetchall(steps.conflicts))
                wh.execute(steps.drop_conflicts).close()
            wh.execute(steps.merge).close()
            wh.execute(steps.drop).close()
            wh.execute(steps.clear).close()
            results.append(
                MergeResult(table, staged, distinct, to_merge - matched, matched, conflicts)
            )
            if table in self._staged:
                self._staged.remove(table)
        return results

    def _quarantine_conflicts(
        self, wh: SqlWarehouse, table: TargetTable, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        names = spec_for(table).column_names
        rejected = [tenant_conflict(table, dict(zip(names, r, strict=True))) for r in rows]
        wh._insert_quarantine(rejected, self.load_id)
        log.warning(
            "%d staged row(s) of %s quarantined: their event_id belongs to another tenant",
            len(rejected),
            table.value,
        )

    def record(self, audits: Sequence[FileAudit]) -> None:
        """Append load audit rows."""
        self._open()._insert_audit(audits, utcnow())

    def complete_load(self, load_id: str, merge: MergeResult | None, stage: StageResult) -> None:
        """Mark the job completed with its counts, in this transaction."""
        wh = self._open()
        wh.execute(
            sqlgen.complete_job(wh.schema),
            (
                stage.rows_staged,
                stage.rows_rejected,
                merge.inserted if merge else 0,
                merge.updated if merge else 0,
                utcnow(),
                load_id,
            ),
        ).close()

    def commit(self) -> None:
        """Commit everything this batch did."""
        wh = self._open()
        self._closed = True
        wh._in_batch = False
        try:
            wh.commit()
        except BaseException:
            wh.rollback()
            raise

    def rollback(self) -> None:
        """Roll back everything this batch did (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wh._in_batch = False
        self._wh.rollback()
