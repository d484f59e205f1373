"""PostgreSQL warehouse (psycopg 3): the local stand-in for Redshift.

Staging uses ``COPY ... FROM STDIN`` with lines already validated and encoded by
:mod:`warehouse.rows`; MERGE, jobs, audit and quarantine are the shared statements of
:mod:`warehouse.sqlbase`. Needs PostgreSQL 15 or newer (MERGE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.errors import SluiceError
from warehouse import sqlgen
from warehouse.exceptions import (
    WarehouseConflictError,
    WarehouseDataError,
    WarehouseSchemaError,
    WarehouseUnavailableError,
)
from warehouse.models import TargetTable
from warehouse.sqlbase import SqlWarehouse

if TYPE_CHECKING:
    from warehouse.config import WarehouseSettings

COPY_CHUNK_BYTES = 1 << 20

# SQLSTATE classes and codes (PostgreSQL appendix A).
_CONFLICT_CODES = frozenset({"40001", "40P01", "23505", "55P03"})
_UNAVAILABLE_CLASSES = ("08", "57", "53")
_SCHEMA_CLASSES = ("42", "3F")


def translate_sqlstate(sqlstate: str | None, message: str) -> SluiceError:
    """A PostgreSQL error as a retryable or fatal Sluice error (pure; by SQLSTATE)."""
    code = sqlstate or "unknown"
    if sqlstate is None or sqlstate.startswith(_UNAVAILABLE_CLASSES):
        return WarehouseUnavailableError(f"warehouse unavailable: {message}", code=code)
    if sqlstate in _CONFLICT_CODES:
        return WarehouseConflictError(f"warehouse conflict: {message}", code=code)
    if sqlstate.startswith(_SCHEMA_CLASSES):
        return WarehouseSchemaError(f"warehouse schema error: {message}", code=code)
    return WarehouseDataError(f"warehouse refused the data: {message}", code=code)


class PostgresWarehouse(SqlWarehouse):
    """The :class:`~warehouse.base.Warehouse` protocol on PostgreSQL via psycopg 3."""

    backend = "postgres"
    copies_from_s3 = False
    dialect = sqlgen.Dialect.POSTGRES

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "sluice",
        connection: Any = None,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__(schema, connection=connection)
        self._dsn = dsn
        self._connect_timeout = connect_timeout

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> PostgresWarehouse:
        """Build from settings (no connection is opened here)."""
        return cls(
            settings.dsn(),
            schema=settings.warehouse_schema,
            connect_timeout=settings.warehouse_connect_timeout,
        )

    def _connect(self) -> Any:
        import psycopg

        if not self._dsn:
            from sluice.errors import ConfigurationError

            raise ConfigurationError("no PostgreSQL DSN given", code="warehouse_dsn_missing")
        return psycopg.connect(
            self._dsn, connect_timeout=self._connect_timeout, application_name="sluice-warehouse"
        )

    def _is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def translate(self, exc: BaseException) -> SluiceError:
        import psycopg

        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not sqlstate:
            return WarehouseUnavailableError(f"warehouse unavailable: {exc}", code="connection")
        return translate_sqlstate(sqlstate, str(exc).strip().splitlines()[0] if str(exc) else "")

    def backend_pid(self) -> int:
        """The server process of the current connection (for fault tests)."""
        return int(self.connection.info.backend_pid)

    def _stage_encoded(self, table: TargetTable, text: list[str]) -> None:
        sql = sqlgen.copy_from_stdin(self.schema, table)
        with self._translated(), self.connection.cursor() as cur, cur.copy(sql) as copy:
            buf: list[str] = []
            size = 0
            for line in text:
                buf.append(line)
                size += len(line)
                if size >= COPY_CHUNK_BYTES:
                    copy.write("".join(buf))
                    buf, size = [], 0
            if buf:
                copy.write("".join(buf))
