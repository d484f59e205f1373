"""The loader: clean objects of the S3 zone into the warehouse, exactly once per file.

Firehose writes no manifests, so the loader finds the clean objects itself, the way AWS
tells it: S3 ``ObjectCreated`` notifications on the clean prefix, through an SQS queue
(:meth:`Loader.handle_messages`, used by ``sluice load --follow`` and by the loader
Lambda), plus a periodic listing sweep (:meth:`Loader.sweep`) that catches anything a
notification missed once it is older than a grace age. It groups the keys per target,
writes its own manifest for each group (``manifests/<type>/loader-<digest>.manifest``,
see :mod:`sluice.zone`) and loads it as one job; :mod:`warehouse.jobs` states the
steps of a job's run (claim under a renewed lease, lock, stage, MERGE, audit, or roll
back and retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sluice.config import EventType
from sluice.errors import ManifestError, SluiceError
from sluice.zone import (
    MANIFEST_SUFFIX,
    ObjectEvent,
    event_type_of_key,
    group_by_event_type,
    loader_manifest_key,
    s3_event_from_message,
    s3_url,
    split_url,
)
from sluice.zonestore import ZoneObject
from warehouse.jobs import JobRunner
from warehouse.jobs import LoaderOptions as LoaderOptions  # the loader's public API
from warehouse.jobs import RunSummary as RunSummary
from warehouse.jobs import auto_workers as auto_workers
from warehouse.leases import lease_expired
from warehouse.models import LoadState, ManifestEntry, TargetTable, load_id_for
from warehouse.queue import SQS_MAX_MESSAGES, QueueMessage

log = logging.getLogger(__name__)

MAX_FILES_PER_LOAD = 1000


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What handling a batch of queue messages did: the loads, and the messages that
    must come back (their files are not all loaded, or they are no S3 event)."""

    summary: RunSummary
    failed: tuple[QueueMessage, ...]
    done: tuple[QueueMessage, ...]


class Loader(JobRunner):
    """Loads the clean objects of the S3 zone into a :class:`~warehouse.base.Warehouse`:
    from S3 notifications (:meth:`handle_messages`, :meth:`drain`) and the listing
    sweep (:meth:`sweep`), one job per group of objects (:class:`JobRunner`)."""

    def manifest_urls(self) -> list[str]:
        """Every manifest under the manifest prefix, in key order."""
        objs = self.zone.list(self.zs.s3_bucket, self.zs.s3_manifest_prefix)
        return [o.url for o in objs if o.url.endswith(MANIFEST_SUFFIX)]

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
            if rec.state is LoadState.RUNNING and not lease_expired(rec, now, lease):
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
        wanted = {u for g in clean.values() for u in g}
        settled = self.warehouse.loaded_files(wanted) if wanted else set()
        done: list[QueueMessage] = []
        for message in messages:
            if message.message_id not in events:
                continue
            mine = [
                e.url
                for e in events[message.message_id]
                if e.bucket == self.zs.s3_bucket and e.url in wanted
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
