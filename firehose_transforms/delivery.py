"""The local delivery: plays Amazon Data Firehose's part on the local stack.

The delivery is a consumer group (the consumers' :class:`~consumers.runner.BatchConsumer`
over the streams layer's Kafka or Kinesis reader) driving a :class:`FirehoseSink`.
Firehose's buffering hints are the consumer's batch limits: a batch is full at the
size hint (bytes of record data) or due at the interval hint after its first poll.

One delivery batch, in numbered steps (the order is the guarantee):

1. the consumer assembles the batch (size or interval hint; the Kinesis reader hands
   out the user records of KPL aggregates, each with its own partition key, as
   Firehose deaggregates before it invokes the transform);
2. with the source record backup on (``raw_backup``), the sink writes every source
   record of the batch, untransformed, under ``raw/`` (one object per source
   partition);
3. the sink invokes the transform in chunks of at most ``lambda_buffer_mib`` of record
   data; a failed invocation (raised, or answered outside the contract) is retried
   ``invoke_retries`` times, then every record of it is an error record
   (``Lambda.FunctionError`` ...);
4. the sink writes the ``Ok`` output gzip-compressed under ``clean/`` (one object per
   source partition and partition keys), then the error records under
   ``errors/processing-failed/`` (no manifest: Firehose writes none);
5. only after the sink committed does the consumer checkpoint the source (Kafka group
   commit / Kinesis lease checkpoint). A failed sink rolls back and the consumer
   rewinds to the last checkpoint (the consumers' commit-after-sink rules).

A crash anywhere before step 5 replays the batch on restart: duplicates (the same
object keys, rewritten), never loss.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from consumers.base import BatchProcessor, RetryPolicy, passthrough_decoder
from consumers.models import DeadLetter, DecodedRecord
from consumers.runner import BatchConsumer
from firehose_transforms.config import LAMBDA_PAYLOAD_LIMIT, DeliverySettings
from firehose_transforms.exceptions import (
    DeliveryConfigurationError,
    InvocationFailed,
)
from firehose_transforms.invocation import (
    EventContext,
    Outcome,
    check_response,
    chunk_for_invocation,
    firehose_event,
)
from firehose_transforms.metrics import DeliveryMetrics
from firehose_transforms.models import (
    BatchReport,
    DeliveryOptions,
    DeliverySummary,
    SourceKind,
)
from firehose_transforms.planning import PlannedObject, plan_batch, plan_raw_backup
from sluice.config import ZoneSettings
from sluice.errors import FatalError, SluiceError
from sluice.streams.base import Source
from sluice.streams.models import StreamRecord

logger = logging.getLogger(__name__)

Invoker = Callable[[dict[str, Any]], Mapping[str, Any]]
"""Calls the transform with a Firehose event and returns its response."""

MIB = 1024 * 1024
_MAX_BATCH_RECORDS = 500_000
"""Records per batch when the size hint is not reached first (bounds memory)."""
_POLL_RECORDS = 1000
"""Records per poll: the size hint is checked between polls, so a batch passes it by
at most one poll's worth."""
_MIN_WAIT_S = 0.2
"""An interval hint of 0 s flushes after each poll that brought records."""


@runtime_checkable
class ObjectStore(Protocol):
    """The S3 zone (one bucket)."""

    bucket: str

    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write ``body`` under ``key`` (overwrite)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when there is none."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...


class FirehoseSink:
    """Firehose's part after buffering: back up, transform, write the zone (steps 2-4).

    A :class:`~consumers.base.Sink`: records written inside one transaction are
    delivered at :meth:`commit`; :meth:`rollback` forgets them (objects already written
    are rewritten under the same keys when the batch is read again).

    Args:
        options: what is delivered (event type, raw backup).
        kind / stream: the source's backend and topic/stream name.
        store: the S3 zone.
        invoker: the transform; the in-process ``lambda_handler`` by default.
        zone: bucket and prefixes.
        settings: delivery defaults (retries, Lambda ARN, processor buffer, and the
            source record backup when ``options.raw_backup`` is ``None``).
        metrics: Prometheus metrics; a private registry when omitted.
        sleep: backoff between invocation attempts (tests pass a no-op).
        progress: called with a one-line message after every batch (console).
    """

    def __init__(
        self,
        options: DeliveryOptions,
        *,
        kind: SourceKind,
        stream: str,
        store: ObjectStore,
        invoker: Invoker | None = None,
        zone: ZoneSettings | None = None,
        settings: DeliverySettings | None = None,
        metrics: DeliveryMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.kind = kind
        self.stream = stream
        self.store = store
        self.zone = zone or ZoneSettings(s3_bucket=store.bucket)
        self.settings = settings or DeliverySettings()
        self.raw_backup = (
            options.raw_backup
            if options.raw_backup is not None
            else self.settings.firehose_raw_backup
        )
        self.metrics = metrics or DeliveryMetrics()
        self._invoker = invoker or _default_invoker()
        self._sleep = sleep
        self._progress = progress
        self.context = EventContext(
            kind=kind, stream=stream, delivery_stream=f"sluice-{options.event_type.value}"
        )
        self.summary = DeliverySummary(
            source=kind.value, stream=stream, event_type=options.event_type.value
        )
        self._pending: list[StreamRecord] = []

    # -- Sink
    def begin(self, batch_id: str) -> None:
        self._pending = []

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self._pending.extend(d.record for d in records)
        self.metrics.buffered.set(len(self._pending))

    def commit(self) -> None:
        records, self._pending = self._pending, []
        self.metrics.buffered.set(0)
        if not records:
            return
        self.metrics.source_records.labels(self.kind.value, self.options.event_type.value).inc(
            len(records)
        )
        started = time.monotonic()
        report = self.deliver(records)
        self.metrics.batch_seconds.observe(time.monotonic() - started)
        self.summary.add(report)
        if self._progress:
            self._progress(
                f"batch {self.summary.batches}: {report.records} records -> ok {report.ok} "
                f"({report.rows} rows), dropped {report.dropped}, failed {report.failed}; "
                f"{len(report.objects)} clean, {len(report.error_objects)} error"
                + (f", {len(report.raw_objects)} raw" if self.raw_backup else "")
                + " objects"
            )

    def rollback(self) -> None:
        self._pending = []
        self.metrics.buffered.set(0)

    # -- one batch
    def deliver(self, records: Sequence[StreamRecord]) -> BatchReport:
        """Back up, transform and write one batch (steps 2-4); returns what it did."""
        # The source backup goes first: it holds the batch's records whatever the
        # transform then does with them (even if it never answers).
        backups = (
            plan_raw_backup(records, kind=self.kind, source=self.stream, zone=self.zone)
            if self.raw_backup
            else []
        )
        for obj in backups:
            self._put(obj)
        outcomes: list[Outcome] = []
        attempts_total = 0
        limit = int(self.settings.firehose_lambda_buffer_mib * MIB)
        for chunk in chunk_for_invocation(records, limit):
            chunk_outcomes, attempts = self._invoke(chunk)
            outcomes.extend(chunk_outcomes)
            attempts_total += attempts
        planned = plan_batch(
            outcomes,
            kind=self.kind,
            source=self.stream,
            zone=self.zone,
            lambda_arn=self.settings.firehose_lambda_arn,
        )
        for obj in planned:
            self._put(obj)
        counts = {"Ok": 0, "Dropped": 0, "ProcessingFailed": 0}
        for o in outcomes:
            counts[o.result] += 1
        for result, count in counts.items():
            if count:
                self.metrics.records.labels(self.options.event_type.value, result).inc(count)
        self.metrics.last_flush.set(time.time())
        clean = [p for p in planned if p.kind == "clean"]
        return BatchReport(
            records=len(records),
            ok=counts["Ok"],
            dropped=counts["Dropped"],
            failed=counts["ProcessingFailed"],
            rows=sum(p.rows for p in clean),
            objects=tuple(p.key for p in clean),
            error_objects=tuple(p.key for p in planned if p.kind == "error"),
            invocation_attempts=attempts_total,
            raw_objects=tuple(p.key for p in backups),
        )

    def _invoke(self, chunk: Sequence[StreamRecord]) -> tuple[list[Outcome], int]:
        """Invoke with retries; after the last failed attempt every record is an error."""
        event = firehose_event(self.context, chunk)
        data_key = "kafkaRecordValue" if self.kind == SourceKind.KAFKA else "data"
        attempts = 1 + self.settings.firehose_invoke_retries
        last: InvocationFailed | None = None
        for attempt in range(1, attempts + 1):
            try:
                response = self._call(event)
                outcomes = check_response(self.kind, chunk, response, data_key)
            except InvocationFailed as exc:
                last = exc
                self.metrics.invocations.labels("failed").inc()
                logger.warning("invocation attempt %d/%d failed: %s", attempt, attempts, exc)
                if attempt < attempts:
                    self._sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
                continue
            self.metrics.invocations.labels("ok").inc()
            ended = int(time.time() * 1000)
            return [_with_attempts(o, attempt, ended) for o in outcomes], attempt
        assert last is not None  # the loop ran at least once
        ended = int(time.time() * 1000)
        return [
            Outcome(
                r,
                "ProcessingFailed",
                error_code=last.code,
                error_message=last.message,
                attempts=attempts,
                ended_ms=ended,
            )
            for r in chunk
        ], attempts

    def _call(self, event: dict[str, Any]) -> Mapping[str, Any]:
        try:
            response = self._invoker(event)
        except SluiceError as exc:
            raise InvocationFailed(
                f"the transform raised {type(exc).__name__}: {exc.message}",
                code="Lambda.FunctionError",
            ) from exc
        except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
            raise InvocationFailed(
                f"the transform raised {type(exc).__name__}", code="Lambda.FunctionError"
            ) from exc
        size = len(json.dumps(response))
        if size > LAMBDA_PAYLOAD_LIMIT:
            raise InvocationFailed(
                f"response of {size} bytes exceeds 6 MB", code="Lambda.FunctionError"
            )
        return response

    def _put(self, obj: PlannedObject) -> None:
        for attempt in range(1, 6):
            try:
                self.store.put(obj.key, obj.body, obj.content_type)
                break
            except SluiceError as exc:
                if not exc.retryable or attempt == 5:
                    raise
                logger.warning("writing %s failed (%s); retrying", obj.key, exc)
                self._sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        self.metrics.objects.labels(obj.kind).inc()
        self.metrics.bytes_written.labels(obj.kind).inc(len(obj.body))


def _with_attempts(outcome: Outcome, attempts: int, ended_ms: int) -> Outcome:
    return Outcome(
        outcome.record,
        outcome.result,
        data=outcome.data,
        event_type=outcome.event_type,
        dt=outcome.dt,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        attempts=attempts,
        ended_ms=ended_ms,
    )


def _default_invoker() -> Invoker:
    from firehose_transforms.lambda_function import lambda_handler

    return lambda event: lambda_handler(event, None)


def validate_options(options: DeliveryOptions) -> None:
    """Check the buffering hints against Firehose's ranges (1-128 MiB, 0-900 s).

    Raises:
        DeliveryConfigurationError: a hint is out of range.
    """
    from firehose_transforms.config import (
        MAX_BUFFER_MIB,
        MAX_BUFFER_SECONDS,
        MIN_BUFFER_MIB,
        MIN_BUFFER_SECONDS,
    )

    if not MIN_BUFFER_MIB <= options.buffer_mib <= MAX_BUFFER_MIB:
        raise DeliveryConfigurationError(
            f"buffer size hint must be {MIN_BUFFER_MIB}-{MAX_BUFFER_MIB} MiB, "
            f"got {options.buffer_mib}"
        )
    if not MIN_BUFFER_SECONDS <= options.buffer_seconds <= MAX_BUFFER_SECONDS:
        raise DeliveryConfigurationError(
            f"buffer interval hint must be {MIN_BUFFER_SECONDS}-{MAX_BUFFER_SECONDS} s, "
            f"got {options.buffer_seconds}"
        )


class _NoDeadLetters:
    """The delivery has no dead-letter queue: failed records go to the error prefix."""

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            raise FatalError(f"{len(letters)} record(s) could not be delivered")


def run_delivery(
    options: DeliveryOptions,
    *,
    source: Source | None = None,
    store: ObjectStore | None = None,
    invoker: Invoker | None = None,
    settings: DeliverySettings | None = None,
    zone: ZoneSettings | None = None,
    progress: Callable[[str], None] | None = None,
    runner_hook: Callable[[BatchConsumer, FirehoseSink], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliverySummary:
    """Run the local delivery with ``options`` and return its totals.

    The source and the store are built from the ``SLUICE_*`` settings unless given:
    consumer group ``<SLUICE_FIREHOSE_GROUP_PREFIX>-<event type>`` (or
    ``options.group_id``) on Kafka and on Kinesis (leases in
    ``SLUICE_FIREHOSE_CHECKPOINT_TABLE``.<stream>), the zone in ``SLUICE_S3_BUCKET``.
    ``runner_hook`` receives the consumer and the sink before the run starts (signal
    handlers call the consumer's ``stop``).

    Raises:
        DeliveryConfigurationError: a buffering hint is out of range.
        NoAssignmentError: with ``once``, the reader got no partition / shard within
            ``SLUICE_FIREHOSE_ASSIGNMENT_TIMEOUT_S``.
        SluiceError: a fatal error of the source or the store (nothing was
            checkpointed past the last complete batch).
    """
    validate_options(options)
    settings = settings or DeliverySettings()
    zone = zone or ZoneSettings()
    stream = options.stream or _default_stream(options)
    if source is None:
        source = build_source(options, settings, stream)
    if store is None:
        from firehose_transforms.s3 import S3ObjectStore

        store = S3ObjectStore(zone.s3_bucket)
    metrics = DeliveryMetrics()
    port = (
        options.metrics_port if options.metrics_port is not None else settings.firehose_metrics_port
    )
    if port is not None:
        metrics.serve(port, addr=settings.firehose_metrics_host)
    sink = FirehoseSink(
        options,
        kind=options.source,
        stream=stream,
        store=store,
        invoker=invoker,
        zone=zone,
        settings=settings,
        metrics=metrics,
        sleep=sleep,
        progress=progress,
    )
    consumer = build_delivery_consumer(options, settings, source, sink, sleep=sleep)
    if runner_hook is not None:
        runner_hook(consumer, sink)
    began = time.monotonic()
    try:
        consumer.run(until_caught_up=options.once, timeout_s=options.max_seconds)
    finally:
        sink.summary.seconds = time.monotonic() - began
    return sink.summary


def build_delivery_consumer(
    options: DeliveryOptions,
    settings: DeliverySettings,
    source: Source,
    sink: FirehoseSink,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchConsumer:
    """The consumer group member driving ``sink``: batches bounded by the buffering
    hints, sink failures retried then rewound (transient) or raised (fatal), never
    dead-lettered (the transform's failures are error records already)."""
    processor = BatchProcessor(
        sink,
        _NoDeadLetters(),
        policy=RetryPolicy(
            attempts=3, record_attempts=1, base_delay_s=0.5, max_delay_s=8.0, isolate=False
        ),
        decoder=passthrough_decoder(options.event_type.value),
    )
    consumer = BatchConsumer(
        source,
        processor,
        max_records=_MAX_BATCH_RECORDS,
        max_wait_s=max(float(options.buffer_seconds), _MIN_WAIT_S),
        max_bytes=options.buffer_mib * MIB,
        assignment_timeout_s=settings.firehose_assignment_timeout_s,
        poll_max_records=_POLL_RECORDS,
    )

    def backoff(seconds: float) -> bool:
        if consumer.stopping:
            return False
        sleep(seconds)
        return not consumer.stopping

    processor._sleep = backoff
    consumer.attach(source)
    return consumer


def _default_stream(options: DeliveryOptions) -> str:
    from sluice.config import StreamSettings

    return StreamSettings().name_for(options.event_type)


def build_source(options: DeliveryOptions, settings: DeliverySettings, stream: str) -> Source:
    """The Kafka or Kinesis reader of ``options`` from the ``SLUICE_*`` settings."""
    reader = settings.reader_options(options.group_id or settings.group_for(options.event_type))
    if options.source == SourceKind.KAFKA:
        from sluice.streams.kafka import KafkaSource

        return KafkaSource([stream], options=reader)
    if options.source == SourceKind.KINESIS:
        from sluice.streams.kinesis import KinesisSource

        return KinesisSource(stream, options=reader)
    raise DeliveryConfigurationError(f"unknown source {options.source!r}")
