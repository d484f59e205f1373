"""Errors raised by the warehouse package, each of a retryable or fatal kind."""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import FatalError, ManifestError, RetryableError, ZoneReadError

__all__ = [
    "BadEventError",
    "BatchClosedError",
    "ManifestError",
    "UnsupportedOperationError",
    "WarehouseConflictError",
    "WarehouseDataError",
    "WarehouseSchemaError",
    "WarehouseUnavailableError",
    "ZoneReadError",
]


class WarehouseUnavailableError(RetryableError):
    """The warehouse could not be reached or the connection was lost mid-operation."""

    default_code: ClassVar[str] = "warehouse_unavailable"


class WarehouseConflictError(RetryableError):
    """A concurrent writer got in the way (serialization failure, deadlock, duplicate key)."""

    default_code: ClassVar[str] = "warehouse_conflict"


class WarehouseDataError(FatalError):
    """The warehouse refused the data itself; retrying the same input fails again."""

    default_code: ClassVar[str] = "warehouse_data_error"


class WarehouseSchemaError(FatalError):
    """The warehouse schema is missing, older than the code, or the SQL is wrong."""

    default_code: ClassVar[str] = "warehouse_schema_error"


class BadEventError(FatalError):
    """A Lambda event is not of the shape the handler is wired for (an SQS event)."""

    default_code: ClassVar[str] = "bad_event"


class BatchClosedError(FatalError):
    """A warehouse batch was used after its commit or rollback."""

    default_code: ClassVar[str] = "batch_closed"


class UnsupportedOperationError(FatalError):
    """The backend does not offer this operation (e.g. COPY from S3 on PostgreSQL)."""

    default_code: ClassVar[str] = "unsupported_operation"
