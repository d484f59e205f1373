"""The run loop of a consumer group member: assemble batches from a source, hand them
to a :class:`~consumers.base.BatchProcessor`, rewind on failure, follow the group.

SIGTERM (after :meth:`BatchConsumer.install_signal_handlers`) or
:meth:`BatchConsumer.stop` lets the batch in hand finish and commit (or roll back when it
was being retried), then closes the source cleanly so the group rebalances at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from consumers.base import BatchAssembler, BatchProcessor
from consumers.exceptions import ConsumerInterrupted
from consumers.models import Batch, BatchOutcome
from sluice.errors import RetryableError
from sluice.streams.base import GroupMember, Source
from sluice.streams.exceptions import NoAssignmentError
from sluice.streams.models import PartitionKey, StreamRecord

logger = logging.getLogger(__name__)

POLL_ATTEMPTS = 6
"""Polls in a row that may fail with a transient error before the run stops."""


@dataclass
class RunSummary:
    """What one :meth:`BatchConsumer.run` did."""

    batches: int = 0
    records: int = 0
    dead_letters: int = 0
    rollbacks: int = 0
    rewinds: int = 0


class BatchObserver(Protocol):
    """Receives what happens to batches (metrics, logs)."""

    def batch_done(self, outcome: BatchOutcome) -> None: ...

    def batch_failed(self, error: BaseException) -> None: ...


class _NoObserver:
    def batch_done(self, outcome: BatchOutcome) -> None:
        return None

    def batch_failed(self, error: BaseException) -> None:
        return None


class BatchConsumer:
    """Runs a source through a :class:`BatchProcessor` until stopped.

    SIGTERM (after :meth:`install_signal_handlers`) or :meth:`stop` lets the batch in
    hand finish and commit (or roll back when it was being retried), then closes the
    source cleanly so the group rebalances at once.
    """

    def __init__(
        self,
        source: Source,
        processor: BatchProcessor,
        *,
        max_records: int = 500,
        max_wait_s: float = 1.0,
        observer: BatchObserver | None = None,
        poll_slice_s: float = 0.2,
        assignment_timeout_s: float = 60.0,
        max_bytes: int | None = None,
        poll_max_records: int = 10_000,
    ) -> None:
        self.source = source
        self.processor = processor
        self.assembler = BatchAssembler(max_records, max_wait_s, max_bytes=max_bytes)
        self.observer: BatchObserver = observer or _NoObserver()
        self.poll_slice_s = poll_slice_s
        self.poll_max_records = poll_max_records
        self.assignment_timeout_s = assignment_timeout_s
        self._unassigned_since: float | None = None
        self._unassigned_warned = 0.0
        self._closing = False
        self._stop = threading.Event()
        self.summary = RunSummary()
        self._failures = 0

    # -- control
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopping; False when stopped meanwhile (the processor's ``sleep``)."""
        return not self._stop.wait(seconds)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the consumer after the batch in hand."""

        def _handler(signum: int, frame: FrameType | None) -> None:
            logger.info("signal %s: finishing the batch in hand", signum)
            self.stop()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    # -- loop
    def run(
        self,
        *,
        until_caught_up: bool = False,
        max_batches: int | None = None,
        timeout_s: float | None = None,
    ) -> RunSummary:
        """Consume until stopped (or caught up / ``max_batches`` / ``timeout_s``).

        A member that holds no partition for ``assignment_timeout_s`` says so in the
        log (group, stream, state), again every ``assignment_timeout_s``; with
        ``until_caught_up`` it raises :class:`~sluice.streams.exceptions.NoAssignmentError`
        instead, since it could wait forever.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                batch = self._assemble(until_caught_up=until_caught_up, deadline=deadline)
                if len(batch):
                    self._handle(batch)
                    if max_batches is not None and self.summary.batches >= max_batches:
                        break
                elif until_caught_up and self.source.caught_up():
                    break
                else:
                    self._check_assignment(fail=until_caught_up)
            if self.assembler.pending:
                self._handle(self.assembler.take())
        finally:
            self._closing = True
            try:
                self.source.close()
            finally:
                self.processor.close()
        return self.summary

    def _poll(self, max_records: int, wait: float) -> list[StreamRecord]:
        """Poll; a transient failure is retried with backoff, at most
        ``POLL_ATTEMPTS`` times in a row, then raised (nothing polled was committed)."""
        for attempt in range(1, POLL_ATTEMPTS + 1):
            try:
                return self.source.poll(max_records, wait)
            except RetryableError as exc:
                if attempt == POLL_ATTEMPTS:
                    raise
                logger.warning("reading failed (%s); retrying", exc)
                if not self.wait(min(0.2 * 2 ** (attempt - 1), 5.0)):
                    return []
        return []  # pragma: no cover - the loop returns or raises

    def _check_assignment(self, *, fail: bool) -> None:
        if self.source.assignment():
            self._unassigned_since = None
            return
        now = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = self._unassigned_warned = now
            return
        waited = now - self._unassigned_since
        if waited < self.assignment_timeout_s:
            return
        reason = f"{self.source.waiting_reason()} for {waited:.0f} s"
        if fail:
            raise NoAssignmentError(reason)
        if now - self._unassigned_warned >= self.assignment_timeout_s:
            logger.warning("%s", reason)
            self._unassigned_warned = now

    def _assemble(self, *, until_caught_up: bool = False, deadline: float | None = None) -> Batch:
        """The next batch: full, or due ``max_wait_s`` after its first record. An idle
        poll with nothing pending returns an empty batch at once (the run loop then
        checks for the end and the assignment); with ``until_caught_up`` a batch is
        handed over as soon as the source is read to its end."""
        while not self.assembler.ready() and not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            wait = min(self.poll_slice_s, self.assembler.time_left())
            records = self._poll(min(self.assembler.capacity(), self.poll_max_records), wait)
            if records:
                self.assembler.add(records)
            elif self.assembler.pending == 0 or (until_caught_up and self.source.caught_up()):
                break
        return self.assembler.take()

    def _handle(self, batch: Batch) -> None:
        try:
            outcome = self.processor.process(batch, self.source.checkpoint)
        except ConsumerInterrupted:
            self.source.rewind(batch.first_offsets())
            return
        except RetryableError as exc:
            self._failures += 1
            self.summary.rewinds += 1
            self.observer.batch_failed(exc)
            logger.warning(
                "batch %s not committed (%s); rewinding to the last checkpoint", batch.batch_id, exc
            )
            self.source.rewind(batch.first_offsets())
            self.wait(self.processor.policy.delay(self._failures))
            return
        self._failures = 0
        self.summary.batches += 1
        self.summary.records += outcome.records
        self.summary.dead_letters += len(outcome.dead_letters)
        self.summary.rollbacks += outcome.rollbacks
        self.observer.batch_done(outcome)

    def attach(self, member: object) -> None:
        """Follow ``member``'s group: seed checkpoints on assign, commit on revoke."""
        if isinstance(member, GroupMember):
            member.on_assigned = self.processor.tracker.seed
            member.on_revoked = self.handle_revoke

    def handle_revoke(self, partitions: Iterable[PartitionKey]) -> None:
        """Commit the pending records of partitions that are going away, or drop them.

        Called by the source before it gives the partitions up; dropped records are
        read again by their next owner from the last checkpoint. While the consumer
        closes (after a failure, pending records were not written) they are dropped.
        """
        gone = list(partitions)
        pending = self.assembler.drop(gone)
        if pending and self._closing:
            # Closing after a failure: what is pending was never checkpointed and is
            # read again from the last checkpoint.
            logger.info("closing: %d uncommitted record(s) left for re-reading", len(pending))
        elif pending:
            try:
                self._commit_on_revoke(Batch(tuple(pending)))
            except RetryableError as exc:
                logger.warning("revoked partitions: in-flight batch rolled back (%s)", exc)
        self.processor.tracker.forget(gone)

    def _commit_on_revoke(self, batch: Batch) -> None:
        outcome = self.processor.process(batch, self.source.checkpoint)
        self.summary.batches += 1
        self.summary.records += outcome.records
        self.summary.dead_letters += len(outcome.dead_letters)
        self.observer.batch_done(outcome)
