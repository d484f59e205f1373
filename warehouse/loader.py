"""The loader: clean objects of the S3 zone into the warehouse, exactly once per file.

Firehose writes no manifests, so the loader finds the clean objects itself, the way AWS
tells it: S3 ``ObjectCreated`` notifications on the clean prefix, through an SQS queue
(:meth:`Loader.handle_messages`, used by ``sluice load --follow`` and by the loader
Lambda), plus a periodic listing sweep (:meth:`Loader.sweep`) that catches anything a
notification missed once it is older than a grace age. It groups the keys per target,
writes its own manifest for each group (``manifests/<type>/loader-<digest>.manifest``,
see :mod:`sluice.zone`) and loads it as one job with a stable id
(:func:`warehouse.models.load_id_for`). A run of a job:

1. claims it (``ready``/``retry``, or ``running`` with an expired lease -> ``running``)
   and keeps its lease renewed while it runs (another connection, every third of it);
2. in one warehouse transaction: locks the target (writers of one target run one after
   the other), skips files a committed load already took (the audit, read under the
   lock), stages the rest (PostgreSQL: read from S3, validate every line, COPY the good
   ones, quarantine the bad ones; Redshift: ``COPY ... MANIFEST`` with ``MAXERROR``,
   rejected lines read back from ``SYS_LOAD_ERROR_DETAIL``), MERGEs on ``event_id``
   (another tenant's event id is quarantined), writes one audit row per file and marks
   the job ``completed``;
3. on a failure the transaction is rolled back completely and the job moves to
   ``retry`` (transient, attempts left) or ``failed``, with an audit row per file.

A loader that dies mid-run leaves the job ``running``; its lease is no longer renewed,
so within ``lease_seconds`` the next pass of any loader claims it again, and since
nothing was committed the retry loads it once.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice

from sluice.config import EventType, ZoneSettings
from sluice.errors import ManifestError, SluiceError
from sluice.zone import (
    MANIFEST_CONTENT_TYPE,
    MANIFEST_SUFFIX,
    ObjectEvent,
    Zone,
    ZoneObject,
    event_type_of_key,
    group_by_event_type,
    gunzip,
    loader_manifest_key,
    manifest_body,
    parse_manifest,
    s3_event_from_message,
    s3_url,
    split_url,
)
from warehouse.base import Warehouse, WarehouseBatch, outcome_after_failure
from warehouse.config import WarehouseSettings
from warehouse.models import (
    FileAudit,
    LoadJob,
    LoadOutcome,
    LoadRecord,
    LoadState,
    Manifest,
    ManifestEntry,
    MergeResult,
    RejectedRow,
    StageResult,
    TargetTable,
    load_id_for,
)
from warehouse.queue import SQS_MAX_MESSAGES, NotificationQueue, QueueMessage
from warehouse.rows import EncodedBatch, encode_file

log = logging.getLogger(__name__)

PREFETCH_FILES = 2
AUTO_WORKERS_MAX = 4
MAX_FILES_PER_LOAD = 1000
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


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What handling a batch of queue messages did: the loads, and the messages that
    must come back (their files are not all loaded, or they are no S3 event)."""

    summary: RunSummary
    failed: tuple[QueueMessage, ...]
    done: tuple[QueueMessage, ...]


class Loader:
    """Loads the clean objects of the S3 zone into a :class:`~warehouse.base.Warehouse`.

    ``lease_warehouse`` opens a second connection for lease renewals (the first is busy
    in the load transaction); without it leases are not renewed. ``queue`` is where S3
    notifications arrive (``None``: sweep only).
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
                ctx.set_forkserver_preload(["warehouse.loader"])
                # the zone goes to each worker once: a worker keeps its S3 client and
                # connections for every file it reads
                self._pool = ProcessPoolExecutor(
                    max_workers=self.options.workers,
                    mp_context=ctx,
                    initializer=_init_worker,
                    initargs=(self.zone, os.getpid()),
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

    def pending_files(self, *, now: datetime | None = None) -> list[ZoneObject]:
        """Clean objects older than the grace age that no committed load took and that
        did not fail on their own (a file whose single-file job failed is reported by
        ``sluice load --status``, not retried by every sweep)."""
        now = now or datetime.now(UTC)
        grace = timedelta(seconds=self.options.sweep_grace)
        candidates = [
            obj
            for obj in self.zone.list(self.zs.s3_bucket, self.zs.s3_clean_prefix)
            if event_type_of_key(self.zs, split_url(obj.url)[1]) is not None
            and not obj.url.endswith("/")
            and (obj.last_modified is None or now - obj.last_modified >= grace)
        ]
        if not candidates:
            return []
        loaded = self.warehouse.loaded_files(o.url for o in candidates)
        todo = [o for o in candidates if o.url not in loaded]
        singles = {load_id_for(self._single_manifest_url(o.url)): o for o in todo}
        failed = {
            singles[i].url
            for i, state in self.warehouse.job_states(singles).items()
            if state is LoadState.FAILED
        }
        return [o for o in todo if o.url not in failed]

    def _single_manifest_url(self, url: str) -> str:
        event_type = event_type_of_key(self.zs, split_url(url)[1]) or "unknown"
        return s3_url(self.zs.s3_bucket, loader_manifest_key(self.zs, event_type, [url]))

    def write_manifest(self, table: TargetTable, entries: Sequence[ManifestEntry]) -> str:
        """Write the loader's manifest for ``entries`` (its name derives from the file
        list, so the same files always make the same job)."""
        key = loader_manifest_key(self.zs, table.event_type.value, (e.url for e in entries))
        url = s3_url(self.zs.s3_bucket, key)
        self.zone.write(url, manifest_body(entries), content_type=MANIFEST_CONTENT_TYPE)
        return url

    # --- running ----------------------------------------------------------------------

    def load_files(self, urls: Sequence[str], *, sizes: dict[str, int] | None = None) -> RunSummary:
        """Load clean objects: group them per target, skip the ones already loaded, write
        one manifest per group (at most :data:`MAX_FILES_PER_LOAD` files) and load it.

        A group that fails for good is loaded again file by file, so one bad object
        does not hold back the others. URLs that are no clean object are ignored.
        """
        summary = RunSummary()
        groups = group_by_event_type(self.zs, urls)
        if not groups:
            return summary
        loaded = self.warehouse.loaded_files(u for g in groups.values() for u in g)
        for event_type, group in sorted(groups.items()):
            table = TargetTable.for_event_type(EventType(event_type))
            todo = [u for u in group if u not in loaded]
            summary.files_seen += len(group)
            for i in range(0, len(todo), MAX_FILES_PER_LOAD):
                part = todo[i : i + MAX_FILES_PER_LOAD]
                entries = [ManifestEntry(u, True, (sizes or {}).get(u)) for u in part]
                summary.extend(self._load_group(table, entries))
        return summary

    def _load_group(self, table: TargetTable, entries: list[ManifestEntry]) -> RunSummary:
        summary = RunSummary()
        url = self.write_manifest(table, entries)
        summary.manifests_seen += 1
        outcome = self.load_manifest(url)
        if outcome is not None:
            summary.outcomes.append(outcome)
        if outcome is not None and outcome.state is LoadState.FAILED and len(entries) > 1:
            log.warning(
                "load %s of %d files failed (%s); loading its files one by one",
                outcome.load_id,
                len(entries),
                outcome.error,
            )
            for entry in entries:
                summary.extend(self._load_group(table, [entry]))
        return summary

    def sweep(self, *, now: datetime | None = None) -> RunSummary:
        """Load every clean object older than the grace age that no load took yet."""
        pending = self.pending_files(now=now)
        if pending:
            log.info("sweep: %d clean object(s) not loaded yet", len(pending))
        return self.load_files([o.url for o in pending], sizes={o.url: o.size for o in pending})

    def resume_jobs(self) -> RunSummary:
        """Run jobs left in ``retry``, and ``running`` jobs whose lease expired (their
        loader died): a dead loader's claims are taken over within one lease."""
        summary = RunSummary()
        now = datetime.now(UTC)
        lease = timedelta(seconds=self.options.lease_seconds)
        for rec in self.warehouse.jobs([LoadState.RETRY, LoadState.RUNNING]):
            if rec.state is LoadState.RUNNING and not _lease_expired(rec, now, lease):
                continue
            summary.manifests_seen += 1
            outcome = self.load_manifest(rec.manifest_url)
            if outcome is not None:
                summary.outcomes.append(outcome)
        return summary

    def handle_messages(self, messages: Sequence[QueueMessage]) -> MessageResult:
        """Load the clean objects S3 notifications name; say which messages are done.

        A message is done when every clean object it names is loaded (now or before)
        or it names none (``s3:TestEvent``, other prefixes). A message whose body is no
        S3 event, or whose files did not all load, must come back (and, after the
        queue's maximum receive count, goes to its dead-letter queue).
        """
        summary = RunSummary(messages=len(messages))
        events: dict[str, list[ObjectEvent]] = {}
        failed: list[QueueMessage] = []
        for message in messages:
            try:
                events[message.message_id] = [
                    e for e in s3_event_from_message(message.body) if e.created
                ]
            except ManifestError as exc:
                log.error("message %s is no S3 event: %s", message.message_id, exc)
                failed.append(message)
        urls = [e.url for evs in events.values() for e in evs if e.bucket == self.zs.s3_bucket]
        sizes = {e.url: e.size for evs in events.values() for e in evs if e.size is not None}
        summary.extend(self.load_files(urls, sizes=sizes))
        clean = group_by_event_type(self.zs, urls)
        wanted = [u for g in clean.values() for u in g]
        settled = self.warehouse.loaded_files(wanted) if wanted else set()
        done: list[QueueMessage] = []
        for message in messages:
            if message.message_id not in events:
                continue
            mine = [
                e.url
                for e in events[message.message_id]
                if e.bucket == self.zs.s3_bucket and e.url in set(wanted)
            ]
            if all(u in settled for u in mine):
                done.append(message)
            else:
                failed.append(message)
        return MessageResult(summary, tuple(failed), tuple(done))

    def drain(self, *, wait_seconds: float = 0.0, max_rounds: int = 100) -> RunSummary:
        """Receive notifications until the queue is empty, load, delete handled messages."""
        summary = RunSummary()
        if self.queue is None:
            return summary
        for round_no in range(max_rounds):
            messages = self.queue.receive(
                max_messages=SQS_MAX_MESSAGES, wait_seconds=wait_seconds if round_no == 0 else 0
            )
            if not messages:
                break
            result = self.handle_messages(messages)
            if result.done:
                self.queue.delete(result.done)
            result.summary.messages_deleted = len(result.done)
            summary.extend(result.summary)
            if result.failed:
                break  # they come back after the visibility timeout
        return summary

    def run_once(self, *, sweep: bool | None = None) -> RunSummary:
        """One pass: queued notifications, interrupted jobs, and (by default) a sweep."""
        summary = self.drain()
        summary.extend(self.resume_jobs())
        if self.options.sweep if sweep is None else sweep:
            summary.extend(self.sweep())
        return summary

    def follow(
        self, *, interval: float, stop: Callable[[], bool], sweep: bool | None = None
    ) -> Iterator[RunSummary]:
        """Load as notifications arrive until ``stop()`` is true.

        Every pass long-polls the queue for up to ``interval`` seconds (or sleeps that
        long without a queue), takes over interrupted jobs, and sweeps every
        ``sweep_interval`` seconds. When the warehouse or S3 is away, it logs one line
        per attempt and waits with backoff; it never gives up.
        """
        sweeping = self.options.sweep if sweep is None else sweep
        last_sweep: float | None = None
        outage = 0
        while not stop():
            try:
                summary = self.drain(wait_seconds=interval)
                summary.extend(self.resume_jobs())
                clock = time.monotonic()
                if sweeping and (
                    last_sweep is None or clock - last_sweep >= self.options.sweep_interval
                ):
                    summary.extend(self.sweep())
                    last_sweep = clock
            except SluiceError as exc:
                if not exc.retryable:
                    raise
                delay = self.options.outage_backoff[
                    min(outage, len(self.options.outage_backoff) - 1)
                ]
                outage += 1
                log.warning("load pass %d failed, retrying in %.0f s: %s", outage, delay, exc)
                self._sleep(delay)
                continue
            if outage:
                log.info("load pass succeeded again after %d failed attempt(s)", outage)
            outage = 0
            yield summary
            if self.queue is None and not stop():
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
        lease = _LeaseKeeper(self._lease(), job.load_id, attempt, self.options.renew_every)
        try:
            with lease, self.warehouse.batch() as b:
                b.load_id = job.load_id
                b.lock([job.table])
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


_worker_zone: Zone | None = None


PR_SET_PDEATHSIG = 1


def _init_worker(zone: Zone, loader_pid: int) -> None:
    """Start a file worker: it must not outlive the loader.

    A worker's parent is the forkserver, which exits when the loader does; the kernel
    kills the worker when its parent dies (``PR_SET_PDEATHSIG``, Linux), and a watch
    thread covers the other systems (and the race before the call): once the loader's
    process is gone, the worker exits at once.
    """
    global _worker_zone
    _worker_zone = zone
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("PR_SET_PDEATHSIG is not available: %s", exc)
    parent = os.getppid()
    threading.Thread(
        target=_watch_parent, args=(parent, loader_pid), name="sluice-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int, loader_pid: int) -> None:
    while True:
        if os.getppid() != parent or not _alive(loader_pid):
            os._exit(1)
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease_expired(rec: LoadRecord, now: datetime, lease: timedelta) -> bool:
    return rec.updated_at is None or now - rec.updated_at >= lease


class _LeaseKeeper:
    """Renews a running job's lease from a thread while the load runs (own connection).

    A renewal that fails is logged and tried again at the next tick: the lease only
    runs out if renewals keep failing for a whole lease, which is what a dead or cut-off
    loader looks like to the others.
    """

    def __init__(self, wh: Warehouse | None, load_id: str, attempt: int, every: float) -> None:
        self._wh = wh
        self._load_id = load_id
        self._attempt = attempt
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _LeaseKeeper:
        if self._wh is not None:
            self._thread = threading.Thread(
                target=self._run, name=f"sluice-lease-{self._load_id}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._every + 10)

    def _run(self) -> None:
        assert self._wh is not None
        while not self._stop.wait(self._every):
            try:
                if not self._wh.renew_lease(self._load_id, self._attempt):
                    return
            except SluiceError as exc:
                log.warning("renewing the lease of %s failed: %s", self._load_id, exc)


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


def job_status(
    warehouse: Warehouse, *, lease_seconds: float, now: datetime | None = None
) -> list[dict[str, object]]:
    """Every job not completed, with its status: ``running`` (lease held), ``stuck``
    (running, lease expired: its loader died; the next pass takes it over), ``retry``,
    ``ready`` or ``failed``. JSON-safe."""
    now = now or datetime.now(UTC)
    lease = timedelta(seconds=lease_seconds)
    states = [LoadState.READY, LoadState.RUNNING, LoadState.RETRY, LoadState.FAILED]
    out: list[dict[str, object]] = []
    for rec in warehouse.jobs(states):
        status = rec.state.value
        expires = None
        if rec.state is LoadState.RUNNING:
            expires = (rec.updated_at + lease).isoformat() if rec.updated_at else None
            status = "stuck" if _lease_expired(rec, now, lease) else "running"
        out.append(
            {
                "status": status,
                "load_id": rec.load_id,
                "manifest_url": rec.manifest_url,
                "table": rec.table.value,
                "state": rec.state.value,
                "attempts": rec.attempts,
                "lease_expires_at": expires,
                "last_error": rec.last_error,
            }
        )
    return out


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
