"""Assembling a consumer group member from settings, and the calls the demo makes.

- :func:`build_consumer`: a ready :class:`~consumers.runner.BatchConsumer` for the chosen
  backend, sink and group (nothing connects until it runs).
- :func:`run_until_caught_up`: consume until every partition / shard is at its end.
- :func:`lag_snapshot`: the group's lag over Kafka and Kinesis in one report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consumers.base import (
    BatchProcessor,
    DeadLetterSink,
    Decoder,
    Positions,
    RetryPolicy,
    Sink,
    decode_record,
)
from consumers.config import ConsumerSettings
from consumers.lag import LagReport, LagWindow, kafka_lag, kinesis_lag
from consumers.metrics import ConsumerMetrics
from consumers.runner import BatchConsumer, RunSummary
from sluice.config import AwsSettings, KafkaSettings, StreamBackend, StreamSettings
from sluice.errors import SluiceError
from sluice.streams.models import PartitionKey, StreamRecord

logger = logging.getLogger(__name__)


class MultiStreamSource:
    """Several Kinesis stream workers behind one source (one per stream)."""

    def __init__(self, sources: Mapping[str, Any]) -> None:
        self.sources = dict(sources)

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        out: list[StreamRecord] = []
        for source in self.sources.values():
            if len(out) >= max_records:
                break
            out.extend(source.poll(max_records - len(out), 0.0))
        if not out and timeout_s > 0:
            time.sleep(min(timeout_s, 0.2))
        return out

    def _split(self, positions: Positions) -> dict[str, dict[PartitionKey, int]]:
        split: dict[str, dict[PartitionKey, int]] = {}
        for tp, offset in positions.items():
            split.setdefault(tp.stream, {})[tp] = offset
        return split

    def checkpoint(self, positions: Positions) -> None:
        for stream, part in self._split(positions).items():
            self.sources[stream].checkpoint(part)

    def rewind(self, positions: Positions) -> None:
        for stream, part in self._split(positions).items():
            self.sources[stream].rewind(part)

    def caught_up(self) -> bool:
        return all(source.caught_up() for source in self.sources.values())

    def assignment(self) -> frozenset[PartitionKey]:
        return frozenset().union(*(s.assignment() for s in self.sources.values()))

    def waiting_reason(self) -> str:
        return "; ".join(source.waiting_reason() for source in self.sources.values())

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


@dataclass(frozen=True)
class ConsumerContext:
    """Every setting a consumer member needs, read once."""

    consumer: ConsumerSettings
    streams: StreamSettings
    kafka: KafkaSettings
    aws: AwsSettings

    @classmethod
    def from_env(cls, **consumer_overrides: Any) -> ConsumerContext:
        return cls(
            ConsumerSettings(**consumer_overrides), StreamSettings(), KafkaSettings(), AwsSettings()
        )

    def event_streams(self) -> list[str]:
        return [self.streams.stream_financial_transaction, self.streams.stream_insurance_claim]


def build_sink(kind: str, ctx: ConsumerContext) -> Sink:
    """The sink named by ``kind`` (``warehouse``, ``s3`` or ``noop``)."""
    from consumers.memory import NoopSink
    from consumers.sinks import WarehouseSink, ZoneSink, default_row_builder

    if kind == "noop":
        return NoopSink()
    hmac_key = _hmac_key()
    if kind == "s3":
        return ZoneSink(s3_client=ctx.aws.client("s3"), row_builder=default_row_builder(hmac_key))
    from warehouse import create_warehouse

    return WarehouseSink(
        create_warehouse(), row_builder=default_row_builder(hmac_key), owns_warehouse=True
    )


def _hmac_key() -> str | None:
    from schemas.config import PiiSettings

    key = PiiSettings().pii_hmac_key
    return key.get_secret_value() if key is not None else None


def build_dead_letters(ctx: ConsumerContext, backend: StreamBackend) -> DeadLetterSink:
    """The dead-letter queue of ``backend`` through its Publisher."""
    from consumers.sinks import PublisherDeadLetters
    from producers.factory import create_publisher

    publisher = create_publisher(backend=backend)
    return PublisherDeadLetters(publisher, ctx.streams.stream_dlq, backend)


def build_consumer(
    *,
    ctx: ConsumerContext | None = None,
    backend: StreamBackend | str | None = None,
    streams: Sequence[str] | None = None,
    sink: Sink | None = None,
    dead_letters: DeadLetterSink | None = None,
    decoder: Decoder = decode_record,
    metrics: ConsumerMetrics | None = None,
    source: Any = None,
) -> BatchConsumer:
    """A group member ready to :meth:`~consumers.runner.BatchConsumer.run`."""
    ctx = ctx or ConsumerContext.from_env()
    chosen = StreamBackend(backend or ctx.streams.stream_backend)
    names = list(streams or ctx.event_streams())
    settings = ctx.consumer
    if source is None:
        if chosen is StreamBackend.KAFKA:
            from sluice.streams.kafka import KafkaSource

            source = KafkaSource(names, options=settings.reader_options(), kafka=ctx.kafka)
        else:
            from sluice.streams.kinesis import KinesisSource

            options = settings.reader_options()
            source = MultiStreamSource(
                {name: KinesisSource(name, options=options, aws=ctx.aws) for name in names}
            )
    policy = RetryPolicy(
        attempts=settings.consumer_retry_attempts,
        record_attempts=settings.consumer_record_attempts,
        base_delay_s=settings.consumer_retry_base_delay_s,
        max_delay_s=settings.consumer_retry_max_delay_s,
    )
    processor = BatchProcessor(
        sink or build_sink(settings.consumer_sink, ctx),
        dead_letters or build_dead_letters(ctx, chosen),
        policy=policy,
        decoder=decoder,
    )
    observer = metrics or ConsumerMetrics(
        settings.consumer_group,
        chosen.value,
        emf_namespace=settings.consumer_emf_namespace if settings.consumer_emf else None,
    )
    consumer = BatchConsumer(
        source,
        processor,
        max_records=settings.consumer_batch_max_records,
        max_wait_s=settings.consumer_batch_max_wait_s,
        observer=observer,
        assignment_timeout_s=settings.consumer_assignment_timeout_s,
    )
    processor._sleep = consumer.wait
    for member in _members(source):
        consumer.attach(member)
    return consumer


def _members(source: Any) -> Iterable[Any]:
    if isinstance(source, MultiStreamSource):
        return list(source.sources.values())
    return [source]


def start_lag_reporter(
    metrics: ConsumerMetrics,
    ctx: ConsumerContext,
    *,
    backend: StreamBackend,
    streams: Sequence[str] | None = None,
    interval_s: float = 30.0,
) -> threading.Event:
    """Refresh the lag gauges of ``metrics`` every ``interval_s`` (a daemon thread).

    Returns the event that stops it.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                report = lag_snapshot(backends=[backend], streams=streams, ctx=ctx)
            except SluiceError as exc:
                logger.warning("lag refresh failed: %s", exc)
                continue
            metrics.record_lag(report.rows)

    threading.Thread(target=loop, name="sluice-lag-reporter", daemon=True).start()
    return stop


def run_until_caught_up(
    group: str | None = None,
    *,
    backend: StreamBackend | str | None = None,
    sink: Sink | None = None,
    timeout_s: float = 300.0,
    **consumer_overrides: Any,
) -> RunSummary:
    """Run one member of ``group`` until every partition / shard is at its end (the demo)."""
    overrides = dict(consumer_overrides)
    if group:
        overrides["consumer_group"] = group
    consumer = build_consumer(ctx=ConsumerContext.from_env(**overrides), backend=backend, sink=sink)
    return consumer.run(until_caught_up=True, timeout_s=timeout_s)


def lag_snapshot(
    group: str | None = None,
    *,
    backends: Sequence[StreamBackend | str] | None = None,
    streams: Sequence[str] | None = None,
    window: LagWindow | None = None,
    ctx: ConsumerContext | None = None,
) -> LagReport:
    """The lag of ``group`` on Kafka and Kinesis in one report (statuses from ``window``)."""
    ctx = ctx or ConsumerContext.from_env(**({"consumer_group": group} if group else {}))
    group = ctx.consumer.consumer_group
    chosen = [StreamBackend(b) for b in (backends or [ctx.streams.stream_backend])]
    names = list(streams or ctx.event_streams())
    rows = []
    problems: list[str] = []
    if StreamBackend.KAFKA in chosen:
        from sluice.streams.kafka_admin import KafkaGroupAdmin

        admin = KafkaGroupAdmin(group, kafka=ctx.kafka)
        try:
            rows.extend(kafka_lag(admin, names))
        except SluiceError as exc:
            problems.append(f"kafka: {exc}")
        finally:
            admin.close()
    if StreamBackend.KINESIS in chosen:
        from sluice.streams.dynamodb import DynamoLeaseTable

        client = ctx.aws.client("kinesis")
        dynamodb = ctx.aws.client("dynamodb")
        for name in names:
            table = DynamoLeaseTable(ctx.consumer.lease_table(name), client=dynamodb)
            try:
                if not table.exists():
                    problems.append(f"kinesis: no lease table for {name} (group never ran)")
                    continue
                rows.extend(kinesis_lag(group, name, table, client, settings=ctx.consumer))
            except SluiceError as exc:
                problems.append(f"kinesis {name}: {exc}")
    now = time.time()
    window = window or LagWindow(stall_after_s=ctx.consumer.consumer_stall_after_s)
    return LagReport(group, now, tuple(window.add(rows, now)), tuple(problems))


def lag_report_json(
    group: str | None = None,
    *,
    backends: Sequence[StreamBackend | str] | None = None,
    streams: Sequence[str] | None = None,
    ctx: ConsumerContext | None = None,
) -> dict[str, Any]:
    """The one-shot lag report of ``group`` as data: exactly what ``sluice lag --json``
    prints (statuses per Burrow's rules, see docs/consumers.md), for dashboards."""
    return lag_snapshot(group, backends=backends, streams=streams, ctx=ctx).to_json()
