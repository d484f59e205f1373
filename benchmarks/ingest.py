"""Ingest API throughput on the local stack, against baselines measured in the same run.

Figures printed:

1. single-event requests/s and latency (p50/p99) of the real app (auth, validation,
   PII masking, Avro, publish to the broker with acks=all) on one uvicorn worker,
   versus a bare FastAPI endpoint that only validates an equivalent pydantic model;
   both driven by the same load generator (wrk with a Lua script giving every request
   a fresh ``event_id``) with the same settings, both served by uvicorn with the same
   options (one worker, the same HTTP implementation and event loop). The two run in
   alternating rounds (bare then real, real then bare, ...) so that background load
   falls on both alike; the headline ratio is the median of the per-round ratios.
   Target: real >= 0.7 x bare. The real app runs with the DynamoDB idempotency store on
   the stack's moto DynamoDB (``--idempotency-store memory`` for the in-process one): a
   conditional PutItem before each publish and a PutItem of the answer after it.
2. batch events/s through ``POST /v1/events/{type}/batch`` versus the same events
   pushed through the publisher in-process, without HTTP (validated, masked, encoded
   and published by the same code, same batch size and concurrency). Target: >= 0.5.
   The publish-only rate of pre-encoded records is printed for reference.

The machine is shared: the load average and the CPU used by the server, by wrk and by
everything else during each phase are printed next to the figures.

Usage::

    python benchmarks/ingest.py [--duration 15] [--connections 64] [--batch-size 100]
                                [--backend kafka|kinesis] [--rounds 5] [--skip-batch]
                                [--json]

The local stack is reused when ``SLUICE_STACK_ENV`` names a running stack's env file;
otherwise one is started in a temporary folder and stopped at the end. Needs ``wrk``
(``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parents[1]
FT = "financial-transaction"

# --------------------------------------------------------------------------- bare app


class Merchant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=256)
    mcc: str = Field(pattern=r"^[0-9]{4}$")
    country: str = Field(min_length=2, max_length=2)


class FinancialTransaction(BaseModel):
    """The financial-transaction v2 event as a pydantic model (same fields and rules)."""

    model_config = ConfigDict(extra="forbid")
    event_id: uuid.UUID
    event_type: Literal["financial-transaction"]
    schema_version: int
    occurred_at: datetime
    source: str = Field(max_length=128)
    tenant_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    transaction_id: str
    account_id: str
    amount: Decimal = Field(ge=0, max_digits=18, decimal_places=4)
    currency: str = Field(min_length=3, max_length=3)
    transaction_type: Literal["PURCHASE", "REFUND", "TRANSFER", "WITHDRAWAL", "DEPOSIT", "FEE"]
    channel: Literal["CARD", "ACH", "WIRE", "SEPA", "MOBILE", "BRANCH"]
    status: Literal["PENDING", "SETTLED", "DECLINED", "REVERSED"]
    card_number: str | None = Field(default=None, max_length=23)
    merchant: Merchant | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    authorization_code: str | None = Field(default=None, max_length=32)
    fraud_score: float | None = Field(default=None, ge=0, le=1)


bare_app = FastAPI()


@bare_app.post(f"/v1/events/{FT}", status_code=202)
async def bare_post(event: FinancialTransaction) -> dict[str, str]:
    """Validate the model and answer; no auth, no Avro, no broker."""
    return {"event_id": str(event.event_id), "status": "accepted"}


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
local counter = 0
local run = 0
local threads = {}
local prefix = PREFIX_LITERAL
local suffix = SUFFIX_LITERAL
local batch = BATCH_SIZE

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  run = tonumber(args[1])
end

local function one()
  counter = counter + 1
  return prefix .. string.format("%08x-%04x-4000-8000-%012d", run, tid, counter) .. suffix
end

function request()
  local body
  if batch == 0 then
    body = one()
  else
    local parts = {}
    for i = 1, batch do parts[i] = one() end
    body = '{"events":[' .. table.concat(parts, ",") .. "]}"
  end
  return wrk.format("POST", nil, nil, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def write_wrk_script(folder: Path, batch_size: int) -> Path:
    """The Lua script: each request carries fresh event ids (run, thread, counter)."""
    from ingest_api.examples import example_event

    event = example_event(FT)
    event["event_id"] = "@@ID@@"
    text = json.dumps(event, separators=(",", ":"))
    prefix, suffix = text.split("@@ID@@")
    script = (
        WRK_SCRIPT.replace("PREFIX_LITERAL", _lua_string(prefix))
        .replace("SUFFIX_LITERAL", _lua_string(suffix))
        .replace("BATCH_SIZE", str(batch_size))
    )
    path = folder / f"post-{batch_size}.lua"
    path.write_text(script)
    return path


# --------------------------------------------------------------------------- CPU accounting


def _proc_jiffies(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def _tree(pid: int) -> list[int]:
    out = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out.extend(_tree(int(child)))
    return out


def _machine_jiffies() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values), idle


# Pids of the local stack's broker processes (Tansu, moto), counted apart from "others".
BROKER_PIDS: list[int] = []


def find_broker_pids(env_file: Path) -> list[int]:
    """The pids of the stack's Kafka and AWS processes, from its state file."""
    from deploy.local import stack as stack_module
    from deploy.local.config import StackSettings
    from deploy.local.models import ServiceName

    try:
        state = stack_module.load_state(StackSettings(stack_dir=env_file.parent))
        return [state.services[name].pid for name in (ServiceName.KAFKA, ServiceName.AWS)]
    except (OSError, KeyError, ValueError):
        return []


@dataclass
class CpuWindow:
    """CPU use during a phase, in cores: the server, the load generator, the rest."""

    server_pids: list[int]
    broker_pids: list[int] = field(default_factory=lambda: list(BROKER_PIDS))
    start_broker: int = 0
    start_total: tuple[int, int] = (0, 0)
    start_server: int = 0
    start_self: int = 0
    load_before: float = 0.0
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> CpuWindow:
        self.load_before = os.getloadavg()[0]
        self.start_total = _machine_jiffies()
        self.start_server = sum(_proc_jiffies(p) for p in self.server_pids)
        self.start_broker = sum(_proc_jiffies(p) for p in self.broker_pids)
        self.start_self = _proc_jiffies(os.getpid())
        self.started = time.monotonic()
        return self

    def finish(self, generator_jiffies: int) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = time.monotonic() - self.started
        total, idle = _machine_jiffies()
        busy = (total - self.start_total[0]) - (idle - self.start_total[1])
        server = sum(_proc_jiffies(p) for p in self.server_pids) - self.start_server
        mine = _proc_jiffies(os.getpid()) - self.start_self
        broker = sum(_proc_jiffies(p) for p in self.broker_pids) - self.start_broker
        others = busy - server - generator_jiffies - mine - broker
        self.result = {
            "server_cores": round(server / hz / elapsed, 2),
            "generator_cores": round((generator_jiffies + mine) / hz / elapsed, 2),
            "broker_cores": round(broker / hz / elapsed, 2),
            "other_cores": round(max(others, 0) / hz / elapsed, 2),
            "load_avg_1m": round(self.load_before, 2),
        }

    def __exit__(self, *exc: object) -> None:
        return None


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_options() -> list[str]:
    """The same uvicorn options for both servers: the fastest HTTP parser and event loop
    installed (httptools and uvloop when present, else h11 and asyncio)."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return ["--http", http, "--loop", loop]


@contextlib.contextmanager
def uvicorn_server(
    target: str, env: dict[str, str], *, factory: bool, app_dir: Path | None, log: Path
) -> Iterator[tuple[str, int]]:
    """One uvicorn worker serving ``target``; yields (base url, pid)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        *uvicorn_options(),
    ]
    if factory:
        command.append("--factory")
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, process, log)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def run_wrk(
    url: str,
    script: Path,
    *,
    duration: float,
    connections: int,
    run_id: int,
    headers: dict[str, str],
    cpu: CpuWindow | None = None,
) -> dict[str, Any]:
    """Run wrk once (one thread); returns its summary (requests/s, p50/p99 in ms)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", str(run_id)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    jiffies = 0
    while process.poll() is None:
        jiffies = max(jiffies, _proc_jiffies(process.pid))
        time.sleep(0.2)
    output = process.stdout.read().decode() if process.stdout else ""
    if cpu is not None:
        cpu.finish(jiffies)
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {output}")
    data = json.loads(line[len("WRKJSON ") :])
    seconds = data["duration_us"] / 1e6
    errors = sum(
        data[k]
        for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return {
        "requests": data["requests"],
        "rps": data["requests"] / seconds,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": errors,
    }


# --------------------------------------------------------------------------- stack


@contextlib.contextmanager
def local_stack() -> Iterator[tuple[dict[str, str], Path]]:
    """The running stack named by SLUICE_STACK_ENV, or a fresh one for this run."""
    from deploy.local import stack as stack_module
    from deploy.local.base import free_port as stack_port
    from deploy.local.base import parse_env
    from deploy.local.config import StackSettings

    named = os.environ.get("SLUICE_STACK_ENV")
    if named and Path(named).is_file():
        yield parse_env(Path(named).read_text()), Path(named)
        return
    folder = Path(tempfile.mkdtemp(prefix="sluice-bench-")) / ".sluice"
    settings = StackSettings(
        stack_dir=folder,
        stack_kafka_port=stack_port(),
        stack_aws_port=stack_port(),
        stack_pg_port=stack_port(),
    )
    print("starting the local stack ...", flush=True)
    result = stack_module.up(settings, provision_warehouse=False)
    try:
        yield result.env, result.env_file
    finally:
        stack_module.down(settings)
        shutil.rmtree(folder.parent, ignore_errors=True)


def make_streams(backend: str, env: dict[str, str]) -> tuple[str, str]:
    from deploy.local import provision
    from sluice.config import AwsSettings, KafkaSettings

    names = (f"bench-ft-{uuid.uuid4().hex[:8]}", f"bench-ic-{uuid.uuid4().hex[:8]}")
    if backend == "kafka":
        kafka = KafkaSettings(kafka_bootstrap_servers=env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"])
        provision.ensure_topics(kafka, names, 4)
    else:
        provision.ensure_streams(AwsSettings(), names, 2)
    return names


# --------------------------------------------------------------------------- in-process


def in_process_baseline(
    stream: str, total: int, batch_size: int, concurrency: int
) -> dict[str, float]:
    """Events/s of the same events pushed through the publisher without HTTP.

    ``prepared``: validated, masked, encoded and published by the same code the API
    uses. ``publish_only``: records encoded beforehand; only the publish is timed.
    """
    from ingest_api.body import parse_json
    from ingest_api.examples import example_event
    from producers.base import build_outgoing_record
    from producers.factory import create_publisher
    from schemas import codec
    from schemas.config import PiiSettings
    from schemas.pii import mask_record

    hmac_key = PiiSettings().pii_hmac_key
    template = example_event(FT)
    bodies = []
    for _ in range(total):
        body = dict(template)
        body["event_id"] = str(uuid.uuid4())
        bodies.append(json.dumps(body).encode())
    chunks = [bodies[i : i + batch_size] for i in range(0, total, batch_size)]

    def prepare(chunk: list[bytes]) -> list[Any]:
        records = []
        for raw in chunk:
            record = codec.parse_event(FT, parse_json(raw))
            record = mask_record(record, hmac_key=hmac_key)
            record["ingested_at"] = datetime.now(UTC)
            records.append(build_outgoing_record(FT, record, codec.encode(FT, record)))
        return records

    async def drive(work: list[Any], step: Any) -> float:
        publisher = create_publisher()
        await publisher.publish(stream, prepare(chunks[0][:10]))  # connect and warm up
        queue = list(work)
        failures = 0

        async def worker() -> None:
            nonlocal failures
            while queue:
                item = queue.pop()
                results = await publisher.publish(stream, step(item))
                failures += sum(1 for r in results if not r.ok)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await publisher.close()
        if failures:
            raise RuntimeError(f"{failures} records failed in the baseline")
        return elapsed

    prepared_s = asyncio.run(drive(chunks, prepare))
    encoded = [prepare(chunk) for chunk in chunks]
    publish_only_s = asyncio.run(drive(encoded, lambda records: records))
    return {"prepared_eps": total / prepared_s, "publish_only_eps": total / publish_only_s}


# --------------------------------------------------------------------------- main


def _per_core(runs: list[dict[str, Any]]) -> float:
    """Median requests/s per core the server used: robust to CPU taken by others."""
    return float(statistics.median(r["rps"] / max(r["cpu"]["server_cores"], 0.01) for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating single-event rounds")
    parser.add_argument("--skip-batch", action="store_true", help="single-event figures only")
    parser.add_argument("--backend", choices=("kafka", "kinesis"), default="kafka")
    parser.add_argument(
        "--idempotency-store",
        choices=("dynamodb", "memory"),
        default="dynamodb",
        help="the real app's idempotency store (dynamodb: the stack's moto DynamoDB, as on Lambda)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    key = secrets.token_urlsafe(24)
    report: dict[str, Any] = {
        "backend": args.backend,
        "cores": os.cpu_count(),
        "idempotency_store": args.idempotency_store,
    }
    with local_stack() as (stack_env, env_file), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ft_stream, ic_stream = make_streams(args.backend, stack_env)
        BROKER_PIDS[:] = find_broker_pids(env_file)
        env = {
            **os.environ,
            **stack_env,
            "SLUICE_STACK_ENV": str(env_file),
            "SLUICE_STREAM_BACKEND": args.backend,
            "SLUICE_STREAM_FINANCIAL_TRANSACTION": ft_stream,
            "SLUICE_STREAM_INSURANCE_CLAIM": ic_stream,
            "SLUICE_API_KEY": key,
            "SLUICE_API_IDEMPOTENCY_STORE": args.idempotency_store,
        }
        if args.idempotency_store == "dynamodb":
            from deploy.local.provision import ensure_api_tables
            from ingest_api.config import ApiSettings
            from sluice.config import AwsSettings

            saved = dict(os.environ)
            os.environ.update({k: v for k, v in env.items() if k.startswith("SLUICE_")})
            try:
                api = ApiSettings()
                ensure_api_tables(
                    AwsSettings(), api.api_idempotency_table, api.api_rate_limit_table
                )
            finally:
                os.environ.clear()
                os.environ.update(saved)
        os.environ.update({k: v for k, v in env.items() if k.startswith("SLUICE_")})
        single_script = write_wrk_script(folder, 0)
        batch_script = write_wrk_script(folder, args.batch_size)
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        run_id = int(time.time()) % 100_000 * 100
        singles: dict[str, list[dict[str, Any]]] = {"real": [], "bare": []}

        with (
            uvicorn_server(
                "ingest_api.app:create_app",
                env,
                factory=True,
                app_dir=None,
                log=folder / "real.log",
            ) as (real_url, real_pid),
            uvicorn_server(
                "ingest:bare_app",
                env,
                factory=False,
                app_dir=ROOT / "benchmarks",
                log=folder / "bare.log",
            ) as (bare_url, bare_pid),
        ):
            urls = {"real": (real_url, real_pid), "bare": (bare_url, bare_pid)}
            for url, _pid in urls.values():
                run_id += 1
                run_wrk(
                    f"{url}/v1/events/{FT}",
                    single_script,
                    duration=args.warmup,
                    connections=args.connections,
                    run_id=run_id,
                    headers=auth,
                )
            for round_no in range(args.rounds):
                order = ("bare", "real") if round_no % 2 == 0 else ("real", "bare")
                for name in order:
                    url, pid = urls[name]
                    run_id += 1
                    with CpuWindow(_tree(pid)) as cpu:
                        result = run_wrk(
                            f"{url}/v1/events/{FT}",
                            single_script,
                            duration=args.duration,
                            connections=args.connections,
                            run_id=run_id,
                            headers=auth,
                            cpu=cpu,
                        )
                    result["cpu"] = cpu.result
                    singles[name].append(result)
                    if not args.json:
                        print(
                            f"  round {round_no + 1} single {name}: {result['rps']:.0f} req/s, "
                            f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}, "
                            f"cpu {cpu.result}",
                            flush=True,
                        )
            if args.skip_batch:
                batch = None
            else:
                batch = run_batch(args, real_url, real_pid, batch_script, run_id + 1, auth)

        baseline: dict[str, Any] | None = None
        if not args.skip_batch:
            with CpuWindow([]) as cpu:
                baseline = dict(
                    in_process_baseline(
                        ft_stream, args.baseline_events, args.batch_size, args.batch_connections
                    )
                )
                cpu.finish(0)
            baseline["cpu"] = cpu.result

    report["uvicorn_options"] = " ".join(uvicorn_options())
    report["single"] = single_report(singles)
    if batch is not None and baseline is not None:
        report["batch"] = batch_report(args, batch, baseline)
    report["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        print(json.dumps(report))
        return 0
    print_report(args, report)
    return 0


def run_batch(
    args: argparse.Namespace,
    real_url: str,
    real_pid: int,
    batch_script: Path,
    run_id: int,
    auth: dict[str, str],
) -> dict[str, Any]:
    """Batch events/s through the API (after a warm-up)."""
    run_wrk(
        f"{real_url}/v1/events/{FT}/batch",
        batch_script,
        duration=args.warmup,
        connections=args.batch_connections,
        run_id=run_id,
        headers=auth,
    )
    with CpuWindow(_tree(real_pid)) as cpu:
        batch = run_wrk(
            f"{real_url}/v1/events/{FT}/batch",
            batch_script,
            duration=args.duration,
            connections=args.batch_connections,
            run_id=run_id + 1,
            headers=auth,
            cpu=cpu,
        )
    batch["eps"] = batch["rps"] * args.batch_size
    batch["cpu"] = cpu.result
    if not args.json:
        print(
            f"  batch api: {batch['eps']:.0f} events/s, p99 {batch['p99_ms']:.1f} ms "
            f"per {args.batch_size}-event request, errors {batch['errors']}, "
            f"cpu {cpu.result}",
            flush=True,
        )
    return batch


def single_report(singles: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Single-event figures: per-round ratios (real / bare of the same round) and their
    median (the headline), best-of and CPU-normalised figures for reference."""
    pairs = list(zip(singles["real"], singles["bare"], strict=True))
    round_ratios = [real["rps"] / bare["rps"] for real, bare in pairs]
    real_best = max(singles["real"], key=lambda r: r["rps"])
    bare_best = max(singles["bare"], key=lambda r: r["rps"])
    real_median = statistics.median(r["rps"] for r in singles["real"])
    bare_median = statistics.median(r["rps"] for r in singles["bare"])
    return {
        "ratio": round(statistics.median(round_ratios), 3),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "real_rps_median": round(real_median),
        "bare_rps_median": round(bare_median),
        "ratio_of_medians": round(real_median / bare_median, 3),
        "ratio_best_of": round(real_best["rps"] / bare_best["rps"], 3),
        "real_best": {k: real_best[k] for k in ("rps", "p50_ms", "p99_ms")},
        "bare_best": {k: bare_best[k] for k in ("rps", "p50_ms", "p99_ms")},
        "real_p99_ms_median": statistics.median(r["p99_ms"] for r in singles["real"]),
        "bare_p99_ms_median": statistics.median(r["p99_ms"] for r in singles["bare"]),
        "real_rps_per_server_core": round(_per_core(singles["real"])),
        "bare_rps_per_server_core": round(_per_core(singles["bare"])),
        "cpu_normalised_ratio": round(_per_core(singles["real"]) / _per_core(singles["bare"]), 3),
        "other_cores_median": statistics.median(
            r["cpu"]["other_cores"] for rs in singles.values() for r in rs
        ),
        "target": 0.7,
        "errors": sum(r["errors"] for rs in singles.values() for r in rs),
        "runs": singles,
    }


def batch_report(
    args: argparse.Namespace, batch: dict[str, Any], baseline: dict[str, Any]
) -> dict[str, Any]:
    """Batch figures against the in-process baseline."""
    return {
        "batch_size": args.batch_size,
        "api_eps": round(batch["eps"]),
        "api_p99_ms_per_request": batch["p99_ms"],
        "baseline_prepared_eps": round(baseline["prepared_eps"]),
        "baseline_publish_only_eps": round(baseline["publish_only_eps"]),
        "ratio": round(batch["eps"] / baseline["prepared_eps"], 3),
        "ratio_vs_publish_only": round(batch["eps"] / baseline["publish_only_eps"], 3),
        "target": 0.5,
        "api_eps_per_server_core": round(batch["eps"] / max(batch["cpu"]["server_cores"], 0.01)),
        "baseline_eps_per_core": round(
            baseline["prepared_eps"] / max(baseline["cpu"]["generator_cores"], 0.01)
        ),
        "errors": batch["errors"],
        "cpu": batch["cpu"],
        "baseline_cpu": baseline["cpu"],
    }


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The figures for people."""
    s = report["single"]
    print()
    print(
        f"single event, 1 uvicorn worker ({report['uvicorn_options']}), wrk -t1 "
        f"-c{args.connections} -d{args.duration:g}s, {args.rounds} alternating rounds, "
        f"idempotency store: {report['idempotency_store']}:"
    )
    print(
        f"  real app : median {s['real_rps_median']:>6} req/s (best "
        f"{s['real_best']['rps']:.0f}), p99 median {s['real_p99_ms_median']:.1f} ms"
    )
    print(
        f"  bare     : median {s['bare_rps_median']:>6} req/s (best "
        f"{s['bare_best']['rps']:.0f}), p99 median {s['bare_p99_ms_median']:.1f} ms"
    )
    verdict = "met" if s["ratio"] >= 0.7 else "MISSED"
    print(
        f"  ratio    : {s['ratio']:.2f} = median of the rounds' ratios "
        f"{', '.join(f'{r:.2f}' for r in s['round_ratios'])} (target 0.70: {verdict})"
    )
    print(
        f"             ratio of medians {s['ratio_of_medians']:.2f}, best of "
        f"{s['ratio_best_of']:.2f}"
    )
    print(
        f"  per server core: real {s['real_rps_per_server_core']} req/s, bare "
        f"{s['bare_rps_per_server_core']} req/s -> CPU-normalised ratio "
        f"{s['cpu_normalised_ratio']:.2f} (median over rounds)"
    )
    print(
        f"  CPU used by other processes during the rounds: median {s['other_cores_median']:.2f}"
        f" of {report['cores']} cores"
    )
    b = report.get("batch")
    if b is not None:
        print(f"batch of {b['batch_size']}, {args.batch_connections} connections:")
        print(f"  api      : {b['api_eps']:>7} events/s")
        print(
            f"  baseline : {b['baseline_prepared_eps']:>7} events/s in-process (validate, "
            f"mask, encode, publish); publish only {b['baseline_publish_only_eps']} events/s"
        )
        verdict = "met" if b["ratio"] >= 0.5 else "MISSED"
        print(
            f"  ratio    : {b['ratio']:.2f} (target 0.50: {verdict}); vs publish only "
            f"{b['ratio_vs_publish_only']:.2f}"
        )
        print(
            f"  per core : api {b['api_eps_per_server_core']} events/s, baseline "
            f"{b['baseline_eps_per_core']} events/s"
        )
        print(f"errors (non-2xx or socket): single {s['errors']}, batch {b['errors']}")
    else:
        print(f"errors (non-2xx or socket): single {s['errors']}")
    print(f"load average at the end: {report['load_avg_end']}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
