"""Loader throughput: gzip NDJSON files in S3 -> rows merged into PostgreSQL.

Compares, in the same run and on the same database, the loader (read the manifest and
its files from S3, gunzip, validate every line, COPY FROM STDIN into staging, MERGE,
audit, one transaction) with the same database work done by hand (the same rows
already formatted as COPY text, COPY FROM STDIN into staging, the same MERGE,
commit). Prints rows/s for both and their ratio (target: at least 0.7).

Fairness: both sides take the same rows (the by-hand text is the encoding of the very
lines in the files), each run gets a fresh schema, connections open outside the timed
part, rounds alternate which side goes first, and the figure is the median of the
per-round ratios (the two runs of a round see about the same machine load). Each
round prints the 1-minute load average and the CPU seconds each side used, in this
process and in its PostgreSQL backend, so a swing can be told from contention.

Needs a running local stack (``sluice stack up``; its ``.sluice/stack.env`` or
``SLUICE_STACK_ENV`` is read) or ``SLUICE_WAREHOUSE_DSN`` and ``SLUICE_AWS_ENDPOINT_URL``.

    python benchmarks/load.py --rows 100000 --files 20 --rounds 3
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg

from firehose_transforms.jsonio import dumps_line
from sluice.config import AwsSettings, ZoneSettings
from sluice.zone import manifest_body
from sluice.zonestore import S3Zone
from warehouse import sqlgen
from warehouse.config import WarehouseSettings
from warehouse.loader import Loader, LoaderOptions
from warehouse.models import ManifestEntry, TargetTable
from warehouse.postgres import PostgresWarehouse
from warehouse.rows import encode_lines

FT = TargetTable.FINANCIAL_TRANSACTIONS


def make_rows(n: int) -> list[dict[str, Any]]:
    """Rows shaped as the transform writes them.

    Every 20th merchant name is not ASCII and every 100th holds a quote (its JSON line
    has an escape), so both of the loader's paths are in the mix; every 10th event has
    no merchant (null columns).
    """
    types = ["PURCHASE", "REFUND", "TRANSFER", "WITHDRAWAL", "DEPOSIT", "FEE"]
    channels = ["CARD", "ACH", "WIRE", "SEPA", "MOBILE", "BRANCH"]
    statuses = ["PENDING", "SETTLED", "DECLINED", "REVERSED"]
    rows = []
    for i in range(n):
        merchant = f"Merchant {i % 300}"
        if i % 20 == 7:
            merchant = f"Caf\u00e9 M\u00fcller {i % 300}"
        elif i % 100 == 13:
            merchant = f'Joe\'s "Diner" {i % 300}'
        rows.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "financial-transaction",
                "schema_version": 1 + i % 2,
                "occurred_at": f"2026-11-{1 + i % 30:02d}T03:{i // 60 % 60:02d}:{i % 60:02d}"
                f".{i % 1000000:06d}Z",
                "ingested_at": "2026-11-22T04:00:00.000000Z",
                "source": "mobile-app",
                "tenant_id": f"tenant-{i % 17}",
                "metadata": {"app_version": "4.2.0", "region": "eu"},
                "transaction_id": f"tx-{i}",
                "account_id": f"acc-{i % 5000}",
                "amount": f"{(i % 100000) / 100:.2f}",
                "currency": "EUR",
                "transaction_type": types[i % 6],
                "channel": channels[i % 6],
                "status": statuses[i % 4],
                "card_number": "411111******1111",
                "merchant_name": None if i % 10 == 3 else merchant,
                "merchant_mcc": None if i % 10 == 3 else "5411",
                "merchant_country": None if i % 10 == 3 else "DE",
            }
        )
    return rows


def fresh_schema(dsn: str) -> str:
    name = "bench_" + uuid.uuid4().hex[:10]
    wh = PostgresWarehouse(dsn, schema=name)
    wh.migrate()
    wh.close()
    return name


def drop_schema(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {sqlgen.ident(name)} CASCADE")


def backend_cpu(pid: int) -> float:
    """CPU seconds of a local process (server backend, file worker); NaN if /proc can't tell."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    """One timed run: wall seconds; CPU seconds here, in file workers, in the server."""

    def __init__(self, workers: list[int] | None = None) -> None:
        self.wall = self.client_cpu = self.server_cpu = self.worker_cpu = 0.0
        self._pid = 0
        self._workers = workers or []
        self._t = self._c = self._s = self._w = 0.0

    def start(self, pid: int) -> None:
        self._pid = pid
        self._s = backend_cpu(pid)
        self._w = sum(backend_cpu(w) for w in self._workers)
        self._c = time.process_time()
        self._t = time.perf_counter()

    def stop(self) -> Run:
        self.wall = time.perf_counter() - self._t
        self.client_cpu = time.process_time() - self._c
        self.server_cpu = backend_cpu(self._pid) - self._s
        self.worker_cpu = sum(backend_cpu(w) for w in self._workers) - self._w
        return self

    def cpu(self) -> str:
        """CPU seconds as here+workers+server (workers only where there are some)."""
        workers = f"+{self.worker_cpu:.2f}" if self._workers else ""
        return f"{self.client_cpu:.2f}{workers}+{self.server_cpu:.2f}s"


def by_hand(dsn: str, schema: str, text: bytes) -> Run:
    """COPY pre-formatted rows into staging, the same MERGE statements, commit."""
    run = Run()
    with psycopg.connect(dsn) as conn:
        run.start(conn.info.backend_pid)
        with conn.cursor() as cur:
            with cur.copy(sqlgen.copy_from_stdin(schema, FT)) as copy:
                for i in range(0, len(text), 1 << 20):
                    copy.write(text[i : i + (1 << 20)])
            for statement in sqlgen.merge_statements(schema, FT):
                cur.execute(statement)
        conn.commit()
        return run.stop()


def through_loader(loader: Loader, dsn: str, schema: str, manifest: str) -> Run:
    wh = PostgresWarehouse(dsn, schema=schema)
    lease = PostgresWarehouse(dsn, schema=schema)  # renews the job's lease, as in production
    lease.backend_pid()
    loader.use_lease_warehouse(lease)
    run = Run(loader.worker_pids())
    run.start(wh.backend_pid())  # connect outside the timed part, as by_hand does
    loader.warehouse = wh
    outcome = loader.load_manifest(manifest)
    run.stop()
    wh.close()
    if outcome is None or outcome.state.value != "completed":
        raise SystemExit(f"the load did not complete: {outcome}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="loader processes encoding files (1 = inline; default: the loader's own, "
        "SLUICE_WAREHOUSE_LOAD_WORKERS, 'auto')",
    )
    args = parser.parse_args()

    settings = WarehouseSettings()
    dsn = settings.dsn()
    workers = args.workers or LoaderOptions.from_settings(settings).workers
    aws = AwsSettings()
    s3 = aws.client("s3")
    bucket = "bench-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    zs = ZoneSettings(s3_bucket=bucket)
    zone = S3Zone(aws=aws)

    rows = make_rows(args.rows)
    lines = [dumps_line(r).rstrip(b"\n") for r in rows]  # the transform's serialiser
    per_file = (len(lines) + args.files - 1) // args.files
    entries = []
    for f in range(args.files):
        part = lines[f * per_file : (f + 1) * per_file]
        url = f"s3://{bucket}/clean/event_type=financial-transaction/dt=2026-11-22/bench-{f:04d}.gz"
        data = gzip.compress(b"".join(line + b"\n" for line in part), compresslevel=6)
        zone.write(url, data)
        entries.append(ManifestEntry(url, True, len(data), len(part)))
    preformatted = "".join(encode_lines(FT, lines, source="bench").text).encode()

    print(
        f"{args.rows} rows in {args.files} gzip NDJSON files; {args.rounds} rounds; "
        f"loader workers: {workers}; {os.cpu_count()} CPUs; "
        f"load average {load_average()}"
    )
    loader = Loader(
        PostgresWarehouse(dsn),
        zone,
        zone_settings=zs,
        options=LoaderOptions(workers=workers),
    )
    # warm the worker processes outside the timed part (as a long-running loader would be)
    warm = f"s3://{bucket}/manifests/financial-transaction/warm.manifest"
    zone.write(warm, manifest_body(entries[:2]))
    schema = fresh_schema(dsn)
    through_loader(loader, dsn, schema, warm)
    drop_schema(dsn, schema)
    hand_runs: list[Run] = []
    loader_runs: list[Run] = []
    for rnd in range(args.rounds):
        manifest = f"s3://{bucket}/manifests/financial-transaction/bench-{rnd}.manifest"
        zone.write(manifest, manifest_body(entries))
        load = load_average()
        for kind in ("hand", "loader") if rnd % 2 == 0 else ("loader", "hand"):
            schema = fresh_schema(dsn)
            try:
                if kind == "hand":
                    hand_runs.append(by_hand(dsn, schema, preformatted))
                else:
                    loader_runs.append(through_loader(loader, dsn, schema, manifest))
            finally:
                drop_schema(dsn, schema)
        h, x = hand_runs[-1], loader_runs[-1]
        print(
            f"  round {rnd + 1} (load {load}): by hand {args.rows / h.wall:>8,.0f} rows/s "
            f"(cpu {h.cpu()})   loader {args.rows / x.wall:>8,.0f} "
            f"rows/s (cpu {x.cpu()})   ratio {h.wall / x.wall:.2f}"
        )
    loader.close()
    ratios = [h.wall / x.wall for h, x in zip(hand_runs, loader_runs, strict=True)]
    hand = args.rows / statistics.median(r.wall for r in hand_runs)
    through = args.rows / statistics.median(r.wall for r in loader_runs)
    ratio = statistics.median(ratios)
    print(f"by hand (COPY pre-formatted rows + MERGE): {hand:>10,.0f} rows/s (median)")
    print(f"loader (S3 -> validate -> COPY + MERGE):   {through:>10,.0f} rows/s (median)")
    print(
        f"per-round ratios: {' '.join(f'{r:.2f}' for r in ratios)}; "
        f"load average now {load_average()}"
    )
    print(f"ratio loader / by hand, median of rounds: {ratio:.2f} (target >= 0.70)")
    return 0 if ratio >= 0.7 else 1


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
