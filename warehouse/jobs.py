"""Load jobs: one manifest into one target, exactly once per file.

A job has a stable id (:func:`warehouse.models.load_id_for`). One attempt:

1. claims it (``ready``/``retry``, or ``running`` with an expired lease -> ``running``)
   and keeps its lease renewed while it runs (:class:`warehouse.leases.LeaseKeeper`);
2. in one warehouse transaction: locks the target (writers of one target run one after
   the other), skips files a committed load already took (the audit, read under the
   lock), stages the rest (PostgreSQL: read from S3, validate every line, COPY the good
   ones, quarantine the bad ones; Redshift: ``COPY ... MANIFEST`` with ``MAXERROR``,
   rejected lines read back from ``SYS_LOAD_ERROR_DETAIL``), MERGEs on ``event_id``
   (another tenant's event id is quarantined), writes one audit row per file and marks
   the job ``completed``;
3. on a failure the transaction is rolled back completely and the job moves to
   ``retry`` (transient, attempts left) or ``failed``, with an audit row per file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from sluice.config import EventType, ZoneSettings
from sluice.errors import ManifestError, SluiceError
from sluice.zone import (
    MANIFEST_CONTENT_TYPE,
    event_type_of_key,
    loader_manifest_key,
    manifest_body,
    parse_manifest,
    s3_url,
    split_url,
)
from sluice.zonestore import Zone
from warehouse.base import Warehouse, WarehouseBatch, outcome_after_failure
from warehouse.config import WarehouseSettings
from warehouse.filework import init_worker, read_and_encode, read_and_encode_in_worker
from warehouse.leases import LeaseKeeper
from warehouse.models import (
    FileAudit,
    LoadJob,
    LoadOutcome,
    LoadState,
    Manifest,
    ManifestEntry,
    MergeResult,
    RejectedRow,
    StageResult,
    TargetTable,
)
from warehouse.queue import NotificationQueue
from warehouse.rows import EncodedBatch

log = logging.getLogger(__name__)

PREFETCH_FILES = 2
AUTO_WORKERS_MAX = 4
OUTAGE_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds ``follow`` waits after consecutive passes that found the warehouse or S3 away."""


def auto_workers(configured: int | str, *, cpus: int | None, on_lambda: bool) -> int:
    """The number of file workers for a configured value (an int, or ``"auto"``).

    ``auto`` is one worker per CPU up to :data:`AUTO_WORKERS_MAX` (the warehouse, not the
    loader, is the bottleneck beyond that), and 1 on Lambda, whose sandbox has no
    ``/dev/shm`` for a process pool.
    """
    if configured != "auto":
        return int(configured)
    if on_lambda:
        return 1
    return max(1, min(cpus or 1, AUTO_WORKERS_MAX))


@dataclass(frozen=True, slots=True)
class LoaderOptions:
    """How the loader behaves (from :class:`WarehouseSettings` by default)."""

    max_attempts: int = 5
    lease_seconds: float = 15.0
    retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0, 10.0)
    sweep_grace: float = 300.0
    sweep_interval: float = 60.0
    sweep: bool = True
    workers: int = 1
    outage_backoff: tuple[float, ...] = OUTAGE_BACKOFF

    @property
    def renew_every(self) -> float:
        """Seconds between lease renewals of a running job (a third of the lease)."""
        return max(self.lease_seconds / 3.0, 0.05)

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> LoaderOptions:
        """Options from warehouse settings."""
        return cls(
            max_attempts=settings.warehouse_load_max_attempts,
            lease_seconds=settings.warehouse_load_lease_seconds,
            sweep_grace=settings.warehouse_sweep_grace_seconds,
            sweep_interval=settings.warehouse_sweep_interval,
            sweep=settings.warehouse_sweep_interval > 0,
            workers=auto_workers(
                settings.warehouse_load_workers,
                cpus=os.cpu_count(),
                on_lambda="AWS_LAMBDA_FUNCTION_NAME" in os.environ,
            ),
        )


@dataclass(slots=True)
class RunSummary:
    """What one pass over the zone did."""

    outcomes: list[LoadOutcome] = field(default_factory=list)
    manifests_seen: int = 0
    files_seen: int = 0
    messages: int = 0
    messages_deleted: int = 0

    @property
    def failed(self) -> list[LoadOutcome]:
        """Jobs that ended failed or waiting for a retry."""
        return [o for o in self.outcomes if o.state in (LoadState.FAILED, LoadState.RETRY)]

    def extend(self, other: RunSummary) -> None:
        """Fold another summary into this one."""
        self.outcomes.extend(other.outcomes)
        self.manifests_seen += other.manifests_seen
        self.files_seen += other.files_seen
        self.messages += other.messages
        self.messages_deleted += other.messages_deleted

    def totals(self) -> dict[str, int]:
        """Summed counts."""
        t = {
            "loads": 0,
            "files": 0,
            "staged": 0,
            "rejected": 0,
            "inserted": 0,
            "updated": 0,
            "tenant_conflicts": 0,
        }
        for o in self.outcomes:
            if o.state is LoadState.COMPLETED:
                t["loads"] += 1
            t["files"] += o.files_loaded
            t["staged"] += o.rows_staged
            t["rejected"] += o.rows_rejected
            t["inserted"] += o.merge.inserted if o.merge else 0
            t["updated"] += o.merge.updated if o.merge else 0
            t["tenant_conflicts"] += o.merge.tenant_conflicts if o.merge else 0
        return t


class JobRunner:
    """Runs load jobs (one manifest into one target each) on a warehouse.

    ``lease_warehouse`` opens a second connection for lease renewals (the first is busy
    in the load transaction); without it leases are not renewed. ``queue`` is where S3
    notifications arrive (``None``: sweep only; see :class:`warehouse.loader.Loader`).
    """

    def __init__(
        self,
        warehouse: Warehouse,
        zone: Zone,
        *,
        zone_settings: ZoneSettings | None = None,
        options: LoaderOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
        queue: NotificationQueue | None = None,
        lease_warehouse: Callable[[], Warehouse] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.zone = zone
        self.zs = zone_settings or ZoneSettings()
        self.options = options or LoaderOptions()
        self.queue = queue
        self._sleep = sleep
        self._done: set[str] = set()
        self._pool: ProcessPoolExecutor | None = None
        self._lease_factory = lease_warehouse
        self._lease_wh: Warehouse | None = None

    def worker_pids(self) -> list[int]:
        """Process ids of the running file workers (empty when files are read here)."""
        if self._pool is None:
            return []
        return sorted(p.pid for p in self._pool._processes.values() if p.pid is not None)

    def close(self) -> None:
        """Stop the worker processes (if any) and close the warehouse connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._lease_wh is not None:
            self._lease_wh.close()
            self._lease_wh = None
        self.warehouse.close()

    def _encoded_files(
        self, table: TargetTable, todo: list[ManifestEntry]
    ) -> Iterator[tuple[ManifestEntry, EncodedBatch | None]]:
        """Each file fetched, decompressed, validated and encoded, in manifest order.

        With ``workers > 1`` (and a zone that can be sent to processes) the files are
        encoded in worker processes while earlier ones are being COPYed.
        """
        parallel = self.options.workers > 1 and len(todo) > 1
        if parallel and getattr(self.zone, "parallel_safe", False):
            if self._pool is None:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["warehouse.filework"])
                # the zone goes to each worker once: a worker keeps its S3 client and
                # connections for every file it reads
                self._pool = ProcessPoolExecutor(
                    max_workers=self.options.workers,
                    mp_context=ctx,
                    initializer=init_worker,
                    initargs=(self.zone, os.getpid()),
                )
            work = partial(read_and_encode_in_worker, table)
            yield from zip(todo, self._pool.map(work, todo), strict=True)
            return
        # One thread reads and encodes the next files while this one COPYs and MERGEs
        # (the driver releases the GIL while it waits for the server).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-load")
        try:
            pending: deque[tuple[ManifestEntry, Future[EncodedBatch | None]]] = deque()
            entries = iter(todo)
            for entry in islice(entries, PREFETCH_FILES):
                pending.append((entry, pool.submit(read_and_encode, self.zone, table, entry)))
            while pending:
                entry, future = pending.popleft()
                following = next(entries, None)
                if following is not None:
                    pending.append(
                        (following, pool.submit(read_and_encode, self.zone, table, following))
                    )
                yield entry, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def read_job(self, manifest_url: str) -> LoadJob:
        """Read and parse a manifest into a job."""
        manifest = parse_manifest(self.zone.read(manifest_url), manifest_url)
        return LoadJob(manifest_url, self._table_of_manifest(manifest, manifest_url), manifest)

    def _table_of_manifest(self, manifest: Manifest, url: str) -> TargetTable:
        """The target of a manifest: from its key, else from its files' keys (all agree)."""
        found = {event_type_of_key(self.zs, split_url(url)[1])}
        if found == {None}:
            found = {event_type_of_key(self.zs, split_url(u)[1]) for u in manifest.file_urls}
        only = found.pop() if len(found) == 1 else None
        if only is not None:
            return TargetTable.for_event_type(EventType(only))
        raise ManifestError(f"cannot tell the event type of manifest {url}")

    def write_manifest(self, table: TargetTable, entries: Sequence[ManifestEntry]) -> str:
        """Write the loader's manifest for ``entries`` (its name derives from the file
        list, so the same files always make the same job)."""
        key = loader_manifest_key(self.zs, table.event_type.value, (e.url for e in entries))
        url = s3_url(self.zs.s3_bucket, key)
        self.zone.write(url, manifest_body(entries), content_type=MANIFEST_CONTENT_TYPE)
        return url

    def load_manifest(self, manifest_url: str) -> LoadOutcome | None:
        """Load one manifest, retrying transient failures with backoff.

        Returns ``None`` when there was nothing to do (completed earlier, or running
        elsewhere), else the outcome of the last attempt.
        """
        try:
            job = self.read_job(manifest_url)
        except ManifestError as exc:
            log.error("manifest %s cannot be loaded: %s", manifest_url, exc)
            self._done.add(manifest_url)  # reported once per loader process
            event_type = event_type_of_key(self.zs, split_url(manifest_url)[1])
            return LoadOutcome(
                "",
                manifest_url,
                TargetTable.for_event_type(EventType(event_type))
                if event_type
                else TargetTable.FINANCIAL_TRANSACTIONS,
                LoadState.FAILED,
                0,
                error=str(exc),
            )
        delays = list(self.options.retry_delays)
        while True:
            outcome = self.run_job(job)
            if outcome is None or outcome.state is not LoadState.RETRY or not delays:
                if outcome is not None and outcome.state is LoadState.COMPLETED:
                    self._done.add(manifest_url)
                if outcome is None:
                    record = self.warehouse.load_record(job.load_id)
                    if record is not None and record.state.terminal:
                        self._done.add(manifest_url)
                return outcome
            delay = delays.pop(0)
            log.warning("load %s failed (%s); retrying in %.1fs", job.load_id, outcome.error, delay)
            self._sleep(delay)

    def use_lease_warehouse(self, warehouse: Warehouse | None) -> None:
        """Renew leases over this warehouse from now on (closing the previous one)."""
        if self._lease_wh is not None and self._lease_wh is not warehouse:
            self._lease_wh.close()
        self._lease_wh = warehouse

    def _lease(self) -> Warehouse | None:
        if self._lease_wh is None and self._lease_factory is not None:
            self._lease_wh = self._lease_factory()
        return self._lease_wh

    def run_job(self, job: LoadJob) -> LoadOutcome | None:
        """One attempt of ``job`` (claim, lock, stage, merge, audit, commit; or roll back)."""
        attempt = self.warehouse.claim_load(
            job, lease_seconds=self.options.lease_seconds, max_attempts=self.options.max_attempts
        )
        if attempt is None:
            return None
        files = list(job.manifest.file_urls)
        lease = LeaseKeeper(self._lease(), job.load_id, attempt, self.options.renew_every)
        try:
            with lease, self.warehouse.batch() as b:
                b.load_id = job.load_id
                b.lock([job.table], audit=True)
                already = b.loaded_files(files)
                todo = [e for e in job.manifest.entries if e.url not in already]
                audits, total = self._stage(b, job, todo, attempt)
                merge = merge_total(b.merge([job.table])) if todo else None
                b.record(audits)
                b.complete_load(job.load_id, merge, total)
        except SluiceError as exc:
            retry = (
                outcome_after_failure(
                    retryable=exc.retryable, attempt=attempt, max_attempts=self.options.max_attempts
                )
                is LoadState.RETRY
            )
            state = self._record_failure(job, attempt, exc, retry=retry, files=files)
            return LoadOutcome(
                job.load_id, job.manifest_url, job.table, state, attempt, error=str(exc)
            )
        log.info(
            "load %s completed: %d files, %d rows staged, %d rejected",
            job.load_id,
            len(todo),
            total.rows_staged,
            total.rows_rejected,
        )
        return LoadOutcome(
            job.load_id,
            job.manifest_url,
            job.table,
            LoadState.COMPLETED,
            attempt,
            files_loaded=len(todo),
            files_skipped=len(files) - len(todo),
            rows_staged=total.rows_staged,
            rows_rejected=total.rows_rejected,
            merge=merge,
            rejected=total.rejected,
        )

    def _stage(
        self, b: WarehouseBatch, job: LoadJob, todo: list[ManifestEntry], attempt: int
    ) -> tuple[list[FileAudit], StageResult]:
        """Stage the files (the caller MERGEs once, after the last).

        One MERGE over the whole staged manifest costs the server less than merging in
        steps: every step would rescan the staging rows the earlier steps deleted.
        """
        audits: list[FileAudit] = []
        read = staged = 0
        rejected: list[RejectedRow] = []
        if not todo:
            return audits, StageResult(job.manifest_url, 0, 0)
        if self.warehouse.copies_from_s3:
            url = job.manifest_url
            if len(todo) != len(job.manifest.entries):
                url = self.write_manifest(job.table, todo)
            result = b.stage_manifest(job.table, url)
            by_file: dict[str, int] = {}
            for r in result.rejected:
                by_file[r.source] = by_file.get(r.source, 0) + 1
            lines = dict(result.lines_per_file)
            for e in todo:
                n_rej = by_file.get(e.url, 0)
                n_read = lines.get(e.url, e.record_count if e.record_count is not None else 0)
                audits.append(
                    FileAudit(
                        job.load_id,
                        job.manifest_url,
                        e.url,
                        job.table,
                        LoadState.COMPLETED,
                        attempt,
                        n_read,
                        max(n_read - n_rej, 0),
                        n_rej,
                    )
                )
            return audits, result
        for e, encoded in self._encoded_files(job.table, todo):
            if encoded is None:
                log.warning("optional file %s of %s is missing; skipped", e.url, job.manifest_url)
                continue
            result = b.stage_encoded(job.table, encoded)
            read += result.rows_read
            staged += result.rows_staged
            rejected.extend(result.rejected)
            audits.append(
                FileAudit(
                    job.load_id,
                    job.manifest_url,
                    e.url,
                    job.table,
                    LoadState.COMPLETED,
                    attempt,
                    result.rows_read,
                    result.rows_staged,
                    result.rows_rejected,
                )
            )
        return audits, StageResult(job.manifest_url, read, staged, tuple(rejected))

    def _record_failure(
        self, job: LoadJob, attempt: int, exc: SluiceError, *, retry: bool, files: list[str]
    ) -> LoadState:
        try:
            return self.warehouse.fail_load(job, attempt, error=str(exc), retry=retry, files=files)
        except SluiceError as record_exc:
            # The job stays 'running'; its lease expiry hands it to the next run.
            log.error(
                "load %s failed (%s) and the failure could not be recorded: %s",
                job.load_id,
                exc,
                record_exc,
            )
            return LoadState.RETRY if retry else LoadState.FAILED


def merge_total(results: list[MergeResult]) -> MergeResult | None:
    """Sum of merge results of one table (``None`` when empty)."""
    if not results:
        return None
    first = results[0]
    return MergeResult(
        first.table,
        sum(r.staged for r in results),
        sum(r.distinct for r in results),
        sum(r.inserted for r in results),
        sum(r.updated for r in results),
        sum(r.tenant_conflicts for r in results),
    )
