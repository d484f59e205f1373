"""Data shapes of the warehouse: table specs, manifests, load jobs, results.

The column specs here are what the pure core validates rows against; the DDL in
``warehouse/sql/`` declares the same columns (a unit test keeps them in step).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sluice.config import EventType
from sluice.zone import Manifest as Manifest  # the zone's own, re-exported
from sluice.zone import ManifestEntry as ManifestEntry


class TargetTable(StrEnum):
    """The warehouse tables events are merged into (one per event type)."""

    FINANCIAL_TRANSACTIONS = "financial_transactions"
    INSURANCE_CLAIMS = "insurance_claims"

    @classmethod
    def for_event_type(cls, event_type: EventType | str) -> TargetTable:
        """The target table of ``event_type`` (``financial-transaction`` ...)."""
        et = EventType(event_type)
        if et is EventType.FINANCIAL_TRANSACTION:
            return cls.FINANCIAL_TRANSACTIONS
        return cls.INSURANCE_CLAIMS

    @property
    def event_type(self) -> EventType:
        """The event type this table holds."""
        if self is TargetTable.FINANCIAL_TRANSACTIONS:
            return EventType.FINANCIAL_TRANSACTION
        return EventType.INSURANCE_CLAIM

    @property
    def staging(self) -> str:
        """Name of the staging table that feeds this target."""
        return f"stg_{self.value}"


class ColumnKind(StrEnum):
    """Logical column types; the DDL maps each to a PostgreSQL and a Redshift type."""

    UUID = "uuid"
    TEXT = "text"
    INT = "int"
    TIMESTAMP = "timestamp"
    DATE = "date"
    DECIMAL = "decimal"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Column:
    """One warehouse column: name, logical kind, nullability, maximum length in bytes."""

    name: str
    kind: ColumnKind
    nullable: bool = True
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A target table: its columns (in DDL order), key, distribution and sort keys."""

    table: TargetTable
    columns: tuple[Column, ...]
    key: str = "event_id"
    dist_key: str = "event_id"
    sort_keys: tuple[str, ...] = ("occurred_at",)
    version_column: str = "occurred_at"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in DDL order."""
        return tuple(c.name for c in self.columns)


class LoadState(StrEnum):
    """States of a load job: ready -> running -> completed | failed | retry (-> running)."""

    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"

    @property
    def terminal(self) -> bool:
        """True for states no loader moves out of."""
        return self in (LoadState.COMPLETED, LoadState.FAILED)


def load_id_for(manifest_url: str) -> str:
    """The stable id of the job loading ``manifest_url`` (the same across retries)."""
    return "ld-" + hashlib.sha256(manifest_url.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LoadJob:
    """One manifest to load into one target table."""

    manifest_url: str
    table: TargetTable
    manifest: Manifest
    load_id: str = ""

    def __post_init__(self) -> None:
        if not self.load_id:
            object.__setattr__(self, "load_id", load_id_for(self.manifest_url))


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A line or row the warehouse will not take, with where it came from and why."""

    source: str
    line_no: int
    reason: str
    raw: str
    table: TargetTable | None = None


@dataclass(frozen=True, slots=True)
class StageResult:
    """What one ``stage`` call did: rows staged, rows rejected (and quarantined)."""

    source: str
    rows_read: int
    rows_staged: int
    rejected: tuple[RejectedRow, ...] = ()
    lines_per_file: tuple[tuple[str, int], ...] = ()
    """``(file URL, lines read)`` per file, when the backend reports it (Redshift)."""

    @property
    def rows_rejected(self) -> int:
        """Number of rejected rows."""
        return len(self.rejected)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What one MERGE did to a target table.

    ``staged`` rows were in staging; ``distinct`` event ids among them; ``inserted``
    new events; ``updated`` events replaced by a newer ``occurred_at``; ``unchanged``
    events already present with the same or a newer version.
    """

    table: TargetTable
    staged: int
    distinct: int
    inserted: int
    updated: int
    tenant_conflicts: int = 0
    """Staged rows quarantined because their ``event_id`` belongs to another tenant."""

    @property
    def unchanged(self) -> int:
        """Distinct staged events that changed nothing (tenant conflicts not counted)."""
        return max(self.distinct - self.inserted - self.updated - self.tenant_conflicts, 0)

    @property
    def duplicates(self) -> int:
        """Staged rows beyond the first per event id."""
        return self.staged - self.distinct


@dataclass(frozen=True, slots=True)
class FileAudit:
    """One row of the load audit table: a file of a load and its outcome."""

    load_id: str
    manifest_url: str
    file_url: str
    table: TargetTable
    outcome: LoadState
    attempt: int
    rows_read: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LoadRecord:
    """A load job as the jobs table holds it."""

    load_id: str
    manifest_url: str
    table: TargetTable
    state: LoadState
    attempts: int
    last_error: str | None = None
    rows_staged: int = 0
    rows_rejected: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """What one run of one load job did (returned by the loader, printed by the CLI)."""

    load_id: str
    manifest_url: str
    table: TargetTable
    state: LoadState
    attempt: int
    files_loaded: int = 0
    files_skipped: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    merge: MergeResult | None = None
    error: str | None = None
    rejected: tuple[RejectedRow, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """JSON-safe summary (rejected lines reduced to their location and reason)."""
        return {
            "load_id": self.load_id,
            "manifest_url": self.manifest_url,
            "table": self.table.value,
            "state": self.state.value,
            "attempt": self.attempt,
            "files_loaded": self.files_loaded,
            "files_skipped": self.files_skipped,
            "rows_staged": self.rows_staged,
            "rows_rejected": self.rows_rejected,
            "inserted": self.merge.inserted if self.merge else 0,
            "updated": self.merge.updated if self.merge else 0,
            "unchanged": self.merge.unchanged if self.merge else 0,
            "duplicates": self.merge.duplicates if self.merge else 0,
            "tenant_conflicts": self.merge.tenant_conflicts if self.merge else 0,
            "error": self.error,
            "rejected": [
                {"source": r.source, "line": r.line_no, "reason": r.reason} for r in self.rejected
            ],
        }
