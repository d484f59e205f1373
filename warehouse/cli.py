"""``sluice warehouse init``, ``sluice load`` and ``sluice reconcile``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sluice.errors import ConfigurationError

EXIT_OK = 0
EXIT_PROBLEMS = 1


def register(subparsers: Any) -> None:
    """Add the warehouse subcommands to ``sluice``."""
    wh = subparsers.add_parser("warehouse", help="warehouse schema (DDL migrations)")
    wh_sub = wh.add_subparsers(dest="warehouse_command", metavar="ACTION", required=True)
    init = wh_sub.add_parser("init", help="create or upgrade the warehouse tables (idempotent)")
    init.add_argument("--schema", help="schema name (default: SLUICE_WAREHOUSE_SCHEMA)")
    init.add_argument("--json", action="store_true", help="print the result as JSON")
    init.set_defaults(handler=cmd_init)

    load = subparsers.add_parser("load", help="load the S3 zone's clean objects into the warehouse")
    load.add_argument(
        "--manifest", action="append", default=[], help="load only this s3:// manifest"
    )
    load.add_argument(
        "--follow",
        action="store_true",
        help="keep loading as S3 notifications arrive (SQS), with a periodic sweep",
    )
    load.add_argument("--interval", type=float, help="seconds per pass with --follow")
    load.add_argument(
        "--no-sweep",
        action="store_true",
        help="do not list the clean prefix for objects no notification announced",
    )
    load.add_argument(
        "--grace",
        type=float,
        help="sweep: load objects older than this many seconds (default: settings)",
    )
    load.add_argument(
        "--status", action="store_true", help="show running, stuck and failed load jobs"
    )
    load.add_argument(
        "--workers", type=int, help="processes validating files in parallel (default: settings)"
    )
    load.add_argument("--json", action="store_true", help="print outcomes as JSON")
    load.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    load.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of /metrics (0.0.0.0 in a container)"
    )
    load.set_defaults(handler=cmd_load)

    rec = subparsers.add_parser("reconcile", help="count events per stage and list what is missing")
    rec.add_argument(
        "--from", dest="start", type=_timestamp, help="window start (ISO-8601, inclusive)"
    )
    rec.add_argument("--to", dest="end", type=_timestamp, help="window end (ISO-8601, exclusive)")
    rec.add_argument(
        "--accepted-log", type=Path, help="NDJSON log of accepted events (event_id, occurred_at)"
    )
    rec.add_argument("--no-stream", action="store_true", help="do not read the stream")
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    rec.set_defaults(handler=cmd_reconcile)


def _timestamp(value: str) -> datetime:
    from warehouse.reconcile import parse_time

    ts = parse_time(value)
    if ts is None:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {value!r}")
    return ts


def _settings(schema: str | None = None) -> Any:
    from warehouse.config import WarehouseSettings

    return WarehouseSettings(warehouse_schema=schema) if schema else WarehouseSettings()


def cmd_init(args: argparse.Namespace) -> int:
    """``sluice warehouse init``."""
    from warehouse.factory import create_warehouse

    settings = _settings(args.schema)
    wh = create_warehouse(settings)
    try:
        applied = wh.migrate()
        version = wh.schema_version()
    finally:
        wh.close()
    if args.json:
        print(
            json.dumps(
                {"schema": settings.warehouse_schema, "applied": applied, "version": version}
            )
        )
    else:
        from rich.console import Console

        what = ", ".join(f"{v:03d}" for v in applied) if applied else "nothing (up to date)"
        Console().print(
            f"warehouse schema [bold]{settings.warehouse_schema}[/]: "
            f"applied {what}; version {version}"
        )
    return EXIT_OK


def build_loader(settings: Any, workers: int | None = None, grace: float | None = None) -> Any:
    """A loader on the configured warehouse, the S3 zone and its notification queue."""
    from dataclasses import replace

    from sluice.config import AwsSettings, ZoneSettings
    from sluice.zonestore import S3Zone
    from warehouse.factory import create_warehouse
    from warehouse.loader import Loader, LoaderOptions
    from warehouse.queue import SqsQueue

    aws = AwsSettings()
    options = LoaderOptions.from_settings(settings)
    if workers:
        options = replace(options, workers=workers)
    if grace is not None:
        options = replace(options, sweep_grace=grace)
    queue_url = settings.warehouse_load_queue_url
    return Loader(
        create_warehouse(settings),
        S3Zone(aws=aws),
        zone_settings=ZoneSettings(),
        options=options,
        queue=SqsQueue(queue_url, aws=aws) if queue_url else None,
        lease_warehouse=lambda: create_warehouse(settings),
    )


def cmd_load(args: argparse.Namespace) -> int:
    """``sluice load``: one pass (or ``--follow``) over notifications and the zone."""
    from rich.console import Console

    from warehouse.loader import RunSummary

    settings = _settings()
    if args.status:
        return _status(settings, args.json)
    loader = build_loader(settings, args.workers, args.grace)
    console = Console(stderr=args.json)
    metrics = None
    if args.metrics_port is not None:
        from warehouse.metrics import LoaderMetrics

        metrics = LoaderMetrics()
        metrics.serve(args.metrics_port, addr=args.metrics_host)

    def count(summary: Any) -> None:
        if metrics is not None:
            metrics.record(summary.totals(), len(summary.failed))

    stopping = {"flag": False}

    def stop(*_: Any) -> None:
        stopping["flag"] = True

    sweep = False if args.no_sweep else None
    problems = False
    try:
        if args.manifest:
            summary = RunSummary()
            for url in args.manifest:
                outcome = loader.load_manifest(url)
                summary.manifests_seen += 1
                if outcome is not None:
                    summary.outcomes.append(outcome)
            count(summary)
            problems = _report(summary, args.json, console)
        elif args.follow:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            interval = args.interval or settings.warehouse_follow_interval
            source = settings.warehouse_load_queue_url or "no queue"
            console.print(
                f"following {source} and s3://{loader.zs.s3_bucket}/{loader.zs.s3_clean_prefix} "
                f"(interval {interval}s, sweep {'off' if args.no_sweep else 'on'})"
            )
            for summary in loader.follow(
                interval=interval, stop=lambda: stopping["flag"], sweep=sweep
            ):
                count(summary)
                if summary.outcomes:
                    problems = _report(summary, args.json, console) or problems
        else:
            with console.status("loading"):
                summary = loader.run_once(sweep=sweep)
            count(summary)
            problems = _report(summary, args.json, console)
    finally:
        loader.close()
    return EXIT_PROBLEMS if problems else EXIT_OK


def _status(settings: Any, as_json: bool) -> int:
    """``sluice load --status``: running, stuck and failed jobs; exit 1 when any is stuck
    or failed."""
    from warehouse.factory import create_warehouse
    from warehouse.leases import job_status

    wh = create_warehouse(settings)
    try:
        rows = job_status(wh, lease_seconds=settings.warehouse_load_lease_seconds)
    finally:
        wh.close()
    if as_json:
        print(json.dumps({"jobs": rows}))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"load jobs ({len(rows)} not completed)")
        for col in ("status", "load", "table", "state", "try", "lease expires", "error"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["status"]),
                str(r["load_id"]),
                str(r["table"]),
                str(r["state"]),
                str(r["attempts"]),
                str(r["lease_expires_at"] or ""),
                str(r["last_error"] or "")[:80],
            )
        Console().print(table)
    return EXIT_PROBLEMS if any(r["status"] in ("stuck", "failed") for r in rows) else EXIT_OK


def _report(summary: Any, as_json: bool, console: Any) -> bool:
    if as_json:
        print(
            json.dumps(
                {"totals": summary.totals(), "loads": [o.as_dict() for o in summary.outcomes]}
            )
        )
        sys.stdout.flush()
        return bool(summary.failed)
    from rich.table import Table

    table = Table(
        title=f"loads ({summary.files_seen} files, {summary.manifests_seen} manifests, "
        f"{summary.messages} messages)"
    )
    for col in (
        "manifest",
        "state",
        "try",
        "files",
        "staged",
        "rejected",
        "inserted",
        "updated",
        "error",
    ):
        table.add_column(col)
    for o in summary.outcomes:
        d = o.as_dict()
        table.add_row(
            o.manifest_url.rsplit("/", 1)[-1],
            d["state"],
            str(d["attempt"]),
            str(d["files_loaded"]),
            str(d["rows_staged"]),
            str(d["rows_rejected"]),
            str(d["inserted"]),
            str(d["updated"]),
            (d["error"] or "")[:80],
        )
    console.print(table)
    for o in summary.outcomes:
        for r in o.rejected[:20]:
            console.print(f"[yellow]quarantined[/] {r.source} line {r.line_no}: {r.reason}")
    t = summary.totals()
    console.print(
        f"{t['loads']} loads, {t['files']} files, {t['staged']} rows staged, "
        f"{t['rejected']} rejected, {t['inserted']} inserted, {t['updated']} updated"
    )
    return bool(summary.failed)


def cmd_reconcile(args: argparse.Namespace) -> int:
    """``sluice reconcile``: per-stage counts, differences, missing and duplicate ids."""
    from warehouse.reconcile import reconcile_pipeline

    if args.start and args.end and args.start >= args.end:
        raise ConfigurationError("--from must be before --to", code="bad_window")
    report = reconcile_pipeline(
        args.start, args.end, accepted_log=args.accepted_log, read_stream=not args.no_stream
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def print_report(report: Any, console: Any = None) -> None:
    """The reconcile report as text that fits the terminal."""
    from warehouse.reconcile_view import print_reconcile

    print_reconcile(report, console)
