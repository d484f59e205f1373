"""``sluice consume``, ``sluice replay`` and ``sluice lag``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from consumers.models import LagStatus, ReplayRow
from sluice.config import StreamBackend
from sluice.errors import ConfigurationError

EXIT_LAGGING = 3


def register(subparsers: Any) -> None:
    """Add the consumer subcommands to ``sluice``."""
    consume = subparsers.add_parser(
        "consume", help="run a consumer group member with a sink until stopped (SIGTERM)"
    )
    consume.add_argument("--group", help="consumer group (default SLUICE_CONSUMER_GROUP)")
    consume.add_argument("--backend", choices=[b.value for b in StreamBackend])
    consume.add_argument("--sink", choices=["warehouse", "s3", "noop"])
    consume.add_argument("--stream", action="append", help="topic / stream (repeatable)")
    consume.add_argument("--until-caught-up", action="store_true", help="stop at the end")
    consume.add_argument("--timeout", type=float, help="stop after this many seconds")
    consume.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    consume.add_argument("--json", action="store_true", help="print the summary as JSON")
    consume.set_defaults(handler=_consume)

    replay = subparsers.add_parser(
        "replay", help="move a group's checkpoints (earliest, latest, a time, offsets)"
    )
    replay.add_argument("--group", required=True)
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-timestamp", metavar="T", help="ISO-8601 with offset, or epoch ms")
    target.add_argument("--to-offsets", metavar="FILE", type=Path, help="JSON {stream: {p: o}}")
    replay.add_argument("--backend", choices=[b.value for b in StreamBackend])
    replay.add_argument("--stream", action="append", help="topic / stream (repeatable)")
    replay.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    replay.add_argument("--force", action="store_true", help="even while members are live")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=_replay)

    lag = subparsers.add_parser("lag", help="consumer lag per partition / shard, with status")
    lag.add_argument("--group", help="consumer group (default SLUICE_CONSUMER_GROUP)")
    lag.add_argument(
        "--backend", action="append", choices=[b.value for b in StreamBackend], help="repeatable"
    )
    lag.add_argument("--stream", action="append", help="topic / stream (repeatable)")
    lag.add_argument("--watch", action="store_true", help="refresh until interrupted")
    lag.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    lag.add_argument("--json", action="store_true")
    lag.set_defaults(handler=_lag)


def _ctx(args: argparse.Namespace, **extra: Any) -> Any:
    from consumers.api import ConsumerContext

    overrides: dict[str, Any] = dict(extra)
    if getattr(args, "group", None):
        overrides["consumer_group"] = args.group
    return ConsumerContext.from_env(**overrides)


def _consume(args: argparse.Namespace) -> int:
    from rich.console import Console

    from consumers.api import build_consumer, start_lag_reporter
    from consumers.metrics import ConsumerMetrics

    extra: dict[str, Any] = {}
    if args.sink:
        extra["consumer_sink"] = args.sink
    ctx = _ctx(args, **extra)
    backend = StreamBackend(args.backend or ctx.streams.stream_backend)
    metrics = ConsumerMetrics(
        ctx.consumer.consumer_group,
        backend.value,
        emf_namespace=ctx.consumer.consumer_emf_namespace if ctx.consumer.consumer_emf else None,
    )
    port = (
        args.metrics_port if args.metrics_port is not None else ctx.consumer.consumer_metrics_port
    )
    stop_lag = None
    if port is not None:
        metrics.serve(port)
        stop_lag = start_lag_reporter(metrics, ctx, backend=backend, streams=args.stream)
    consumer = build_consumer(ctx=ctx, backend=backend, streams=args.stream, metrics=metrics)
    consumer.install_signal_handlers()
    console = Console(stderr=True)
    if not args.json:
        console.print(
            f"consuming group [bold]{ctx.consumer.consumer_group}[/] on {backend.value} "
            f"into {ctx.consumer.consumer_sink} (SIGTERM to stop)"
        )
    try:
        summary = consumer.run(until_caught_up=args.until_caught_up, timeout_s=args.timeout)
    finally:
        if stop_lag is not None:
            stop_lag.set()
    result = {
        "group": ctx.consumer.consumer_group,
        "backend": backend.value,
        "batches": summary.batches,
        "records": summary.records,
        "dead_letters": summary.dead_letters,
        "rollbacks": summary.rollbacks,
        "rewinds": summary.rewinds,
    }
    if args.json:
        print(json.dumps(result))
    else:
        console.print(
            f"stopped: {summary.records} records in {summary.batches} batches, "
            f"{summary.dead_letters} dead-lettered, {summary.rollbacks} rollbacks"
        )
    return 0


def _target(args: argparse.Namespace) -> Any:
    from consumers.replay import ReplayTarget, TargetKind, load_offsets_file, parse_timestamp

    if args.to_earliest:
        return ReplayTarget(TargetKind.EARLIEST)
    if args.to_latest:
        return ReplayTarget(TargetKind.LATEST)
    if args.to_timestamp:
        return ReplayTarget(TargetKind.TIMESTAMP, timestamp_ms=parse_timestamp(args.to_timestamp))
    return ReplayTarget(TargetKind.OFFSETS, offsets=load_offsets_file(args.to_offsets))


def _replay(args: argparse.Namespace) -> int:
    from consumers.replay import replay_kafka, replay_kinesis

    ctx = _ctx(args)
    backend = StreamBackend(args.backend or ctx.streams.stream_backend)
    names = list(args.stream or ctx.event_streams())
    target = _target(args)
    rows: list[ReplayRow]
    if backend is StreamBackend.KAFKA:
        from sluice.streams.kafka_admin import KafkaGroupAdmin

        admin = KafkaGroupAdmin(args.group, kafka=ctx.kafka)
        try:
            rows = replay_kafka(admin, names, target, dry_run=args.dry_run, force=args.force)
        finally:
            admin.close()
    else:
        from sluice.streams.dynamodb import DynamoLeaseTable

        client = ctx.aws.client("kinesis")
        dynamodb = ctx.aws.client("dynamodb")
        rows = []
        for name in names:
            table = DynamoLeaseTable(ctx.consumer.lease_table(name), client=dynamodb)
            if not table.exists():
                raise ConfigurationError(f"group {args.group} has no lease table for {name}")
            rows.extend(
                replay_kinesis(
                    name,
                    table,
                    client,
                    target,
                    dry_run=args.dry_run,
                    force=args.force,
                    settings=ctx.consumer,
                )
            )
    _print_replay(args, backend, rows)
    return 0


def _print_replay(args: argparse.Namespace, backend: StreamBackend, rows: list[ReplayRow]) -> None:
    total = sum(r.records_to_reread or 0 for r in rows)
    if args.json:
        doc = {
            "group": args.group,
            "backend": backend.value,
            "dry_run": args.dry_run,
            "partitions": [r.to_json() for r in rows],
            "total_records_to_reread": total,
        }
        print(json.dumps(doc))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"replay {args.group} ({backend.value}){' dry run' if args.dry_run else ''}"
    )
    for col in ("stream", "partition", "current", "→ target", "records to re-read"):
        table.add_column(col)
    for r in rows:
        reread = "?" if r.records_to_reread is None else str(r.records_to_reread)
        table.add_row(r.stream, r.partition, r.current, r.target, reread)
    console = Console()
    console.print(table)
    console.print(f"total records to re-read: {total}" + ("" if args.dry_run else " (applied)"))


def _lag(args: argparse.Namespace) -> int:
    from consumers.api import lag_snapshot
    from consumers.lag import LagWindow

    ctx = _ctx(args)
    window = LagWindow(stall_after_s=ctx.consumer.consumer_stall_after_s)
    backends = args.backend or None
    while True:
        report = lag_snapshot(backends=backends, streams=args.stream, window=window, ctx=ctx)
        if args.json:
            print(json.dumps(report.to_json()), flush=True)
        else:
            _print_lag(report)
        if not args.watch:
            return 0 if report.status is LagStatus.OK else EXIT_LAGGING
        time.sleep(args.interval)


def _print_lag(report: Any) -> None:
    from consumers.lag_view import print_lag

    print_lag(report)
