"""The local delivery: plays Amazon Data Firehose's part on the local stack.

Boundaries (one narrow Protocol each, with memory, Kafka/Kinesis/S3/DynamoDB
implementations): :class:`Source` (where records come from, and where the position is
checkpointed), :class:`ObjectStore` (the S3 zone), :class:`CheckpointStore` (Kinesis
positions). The transform is called through an :data:`Invoker` (in-process
``lambda_handler`` by default), with a Firehose-shaped event of the source's type.

One delivery batch, in numbered steps (the order is the guarantee):

1. buffer source records until the size hint or the interval hint is reached (the
   interval counts from the first buffered record, so an idle stream still flushes);
2. with the source record backup on (``raw_backup``), write every source record of
   the batch, untransformed, under ``raw/`` (one object per source partition);
3. invoke the transform in chunks of at most ``lambda_buffer_mib`` of record data;
   a failed invocation (raised, or answered outside the contract) is retried
   ``invoke_retries`` times, then every record of it is an error record
   (``Lambda.FunctionError`` ...);
4. write the ``Ok`` output gzip-compressed under ``clean/`` (one object per source
   partition and partition keys), then the error records under
   ``errors/processing-failed/`` (no manifest: Firehose writes none);
5. only then checkpoint the source (Kafka group commit / Kinesis checkpoint row).

A crash anywhere before step 5 replays the batch on restart: duplicates, never loss.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from firehose_transforms.config import LAMBDA_PAYLOAD_LIMIT, DeliverySettings
from firehose_transforms.exceptions import (
    DeliveryConfigurationError,
    InvocationFailed,
)
from firehose_transforms.metrics import DeliveryMetrics
from firehose_transforms.models import (
    BatchReport,
    DeliveryOptions,
    DeliverySummary,
    SourceKind,
    SourceRecord,
)
from sluice.config import ZoneSettings
from sluice.errors import SluiceError
from sluice.zone import (
    NDJSON_CONTENT_TYPE,
    RAW_CONTENT_TYPE,
    GroupName,
    clean_key,
    error_key,
    error_record,
    frame_raw,
    gzip_bytes,
    ndjson,
    raw_key,
)

logger = logging.getLogger(__name__)

Invoker = Callable[[dict[str, Any]], Mapping[str, Any]]
"""Calls the transform with a Firehose event and returns its response."""

MIB = 1024 * 1024
_REQUEST_RECORD_OVERHEAD = 400
"""Bytes a record adds to the request besides its base64 data (ids, metadata)."""


# --------------------------------------------------------------------------- boundaries


@runtime_checkable
class Source(Protocol):
    """Where the delivery reads records and checkpoints its position."""

    kind: str
    name: str

    def poll(self, max_records: int, timeout: float) -> list[SourceRecord]:
        """Up to ``max_records`` new records, waiting at most ``timeout`` seconds."""
        ...

    def drained(self) -> bool:
        """True when every partition/shard was read to its end at the last poll."""
        ...

    def commit(self, positions: Mapping[str, str]) -> None:
        """Checkpoint: every record up to and including ``positions[partition]`` is done."""
        ...

    def close(self) -> None:
        """Release the client (Kafka: leave the group)."""
        ...


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


@runtime_checkable
class CheckpointStore(Protocol):
    """Kinesis positions per (stream, shard)."""

    def load(self, stream: str, shard: str) -> str | None:
        """The last checkpointed sequence number, or ``None``."""
        ...

    def save(self, stream: str, shard: str, sequence: str) -> None:
        """Store ``sequence``; a position behind the stored one raises."""
        ...


# --------------------------------------------------------------------------- buffering


@dataclass
class DeliveryBuffer:
    """Firehose's buffering hints: flush at ``max_bytes`` or ``interval`` seconds after
    the first buffered record, whichever comes first (pure; the clock is passed in)."""

    max_bytes: int
    interval: float
    records: list[SourceRecord] = field(default_factory=list)
    size: int = 0
    started: float | None = None

    def add(self, records: Sequence[SourceRecord], now: float) -> None:
        """Buffer ``records`` (received at ``now``)."""
        if records and self.started is None:
            self.started = now
        self.records.extend(records)
        self.size += sum(len(r.value) for r in records)

    def due(self, now: float) -> bool:
        """True when the buffer must be flushed now."""
        if not self.records:
            return False
        return self.size >= self.max_bytes or now - (self.started or now) >= self.interval

    def wait(self, now: float, ceiling: float) -> float:
        """How long the next poll may block without missing the interval."""
        if self.started is None:
            return ceiling
        return max(0.0, min(ceiling, self.started + self.interval - now))

    def take(self) -> list[SourceRecord]:
        """Empty the buffer, returning what it held."""
        records, self.records, self.size, self.started = self.records, [], 0, None
        return records


def chunk_for_invocation(
    records: Sequence[SourceRecord], max_bytes: int
) -> list[list[SourceRecord]]:
    """Split a batch into invocations: at most ``max_bytes`` of record data each, and
    every request under the Lambda 6 MB limit (a single record always gets its own)."""
    limit = min(max_bytes, (LAMBDA_PAYLOAD_LIMIT - 64 * 1024) * 3 // 4)
    chunks: list[list[SourceRecord]] = []
    current: list[SourceRecord] = []
    size = 0
    for record in records:
        cost = len(record.value) + _REQUEST_RECORD_OVERHEAD
        if current and size + cost > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += cost
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a Firehose event says about its delivery stream and source."""

    kind: str
    stream: str
    delivery_stream: str
    region: str = "us-east-1"
    account: str = "000000000000"

    @property
    def delivery_stream_arn(self) -> str:
        return (
            f"arn:aws:firehose:{self.region}:{self.account}:deliverystream/{self.delivery_stream}"
        )

    @property
    def source_arn(self) -> str:
        if self.kind == SourceKind.KAFKA:
            return f"arn:aws:kafka:{self.region}:{self.account}:cluster/sluice-local/{self.stream}"
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{self.stream}"


def firehose_event(context: EventContext, records: Sequence[SourceRecord]) -> dict[str, Any]:
    """The transformation event Firehose sends for ``records``: the MSK-source shape for
    Kafka, the Kinesis-stream-source shape for Kinesis. ``recordId`` = ``partition:position``."""
    seed = f"{context.stream}/{records[0].record_id}/{records[-1].record_id}" if records else ""
    event: dict[str, Any] = {
        "invocationId": str(uuid.uuid5(uuid.NAMESPACE_URL, seed)),
        "deliveryStreamArn": context.delivery_stream_arn,
        "region": context.region,
    }
    if context.kind == SourceKind.KAFKA:
        event["sourceMSKArn"] = context.source_arn
        event["records"] = [
            {
                "recordId": r.record_id,
                "approximateArrivalTimestamp": r.arrival_ms,
                "mskRecordMetadata": {
                    "offset": r.position,
                    "partitionId": r.partition.lstrip("p").lstrip("0") or "0",
                    "approximateArrivalTimestamp": r.arrival_ms,
                },
                "kafkaRecordValue": base64.b64encode(r.value).decode("ascii"),
            }
            for r in records
        ]
    else:
        event["sourceKinesisStreamArn"] = context.source_arn
        event["records"] = [
            {
                "recordId": r.record_id,
                "approximateArrivalTimestamp": r.arrival_ms,
                "data": base64.b64encode(r.value).decode("ascii"),
                "kinesisRecordMetadata": {
                    "shardId": r.partition,
                    "partitionKey": r.key or "",
                    "approximateArrivalTimestamp": r.arrival_ms,
                    "sequenceNumber": r.position,
                    "subsequenceNumber": r.subsequence or 0,
                },
            }
            for r in records
        ]
    return event


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one source record after the transform."""

    record: SourceRecord
    result: str  # Ok | Dropped | ProcessingFailed
    data: bytes = b""
    event_type: str | None = None
    dt: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1
    ended_ms: int = 0


def check_response(records: Sequence[SourceRecord], response: Any, data_key: str) -> list[Outcome]:
    """Read a transform response the way Firehose does.

    Raises:
        InvocationFailed: the response breaks the contract (not a records list, a
            missing / unknown / repeated ``recordId``, a bad ``result``, data that is
            not base64, an ``Ok`` record without partition keys).
    """
    if not isinstance(response, Mapping) or not isinstance(response.get("records"), list):
        raise InvocationFailed("response has no records list", code="Lambda.InvalidOutput")
    by_id = {r.record_id: r for r in records}
    answered: dict[str, Outcome] = {}
    for entry in response["records"]:
        if not isinstance(entry, Mapping):
            raise InvocationFailed("response record is not an object", code="Lambda.InvalidOutput")
        record_id = entry.get("recordId")
        if not isinstance(record_id, str) or record_id not in by_id:
            raise InvocationFailed(
                "response names an unknown recordId", code="Lambda.InvalidRecordId"
            )
        if record_id in answered:
            raise InvocationFailed(
                f"recordId {record_id} answered twice", code="Lambda.DuplicatedRecordId"
            )
        answered[record_id] = _outcome(by_id[record_id], entry, data_key)
    missing = [rid for rid in by_id if rid not in answered]
    if missing:
        raise InvocationFailed(
            f"{len(missing)} recordId(s) missing from the response", code="Lambda.MissingRecordId"
        )
    return [answered[r.record_id] for r in records]


def _outcome(record: SourceRecord, entry: Mapping[str, Any], data_key: str) -> Outcome:
    result = entry.get("result")
    raw = entry.get(data_key)
    if result not in ("Ok", "Dropped", "ProcessingFailed"):
        raise InvocationFailed(
            f"result {str(result)[:32]!r} is not valid", code="Lambda.InvalidOutput"
        )
    if not isinstance(raw, str):
        raise InvocationFailed(
            f"record {record.record_id} has no {data_key}", code="Lambda.InvalidOutput"
        )
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise InvocationFailed("data is not base64", code="Lambda.InvalidOutput") from exc
    if result == "Ok":
        keys = (entry.get("metadata") or {}).get("partitionKeys") or {}
        event_type, dt = keys.get("event_type"), keys.get("dt")
        if not isinstance(event_type, str) or not isinstance(dt, str):
            raise InvocationFailed(
                "Ok record without partitionKeys event_type and dt", code="Lambda.InvalidOutput"
            )
        return Outcome(record, "Ok", data=data, event_type=event_type, dt=dt)
    if result == "Dropped":
        return Outcome(record, "Dropped")
    code, message = _failure_reason(data)
    return Outcome(
        record,
        "ProcessingFailed",
        error_code="Lambda.ProcessingFailedStatus",
        error_message=f"{code}: {message}",
    )


def _failure_reason(data: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(data)
    except ValueError:
        return "processing_failed", "the transform marked the record ProcessingFailed"
    if not isinstance(doc, Mapping):
        return "processing_failed", "the transform marked the record ProcessingFailed"
    return str(doc.get("errorCode") or "processing_failed"), str(doc.get("errorMessage") or "")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class PlannedObject:
    """One object to write."""

    key: str
    body: bytes
    content_type: str
    kind: str  # raw | clean | error
    rows: int = 0
    event_type: str | None = None


def partition_names(
    records: Iterable[SourceRecord], *, kind: str, source: str
) -> dict[str, GroupName]:
    """The object name of each source partition of a batch: its first and last position
    over every record of the batch (whatever became of them), and the arrival time of
    the first. The raw, clean and error objects of one partition share it (pure)."""
    by_partition: dict[str, list[SourceRecord]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    names: dict[str, GroupName] = {}
    for partition, items in by_partition.items():
        ordered = sorted(items, key=lambda r: _position_key(r.position))
        names[partition] = GroupName(
            kind=kind,
            source=source,
            partition=partition,
            first=ordered[0].position,
            last=ordered[-1].position,
            first_arrival_ms=ordered[0].arrival_ms,
        )
    return names


def plan_raw_backup(
    records: Sequence[SourceRecord], *, kind: str, source: str, zone: ZoneSettings
) -> list[PlannedObject]:
    """The source record backup of one batch (pure): one object per source partition,
    ``raw/YYYY/MM/DD/HH/<stem>.gz``, holding every record of that partition in source
    order (Ok, Dropped and ProcessingFailed alike), framed by
    :func:`~sluice.zone.frame_raw` and gzip-compressed. ``rows`` is the
    number of records."""
    names = partition_names(records, kind=kind, source=source)
    by_partition: dict[str, list[SourceRecord]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    planned: list[PlannedObject] = []
    for partition in sorted(by_partition):
        items = sorted(
            by_partition[partition],
            key=lambda r: (_position_key(r.position), r.subsequence or 0),
        )
        planned.append(
            PlannedObject(
                key=raw_key(zone, names[partition]),
                body=gzip_bytes(frame_raw(r.value for r in items)),
                content_type=RAW_CONTENT_TYPE,
                kind="raw",
                rows=len(items),
            )
        )
    return planned


def plan_batch(
    outcomes: Sequence[Outcome],
    *,
    kind: str,
    source: str,
    zone: ZoneSettings,
    lambda_arn: str,
) -> list[PlannedObject]:
    """Every object one batch writes, in write order: clean, then errors (pure).

    Like Firehose, the delivery writes no manifest: the loader finds the clean objects
    through S3 event notifications and its listing sweep."""
    if not outcomes:
        return []
    by_partition: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_partition.setdefault(outcome.record.partition, []).append(outcome)
    names = partition_names((o.record for o in outcomes), kind=kind, source=source)
    cleans: list[PlannedObject] = []
    errors: list[PlannedObject] = []
    for partition in sorted(by_partition):
        items = sorted(by_partition[partition], key=lambda o: _position_key(o.record.position))
        name = names[partition]
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for o in items:
            if o.result == "Ok" and o.event_type and o.dt:
                groups.setdefault((o.event_type, o.dt), []).append(o)
        for (event_type, dt), group in sorted(groups.items()):
            body = b"".join(_ensure_newline(o.data) for o in group)
            rows = body.count(b"\n")
            cleans.append(
                PlannedObject(
                    key=clean_key(zone, event_type, dt, name),
                    body=gzip_bytes(body),
                    content_type=NDJSON_CONTENT_TYPE,
                    kind="clean",
                    rows=rows,
                    event_type=event_type,
                )
            )
        failed = [o for o in items if o.result == "ProcessingFailed"]
        if failed:
            body = ndjson(
                error_record(
                    raw=o.record.value,
                    arrival_ms=o.record.arrival_ms,
                    error_code=o.error_code or "Lambda.ProcessingFailedStatus",
                    error_message=o.error_message or "",
                    attempts=o.attempts,
                    attempt_ending_ms=o.ended_ms,
                    lambda_arn=lambda_arn,
                )
                for o in failed
            )
            errors.append(
                PlannedObject(
                    key=error_key(zone, name),
                    body=gzip_bytes(body),
                    content_type=NDJSON_CONTENT_TYPE,
                    kind="error",
                    rows=len(failed),
                )
            )
    return [*cleans, *errors]


def _position_key(position: str) -> tuple[int, str]:
    return (len(position), position) if position.isdigit() else (0, position)


def _ensure_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"


def last_positions(records: Sequence[SourceRecord]) -> dict[str, str]:
    """The highest position per partition (what to checkpoint after the batch)."""
    out: dict[str, str] = {}
    for r in records:
        current = out.get(r.partition)
        if current is None or _position_key(r.position) > _position_key(current):
            out[r.partition] = r.position
    return out


# --------------------------------------------------------------------------- the runner


class DeliveryRunner:
    """Reads, buffers, transforms, writes, checkpoints (see the module docstring).

    Args:
        options: what to deliver and the buffering hints.
        source: the stream reader (Kafka or Kinesis, or memory in tests).
        store: the S3 zone.
        invoker: the transform; the in-process ``lambda_handler`` by default.
        zone: bucket and prefixes.
        settings: delivery defaults (retries, Lambda ARN, processor buffer, and the
            source record backup when ``options.raw_backup`` is ``None``).
        metrics: Prometheus metrics; a private registry when omitted.
        clock / sleep: injectable time (tests).
        progress: called with a one-line message after every batch (console).
    """

    def __init__(
        self,
        options: DeliveryOptions,
        *,
        source: Source,
        store: ObjectStore,
        invoker: Invoker | None = None,
        zone: ZoneSettings | None = None,
        settings: DeliverySettings | None = None,
        metrics: DeliveryMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        validate_options(options)
        self.options = options
        self.source = source
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
        self._clock = clock
        self._sleep = sleep
        self._progress = progress
        self._stop = False
        self._closing = False
        self.context = EventContext(
            kind=source.kind,
            stream=source.name,
            delivery_stream=f"sluice-{options.event_type.value}",
        )
        self.buffer = DeliveryBuffer(
            max_bytes=options.buffer_mib * MIB, interval=options.buffer_seconds
        )
        self.summary = DeliverySummary(
            source=source.kind, stream=source.name, event_type=options.event_type.value
        )

    def stop(self) -> None:
        """Ask the loop to flush what it holds and return (signal handlers call this)."""
        self._stop = True

    def on_revoke(self) -> None:
        """The source is losing partitions: deliver and commit what is buffered first.

        Not while closing after a failure: what is still buffered then is read again
        after the restart (nothing was committed for it).
        """
        if not self._closing:
            self.flush()

    def run(self) -> DeliverySummary:
        """Deliver until stopped, ``max_seconds`` passed, or (with ``once``) drained."""
        began = self._clock()
        idle_since: float | None = None
        try:
            while not self._stop:
                now = self._clock()
                if self.options.max_seconds is not None and now - began >= self.options.max_seconds:
                    break
                records = self._poll(self.buffer.wait(now, 0.5))
                now = self._clock()
                self.buffer.add(records, now)
                if records:
                    self.metrics.source_records.labels(
                        self.source.kind, self.options.event_type.value
                    ).inc(len(records))
                self.metrics.buffered.set(len(self.buffer.records))
                if self.buffer.due(now) or (
                    self.options.buffer_seconds == 0 and self.buffer.records
                ):
                    self.flush()
                if self.options.once:
                    if records or not self.source.drained():
                        idle_since = None
                    elif idle_since is None:
                        idle_since = now
                    elif now - idle_since >= self.options.idle_seconds:
                        break
            self.flush()
        finally:
            self.summary.seconds = self._clock() - began
            self._closing = True
            self.source.close()
        return self.summary

    def _poll(self, timeout: float) -> list[SourceRecord]:
        """Poll the source; a transient failure is retried with backoff (5 times in a
        row at most), then raised. Nothing buffered is lost either way: it was not
        committed."""
        for attempt in range(1, 7):
            try:
                return self.source.poll(1000, timeout)
            except SluiceError as exc:
                if not exc.retryable or attempt == 6:
                    raise
                logger.warning("reading %s failed (%s); retrying", self.source.name, exc)
                self._sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def flush(self) -> BatchReport | None:
        """Deliver everything buffered now as one batch (steps 2-4)."""
        records = self.buffer.take()
        self.metrics.buffered.set(0)
        if not records:
            return None
        started = self._clock()
        report = self.deliver(records)
        self.metrics.batch_seconds.observe(self._clock() - started)
        self.summary.add(report)
        if self._progress:
            self._progress(
                f"batch {self.summary.batches}: {report.records} records -> ok {report.ok} "
                f"({report.rows} rows), dropped {report.dropped}, failed {report.failed}; "
                f"{len(report.objects)} clean, {len(report.error_objects)} error"
                + (f", {len(report.raw_objects)} raw" if self.raw_backup else "")
                + " objects"
            )
        return report

    def deliver(self, records: Sequence[SourceRecord]) -> BatchReport:
        """Back up, transform, write and checkpoint one batch; returns what it did."""
        # The source backup goes first: it holds the batch's records whatever the
        # transform then does with them (even if it never answers).
        backups = (
            plan_raw_backup(records, kind=self.source.kind, source=self.source.name, zone=self.zone)
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
            kind=self.source.kind,
            source=self.source.name,
            zone=self.zone,
            lambda_arn=self.settings.firehose_lambda_arn,
        )
        for obj in planned:
            self._put(obj)
        self.source.commit(last_positions(records))
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

    def _invoke(self, chunk: Sequence[SourceRecord]) -> tuple[list[Outcome], int]:
        """Invoke with retries; after the last failed attempt every record is an error."""
        event = firehose_event(self.context, chunk)
        data_key = "kafkaRecordValue" if self.source.kind == SourceKind.KAFKA else "data"
        attempts = 1 + self.settings.firehose_invoke_retries
        last: InvocationFailed | None = None
        for attempt in range(1, attempts + 1):
            try:
                response = self._call(event)
                outcomes = check_response(chunk, response, data_key)
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


# --------------------------------------------------------------------------- the API


def run_delivery(
    options: DeliveryOptions,
    *,
    source: Source | None = None,
    store: ObjectStore | None = None,
    invoker: Invoker | None = None,
    settings: DeliverySettings | None = None,
    zone: ZoneSettings | None = None,
    progress: Callable[[str], None] | None = None,
    runner_hook: Callable[[DeliveryRunner], None] | None = None,
) -> DeliverySummary:
    """Run the local delivery with ``options`` and return its totals.

    Sources and the store are built from the ``SLUICE_*`` settings unless given:
    Kafka consumer group ``<SLUICE_FIREHOSE_GROUP_PREFIX>-<event type>`` (or
    ``options.group_id``), Kinesis checkpoints in ``SLUICE_FIREHOSE_CHECKPOINT_TABLE``,
    the zone in ``SLUICE_S3_BUCKET``. ``runner_hook`` receives the runner before it
    starts (signal handlers use it to call :meth:`DeliveryRunner.stop`).

    Raises:
        DeliveryConfigurationError: a buffering hint is out of range, a stream or the
            bucket does not exist.
        DeliveryError: the source or S3 failed after retries (nothing was
            checkpointed past the last complete batch).
    """
    validate_options(options)
    settings = settings or DeliverySettings()
    zone = zone or ZoneSettings()
    if source is None:
        source = build_source(options, settings)
    if store is None:
        from firehose_transforms.s3 import S3ObjectStore

        store = S3ObjectStore(zone.s3_bucket)
    metrics = DeliveryMetrics()
    port = (
        options.metrics_port if options.metrics_port is not None else settings.firehose_metrics_port
    )
    if port is not None:
        metrics.serve(port, addr=settings.firehose_metrics_host)
    runner = DeliveryRunner(
        options,
        source=source,
        store=store,
        invoker=invoker,
        zone=zone,
        settings=settings,
        metrics=metrics,
        progress=progress,
    )
    if getattr(source, "on_revoke", "absent") is None:
        source.on_revoke = runner.on_revoke  # type: ignore[attr-defined]
    if runner_hook is not None:
        runner_hook(runner)
    return runner.run()


def build_source(options: DeliveryOptions, settings: DeliverySettings) -> Source:
    """The Kafka or Kinesis source for ``options`` from the ``SLUICE_*`` settings."""
    from sluice.config import StreamSettings

    stream = options.stream or StreamSettings().name_for(options.event_type)
    if options.source == SourceKind.KAFKA:
        from firehose_transforms.kafka import KafkaSource

        group = options.group_id or f"{settings.firehose_group_prefix}-{options.event_type.value}"
        return KafkaSource(
            stream,
            group,
            session_timeout_ms=settings.firehose_kafka_session_timeout_ms,
            max_poll_interval_ms=settings.firehose_kafka_max_poll_interval_ms,
        )
    if options.source == SourceKind.KINESIS:
        from firehose_transforms.kinesis import DynamoDBCheckpointStore, KinesisSource

        return KinesisSource(stream, DynamoDBCheckpointStore(settings.firehose_checkpoint_table))
    raise DeliveryConfigurationError(f"unknown source {options.source!r}")
