"""The warehouse boundary: one :class:`Warehouse` protocol, its transaction-scoped batch.

Every backend (PostgreSQL, Redshift, memory) implements these two protocols; the
loader, the consumers' warehouse sink and ``sluice reconcile`` speak only to them.

Typical use from a sink (one consumer batch = one warehouse transaction)::

    with warehouse.batch() as b:           # BEGIN
        b.stage(TargetTable.FINANCIAL_TRANSACTIONS, rows, source="kafka:topic/0@42")
        b.merge()                          # MERGE staging -> target on event_id
    # COMMIT on a normal exit; ROLLBACK (and re-raise) when the block raises

or explicitly: ``b = warehouse.begin(); ...; b.commit()`` / ``b.rollback()``.

Invariants every implementation keeps:

- Everything done through one batch commits together or not at all.
- ``merge`` inserts events whose ``event_id`` is new, replaces an existing event
  only when the staged ``occurred_at`` is strictly newer, and leaves it untouched
  otherwise (an identical re-load changes nothing). Among duplicates in staging,
  the newest ``occurred_at`` wins.
- Rows that fail validation are never dropped: ``stage`` returns them and writes
  them to the quarantine table in the same transaction.
- Staging is empty outside a batch: a batch starts and ends with empty staging.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class WarehouseBatch(Protocol):
    """One open warehouse transaction (see the module docstring for the invariants).

    ``load_id``, when set, is written with quarantined rows (the loader sets it).
    """

    load_id: str | None

    def stage(
        self,
        table: TargetTable,
        rows: Iterable[Mapping[str, Any]],
        *,
        source: str = "batch",
    ) -> StageResult:
        """Validate rows in the warehouse row shape and put the good ones into staging.

        Invalid rows are quarantined (``source``, position from 1, reason, the row as
        JSON) and returned in :attr:`StageResult.rejected`.
        """
        ...

    def stage_lines(
        self, table: TargetTable, lines: Iterable[bytes | str], *, source: str
    ) -> StageResult:
        """Like :meth:`stage` for raw NDJSON lines (one file of the S3 zone; bytes or text).

        ``source`` is the file's ``s3://`` URL; rejected lines keep their 1-based
        line number and raw text.
        """
        ...

    def stage_encoded(self, table: TargetTable, encoded: EncodedBatch) -> StageResult:
        """Stage rows already validated and encoded by :mod:`warehouse.rows`.

        The good rows go to staging, the rejected ones to the quarantine table (what
        :meth:`stage_lines` does after encoding; lets the encoding run elsewhere).
        """
        ...

    def stage_manifest(self, table: TargetTable, manifest_url: str) -> StageResult:
        """Stage every file of a manifest straight from S3 (Redshift ``COPY ... MANIFEST``).

        Only backends with ``copies_from_s3`` implement it; the others raise
        :class:`~warehouse.exceptions.UnsupportedOperationError`.
        """
        ...

    def quarantine(self, rejected: Sequence[RejectedRow]) -> None:
        """Write rejected rows to the quarantine table (already done by the stage calls)."""
        ...

    def lock(self, tables: Iterable[TargetTable], *, audit: bool = False) -> None:
        """Take the writers' lock on these targets until the transaction ends (and with
        ``audit`` on the load audit: a loader's transaction reads and writes it).

        Every write to a target's staging takes it first (``stage*`` lock the table
        they stage into), so writers of one target run one after the other: each MERGE
        sees what the previous one committed, whatever key constraints the warehouse
        enforces. Lock every table you will touch up front, in one call.
        """
        ...

    def loaded_files(self, urls: Sequence[str]) -> set[str]:
        """Those of ``urls`` a committed load took, as this transaction sees them."""
        ...

    def merge(self, tables: Iterable[TargetTable] | None = None) -> list[MergeResult]:
        """MERGE staging into the targets (all tables staged so far by default), empty staging.

        A staged row whose ``event_id`` belongs to another tenant is quarantined
        (reason ``tenant_conflict``), never merged; a merge never changes a ``tenant_id``.
        """
        ...

    def record(self, audits: Sequence[FileAudit]) -> None:
        """Append rows to the load audit table."""
        ...

    def complete_load(self, load_id: str, merge: MergeResult | None, stage: StageResult) -> None:
        """Mark a load job completed with its counts (commits with the data)."""
        ...

    def commit(self) -> None:
        """Commit the transaction; the batch is closed afterwards."""
        ...

    def rollback(self) -> None:
        """Roll the transaction back; the batch is closed afterwards. Idempotent."""
        ...


@runtime_checkable
class Warehouse(Protocol):
    """A warehouse: migrations, transaction-scoped batches, load jobs, reads for reconcile."""

    backend: str
    copies_from_s3: bool
    schema: str

    def migrate(self) -> list[int]:
        """Create or upgrade the schema; returns the versions applied now (idempotent)."""
        ...

    def schema_version(self) -> int:
        """The highest migration applied (0 when none)."""
        ...

    def begin(self) -> WarehouseBatch:
        """Open a transaction; the caller must ``commit`` or ``rollback`` it."""
        ...

    def batch(self) -> AbstractContextManager[WarehouseBatch]:
        """``with wh.batch() as b:``: commit on a normal exit, roll back when it raises."""
        ...

    def claim_load(self, job: LoadJob, *, lease_seconds: float, max_attempts: int) -> int | None:
        """Move a job to ``running`` and return its attempt number, or ``None``.

        Creates the job (``ready``) when new. A job can be claimed from ``ready`` or
        ``retry``, or from ``running`` when its lease expired (a crashed loader).
        ``None`` means completed, failed, running elsewhere, or out of attempts.
        """
        ...

    def fail_load(
        self, job: LoadJob, attempt: int, *, error: str, retry: bool, files: Sequence[str]
    ) -> LoadState:
        """Record a failed attempt: ``retry`` (again later) or ``failed`` (for good)."""
        ...

    def load_record(self, load_id: str) -> LoadRecord | None:
        """The job row of ``load_id``."""
        ...

    def renew_lease(self, load_id: str, attempt: int) -> bool:
        """Extend a running attempt's lease; ``False`` when it is no longer running."""
        ...

    def jobs(self, states: Sequence[LoadState]) -> list[LoadRecord]:
        """Job rows in any of ``states``, oldest change first."""
        ...

    def job_states(self, load_ids: Iterable[str]) -> dict[str, LoadState]:
        """The state of each existing job among ``load_ids``."""
        ...

    def loaded_files(self, urls: Iterable[str]) -> set[str]:
        """Those of ``urls`` that a completed load already loaded."""
        ...

    def event_ids(
        self, table: TargetTable, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """Event ids in ``table`` with ``start <= occurred_at < end`` (for reconcile)."""
        ...

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows per reason code (the reason's text before the first colon)."""
        ...

    def count(self, relation: str) -> int:
        """Rows in one of the package's tables (target, staging, audit, quarantine, jobs)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@contextmanager
def batch(warehouse: Warehouse) -> Iterator[WarehouseBatch]:
    """``with batch(wh) as b:`` commit on success, roll back and re-raise on error."""
    b = warehouse.begin()
    try:
        yield b
    except BaseException:
        b.rollback()
        raise
    b.commit()


TENANT_CONFLICT = "tenant_conflict"


def tenant_conflict(table: TargetTable, row: Mapping[str, Any]) -> RejectedRow:
    """The quarantine entry of a row whose ``event_id`` belongs to another tenant (pure).

    ``raw`` is the whole row as JSON, so nothing of it is lost.
    """
    return RejectedRow(
        source=f"merge:{table.value}",
        line_no=0,
        reason=(
            f"{TENANT_CONFLICT}: event_id {row.get('event_id')} belongs to another tenant "
            f"than tenant_id {row.get('tenant_id')}"
        ),
        raw=json.dumps(row, default=str, sort_keys=True),
        table=table,
    )


class BatchMixin:
    """Gives an implementation ``batch()`` from its ``begin()``."""

    def begin(self) -> WarehouseBatch:  # pragma: no cover - provided by the backend
        raise NotImplementedError

    def batch(self) -> AbstractContextManager[WarehouseBatch]:
        """``with wh.batch() as b:``: commit on a normal exit, roll back when it raises."""
        return batch(self)  # type: ignore[arg-type]


def outcome_after_failure(*, retryable: bool, attempt: int, max_attempts: int) -> LoadState:
    """The state a job moves to after a failed attempt (the retry decision, in one place)."""
    if retryable and attempt < max_attempts:
        return LoadState.RETRY
    return LoadState.FAILED


def claimable(state: LoadState, *, lease_expired: bool, attempts: int, max_attempts: int) -> bool:
    """True when a loader may start an attempt of a job in ``state``."""
    if state in (LoadState.READY, LoadState.RETRY):
        return attempts < max_attempts
    if state is LoadState.RUNNING:
        return lease_expired and attempts < max_attempts
    return False
