"""The AWS loading path on the local stack: objects written the way Firehose writes them,
S3 notifications through SQS (moto), ``sluice load --follow`` and the loader Lambda
handler each in a fresh process, and the faults a loader must outlive.

Objects are put by a plain boto3 client with Firehose's own object naming
(``<prefix><DeliveryStreamName>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>.gz``), never by the
delivery runner.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consumers.models import DecodedRecord, StreamRecord
from consumers.sinks import WarehouseSink
from deploy.local import provision
from deploy.local.base import free_port
from deploy.local.services import PostgresRunner, postgres_answers, postgres_dsn, terminate
from sluice.config import AwsSettings, ZoneSettings
from sluice.zonestore import S3Zone
from tests.unit.warehouse.contract import ft_row
from warehouse.loader import Loader, LoaderOptions
from warehouse.postgres import PostgresWarehouse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SLUICE = [sys.executable, "-m", "sluice.cli"]


def firehose_key(event_type: str, stream: str = "sluice-delivery") -> str:
    """A clean key as Firehose names it (dynamic partitioning prefix + object name)."""
    now = datetime.now(UTC)
    return (
        f"clean/event_type={event_type}/dt={now:%Y-%m-%d}/"
        f"{stream}-1-{now:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"
    )


def ndjson_gz(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def drop_keys(dsn: str, schema: str) -> None:
    """Drop the targets' primary keys: Redshift does not enforce them either."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("financial_transactions", "insurance_claims"):
            conn.execute(f"ALTER TABLE {schema}.{table} DROP CONSTRAINT {table}_pkey")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s")


@pytest.fixture
def wired(
    stack: Any, zone_settings: ZoneSettings, pg_warehouse: PostgresWarehouse
) -> dict[str, Any]:
    """A bucket notifying its own SQS queue (as `sluice stack up` sets it up), a schema."""
    aws = AwsSettings(
        aws_endpoint_url=stack.aws_endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    queue_url = provision.ensure_load_queue(
        aws, zone_settings.s3_bucket, zone_settings.s3_clean_prefix
    )
    env = {
        **os.environ,
        **stack.env,
        "SLUICE_STACK_ENV": str(stack.env_file.parent / "unused-by-tests.env"),
        "SLUICE_S3_BUCKET": zone_settings.s3_bucket,
        "SLUICE_WAREHOUSE_SCHEMA": pg_warehouse.schema,
        "SLUICE_WAREHOUSE_LOAD_QUEUE_URL": queue_url,
        "PYTHONPATH": str(ROOT),
    }
    return {
        "env": env,
        "queue_url": queue_url,
        "bucket": zone_settings.s3_bucket,
        "schema": pg_warehouse.schema,
        "dsn": stack.warehouse_dsn,
        "s3": stack.aws_client("s3"),
        "sqs": stack.aws_client("sqs"),
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_follow(
    wired: dict[str, Any],
    processes: list[subprocess.Popen[str]],
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*SLUICE, "load", "--follow", "--json", *args],
        env=env or wired["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    processes.append(proc)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the banner: it is following now
    assert "following" in line, line
    return proc


def count(wired: dict[str, Any], table: str = "financial_transactions") -> int:
    return int(query(wired["dsn"], f"SELECT COUNT(*) FROM {wired['schema']}.{table}")[0][0])


def test_follow_loads_an_object_firehose_wrote_within_one_interval(
    wired: dict[str, Any], processes: list[subprocess.Popen[str]]
) -> None:
    interval = 5.0
    start_follow(wired, processes, "--interval", str(interval))
    rows = [ft_row() for _ in range(3)]
    wired["s3"].put_object(
        Bucket=wired["bucket"], Key=firehose_key("financial-transaction"), Body=ndjson_gz(rows)
    )
    took = wait_for(lambda: count(wired) == 3, interval, "the object loaded")
    assert took <= interval
    # the notification was deleted once loaded; the loader wrote its own manifest
    attrs = wired["sqs"].get_queue_attributes(
        QueueUrl=wired["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    listed = wired["s3"].list_objects_v2(Bucket=wired["bucket"], Prefix="manifests/")
    assert next(o["Key"] for o in listed["Contents"]).startswith(
        "manifests/financial-transaction/loader-"
    )


def sqs_event_from_moto(wired: dict[str, Any]) -> dict[str, Any]:
    """The messages moto delivered, in the shape of a Lambda SQS event (as the event source
    mapping builds it)."""
    sqs = wired["sqs"]
    arn = sqs.get_queue_attributes(QueueUrl=wired["queue_url"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    records = []
    for _ in range(5):
        answer = sqs.receive_message(
            QueueUrl=wired["queue_url"], MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        for m in answer.get("Messages", []):
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }
            )
        if any("ObjectCreated" in r["body"] for r in records):
            break
    return {"Records": records}


def run_handler(wired: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from warehouse.lambda_function import lambda_handler\n"
        "print(json.dumps(lambda_handler(json.load(sys.stdin), None)))\n"
    )
    env = {**wired["env"], "AWS_LAMBDA_FUNCTION_NAME": "sluice-loader"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(event),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def test_lambda_handler_loads_what_the_sqs_event_from_moto_names(wired: dict[str, Any]) -> None:
    key = firehose_key("financial-transaction").replace("sluice-delivery", "sluice delivery")
    rows = [ft_row() for _ in range(4)]
    wired["s3"].put_object(Bucket=wired["bucket"], Key=key, Body=ndjson_gz(rows))
    event = sqs_event_from_moto(wired)
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    # moto, like S3, sends s3:TestEvent first and URL-encodes the key
    assert any(b.get("Event") == "s3:TestEvent" for b in bodies)
    created = [b for b in bodies if "Records" in b]
    assert created and "+" in created[0]["Records"][0]["s3"]["object"]["key"]
    assert run_handler(wired, event) == {"batchItemFailures": []}
    assert count(wired) == 4
    # the same event again (a redelivery): nothing doubled
    assert run_handler(wired, event) == {"batchItemFailures": []}
    assert count(wired) == 4
    audit = query(
        wired["dsn"],
        f"SELECT COUNT(*) FROM {wired['schema']}.load_audit WHERE outcome = 'completed'",
    )
    assert audit == [(1,)]


def test_three_loaders_and_the_sink_at_once_without_a_key_constraint(
    stack: Any, wired: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    drop_keys(wired["dsn"], wired["schema"])
    events = [ft_row() for _ in range(600)]
    urls = []
    for i in range(24):  # overlapping files: every event is in two of them
        part = events[i * 25 : (i + 1) * 25] + events[((i + 1) % 24) * 25 : ((i + 1) % 24) * 25 + 5]
        key = firehose_key("financial-transaction")
        wired["s3"].put_object(Bucket=wired["bucket"], Key=key, Body=ndjson_gz(part))
        urls.append(f"s3://{wired['bucket']}/{key}")
    zs = ZoneSettings(s3_bucket=wired["bucket"])
    outcomes: list[Any] = []
    errors: list[BaseException] = []

    def loader(n: int) -> None:
        wh = PostgresWarehouse(wired["dsn"], schema=wired["schema"])
        try:
            ld = Loader(
                wh,
                S3Zone(client=stack.aws_client("s3")),
                zone_settings=zs,
                options=LoaderOptions(retry_delays=(0.1, 0.1)),
                lease_warehouse=lambda: PostgresWarehouse(wired["dsn"], schema=wired["schema"]),
            )
            order = urls[n::3] + urls  # each starts elsewhere, then takes any file
            for i in range(0, len(order), 4):
                outcomes.extend(ld.load_files(order[i : i + 4]).outcomes)
            ld.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    def sink() -> None:
        wh = PostgresWarehouse(wired["dsn"], schema=wired["schema"])
        s = WarehouseSink(wh, row_builder=dict, owns_warehouse=True)
        try:
            for i in range(0, 600, 50):
                s.begin(f"b{i}")
                s.write(
                    [
                        DecodedRecord(
                            StreamRecord("t", "0", i + j, b""), "financial-transaction", 1, r
                        )
                        for j, r in enumerate(events[i : i + 50])
                    ]
                )
                s.commit()
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=loader, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=sink))
    with caplog.at_level(logging.INFO):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    assert [o for o in outcomes if o.state.value != "completed"] == []
    rows = query(
        wired["dsn"],
        f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {wired['schema']}.financial_transactions",
    )
    assert rows == [(600, 600)]  # no duplicate, nothing missing
    audit = query(
        wired["dsn"],
        f"SELECT file_url, COUNT(*) FROM {wired['schema']}.load_audit "
        "WHERE outcome = 'completed' GROUP BY file_url",
    )
    assert len(audit) == 24 and all(n == 1 for _, n in audit)  # each file loaded once
    retries = [
        r.getMessage()
        for r in caplog.records
        if "retrying" in r.getMessage() or "claimed concurrently" in r.getMessage()
    ]
    assert retries == []  # no conflict, no retry


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_mid_load_then_restart_loads_everything_once(
    wired: dict[str, Any], processes: list[subprocess.Popen[str]]
) -> None:
    drop_keys(wired["dsn"], wired["schema"])
    env = {**wired["env"], "SLUICE_WAREHOUSE_LOAD_LEASE_SECONDS": "3"}
    files, per_file = 16, 2500
    for _ in range(files):
        key = firehose_key("financial-transaction")
        rows = [ft_row() for _ in range(per_file)]
        wired["s3"].put_object(Bucket=wired["bucket"], Key=key, Body=ndjson_gz(rows))
    first = start_follow(wired, processes, "--interval", "1", "--workers", "2", env=env)
    running = f"SELECT COUNT(*) FROM {wired['schema']}.load_jobs WHERE state = 'running'"
    wait_for(lambda: query(wired["dsn"], running)[0][0] > 0, 30, "a running load")
    wait_for(lambda: len(descendants(first.pid)) >= 2, 10, "file workers")
    children = descendants(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # nothing of the dead loader stays behind: workers, forkserver, resource tracker
    wait_for(lambda: not any(alive(p) for p in children), 10, "the loader's children gone")
    assert count(wired) < files * per_file  # it died mid-load, before its commit
    # reconcile: what the dead loader held is withheld (its job, its lease), not lost
    done = subprocess.run(
        [*SLUICE, "reconcile", "--no-stream", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert report["lost"] == [] and report["withheld"], done.stderr
    assert {w["load_id"] for w in report["withheld"]} <= {
        r[0] for r in query(wired["dsn"], f"SELECT load_id FROM {wired['schema']}.load_jobs")
    }
    assert all(w["lease_expires_at"] for w in report["withheld"])
    # files no job holds yet (their notifications still queued) are plainly not loaded
    warehouse_stage = next(st for st in report["stages"] if st["stage"] == "warehouse")
    withheld_ids = {w["event_id"] for w in report["withheld"]}
    assert not withheld_ids & set(warehouse_stage["missing_ids"])
    assert len(withheld_ids) + warehouse_stage["missing"] + count(wired) == files * per_file
    start_follow(wired, processes, "--interval", "1", "--workers", "2", env=env)
    took = wait_for(lambda: count(wired) >= files * per_file, 30, "every row")
    assert took <= 30
    time.sleep(1.5)
    rows = query(
        wired["dsn"],
        f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {wired['schema']}.financial_transactions",
    )
    assert rows == [(files * per_file, files * per_file)]


def test_status_shows_running_stuck_and_failed_jobs(wired: dict[str, Any]) -> None:
    from warehouse.models import LoadJob, Manifest, TargetTable

    wh = PostgresWarehouse(wired["dsn"], schema=wired["schema"])
    try:
        for name, lease in (("held", 600.0), ("dead", 0.0)):
            url = f"s3://{wired['bucket']}/manifests/financial-transaction/{name}.manifest"
            job = LoadJob(url, TargetTable.FINANCIAL_TRANSACTIONS, Manifest((), url))
            assert wh.claim_load(job, lease_seconds=lease, max_attempts=5) == 1
            if name == "dead":
                wh.fail_load(job, 1, error="data refused", retry=False, files=[])
                job2 = LoadJob(url + "2", TargetTable.FINANCIAL_TRANSACTIONS, Manifest((), url))
                assert wh.claim_load(job2, lease_seconds=lease, max_attempts=5) == 1
    finally:
        wh.close()
    env = {**wired["env"], "SLUICE_WAREHOUSE_LOAD_LEASE_SECONDS": "30"}
    with psycopg.connect(wired["dsn"], autocommit=True) as conn:  # one loader died long ago
        conn.execute(
            f"UPDATE {wired['schema']}.load_jobs SET updated_at = now() - interval '1 hour' "
            "WHERE manifest_url LIKE '%dead.manifest2'"
        )
    done = subprocess.run(
        [*SLUICE, "load", "--status", "--json"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr  # stuck and failed jobs: exit 1
    jobs = json.loads(done.stdout)["jobs"]
    assert sorted(j["status"] for j in jobs) == ["failed", "running", "stuck"]
    assert all(j["lease_expires_at"] for j in jobs if j["status"] in ("running", "stuck"))


@pytest.fixture
def private_postgres(stack_base_dir: Path) -> Iterator[dict[str, Any]]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    port = free_port()
    runner = PostgresRunner(stack_base_dir / "pg", "127.0.0.1", port, stack_base_dir / "pg.log")
    state = {"pid": runner.start(), "runner": runner}
    yield {
        "dsn": postgres_dsn("127.0.0.1", port, "postgres"),
        "stop": lambda: terminate(int(state["pid"]), sig=signal.SIGINT),  # type: ignore[arg-type]
        "start": lambda: state.update(pid=runner.start()),
    }
    pid = runner.postmaster_pid()
    if pid is not None:
        terminate(pid, sig=signal.SIGINT)


def test_follow_waits_out_a_postgres_restart(
    wired: dict[str, Any],
    processes: list[subprocess.Popen[str]],
    private_postgres: dict[str, Any],
) -> None:
    dsn = private_postgres["dsn"]
    wh = PostgresWarehouse(dsn, schema="sluice")
    wh.migrate()
    wh.close()
    env = {**wired["env"], "SLUICE_WAREHOUSE_DSN": dsn, "SLUICE_WAREHOUSE_SCHEMA": "sluice"}
    proc = start_follow(wired, processes, "--interval", "1", env=env)
    private_postgres["stop"]()
    assert not postgres_answers(dsn)
    rows = [ft_row() for _ in range(5)]
    wired["s3"].put_object(
        Bucket=wired["bucket"], Key=firehose_key("financial-transaction"), Body=ndjson_gz(rows)
    )
    time.sleep(6)
    assert proc.poll() is None  # still there, waiting
    private_postgres["start"]()
    wait_for(
        lambda: int(query(dsn, "SELECT COUNT(*) FROM sluice.financial_transactions")[0][0]) == 5,
        60,
        "the load after the restart",
    )
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    attempts = [line for line in err.splitlines() if "load pass" in line and "retrying" in line]
    assert attempts  # one line per failed attempt


def test_sqs_queue_receives_and_deletes_and_reports_failures(
    stack: Any, wired: dict[str, Any]
) -> None:
    from sluice.errors import ZoneReadError
    from warehouse.queue import QueueMessage, SqsQueue

    queue = SqsQueue(wired["queue_url"], client=wired["sqs"])
    got = queue.receive(max_messages=10, wait_seconds=1)
    assert got and any("s3:TestEvent" in m.body for m in got)  # sent when configured
    queue.delete(got)
    assert queue.receive(max_messages=10, wait_seconds=0) == []
    with pytest.raises(ZoneReadError):
        queue.delete([QueueMessage("x", "not-a-receipt-handle", "")])
    missing = SqsQueue(wired["queue_url"] + "-missing", client=wired["sqs"])
    with pytest.raises(ZoneReadError):
        missing.receive(max_messages=1, wait_seconds=0)


def test_follow_sweeps_what_no_notification_announced(
    wired: dict[str, Any], processes: list[subprocess.Popen[str]]
) -> None:
    env = {
        k: v for k, v in wired["env"].items() if k != "SLUICE_WAREHOUSE_LOAD_QUEUE_URL"
    }  # no queue at all: only the sweep can find the object
    env.update(SLUICE_WAREHOUSE_SWEEP_GRACE_SECONDS="1", SLUICE_WAREHOUSE_SWEEP_INTERVAL="1")
    start_follow(wired, processes, "--interval", "1", env=env)
    rows = [ft_row() for _ in range(3)]
    wired["s3"].put_object(
        Bucket=wired["bucket"], Key=firehose_key("financial-transaction"), Body=ndjson_gz(rows)
    )
    wait_for(lambda: count(wired) == 3, 20, "the swept object loaded")
