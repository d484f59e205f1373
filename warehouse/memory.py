"""An in-memory warehouse with the same semantics as the SQL ones (for unit tests)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from warehouse.base import BatchMixin, claimable, tenant_conflict
from warehouse.exceptions import BatchClosedError, UnsupportedOperationError
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
from warehouse.rows import EncodedBatch, RowEncoder, encode_lines, encode_rows, encoder_for
from warehouse.sqlgen import migrations


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class MemoryState:
    """Everything the memory warehouse holds (copied per transaction)."""

    versions: list[int] = field(default_factory=list)
    targets: dict[TargetTable, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TargetTable}
    )
    jobs: dict[str, LoadRecord] = field(default_factory=dict)
    audit: list[FileAudit] = field(default_factory=list)
    quarantine: list[RejectedRow] = field(default_factory=list)


class MemoryWarehouse(BatchMixin):
    """The warehouse protocol over Python dicts; one transaction commits at a time.

    ``fail_on`` lets a test make a named step raise (``"stage"``, ``"merge"``,
    ``"commit"``) to exercise rollback paths without a server.
    """

    backend = "memory"
    copies_from_s3 = False

    def __init__(self, schema: str = "sluice", *, clock: Any = None) -> None:
        self.schema = schema
        self.state = MemoryState()
        self.fail_on: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        """The clock (injectable)."""
        value: datetime = self._clock()
        return value

    def migrate(self) -> list[int]:
        """Record every shipped migration not yet recorded."""
        applied = [m.version for m in migrations() if m.version not in self.state.versions]
        self.state.versions.extend(applied)
        return applied

    def schema_version(self) -> int:
        """The highest recorded migration."""
        return max(self.state.versions, default=0)

    def begin(self) -> MemoryBatch:
        """Open a transaction over a copy of the state."""
        return MemoryBatch(self)

    def claim_load(
        self, job: LoadJob, *, lease_seconds: float, max_attempts: int = 5
    ) -> int | None:
        """See :meth:`warehouse.base.Warehouse.claim_load`."""
        with self._lock:
            now = self.now()
            rec = self.state.jobs.get(job.load_id)
            if rec is None:
                rec = LoadRecord(
                    job.load_id, job.manifest_url, job.table, LoadState.READY, 0, updated_at=now
                )
            expired = rec.updated_at is None or now - rec.updated_at >= timedelta(
                seconds=lease_seconds
            )
            if not claimable(
                rec.state, lease_expired=expired, attempts=rec.attempts, max_attempts=max_attempts
            ):
                self.state.jobs[job.load_id] = rec
                return None
            attempt = rec.attempts + 1
            self.state.jobs[job.load_id] = _replace(
                rec, state=LoadState.RUNNING, attempts=attempt, updated_at=now
            )
            return attempt

    def fail_load(
        self, job: LoadJob, attempt: int, *, error: str, retry: bool, files: Sequence[str]
    ) -> LoadState:
        """Record a failed attempt and its audit rows."""
        state = LoadState.RETRY if retry else LoadState.FAILED
        with self._lock:
            rec = self.state.jobs.get(job.load_id)
            if rec is not None and rec.attempts == attempt:
                self.state.jobs[job.load_id] = _replace(
                    rec, state=state, last_error=error, updated_at=self.now()
                )
            self.state.audit.extend(
                FileAudit(
                    job.load_id, job.manifest_url, url, job.table, state, attempt, error=error
                )
                for url in files
            )
        return state

    def load_record(self, load_id: str) -> LoadRecord | None:
        """The job of ``load_id``."""
        return self.state.jobs.get(load_id)

    def renew_lease(self, load_id: str, attempt: int) -> bool:
        """Extend a running attempt's lease."""
        with self._lock:
            rec = self.state.jobs.get(load_id)
            if rec is None or rec.state is not LoadState.RUNNING or rec.attempts != attempt:
                return False
            self.state.jobs[load_id] = _replace(rec, updated_at=self.now())
            return True

    def jobs(self, states: Sequence[LoadState]) -> list[LoadRecord]:
        """Jobs in any of ``states``, oldest change first."""
        floor = datetime.min.replace(tzinfo=UTC)
        found = [r for r in self.state.jobs.values() if r.state in states]
        return sorted(found, key=lambda r: r.updated_at or floor)

    def job_states(self, load_ids: Iterable[str]) -> dict[str, LoadState]:
        """The state of each existing job among ``load_ids``."""
        return {i: self.state.jobs[i].state for i in load_ids if i in self.state.jobs}

    def loaded_files(self, urls: Iterable[str]) -> set[str]:
        """Files of completed loads."""
        done = {a.file_url for a in self.state.audit if a.outcome is LoadState.COMPLETED}
        return {u for u in urls if u in done}

    def event_ids(
        self, table: TargetTable, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """Event ids in a window of ``occurred_at``."""
        out = []
        for eid, row in self.state.targets[table].items():
            ts = _parse_ts(row["occurred_at"])
            if (start is None or ts >= start) and (end is None or ts < end):
                out.append(eid)
        return out

    def rows(self, table: TargetTable) -> dict[str, dict[str, Any]]:
        """The committed rows of a target by event id (tests)."""
        return self.state.targets[table]

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows per reason code."""
        out: dict[str, int] = {}
        for r in self.state.quarantine:
            code = r.reason.split(":", 1)[0]
            out[code] = out.get(code, 0) + 1
        return out

    def count(self, relation: str) -> int:
        """Row count of one of the tables."""
        if relation in {t.value for t in TargetTable}:
            return len(self.state.targets[TargetTable(relation)])
        if relation.startswith("stg_"):
            return 0
        sizes = {
            "load_jobs": len(self.state.jobs),
            "load_audit": len(self.state.audit),
            "quarantine": len(self.state.quarantine),
            "schema_migrations": len(self.state.versions),
        }
        return sizes[relation]

    def close(self) -> None:
        """Nothing to release."""


class MemoryBatch:
    """A transaction of :class:`MemoryWarehouse`: works on a copy, swaps it in on commit."""

    def __init__(self, warehouse: MemoryWarehouse) -> None:
        self._wh = warehouse
        self._state = copy.deepcopy(warehouse.state)
        self._staged: dict[TargetTable, list[dict[str, Any]]] = {}
        self._closed = False
        self.load_id: str | None = None

    def lock(self, tables: Iterable[TargetTable], *, audit: bool = False) -> None:
        """Nothing to take: a memory transaction works on its own copy."""
        self._check("lock")

    def loaded_files(self, urls: Sequence[str]) -> set[str]:
        """Files of completed loads, as this transaction sees them."""
        done = {a.file_url for a in self._state.audit if a.outcome is LoadState.COMPLETED}
        return {u for u in urls if u in done}

    def _check(self, step: str) -> None:
        if self._closed:
            raise BatchClosedError("the warehouse batch is already committed or rolled back")
        exc = self._wh.fail_on.get(step)
        if exc is not None:
            raise exc

    def stage_encoded(self, table: TargetTable, batch: EncodedBatch) -> StageResult:
        """Stage pre-encoded rows, quarantine the rejected ones."""
        self._check("stage")
        enc = encoder_for(table)
        staged = self._staged.setdefault(table, [])
        names = enc.spec.column_names
        for line in batch.text:
            values = RowEncoder.values_from_line(line)
            row: dict[str, Any] = dict(zip(names, values, strict=True))
            meta = row.get("metadata")
            if meta is not None:
                row["metadata"] = json.loads(meta)
            staged.append(row)
        self._state.quarantine.extend(batch.rejected)
        return StageResult(batch.source, batch.rows_read, batch.rows_staged, tuple(batch.rejected))

    def stage(
        self, table: TargetTable, rows: Iterable[Mapping[str, Any]], *, source: str = "batch"
    ) -> StageResult:
        """Validate and stage row dicts."""
        self._check("stage")
        return self.stage_encoded(table, encode_rows(table, rows, source=source))

    def stage_lines(
        self, table: TargetTable, lines: Iterable[bytes | str], *, source: str
    ) -> StageResult:
        """Validate and stage NDJSON lines."""
        self._check("stage")
        return self.stage_encoded(table, encode_lines(table, lines, source=source))

    def stage_manifest(self, table: TargetTable, manifest_url: str) -> StageResult:
        """Not offered: the memory warehouse does not read S3."""
        raise UnsupportedOperationError("the memory warehouse cannot COPY from S3")

    def quarantine(self, rejected: Sequence[RejectedRow]) -> None:
        """Append to the quarantine."""
        self._check("quarantine")
        self._state.quarantine.extend(rejected)

    def merge(self, tables: Iterable[TargetTable] | None = None) -> list[MergeResult]:
        """Newest ``occurred_at`` wins; equal or older changes nothing."""
        self._check("merge")
        results = []
        for table in list(tables) if tables is not None else list(self._staged):
            staged = self._staged.pop(table, [])
            best: dict[tuple[str, str], dict[str, Any]]
            target = self._state.targets[table]
            owners = _owners(staged, target)
            best = {}
            for row in staged:
                key = (row["event_id"], row["tenant_id"])
                cur = best.get(key)
                if cur is None or _version(row) > _version(cur):
                    best[key] = row
            inserted = updated = conflicts = 0
            for (eid, tenant), row in sorted(best.items()):
                existing = target.get(eid)
                if tenant != owners[eid]:
                    self._state.quarantine.append(tenant_conflict(table, row))
                    conflicts += 1
                elif existing is None:
                    target[eid] = row
                    inserted += 1
                elif _parse_ts(row["occurred_at"]) > _parse_ts(existing["occurred_at"]):
                    target[eid] = {**row, "tenant_id": existing["tenant_id"]}
                    updated += 1
            distinct = len({row["event_id"] for row in staged})
            results.append(MergeResult(table, len(staged), distinct, inserted, updated, conflicts))
        return results

    def record(self, audits: Sequence[FileAudit]) -> None:
        """Append audit rows."""
        self._check("record")
        self._state.audit.extend(audits)

    def complete_load(self, load_id: str, merge: MergeResult | None, stage: StageResult) -> None:
        """Mark the job completed with its counts."""
        self._check("complete")
        rec = self._state.jobs.get(load_id)
        if rec is None:
            return
        self._state.jobs[load_id] = _replace(
            rec,
            state=LoadState.COMPLETED,
            last_error=None,
            rows_staged=stage.rows_staged,
            rows_rejected=stage.rows_rejected,
            rows_inserted=merge.inserted if merge else 0,
            rows_updated=merge.updated if merge else 0,
            updated_at=self._wh.now(),
        )

    def commit(self) -> None:
        """Swap the transaction's state in (job rows merged with concurrent claims)."""
        self._check("commit")
        self._closed = True
        with self._wh._lock:
            live_jobs = self._wh.state.jobs
            for load_id, rec in self._state.jobs.items():
                live = live_jobs.get(load_id)
                if (
                    live is None
                    or rec.state is LoadState.COMPLETED
                    or rec.attempts >= live.attempts
                ):
                    live_jobs[load_id] = rec
            self._state.jobs = live_jobs
            self._wh.state = self._state

    def rollback(self) -> None:
        """Forget everything done in this batch."""
        self._closed = True
        self._staged.clear()


def _version(row: Mapping[str, Any]) -> tuple[datetime, datetime]:
    ingested = row.get("ingested_at")
    floor = datetime.min.replace(tzinfo=UTC)
    return (_parse_ts(row["occurred_at"]), _parse_ts(ingested) if ingested else floor)


def _owners(
    staged: Sequence[Mapping[str, Any]], target: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The tenant owning each staged event id: the target row's, else the tenant of the
    staged row ingested first (then earliest ``occurred_at``, then smallest tenant)."""
    ceiling = datetime.max.replace(tzinfo=UTC)
    owners: dict[str, str] = {}
    firsts: dict[str, tuple[datetime, datetime, str]] = {}
    for row in staged:
        eid = row["event_id"]
        ingested = row.get("ingested_at")
        rank = (
            _parse_ts(ingested) if ingested else ceiling,
            _parse_ts(row["occurred_at"]),
            str(row["tenant_id"]),
        )
        if eid not in firsts or rank < firsts[eid]:
            firsts[eid] = rank
    for eid, rank in firsts.items():
        existing = target.get(eid)
        owners[eid] = str(existing["tenant_id"]) if existing is not None else rank[2]
    return owners


def _replace(rec: LoadRecord, **changes: Any) -> LoadRecord:
    return replace(rec, **changes)
