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

    load = subparsers.add_parser("load", help="load S3 zone manifests into the warehouse")
    load.add_argument(
        "--manifest", action="append", default=[], help="load only this s3:// manifest"
    )
    load.add_argument("--follow", action="store_true", help="keep loading new manifests")
    load.add_argument("--interval", type=float, help="seconds between passes with --follow")
    load.add_argument(
        "--orphans",
        action="store_true",
        help="also load clean files no manifest names (after a grace age)",
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


def build_loader(settings: Any, workers: int | None = None) -> Any:
    """A loader on the configured warehouse and the S3 zone."""
    from dataclasses import replace

    from sluice.config import AwsSettings, ZoneSettings
    from warehouse.factory import create_warehouse
    from warehouse.loader import Loader, LoaderOptions
    from warehouse.zone import S3Zone

    options = LoaderOptions.from_settings(settings)
    if workers:
        options = replace(options, workers=workers)
    return Loader(
        create_warehouse(settings),
        S3Zone(aws=AwsSettings()),
        zone_settings=ZoneSettings(),
        options=options,
    )


def cmd_load(args: argparse.Namespace) -> int:
    """``sluice load``: one pass (or ``--follow``) over the zone's manifests."""
    from rich.console import Console

    from warehouse.loader import RunSummary

    settings = _settings()
    loader = build_loader(settings, args.workers)
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
            interval = args.interval or settings.warehouse_follow_interval
            console.print(
                f"following s3://{loader.zs.s3_bucket}/{loader.zs.s3_manifest_prefix} "
                f"every {interval}s"
            )
            for summary in loader.follow(interval=interval, stop=lambda: stopping["flag"]):
                count(summary)
                if summary.outcomes:
                    problems = _report(summary, args.json, console) or problems
        else:
            with console.status("loading manifests"):
                summary = loader.run_once(include_orphans=args.orphans)
            count(summary)
            problems = _report(summary, args.json, console)
    finally:
        loader.close()
    return EXIT_PROBLEMS if problems else EXIT_OK


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

    table = Table(title=f"loads ({summary.manifests_seen} manifests seen)")
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
