"""``sluice firehose run``: the local delivery (Firehose's part on the local stack)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from firehose_transforms.config import (
    MAX_BUFFER_MIB,
    MAX_BUFFER_SECONDS,
    MIN_BUFFER_MIB,
    MIN_BUFFER_SECONDS,
    DeliverySettings,
)
from firehose_transforms.models import DeliveryOptions, SourceKind
from sluice.config import EventType


def _ranged(low: int, high: int, unit: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}-{high} {unit}, got {value}")
        return value

    return parse


def register(sub: Any) -> None:
    """Add ``sluice firehose`` and its subcommands."""
    parser = sub.add_parser("firehose", help="the local Firehose delivery (transform into S3)")
    actions = parser.add_subparsers(dest="firehose_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="read a topic/stream, transform, write the S3 zone, checkpoint",
        description=(
            "Plays Amazon Data Firehose's part locally: buffers records by size and "
            "interval, invokes the transform Lambda handler with a Firehose-shaped event, "
            "writes clean/ and errors/processing-failed/ to S3 (and, with "
            "--raw-backup, every source record under raw/), and checkpoints the source "
            "only after the writes."
        ),
    )
    run.add_argument(
        "--source",
        choices=[k.value for k in SourceKind],
        default=None,
        help="kafka or kinesis (default: SLUICE_STREAM_BACKEND)",
    )
    run.add_argument("--event-type", choices=[e.value for e in EventType], required=True)
    run.add_argument("--stream", help="topic/stream name (default: from SLUICE_STREAM_*)")
    run.add_argument("--group-id", help="Kafka consumer group (default: sluice-firehose-<type>)")
    run.add_argument(
        "--buffer-mib",
        type=_ranged(MIN_BUFFER_MIB, MAX_BUFFER_MIB, "MiB"),
        default=None,
        help="size buffering hint, 1-128 MiB",
    )
    run.add_argument(
        "--buffer-seconds",
        type=_ranged(MIN_BUFFER_SECONDS, MAX_BUFFER_SECONDS, "s"),
        default=None,
        help="interval buffering hint, 0-900 s",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="deliver until every partition/shard is read to its end, then exit",
    )
    run.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    run.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics")
    run.add_argument(
        "--raw-backup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "also back up every source record, untransformed, under the raw prefix "
            "(default: SLUICE_FIREHOSE_RAW_BACKUP, off)"
        ),
    )
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(handler=_run)


def build_options(args: argparse.Namespace, settings: DeliverySettings) -> DeliveryOptions:
    """The delivery options of ``sluice firehose run``: the command line first, then
    ``settings`` (``SLUICE_FIREHOSE_*``) for what it leaves out."""
    from sluice.config import StreamSettings

    source = args.source or StreamSettings().stream_backend.value
    return DeliveryOptions(
        source=SourceKind(source),
        event_type=EventType(args.event_type),
        buffer_mib=args.buffer_mib if args.buffer_mib is not None else settings.firehose_buffer_mib,
        buffer_seconds=(
            args.buffer_seconds
            if args.buffer_seconds is not None
            else settings.firehose_buffer_seconds
        ),
        once=args.once,
        metrics_port=args.metrics_port,
        stream=args.stream,
        group_id=args.group_id,
        max_seconds=args.max_seconds,
        quiet=args.quiet,
        raw_backup=(
            args.raw_backup if args.raw_backup is not None else settings.firehose_raw_backup
        ),
    )


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from consumers.runner import BatchConsumer
    from firehose_transforms.delivery import FirehoseSink, run_delivery

    settings = DeliverySettings()
    options = build_options(args, settings)
    console = Console(stderr=True)

    def progress(line: str) -> None:
        if not args.quiet:
            console.print(line, highlight=False)

    def hook(consumer: BatchConsumer, sink: FirehoseSink) -> None:
        consumer.install_signal_handlers()
        if not args.quiet:
            console.print(
                f"delivering {options.event_type.value} from {sink.kind.value} "
                f"{sink.stream} to s3://{sink.zone.s3_bucket} "
                f"(buffer {options.buffer_mib} MiB / {options.buffer_seconds} s"
                f"{', raw backup on' if sink.raw_backup else ''})",
                highlight=False,
            )

    summary = run_delivery(options, settings=settings, progress=progress, runner_hook=hook)
    if args.json:
        json.dump(summary.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        console.print(
            f"done: {summary.batches} batches, {summary.records} records -> ok {summary.ok} "
            f"({summary.rows} rows), dropped {summary.dropped}, failed {summary.failed}; "
            f"{len(summary.objects)} clean objects, {len(summary.error_objects)} error objects, "
            f"{len(summary.raw_objects)} raw objects in {summary.seconds:.1f} s",
            highlight=False,
        )
    return 0
