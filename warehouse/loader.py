"""The loader: S3 zone manifests into the warehouse, exactly once per file.

One manifest is one load job with a stable id (:func:`warehouse.models.load_id_for`).
A run of a job:

1. claims it (``ready``/``retry``, or ``running`` with an expired lease -> ``running``);
2. skips files a completed load already took (the audit table);
3. in one warehouse transaction: stages the remaining files (PostgreSQL: read from S3,
   validate every line, COPY the good ones, quarantine the bad ones with file, line and
   reason; Redshift: ``COPY ... MANIFEST`` with ``MAXERROR``, rejected lines read back
   from ``stl_load_errors`` and quarantined), MERGEs on ``event_id``, writes one audit
   row per file and marks the job ``completed``;
4. on a failure the transaction is rolled back completely and the job moves to
   ``retry`` (transient, attempts left) or ``failed``, with an audit row per file.

A loader that dies mid-run leaves the job ``running``; once its lease expires the
next run claims it again, and since nothing was committed the retry loads it once.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice

from sluice.config import ZoneSettings
from sluice.errors import SluiceError
from warehouse.base import Warehouse, WarehouseBatch, outcome_after_failure
from warehouse.config import WarehouseSettings
from warehouse.exceptions import ManifestError
from warehouse.models import (
    FileAudit,
    LoadJob,
    LoadOutcome,
    LoadState,
    ManifestEntry,
    MergeResult,
    RejectedRow,
    StageResult,
    TargetTable,
)
from warehouse.rows import EncodedBatch, encode_file
from warehouse.zone import (
    MANIFEST_SUFFIX,
    Zone,
    build_manifest,
    gunzip,
    parse_manifest,
    s3_url,
    split_url,
    table_for_key,
    table_for_manifest,
)

log = logging.getLogger(__name__)

LOADER_MANIFEST_PREFIX = "loader-"
PREFETCH_FILES = 2
AUTO_WORKERS_MAX = 4


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
    lease_seconds: float = 900.0
    retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0, 10.0)
    orphan_min_age: float = 300.0
    workers: int = 1

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> LoaderOptions:
        """Options from warehouse settings."""
        return cls(
            max_attempts=settings.warehouse_load_max_attempts,
            lease_seconds=settings.warehouse_load_lease_seconds,
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

    @property
    def failed(self) -> list[LoadOutcome]:
        """Jobs that ended failed or waiting for a retry."""
        return [o for o in self.outcomes if o.state in (LoadState.FAILED, LoadState.RETRY)]

    def totals(self) -> dict[str, int]:
        """Summed counts."""
        t = {"loads": 0, "files": 0, "staged": 0, "rejected": 0, "inserted": 0, "updated": 0}
        for o in self.outcomes:
            if o.state is LoadState.COMPLETED:
                t["loads"] += 1
            t["files"] += o.files_loaded
            t["staged"] += o.rows_staged
            t["rejected"] += o.rows_rejected
            t["inserted"] += o.merge.inserted if o.merge else 0
            t["updated"] += o.merge.updated if o.merge else 0
        return t


class Loader:
    """Loads manifests of the S3 zone into a :class:`~warehouse.base.Warehouse`."""

    def __init__(
        self,
        warehouse: Warehouse,
        zone: Zone,
        *,
        zone_settings: ZoneSettings | None = None,
        options: LoaderOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.warehouse = warehouse
        self.zone = zone
        self.zs = zone_settings or ZoneSettings()
        self.options = options or LoaderOptions()
        self._sleep = sleep
        self._done: set[str] = set()
        self._pool: ProcessPoolExecutor | None = None

    def worker_pids(self) -> list[int]:
        """Process ids of the running file workers (empty when files are read here)."""
        if self._pool is None:
            return []
        return sorted(p.pid for p in self._pool._processes.values() if p.pid is not None)

    def close(self) -> None:
        """Stop the worker processes (if any) and close the warehouse."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
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
                ctx.set_forkserver_preload(["warehouse.loader"])
                # the zone goes to each worker once: a worker keeps its S3 client and
                # connections for every file it reads
                self._pool = ProcessPoolExecutor(
                    max_workers=self.options.workers,
                    mp_context=ctx,
                    initializer=_init_worker,
                    initargs=(self.zone,),
                )
            work = partial(_read_and_encode_in_worker, table)
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

    # --- discovery --------------------------------------------------------------------

    def manifest_urls(self) -> list[str]:
        """Every manifest under the manifest prefix, in key order."""
        objs = self.zone.list(self.zs.s3_bucket, self.zs.s3_manifest_prefix)
        return [o.url for o in objs if o.url.endswith(MANIFEST_SUFFIX)]

    def read_job(self, manifest_url: str) -> LoadJob:
        """Read and parse a manifest into a job."""
        manifest = parse_manifest(self.zone.read(manifest_url), manifest_url)
        _, key = split_url(manifest_url)
        table = table_for_manifest(
            manifest,
            key,
            manifest_prefix=self.zs.s3_manifest_prefix,
            clean_prefix=self.zs.s3_clean_prefix,
        )
        return LoadJob(manifest_url, table, manifest)

    def orphan_files(
        self, *, now: datetime | None = None
    ) -> dict[TargetTable, list[ManifestEntry]]:
        """Clean files that no manifest names and no load took, older than the grace age."""
        now = now or datetime.now(UTC)
        referenced: set[str] = set()
        for url in self.manifest_urls():
            try:
                referenced.update(parse_manifest(self.zone.read(url), url).file_urls)
            except ManifestError as exc:
                log.warning("skipping unreadable manifest %s: %s", url, exc)
        candidates = []
        for obj in self.zone.list(self.zs.s3_bucket, self.zs.s3_clean_prefix):
            if obj.url in referenced:
                continue
            if obj.last_modified and now - obj.last_modified < timedelta(
                seconds=self.options.orphan_min_age
            ):
                continue
            candidates.append(obj)
        loaded = self.warehouse.loaded_files(o.url for o in candidates)
        out: dict[TargetTable, list[ManifestEntry]] = {}
        for obj in candidates:
            table = table_for_key(
                split_url(obj.url)[1], self.zs.s3_manifest_prefix, self.zs.s3_clean_prefix
            )
            if obj.url not in loaded and table is not None:
                out.setdefault(table, []).append(ManifestEntry(obj.url, True, obj.size))
        return out

    def write_manifest(self, table: TargetTable, entries: list[ManifestEntry]) -> str:
        """Write a loader manifest for ``entries`` (its name derives from the file list)."""
        digest = hashlib.sha256("\n".join(sorted(e.url for e in entries)).encode()).hexdigest()[:20]
        name = f"{LOADER_MANIFEST_PREFIX}{digest}{MANIFEST_SUFFIX}"
        key = f"{self.zs.s3_manifest_prefix}{table.event_type.value}/{name}"
        url = s3_url(self.zs.s3_bucket, key)
        self.zone.write(url, build_manifest(entries))
        return url

    # --- running ----------------------------------------------------------------------

    def run_once(self, *, include_orphans: bool = False) -> RunSummary:
        """Load every manifest not yet completed (and, optionally, orphan files)."""
        summary = RunSummary()
        if include_orphans:
            for table, entries in self.orphan_files().items():
                self.write_manifest(table, entries)
        for url in self.manifest_urls():
            summary.manifests_seen += 1
            if url in self._done:
                continue
            outcome = self.load_manifest(url)
            if outcome is not None:
                summary.outcomes.append(outcome)
        return summary

    def follow(self, *, interval: float, stop: Callable[[], bool]) -> Iterator[RunSummary]:
        """Run passes every ``interval`` seconds until ``stop()`` is true."""
        while not stop():
            yield self.run_once()
            self._sleep(interval)

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
            table = table_for_key(
                split_url(manifest_url)[1], self.zs.s3_manifest_prefix, self.zs.s3_clean_prefix
            )
            return LoadOutcome(
                "",
                manifest_url,
                table or TargetTable.FINANCIAL_TRANSACTIONS,
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

    def run_job(self, job: LoadJob) -> LoadOutcome | None:
        """One attempt of ``job`` (claim, stage, merge, audit, commit; or roll back)."""
        attempt = self.warehouse.claim_load(
            job, lease_seconds=self.options.lease_seconds, max_attempts=self.options.max_attempts
        )
        if attempt is None:
            return None
        files = list(job.manifest.file_urls)
        try:
            already = self.warehouse.loaded_files(files)
            todo = [e for e in job.manifest.entries if e.url not in already]
            with self.warehouse.batch() as b:
                b.load_id = job.load_id
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


_worker_zone: Zone | None = None


def _init_worker(zone: Zone) -> None:
    global _worker_zone
    _worker_zone = zone


def _read_and_encode_in_worker(table: TargetTable, entry: ManifestEntry) -> EncodedBatch | None:
    assert _worker_zone is not None, "worker started without its zone"
    return read_and_encode(_worker_zone, table, entry)


def read_and_encode(zone: Zone, table: TargetTable, entry: ManifestEntry) -> EncodedBatch | None:
    """Fetch one zone file, decompress it, validate and encode its lines.

    ``None`` when an optional (``mandatory: false``) file is missing. Runs in a worker
    process when the loader has several.
    """
    try:
        data = gunzip(zone.read(entry.url), entry.url)
    except ManifestError:
        if entry.mandatory:
            raise
        return None
    return encode_file(table, data, source=entry.url)


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
    )
