"""``sluice demo``: the whole path on the local stack, with a report of every stage.

1. start the local stack (idempotent) and create the warehouse tables;
2. serve the ingest API (uvicorn, in this process) once per backend and send simulated
   events through it, a share of them invalid on purpose;
3. read the Kafka topic and the Kinesis stream back and check every accepted event is
   there, with its PII masked;
4. run the Firehose-faithful delivery from both backends into the S3 zone;
5. load the S3 zone into the warehouse (S3 notifications through SQS, then a sweep);
6. run a warehouse consumer group over both backends and show its lag falling to zero
   (the same events reach the warehouse a second way; MERGE keeps them once);
7. reconcile every stage for this run's events: zero missing, zero duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.config import (
    AwsSettings,
    EventType,
    KafkaSettings,
    StreamBackend,
    StreamSettings,
    stack_env_file,
)
from sluice.errors import SluiceError

BACKENDS = (StreamBackend.KAFKA, StreamBackend.KINESIS)


@dataclass
class DemoReport:
    """What each stage of the demo saw."""

    accepted: dict[str, list[str]] = field(default_factory=dict)
    accepted_log: Path | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    read_back: dict[str, int] = field(default_factory=dict)
    missing_in_stream: dict[str, list[str]] = field(default_factory=dict)
    unmasked_pii: int = 0


def register(sub: Any) -> None:
    """Add ``sluice demo``."""
    parser = sub.add_parser(
        "demo", help="run the whole path on the local stack and report every stage"
    )
    parser.add_argument("--count", type=int, default=400, help="events per backend (default 400)")
    parser.add_argument(
        "--invalid-ratio", type=float, default=0.05, help="share of deliberately invalid events"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the event generator")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 0 only when every check held."""
    from rich.console import Console

    console = Console()
    report = DemoReport()
    console.rule("[bold]1. local stack")
    _stack_up(console, report)
    for backend in BACKENDS:
        console.rule(f"[bold]2. events through the API onto {backend.value}")
        _send_through_api(console, backend, args, report)
    console.rule("[bold]3. read back from the topic and the stream")
    _read_back(console, report)
    console.rule("[bold]4. Firehose-faithful delivery into the S3 zone")
    _deliver(console)
    console.rule("[bold]5. load the S3 zone into the warehouse")
    _load(console)
    console.rule("[bold]6. a consumer group catches up: lag falls to zero")
    caught_up = _consume(console)
    console.rule("[bold]7. reconcile this run's events across every stage")
    reconciled = _reconcile(console, report)
    ok = _verdict(console, report) and reconciled and caught_up
    console.rule("[bold]8. on-call at a glance")
    _dashboard(console)
    return 0 if ok else 1


# --- 1. stack -------------------------------------------------------------------------


def _stack_up(console: Any, report: DemoReport) -> None:
    from deploy.local import stack
    from deploy.local.cli import _print_table
    from deploy.local.config import StackSettings

    settings = StackSettings()
    with console.status("starting the local stack...") as spinner:
        result = stack.up(settings, progress=lambda msg: spinner.update(msg))
    _print_table(result.health)
    console.print(f"ready in {result.seconds:.1f} s; settings in {result.env_file}")
    os.environ["SLUICE_STACK_ENV"] = str(result.env_file.resolve())
    # this run's accepted events, as the API records them (emptied at every run)
    report.accepted_log = (settings.stack_dir / "demo-accepted.ndjson").resolve()
    report.accepted_log.write_bytes(b"")


# --- 2. API ---------------------------------------------------------------------------


@contextlib.contextmanager
def serve_api(backend: StreamBackend, accepted_log: Path | None = None) -> Iterator[str]:
    """Serve the ingest API for ``backend`` on a free loopback port; yields its URL.

    With ``accepted_log`` the API appends every event it accepts to that NDJSON file
    (``SLUICE_API_ACCEPTED_LOG=file``), the reconcile's "accepted" stage.
    """
    import uvicorn

    from deploy.local.base import free_port
    from ingest_api.app import create_app
    from ingest_api.config import ApiSettings

    streams = StreamSettings(stream_backend=backend)
    settings = (
        ApiSettings(api_accepted_log="file", api_accepted_log_path=accepted_log)
        if accepted_log is not None
        else None
    )
    app = create_app(settings, stream_settings=streams)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"api-{backend.value}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SluiceError(f"the ingest API for {backend.value} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _send_through_api(
    console: Any, backend: StreamBackend, args: argparse.Namespace, report: DemoReport
) -> None:
    from ingest_api.config import ApiSettings
    from producers.simulate import SimulationOptions, run_simulation, summary_table

    api_key = ApiSettings().api_key
    with serve_api(backend, report.accepted_log) as url:
        options = SimulationOptions(
            count=args.count,
            rate=None,
            invalid_ratio=args.invalid_ratio,
            batch_size=1,
            concurrency=8,
            url=url,
            seed=args.seed,
            api_key=api_key.get_secret_value() if api_key else None,
        )
        summary = run_simulation(options, console=console)
    console.print(summary_table(summary))
    report.accepted[backend.value] = list(summary.accepted_event_ids)
    report.rejected[backend.value] = summary.rejected
    report.rejected_by_reason[backend.value] = dict(summary.rejected_by_reason)
    if summary.failed:
        raise SluiceError(
            f"{summary.failed} events were not acknowledged by {backend.value}: "
            f"{summary.failed_by_reason}"
        )


# --- 3. read back ---------------------------------------------------------------------


def read_kafka_event_ids(
    topics: list[str], kafka: KafkaSettings, expected: set[str] | None = None, idle_s: float = 3.0
) -> dict[str, dict[str, Any]]:
    """Records of ``topics`` from the beginning, by event id.

    Reads until every ``expected`` id was seen or nothing arrived for ``idle_s``. End
    offsets are not the stop condition alone: the local broker reports them wrongly
    after batched writes (see docs/local-stack.md).
    """
    from schemas import decode
    from sluice.streams.kafka import scan_topics

    found: dict[str, dict[str, Any]] = {}
    wanted = set(expected or ())
    scan = scan_topics(
        topics, kafka=kafka, group="sluice-demo-reader", idle_s=idle_s, settle_s=idle_s
    )
    try:
        for records in scan:
            for record in records:
                if not record.value:
                    continue  # a tombstone carries no event
                decoded = decode(record.value)
                event_id = str(decoded.record["event_id"])
                found[event_id] = decoded.record
                wanted.discard(event_id)
            if expected and not wanted:
                break
    finally:
        scan.close()
    return found


def read_kinesis_event_ids(streams: list[str], aws: AwsSettings) -> dict[str, dict[str, Any]]:
    """Every record of ``streams`` (deaggregated) from the trim horizon, by event id."""
    from schemas import decode
    from sluice.streams.kinesis import scan_streams

    found: dict[str, dict[str, Any]] = {}
    for records in scan_streams(aws.client("kinesis"), streams):
        for record in records:
            decoded = decode(record.value)
            found[str(decoded.record["event_id"])] = decoded.record
    return found


def _pii_unmasked(record: dict[str, Any]) -> bool:
    from schemas import pii

    card = record.get("card_number")
    if card and not pii.is_masked_card_number(card):
        return True
    national = record.get("claimant_national_id")
    return isinstance(national, str) and not pii.is_hmac_national_id(national)


def _read_back(console: Any, report: DemoReport) -> None:
    from rich.table import Table

    streams = StreamSettings()
    names = [streams.name_for(t) for t in EventType]
    seen = {
        StreamBackend.KAFKA.value: read_kafka_event_ids(
            names, KafkaSettings(), set(report.accepted.get(StreamBackend.KAFKA.value, []))
        ),
        StreamBackend.KINESIS.value: read_kinesis_event_ids(names, AwsSettings()),
    }
    table = Table(title="accepted by the API, read back from the stream")
    for column in ("backend", "accepted (202)", "rejected", "found in stream", "missing"):
        table.add_column(column, justify="right")
    for backend, ids in report.accepted.items():
        records = seen[backend]
        missing = [i for i in ids if i not in records]
        report.read_back[backend] = len(ids) - len(missing)
        report.missing_in_stream[backend] = missing
        report.unmasked_pii += sum(_pii_unmasked(records[i]) for i in ids if i in records)
        table.add_row(
            backend,
            str(len(ids)),
            str(report.rejected[backend]),
            str(report.read_back[backend]),
            str(len(missing)),
        )
    console.print(table)
    sample = next(
        (
            seen["kafka"][i]
            for i in report.accepted.get("kafka", [])
            if i in seen["kafka"] and seen["kafka"][i].get("card_number")
        ),
        None,
    )
    if sample is not None:
        console.print(
            f"a transaction as stored on the topic: event_id={sample['event_id']} "
            f"card_number={sample['card_number']} amount={sample['amount']} {sample['currency']}"
        )


# --- 4. delivery ----------------------------------------------------------------------


def _deliver(console: Any) -> None:
    from rich.table import Table

    from firehose_transforms.delivery import run_delivery
    from firehose_transforms.models import DeliveryOptions, SourceKind

    table = Table(title="delivery into the S3 zone")
    for column in ("source", "event type", "records", "ok", "dropped", "failed", "objects"):
        table.add_column(column, justify="right")
    for backend in BACKENDS:
        for event_type in EventType:
            with console.status(f"delivering {event_type.value} from {backend.value}"):
                summary = run_delivery(
                    DeliveryOptions(
                        source=SourceKind(backend.value),
                        event_type=event_type,
                        buffer_seconds=60,
                        once=True,
                        quiet=True,
                    )
                )
            table.add_row(
                backend.value,
                event_type.value,
                str(summary.records),
                str(summary.ok),
                str(summary.dropped),
                str(summary.failed),
                str(len(summary.objects) + len(summary.error_objects)),
            )
    console.print(table)


# --- 5. load ---------------------------------------------------------------------------


def _load(console: Any) -> None:
    from warehouse.cli import build_loader
    from warehouse.config import WarehouseSettings

    # As on AWS: the S3 notifications queued by the bucket, then the sweep (with no
    # grace age here: the demo waits for nothing it wrote a moment ago).
    loader = build_loader(WarehouseSettings(), grace=0.0)
    try:
        with console.status("loading the notified clean objects into the warehouse"):
            summary = loader.run_once()
    finally:
        loader.close()
    totals = summary.totals()
    console.print(
        f"{summary.messages} notifications, {summary.files_seen} clean objects, "
        f"{totals['loads']} loads now: "
        f"{totals['files']} files, {totals['staged']} rows staged, "
        f"{totals['inserted']} inserted, {totals['updated']} updated, "
        f"{totals['rejected']} quarantined"
    )
    if summary.failed:
        raise SluiceError(f"{len(summary.failed)} loads failed; see `sluice load` for details")


# --- 7. reconcile ----------------------------------------------------------------------


def _only(ids: set[str], source: Any) -> Any:
    """Restrict a reconcile stage to this run's events (earlier runs share the stack)."""

    def read(window: Any) -> Any:
        seen = source(window)
        return None if seen is None else [s for s in seen if s.event_id in ids]

    return read


def _reconcile(console: Any, report: DemoReport) -> bool:
    from warehouse.cli import print_report
    from warehouse.factory import create_warehouse
    from warehouse.reconcile import (
        Sighting,
        Window,
        accepted_log_source,
        default_sources,
        kafka_stream_source,
        kinesis_stream_source,
        run,
    )

    answered = {i for accepted in report.accepted.values() for i in accepted}
    logged = None
    if report.accepted_log is not None:
        logged = accepted_log_source(report.accepted_log)(Window())
    # the API's own log is the accepted stage; the 202s the client saw must match it
    ids = answered | {s.event_id for s in logged or [] if s.event_id}
    streams = StreamSettings()
    names = [streams.name_for(t) for t in EventType]
    kafka = kafka_stream_source(KafkaSettings(), names)
    kinesis = kinesis_stream_source(AwsSettings(), names)
    warehouse = create_warehouse()
    try:
        sources = default_sources(warehouse, read_stream=False)
        if logged is None:
            sources["accepted"] = lambda _w: [Sighting(i) for i in sorted(answered)]
        else:
            sources["accepted"] = lambda _w: logged
        sources["stream"] = lambda w: [*(kafka(w) or []), *(kinesis(w) or [])]
        with console.status("reading every stage"):
            result = run(Window(), {k: _only(ids, v) for k, v in sources.items() if v})
    finally:
        warehouse.close()
    print_report(result, console)
    wh = result.stage("warehouse")
    console.print(
        f"warehouse: {wh.distinct} of {len(ids)} accepted events, "
        f"{len(wh.missing)} missing, {len(wh.duplicates)} duplicated"
    )
    if logged is not None:
        in_log = {s.event_id for s in logged if s.event_id}
        console.print(
            f"the API's accepted log ({report.accepted_log}): {len(logged)} lines, "
            f"{len(in_log)} events; answered 202 but not logged: {len(answered - in_log)}, "
            f"logged but not answered: {len(in_log - answered)}"
        )
        if in_log != answered or len(logged) != len(in_log):
            return False
    return result.ok


# --- 6. consumers ----------------------------------------------------------------------

DEMO_GROUP = "sluice-demo-warehouse"


def _consume(console: Any) -> bool:
    """Run a warehouse consumer group over both backends; show its lag before and after.

    The events are already in the warehouse (loaded from the S3 zone), so the group's
    MERGE changes nothing: the same events from two paths stay exactly once.
    """
    from consumers import lag_snapshot, run_until_caught_up
    from consumers.cli import _print_lag

    backends = [b.value for b in BACKENDS]
    before = lag_snapshot(DEMO_GROUP, backends=backends)
    console.print(f"lag of group {DEMO_GROUP} before: {before.total_records} records")
    _print_lag(before)
    for backend in BACKENDS:
        with console.status(f"consumer group {DEMO_GROUP} reading {backend.value}"):
            run_until_caught_up(DEMO_GROUP, backend=backend.value, timeout_s=120)
    after = lag_snapshot(DEMO_GROUP, backends=backends)
    console.print(f"lag of group {DEMO_GROUP} after: {after.total_records} records")
    _print_lag(after)
    return after.total_records == 0


def _verdict(console: Any, report: DemoReport) -> bool:
    problems: list[str] = []
    for backend, missing in report.missing_in_stream.items():
        if missing:
            problems.append(f"{len(missing)} accepted events missing from {backend}")
    if report.unmasked_pii:
        problems.append(f"{report.unmasked_pii} records carry unmasked PII")
    if problems:
        for p in problems:
            console.print(f"[red]FAILED[/red] {p}")
        return False
    console.print(
        "[green]OK[/green] every accepted event reached its stream, masked; "
        f"settings for other commands are in {stack_env_file()}"
    )
    return True


# --- 8. dashboard ----------------------------------------------------------------------


def _dashboard(console: Any) -> None:
    """Leave the live page running (like the stack) and print its URL; open it where a
    graphical browser exists. The demo itself still returns."""
    from deploy.local.config import StackSettings
    from sluice.dashboard.cli import main_background

    try:
        url = main_background(
            StackSettings().stack_dir,
            groups=[DEMO_GROUP],
            backends=[b.value for b in BACKENDS],
            open_browser=True,
        )
    except SluiceError as exc:
        console.print(f"[yellow]the live page did not start[/]: {exc}")
        return
    console.print(f"live pipeline page: [bold]{url}[/] (stop it: sluice dashboard --stop)")
