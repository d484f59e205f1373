"""The real local stack for integration tests.

One stack per test session: the Tansu Kafka broker, moto server and PostgreSQL, started
on free ports in a temporary folder and stopped at the end. When ``SLUICE_STACK_ENV``
names the env file of a running stack (``sluice stack up`` wrote it), that stack is
reused instead and left running.

Every test gets fresh names from the factory fixtures, so tests never depend on order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.local import provision, services
from deploy.local import stack as local_stack
from deploy.local.base import free_port, parse_env
from deploy.local.config import StackSettings
from deploy.local.models import ServiceName

pytestmark = pytest.mark.integration

_REUSE_ENV = os.environ.get("SLUICE_STACK_ENV")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class LocalStack:
    """A running local stack: its ``SLUICE_*`` values and its processes."""

    env: dict[str, str]
    env_file: Path
    stack_dir: Path
    managed: bool
    _monkeypatch: pytest.MonkeyPatch | None = field(default=None, repr=False)

    @property
    def kafka_bootstrap(self) -> str:
        return self.env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def aws_endpoint(self) -> str:
        return self.env["SLUICE_AWS_ENDPOINT_URL"]

    @property
    def warehouse_dsn(self) -> str:
        return self.env["SLUICE_WAREHOUSE_DSN"]

    def aws_client(self, service: str) -> Any:
        """A boto3 client on the stack's moto endpoint."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.env.get("SLUICE_AWS_REGION", "us-east-1"),
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def pid(self, service: ServiceName) -> int:
        state = local_stack.load_state(StackSettings(stack_dir=self.stack_dir))
        return state.services[service].pid

    @contextlib.contextmanager
    def paused(self, service: ServiceName) -> Iterator[None]:
        """Freeze a service (SIGSTOP) and thaw it afterwards (SIGCONT).

        A frozen broker accepts TCP connections but never answers, like a hung or
        partitioned broker; its in-memory data survives, so tests can check afterwards
        that everything acknowledged before and after is still there.
        """
        pid = self.pid(service)
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The local stack, started once per session (or reused via ``SLUICE_STACK_ENV``)."""
    if _REUSE_ENV:
        env_file = Path(_REUSE_ENV)
        env = parse_env(env_file.read_text())
        stack_dir = Path(env.get("SLUICE_STACK_DIR", str(env_file.parent)))
        if not stack_dir.is_absolute():
            stack_dir = env_file.parent
        yield LocalStack(env=env, env_file=env_file, stack_dir=stack_dir, managed=False)
        return
    # Not under pytest's temp root: pytest resets that to mode 0700 whenever a session
    # starts, which would lock out PostgreSQL running as its own system user.
    base = Path(tempfile.mkdtemp(prefix="sluice-stack-"))
    stack_dir = base / ".sluice"
    settings = StackSettings(
        stack_dir=stack_dir,
        stack_kafka_port=free_port(),
        stack_aws_port=free_port(),
        stack_pg_port=free_port(),
    )
    result = local_stack.up(settings, provision_warehouse=False)
    try:
        yield LocalStack(
            env=result.env, env_file=result.env_file, stack_dir=stack_dir, managed=True
        )
    finally:
        local_stack.down(settings)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def settings_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put the stack's ``SLUICE_*`` values into the environment for one test."""
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLUICE_STACK_ENV", str(stack.env_file.parent / "unused-by-tests.env"))
    return dict(stack.env)


@pytest.fixture
def topic_factory(stack: LocalStack) -> Iterator[Callable[..., str]]:
    """Create fresh Kafka topics: ``topic_factory(partitions=4) -> name``."""
    from confluent_kafka.admin import AdminClient

    from sluice.config import KafkaSettings

    created: list[str] = []

    def make(partitions: int = 4, prefix: str = "t") -> str:
        name = _unique(prefix)
        provision.ensure_topics(
            KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap), [name], partitions
        )
        created.append(name)
        return name

    yield make
    if created:
        admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
        for future in admin.delete_topics(created, operation_timeout=5).values():
            with contextlib.suppress(Exception):
                future.result(timeout=5)


@pytest.fixture
def stream_factory(stack: LocalStack) -> Iterator[Callable[..., str]]:
    """Create fresh Kinesis streams (ACTIVE on return): ``stream_factory(shards=2)``."""
    client = stack.aws_client("kinesis")
    created: list[str] = []

    def make(shards: int = 2, prefix: str = "s") -> str:
        from sluice.config import AwsSettings

        name = _unique(prefix)
        provision.ensure_streams(AwsSettings(), [name], shards, client=client)
        created.append(name)
        return name

    yield make
    for name in created:
        with contextlib.suppress(Exception):
            client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


@pytest.fixture
def bucket_factory(stack: LocalStack) -> Callable[..., str]:
    """Create fresh S3 buckets: ``bucket_factory() -> name``."""
    client = stack.aws_client("s3")

    def make(prefix: str = "b") -> str:
        name = _unique(prefix)
        client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture
def dynamodb_table_factory(stack: LocalStack) -> Callable[..., str]:
    """Fresh DynamoDB table *names* (the code under test creates the table)."""

    def make(prefix: str = "d") -> str:
        return _unique(prefix)

    return make


@pytest.fixture
def pg_schema_factory(stack: LocalStack) -> Iterator[Callable[..., str]]:
    """Create fresh PostgreSQL schemas in the stack's warehouse database."""
    import psycopg
    from psycopg import sql

    created: list[str] = []

    def make(prefix: str = "w") -> str:
        name = _unique(prefix).replace("-", "_")
        with psycopg.connect(stack.warehouse_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        created.append(name)
        return name

    yield make
    with psycopg.connect(stack.warehouse_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def private_kafka_broker(tmp_path: Path) -> Iterator[Callable[[], dict[str, Any]]]:
    """Start a separate Tansu broker a test may stop, kill or pause at will.

    Returns a starter giving ``{"bootstrap": "127.0.0.1:PORT", "pid": PID}``; every broker
    started is killed at the end of the test. Its storage is in memory: a killed broker
    loses its records (pause it with SIGSTOP to keep them).
    """
    pids: list[int] = []

    def start() -> dict[str, Any]:
        port = free_port()
        log = tmp_path / f"tansu-{port}.log"
        pid = services.spawn(services.tansu_command("127.0.0.1", port), log)
        pids.append(pid)
        bootstrap = f"127.0.0.1:{port}"
        services.wait_until(
            lambda: services.kafka_answers(bootstrap),
            what="tansu",
            timeout=15,
            pid=pid,
            log_file=log,
        )
        return {"bootstrap": bootstrap, "pid": pid}

    yield start
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        services.terminate(pid, sig=signal.SIGKILL, timeout=2)


@pytest.fixture
def stack_base_dir() -> Iterator[Path]:
    """A fresh folder for a stack of a test's own (outside pytest's 0700 temp root)."""
    base = Path(tempfile.mkdtemp(prefix="sluice-test-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)
