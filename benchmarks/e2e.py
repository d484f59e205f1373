"""End to end, pipelined: ``sluice simulate`` -> API -> stream -> delivery -> S3 -> warehouse.

Every stage runs at the same time, as its own command, the way a user runs them:

- ``sluice api serve --workers N`` (uvicorn),
- ``sluice firehose run --event-type T`` for both event types (``--runners`` of each,
  one consumer group / lease table per type),
- ``sluice load --follow``,
- ``sluice simulate --url ... --batch-size B --rate 0 --count E`` (the batch route,
  unthrottled).

The run ends when the warehouse holds every event the API accepted (a 202). The
script counts with its own SQL: the ids ``simulate`` wrote (``--accepted-ids``) are
copied into a temporary table and compared with both target tables, so it reports
what was lost (accepted, never loaded), duplicated (loaded more than once) and extra
(loaded, not accepted). It prints, per backend: events/s end to end, freshness (from
the last 202 to the moment every event was in the warehouse, polled every
``--poll`` s), each stage's CPU seconds per 1,000 events (psutil, sampled over each
stage's process tree, the stack's own services included), the CPU ceiling those
costs put on this machine, and the peak RSS of every process with whether it stayed
flat (first third against last third of the run).

Isolation: every run gets its own topics or streams (``--partitions`` partitions or
shards), bucket, consumer groups and warehouse schema, so runs never see each other's
events. The stack is started in a temporary folder on free ports and stopped at the
end, unless ``SLUICE_STACK_ENV`` names the env file of a running one (then the run's
topics, streams, bucket and schema are removed afterwards and the stack is left up).
Every process the script starts is stopped on success, failure and Ctrl-C.

Exit status: 0 when every run lost and duplicated nothing; 1 otherwise (or when a
stage failed or timed out); 2 on bad options.

    python benchmarks/e2e.py --events 20000 --backend both
    python benchmarks/e2e.py --events 100000 --partitions 2 --api-workers 2 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_harness import (
    EVENT_TYPES,
    BenchError,
    Processes,
    RunNames,
    Stack,
    Started,
    Warehouse,
    create_resources,
    free_port,
    local_stack,
    remove_resources,
    run_cli,
    sluice_command,
)
from proctree import TreeSampler

EXIT_OK, EXIT_LOST, EXIT_USAGE = 0, 1, 2


@dataclass
class Options:
    """The benchmark's options (see ``--help``)."""

    events: int
    api_workers: int
    partitions: int
    runners: int
    batch_size: int
    concurrency: int
    buffer_seconds: int
    buffer_mib: int
    load_interval: float
    poll: float
    stall_timeout: float
    seed: int
    keep: bool
    api_stores: str


class ProgressLine:
    """One line on stderr for people: a bar of events in the warehouse."""

    def __init__(self, label: str, total: int, stream: TextIO, enabled: bool) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self._last_print = 0.0

    def update(self, in_warehouse: int, elapsed: float, note: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and now - self._last_print < 5.0:
            return
        self._last_print = now
        width = 28
        filled = int(width * min(in_warehouse / self.total, 1.0))
        rate = in_warehouse / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.label:8} [{'#' * filled}{'.' * (width - filled)}] "
            f"{in_warehouse:>9,}/{self.total:,} in warehouse  {rate:7,.0f} ev/s  "
            f"{elapsed:6.1f} s  {note}"
        )
        self.stream.write(("\r" + line + "   ") if self.tty else line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_backend(
    backend: str, opts: Options, stack: Stack, procs: Processes, progress: bool
) -> dict[str, Any]:
    """One pipelined run on ``backend``; its figures."""
    cli = sluice_command()
    names = RunNames(uuid.uuid4().hex[:10])
    env = {
        **os.environ,
        "SLUICE_STACK_ENV": str(stack.env_file),
        **names.env(backend),
        "SLUICE_FIREHOSE_CHECKPOINT_TABLE": f"sluice-e2e-{names.run_id}-checkpoints",
    }
    if opts.api_stores == "memory":
        # Each API process keeps its own idempotency answers and token buckets, as
        # one process would; "stack" keeps what the stack set (DynamoDB on moto).
        env["SLUICE_API_IDEMPOTENCY_STORE"] = "memory"
        env["SLUICE_API_RATE_LIMIT_STORE"] = "memory"
    result: dict[str, Any] = {
        "backend": backend,
        "run_id": names.run_id,
        "events": opts.events,
        "partitions": opts.partitions,
        "api_workers": opts.api_workers,
        "api_stores": opts.api_stores,
        "runners_per_type": opts.runners,
        "load_avg_start": [round(v, 2) for v in os.getloadavg()],
    }
    started: list[Started] = []
    warehouse: Warehouse | None = None
    sampler = TreeSampler()
    try:
        env.update(create_resources(stack, names, backend, opts.partitions))
        run_cli([*cli, "warehouse", "init", "--schema", names.schema], env, procs.workdir)
        port = free_port()
        api = procs.start(
            f"{backend}-api",
            [*cli, "api", "serve", "--port", str(port), "--workers", str(opts.api_workers)],
            env,
        )
        started.append(api)
        runners = []
        for event_type in EVENT_TYPES:
            for index in range(opts.runners):
                runners.append(
                    procs.start(
                        f"{backend}-firehose-{event_type}-{index}",
                        [
                            *cli, "firehose", "run",
                            "--source", backend,
                            "--event-type", event_type,
                            "--group-id", names.group(event_type),
                            "--buffer-seconds", str(opts.buffer_seconds),
                            "--buffer-mib", str(opts.buffer_mib),
                            "--quiet",
                        ],
                        env,
                    )
                )  # fmt: skip
        started += runners
        loader = procs.start(
            f"{backend}-load",
            [*cli, "load", "--follow", "--interval", str(opts.load_interval)],
            env,
        )
        started.append(loader)
        _wait_ready(f"http://127.0.0.1:{port}", api, procs)
        warehouse = Warehouse(stack.env["SLUICE_WAREHOUSE_DSN"], names.schema)
        sampler.exclude(warehouse.backend_pid)

        sampler.watch("api", api.proc.pid)
        for runner in runners:
            sampler.watch("delivery", runner.proc.pid)
        sampler.watch("load", loader.proc.pid)
        infra = {"kafka": "broker (Tansu)", "aws": "moto (S3, Kinesis, DynamoDB)"}
        for service, pid in stack.service_pids.items():
            if service == "postgres":
                sampler.watch("postgres", pid)
            elif service in infra and (service != "kafka" or backend == "kafka"):
                sampler.watch(infra[service], pid)
        sampler.start()

        ids_file = procs.workdir / f"{backend}-{names.run_id}-accepted.txt"
        sim_out = procs.workdir / f"{backend}-{names.run_id}-simulate.json"
        wall_start = time.time()
        mono_start = time.monotonic()
        simulate = procs.start(
            f"{backend}-simulate",
            [
                *cli, "simulate",
                "--url", f"http://127.0.0.1:{port}",
                "--rate", "0",
                "--count", str(opts.events),
                "--batch-size", str(opts.batch_size),
                "--concurrency", str(opts.concurrency),
                "--seed", str(opts.seed),
                "--accepted-ids", str(ids_file),
                "--json",
            ],
            env,
            stdout=sim_out,
        )  # fmt: skip
        sampler.watch("simulate", simulate.proc.pid)
        started.append(simulate)
        bar = ProgressLine(backend, opts.events, sys.stderr, progress)
        summary: dict[str, Any] | None = None
        accepted = 0
        counts: dict[str, int] = {}
        last_rows, last_change = -1, time.monotonic()
        wall_done = 0.0
        while True:
            time.sleep(opts.poll)
            for item in (api, *runners, loader):
                if item.proc.poll() is not None:
                    raise BenchError(
                        f"{item.name} exited with {item.proc.returncode}:\n{procs.tail(item)}"
                    )
            if summary is None and simulate.proc.poll() is not None:
                summary = _simulate_summary(simulate, sim_out, procs)
                accepted = warehouse.load_accepted(ids_file)
            wall_checked = time.time()
            # While the generator runs, the cheap statistics; then exact counts, each
            # of which sees the data as of its start (so the end is that moment).
            rows = warehouse.rows() if summary is None else warehouse.count()
            now = time.monotonic()
            if rows != last_rows:
                last_rows, last_change = rows, now
            note = "simulate running" if summary is None else f"{accepted:,} accepted"
            bar.update(rows, now - mono_start, note)
            if summary is not None and rows >= accepted:
                counts = warehouse.landed()
                if counts["present"] >= accepted:
                    wall_done = wall_checked
                    break
            if summary is not None and now - last_change > opts.stall_timeout:
                counts = warehouse.landed()
                bar.done()
                raise BenchError(
                    f"no new rows for {opts.stall_timeout:.0f} s with "
                    f"{counts['present']:,}/{accepted:,} accepted events in the warehouse"
                )
        mono_done = time.monotonic()
        sampler.stop()
        bar.done()
        result.update(_figures(opts, summary, counts, accepted, wall_start, wall_done, sampler))
        result["rss"] = sampler.memory(mono_start, mono_done)
        result["rss_flat"] = all(r["flat"] is not False for r in result["rss"])
        result["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
        result["ok"] = result["lost"] == 0 and result["duplicated"] == 0
        return result
    finally:
        sampler.stop()
        for item in reversed(started):
            procs.stop(item)
        if warehouse is not None:
            warehouse.close()
        if not stack.owned and not opts.keep:
            for problem in remove_resources(stack, names, backend):
                print(f"cleanup of run {names.run_id}: {problem}", file=sys.stderr)


def _wait_ready(url: str, api: Started, procs: Processes, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.proc.poll() is not None:
            raise BenchError(f"the API exited with {api.proc.returncode}:\n{procs.tail(api)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise BenchError(f"the API at {url} was not ready within {timeout:.0f} s")


def _simulate_summary(simulate: Started, out: Path, procs: Processes) -> dict[str, Any]:
    try:
        summary: dict[str, Any] = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(
            f"simulate exited with {simulate.proc.returncode} and no summary ({exc}):\n"
            f"{procs.tail(simulate)}"
        ) from exc
    return summary


def _figures(
    opts: Options,
    summary: dict[str, Any],
    counts: dict[str, int],
    accepted: int,
    wall_start: float,
    wall_done: float,
    sampler: TreeSampler,
) -> dict[str, Any]:
    elapsed = wall_done - wall_start
    last_202 = summary.get("last_accepted_at") or wall_done
    cpu = sampler.cpu_by_stage()
    per_k = {stage: round(s / accepted * 1000, 3) if accepted else 0.0 for stage, s in cpu.items()}
    total_per_k = sum(cpu.values()) / accepted * 1000 if accepted else 0.0
    cpus = os.cpu_count() or 1
    return {
        "accepted": accepted,
        "rejected": summary.get("rejected", 0),
        "failed": summary.get("failed", 0),
        "failed_by_reason": summary.get("failed_by_reason", {}),
        "in_warehouse": counts.get("present", 0),
        "lost": counts.get("lost", accepted),
        "duplicated": counts.get("duplicated", 0),
        "extra": counts.get("extra", 0),
        "elapsed_s": round(elapsed, 2),
        "events_per_s": round(accepted / elapsed, 1) if elapsed > 0 else 0.0,
        "ingest_events_per_s": summary.get("throughput_events_per_s"),
        "simulate_elapsed_s": summary.get("elapsed_s"),
        "freshness_s": round(wall_done - last_202, 2),
        "freshness_resolution_s": opts.poll,
        "cpu_s": {stage: round(s, 2) for stage, s in cpu.items()},
        "cpu_s_per_1000_events": per_k,
        "cpu_s_per_1000_events_total": round(total_per_k, 3),
        "cpus": cpus,
        # What the measured CPU cost allows on this machine's cores with nothing else on it.
        "cpu_ceiling_events_per_s": round(cpus * 1000 / total_per_k, 0) if total_per_k else None,
        "cpu_busy_share": round(sum(cpu.values()) / (elapsed * cpus), 3) if elapsed else None,
    }


# --------------------------------------------------------------------------- output


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    machine = report["machine"]
    console.print(
        f"[bold]sluice end to end[/bold]: {machine['cpus']} CPUs, load average "
        f"{machine['load_avg_start']} at start, {machine['load_avg_end']} at end"
    )
    for run in report["runs"]:
        if "error" in run:
            console.print(f"[red]{run['backend']}: {run['error']}")
            continue
        table = Table(
            title=f"{run['backend']}: {run['accepted']:,} events, {run['partitions']} "
            f"partitions/shards, {run['api_workers']} API workers, "
            f"{run['runners_per_type']} runner(s) per type",
            show_header=False,
        )
        table.add_column("what", style="bold")
        table.add_column("value", justify="right")
        flag = "green" if run["ok"] else "red"
        rows = [
            ("events/s end to end", f"{run['events_per_s']:,.0f}"),
            ("elapsed", f"{run['elapsed_s']:.1f} s"),
            ("ingest (simulate) events/s", f"{run['ingest_events_per_s'] or 0:,.0f}"),
            ("freshness (last 202 -> all loaded)", f"{run['freshness_s']:.1f} s"),
            ("lost / duplicated / extra", f"[{flag}]{run['lost']} / {run['duplicated']}[/]"
             f" / {run['extra']}"),
            ("rejected / failed at the API", f"{run['rejected']} / {run['failed']}"),
            ("machine load avg start / end",
             f"{run['load_avg_start'][0]} / {run['load_avg_end'][0]}"),
        ]  # fmt: skip
        for stage, value in sorted(run["cpu_s_per_1000_events"].items(), key=lambda kv: -kv[1]):
            rows.append((f"CPU s / 1,000 events: {stage}", f"{value:.3f}"))
        rows.append(("CPU s / 1,000 events: total", f"{run['cpu_s_per_1000_events_total']:.3f}"))
        rows.append(
            (
                f"CPU ceiling on {run['cpus']} CPUs",
                f"{run['cpu_ceiling_events_per_s'] or 0:,.0f} events/s "
                f"(CPUs {100 * (run['cpu_busy_share'] or 0):.0f}% busy with the pipeline)",
            )
        )
        for mem in run["rss"]:
            flat = {True: "flat", False: "GROWING", None: "?"}[mem["flat"]]
            rows.append(
                (
                    f"{mem['stage']} {mem['name']} {mem['pid']}",
                    f"CPU {mem['cpu_s']:.1f} s, RSS peak {mem['peak_rss_mib']:.0f} MiB, "
                    f"{_mib(mem['first_third_rss_mib'])} -> "
                    f"{_mib(mem['last_third_rss_mib'])} ({flat})",
                )
            )
        for what, value in rows:
            table.add_row(what, value)
        console.print(table)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(
        description="Pipelined end-to-end benchmark: simulate -> API -> stream -> "
        "delivery -> S3 -> warehouse, every stage at once."
    )
    parser.add_argument("--events", type=int, default=20_000, help="events to send")
    parser.add_argument("--backend", choices=["kafka", "kinesis", "both"], default="kafka")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument(
        "--partitions", type=int, default=2, help="partitions of each topic / shards per stream"
    )
    parser.add_argument("--runners", type=int, default=1, help="delivery runners per event type")
    parser.add_argument("--batch-size", type=int, default=100, help="events per API request")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument(
        "--buffer-seconds", type=int, default=5, help="delivery interval buffering hint"
    )
    parser.add_argument("--buffer-mib", type=int, default=5, help="delivery size buffering hint")
    parser.add_argument(
        "--load-interval", type=float, default=1.0, help="seconds between loader passes"
    )
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between counts")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=120.0,
        help="fail when no row arrives for this long after the last 202",
    )
    parser.add_argument(
        "--api-stores",
        choices=["memory", "stack"],
        default="memory",
        help="the API's idempotency and rate-limit stores: memory (in each API process) "
        "or stack (as the stack's env file sets them, DynamoDB on moto)",
    )
    parser.add_argument("--seed", type=int, default=18, help="seed of the event generator")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's streams, bucket and schema"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    for name in ("events", "api_workers", "partitions", "runners", "batch_size", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    opts = Options(
        events=args.events,
        api_workers=args.api_workers,
        partitions=args.partitions,
        runners=args.runners,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        buffer_seconds=args.buffer_seconds,
        buffer_mib=args.buffer_mib,
        load_interval=args.load_interval,
        poll=args.poll,
        stall_timeout=args.stall_timeout,
        seed=args.seed,
        keep=args.keep,
        api_stores=args.api_stores,
    )
    return args, opts


def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args, opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    backends = ["kafka", "kinesis"] if args.backend == "both" else [args.backend]
    workdir = Path(tempfile.mkdtemp(prefix="sluice-e2e-"))
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_start": [round(v, 2) for v in os.getloadavg()],
        },
        "options": vars(opts),
        "runs": [],
    }
    procs = Processes(workdir)
    ok = True
    try:
        with local_stack(workdir, dict(os.environ)) as stack:
            report["stack"] = "reused" if not stack.owned else "started"
            for backend in backends:
                try:
                    run = run_backend(backend, opts, stack, procs, not args.no_progress)
                except BenchError as exc:
                    run = {"backend": backend, "ok": False, "error": str(exc)}
                ok = ok and bool(run["ok"])
                report["runs"].append(run)
    except KeyboardInterrupt:
        print("\ninterrupted: stopped every process this run started", file=sys.stderr)
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        return 130
    except BenchError as exc:
        report["error"] = str(exc)
        ok = False
    finally:
        procs.stop_all()
    report["machine"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
        if "error" in report:
            print(report["error"], file=sys.stderr)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir / 'logs'}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_LOST


if __name__ == "__main__":
    sys.exit(main())
