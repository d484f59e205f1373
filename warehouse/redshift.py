"""Amazon Redshift warehouse (redshift-connector).

Staging a manifest is one ``COPY staging FROM 's3://.../x.manifest' IAM_ROLE ...
MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' ... MAXERROR n``; the lines it
rejects are read back from ``SYS_LOAD_ERROR_DETAIL`` (``query_id = pg_last_copy_id()``) and
written to the quarantine table in the same transaction, so the good rows load and
the bad ones are kept with file, line and reason. Rows handed over directly (the
consumers' sink) are validated by :mod:`warehouse.rows` and inserted with multi-row
``INSERT`` statements. MERGE, jobs, audit and quarantine share the statements of
:mod:`warehouse.sqlbase` with PostgreSQL.

redshift-connector cannot open a session on PostgreSQL (it sends the Redshift-only
startup parameter ``client_protocol_version``), so this module is exercised by SQL
tests only on machines without a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sluice.errors import ConfigurationError, SluiceError
from warehouse import sqlgen
from warehouse.exceptions import WarehouseConflictError, WarehouseUnavailableError
from warehouse.models import RejectedRow, StageResult, TargetTable
from warehouse.postgres import translate_sqlstate
from warehouse.rows import encoder_for
from warehouse.sqlbase import SqlBatch, SqlWarehouse

if TYPE_CHECKING:
    from warehouse.config import WarehouseSettings

INSERT_ROWS = 200


class RedshiftWarehouse(SqlWarehouse):
    """The :class:`~warehouse.base.Warehouse` protocol on Amazon Redshift."""

    backend = "redshift"
    copies_from_s3 = True
    dialect = sqlgen.Dialect.REDSHIFT

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 5439,
        database: str = "dev",
        user: str | None = None,
        password: str | None = None,
        schema: str = "sluice",
        copy_options: sqlgen.CopyOptions | None = None,
        connection: Any = None,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__(schema, connection=connection)
        self._params: dict[str, Any] = {
            "host": host,
            "port": port,
            "database": database,
            "user": user,
            "password": password,
            "timeout": connect_timeout,
        }
        self.copy_options = copy_options

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> RedshiftWarehouse:
        """Build from settings: the DSN gives host, port, database and credentials."""
        parsed = urlparse(settings.dsn())
        options = None
        if settings.warehouse_iam_role:
            options = sqlgen.CopyOptions(
                iam_role=settings.warehouse_iam_role,
                region=settings.warehouse_copy_region,
                max_errors=settings.warehouse_copy_max_errors,
                extra=settings.warehouse_copy_extra_options,
            )
        return cls(
            host=parsed.hostname,
            port=parsed.port or 5439,
            database=(parsed.path or "/dev").lstrip("/") or "dev",
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            schema=settings.warehouse_schema,
            copy_options=options,
            connect_timeout=settings.warehouse_connect_timeout,
        )

    def _connect(self) -> Any:
        import redshift_connector

        if not self._params["host"]:
            raise ConfigurationError(
                "no Redshift host in SLUICE_WAREHOUSE_DSN", code="warehouse_dsn_missing"
            )
        conn = redshift_connector.connect(
            **{k: v for k, v in self._params.items() if v is not None}
        )
        conn.autocommit = False
        return conn

    def _is_broken(self, conn: Any) -> bool:
        return getattr(conn, "_sock", None) is None

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        from redshift_connector.error import Error

        return (Error,)

    def translate(self, exc: BaseException) -> SluiceError:
        from redshift_connector.error import InterfaceError

        args = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        sqlstate = args.get("C") if isinstance(args, dict) else None
        message = str(args.get("M", exc)) if isinstance(args, dict) else str(exc)
        if sqlstate is None and isinstance(exc, InterfaceError):
            return WarehouseUnavailableError(f"warehouse unavailable: {message}", code="connection")
        if "Serializable isolation violation" in message:
            # Redshift reports concurrent writers to one table as error 1023 (XX000).
            return WarehouseConflictError(f"warehouse conflict: {message}", code="1023")
        return translate_sqlstate(sqlstate, message)

    def _stage_encoded(self, table: TargetTable, text: list[str]) -> None:
        enc = encoder_for(table)
        rows = [enc.values_from_line(line) for line in text]
        for i in range(0, len(rows), INSERT_ROWS):
            part = rows[i : i + INSERT_ROWS]
            params = [v for row in part for v in row]
            self.execute(sqlgen.insert_staging_rows(self.schema, table, len(part)), params).close()

    def _stage_manifest(self, batch: SqlBatch, table: TargetTable, url: str) -> StageResult:
        if self.copy_options is None:
            raise ConfigurationError(
                "SLUICE_WAREHOUSE_IAM_ROLE is required to COPY from S3",
                code="warehouse_iam_role_missing",
            )
        self.execute(sqlgen.copy_from_manifest(self.schema, table, url, self.copy_options)).close()
        loaded = int(self.fetchall(sqlgen.last_copy_count())[0][0])
        rejected = tuple(
            RejectedRow(
                source=str(filename),
                line_no=int(line_no),
                reason=f"{colname}: {reason}" if colname else str(reason),
                raw="",  # SYS_LOAD_ERROR_DETAIL keeps no raw line: the file and line name it
                table=table,
            )
            for filename, line_no, colname, reason in self.fetchall(sqlgen.copy_load_errors())
        )
        if rejected:
            self._insert_quarantine(rejected, batch.load_id)
        per_file = tuple(
            (str(name), int(lines or 0))
            for name, lines in self.fetchall(sqlgen.copy_load_commits())
        )
        return StageResult(url, loaded + len(rejected), loaded, rejected, per_file)
