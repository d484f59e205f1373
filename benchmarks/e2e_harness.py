"""The parts of ``benchmarks/e2e.py`` that start and stop things and count rows.

- :class:`Processes`: commands started in their own process groups, each stopped with
  SIGTERM to its group (SIGKILL after a grace period), all of them on the way out;
- :func:`local_stack`: the stack named by ``SLUICE_STACK_ENV``, or one started in a
  folder on free ports with ``sluice stack up`` and stopped with ``sluice stack down``;
- :class:`RunNames`, :func:`create_resources`, :func:`remove_resources`: one run's own
  topics or streams, bucket, consumer groups and warehouse schema;
- :class:`Warehouse`: the benchmark's own counting queries.

Everything speaks to Sluice through its commands and to the services through their
own clients (confluent-kafka, boto3, psycopg), never through Sluice's internals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from deploy.local.provision import ensure_load_queue
from sluice.config import AwsSettings

EVENT_TYPES = ("financial-transaction", "insurance-claim")
TABLES = ("financial_transactions", "insurance_claims")


class BenchError(Exception):
    """A stage failed to start, died, or the run did not complete in time."""


# --------------------------------------------------------------------------- processes


def sluice_command() -> list[str]:
    """The ``sluice`` entry point of the interpreter running this script."""
    beside = Path(sys.executable).parent / "sluice"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sluice")
    if found is None:
        raise BenchError("the sluice command is not installed (pip install -e '.[local,dev]')")
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes), as ``stack.env`` holds them."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass
class Started:
    """A process this script started (in its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Starts commands in their own process groups and stops every one of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[Started] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], stdout: Path | None = None
    ) -> Started:
        log = self.logs / f"{name}.log"
        with log.open("ab") as err, (stdout or log).open("ab") as out:
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        item = Started(name, proc, log)
        self.started.append(item)
        return item

    def stop(self, item: Started, grace_s: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace_s``."""
        if item.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(item.proc.pid, signal.SIGTERM)
            try:
                item.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(item.proc.pid, signal.SIGKILL)
                item.proc.wait(timeout=5)
        # Workers of a group leader that exited first (uvicorn's children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(item.proc.pid, signal.SIGKILL)
        if item in self.started:
            self.started.remove(item)

    def stop_all(self) -> None:
        for item in reversed(list(self.started)):
            self.stop(item)

    def tail(self, item: Started, lines: int = 15) -> str:
        try:
            text = item.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0) -> str:
    """Run a short ``sluice`` command to the end; its stdout, or :class:`BenchError`."""
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(args[1:3])} failed ({done.returncode}): {done.stderr.strip()[-800:]}"
        )
    return done.stdout


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A running local stack: its env file and values, and whether this script owns it."""

    env_file: Path
    env: dict[str, str]
    owned: bool
    service_pids: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def local_stack(workdir: Path, base_env: dict[str, str]) -> Iterator[Stack]:
    """The stack named by ``SLUICE_STACK_ENV``, or one started here (and stopped after)."""
    cli = sluice_command()
    named = base_env.get("SLUICE_STACK_ENV")
    if named:
        env_file = Path(named).resolve()
        stack = Stack(env_file, parse_env_file(env_file), owned=False)
        stack.service_pids = _service_pids(cli, {**base_env, "SLUICE_STACK_ENV": str(env_file)})
        yield stack
        return
    stack_dir = workdir / ".sluice"
    env = {
        **{k: v for k, v in base_env.items() if not k.startswith("SLUICE_")},
        "SLUICE_STACK_DIR": str(stack_dir),
        "SLUICE_STACK_KAFKA_PORT": str(free_port()),
        "SLUICE_STACK_AWS_PORT": str(free_port()),
        "SLUICE_STACK_PG_PORT": str(free_port()),
    }
    try:
        run_cli([*cli, "stack", "up", "--no-warehouse", "--json"], env, workdir, timeout=180)
        env_file = stack_dir / "stack.env"
        stack = Stack(env_file, parse_env_file(env_file), owned=True)
        stack.service_pids = _service_pids(cli, {**env, "SLUICE_STACK_ENV": str(env_file)})
        yield stack
    finally:
        subprocess.run(
            [*cli, "stack", "down"], env=env, cwd=workdir, capture_output=True, timeout=120
        )


def _service_pids(cli: list[str], env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [*cli, "stack", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    try:
        services = json.loads(done.stdout).get("services", [])
    except json.JSONDecodeError:
        return {}
    return {s["service"]: int(s["pid"]) for s in services if s.get("pid")}


# --------------------------------------------------------------------------- one run


@dataclass
class RunNames:
    """Everything one run creates, unique to it."""

    run_id: str

    def stream(self, event_type: str) -> str:
        return f"e2e-{self.run_id}-{event_type}"

    @property
    def dlq(self) -> str:
        return f"e2e-{self.run_id}-dlq"

    @property
    def bucket(self) -> str:
        return f"sluice-e2e-{self.run_id}"

    @property
    def queue(self) -> str:
        return f"sluice-e2e-{self.run_id}-loads"

    @property
    def schema(self) -> str:
        return f"e2e_{self.run_id}"

    def group(self, event_type: str) -> str:
        return f"e2e-{self.run_id}-firehose-{event_type}"

    def env(self, backend: str) -> dict[str, str]:
        return {
            "SLUICE_STREAM_BACKEND": backend,
            "SLUICE_STREAM_FINANCIAL_TRANSACTION": self.stream(EVENT_TYPES[0]),
            "SLUICE_STREAM_INSURANCE_CLAIM": self.stream(EVENT_TYPES[1]),
            "SLUICE_STREAM_DLQ": self.dlq,
            "SLUICE_S3_BUCKET": self.bucket,
            "SLUICE_WAREHOUSE_SCHEMA": self.schema,
        }


def _aws_client(stack: Stack, service: str) -> Any:
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=stack.env["SLUICE_AWS_ENDPOINT_URL"],
        region_name=stack.env.get("SLUICE_AWS_REGION", "us-east-1"),
        aws_access_key_id=stack.env.get("SLUICE_AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=stack.env.get("SLUICE_AWS_SECRET_ACCESS_KEY", "local"),
    )


def create_resources(
    stack: Stack, names: RunNames, backend: str, partitions: int
) -> dict[str, str]:
    """The run's topics or streams (``partitions`` each), its bucket, and the queue the
    bucket notifies of new clean objects; the settings that point the loader at it."""
    streams = [names.stream(t) for t in EVENT_TYPES] + [names.dlq]
    if backend == "kafka":
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": stack.env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"]})
        futures = admin.create_topics(
            [NewTopic(s, num_partitions=partitions, replication_factor=1) for s in streams]
        )
        for future in futures.values():
            future.result(timeout=30)
    else:
        kinesis = _aws_client(stack, "kinesis")
        for name in streams:
            kinesis.create_stream(StreamName=name, ShardCount=partitions)
        for name in streams:
            kinesis.get_waiter("stream_exists").wait(
                StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
            )
    s3 = _aws_client(stack, "s3")
    s3.create_bucket(Bucket=names.bucket)
    # S3's own event notifications into an SQS queue, as the local stack and the
    # Terraform build them, so `sluice load --follow` learns of new files at once.
    url = ensure_load_queue(
        AwsSettings(),
        names.bucket,
        stack.env.get("SLUICE_S3_CLEAN_PREFIX", "clean/"),
        s3_client=s3,
        sqs_client=_aws_client(stack, "sqs"),
    )
    return {"SLUICE_WAREHOUSE_LOAD_QUEUE_URL": url}


def remove_resources(stack: Stack, names: RunNames, backend: str) -> list[str]:
    """Delete what :func:`create_resources` made and the run's schema; the failures."""
    problems: list[str] = []
    streams = [names.stream(t) for t in EVENT_TYPES] + [names.dlq]
    steps: list[tuple[str, Any]] = []
    if backend == "kafka":

        def drop_topics() -> None:
            from confluent_kafka.admin import AdminClient

            bootstrap = stack.env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"]
            for future in (
                AdminClient({"bootstrap.servers": bootstrap}).delete_topics(streams).values()
            ):
                future.result(timeout=30)

        steps.append(("topics", drop_topics))
    else:

        def drop_streams() -> None:
            kinesis = _aws_client(stack, "kinesis")
            for name in streams:
                kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)

        steps.append(("streams", drop_streams))

    def drop_bucket() -> None:
        s3 = _aws_client(stack, "s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=names.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=names.bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=names.bucket)

    def drop_queue() -> None:
        sqs = _aws_client(stack, "sqs")
        for queue in (names.queue, f"{names.queue}-dlq"):
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])

    def drop_schema() -> None:
        with psycopg.connect(stack.env["SLUICE_WAREHOUSE_DSN"], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{names.schema}" CASCADE')

    steps += [("bucket", drop_bucket), ("queue", drop_queue), ("schema", drop_schema)]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # each step reported; the others still run
            problems.append(f"{what}: {type(exc).__name__}: {exc}")
    return problems


class Warehouse:
    """This run's own counting queries on the warehouse schema."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.schema = schema
        self.conn = psycopg.connect(dsn, autocommit=True)
        self._ids_loaded = False

    @property
    def backend_pid(self) -> int:
        """The server process of this session (left out of the stages' CPU)."""
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        return int(row[0]) if row else 0

    def rows(self) -> int:
        """Rows inserted into the target tables, from PostgreSQL's statistics.

        O(1) where ``count(*)`` would scan tables of up to millions of rows at every
        poll, for the progress line only: the statistics of an idle session may lag by
        up to 10 s. The end is decided by :meth:`count` and :meth:`landed`.
        """
        row = self.conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = %s AND relname = ANY(%s)",
            (self.schema, list(TABLES)),
        ).fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        """Rows in the target tables, exactly (a scan of both)."""
        parts = " + ".join(f'(SELECT count(*) FROM "{self.schema}".{t})' for t in TABLES)
        row = self.conn.execute(f"SELECT {parts}").fetchone()
        return int(row[0]) if row else 0

    def load_accepted(self, ids_file: Path) -> int:
        """Copy the accepted ids into a temporary table; how many distinct ids."""
        self.conn.execute("CREATE TEMPORARY TABLE accepted (event_id varchar(36) PRIMARY KEY)")
        with (
            ids_file.open("rb") as source,
            self.conn.cursor() as cur,
            cur.copy("COPY accepted (event_id) FROM STDIN") as copy,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        self._ids_loaded = True
        row = self.conn.execute("SELECT count(*) FROM accepted").fetchone()
        return int(row[0]) if row else 0

    def landed(self) -> dict[str, int]:
        """Accepted ids present, lost, duplicated and extra rows (needs the ids)."""
        union = " UNION ALL ".join(f'SELECT event_id FROM "{self.schema}".{t}' for t in TABLES)
        row = self.conn.execute(
            f"""
            WITH w AS ({union}),
                 per_id AS (SELECT event_id, count(*) AS n FROM w GROUP BY event_id)
            SELECT
              (SELECT count(*) FROM accepted a JOIN per_id p USING (event_id)),
              (SELECT count(*) FROM accepted a LEFT JOIN per_id p USING (event_id)
                 WHERE p.event_id IS NULL),
              (SELECT coalesce(sum(n - 1), 0) FROM per_id WHERE n > 1),
              (SELECT count(*) FROM per_id p LEFT JOIN accepted a USING (event_id)
                 WHERE a.event_id IS NULL)
            """
        ).fetchone()
        assert row is not None
        return {
            "present": int(row[0]),
            "lost": int(row[1]),
            "duplicated": int(row[2]),
            "extra": int(row[3]),
        }

    def close(self) -> None:
        self.conn.close()
