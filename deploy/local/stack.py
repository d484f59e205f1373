"""``sluice stack up | status | down``: the whole pipeline on one machine, no Docker.

``up`` is idempotent: services already running (by their recorded pids) are kept,
missing topics, streams, buckets and tables are created, and the env file keeps its
API key and HMAC key across runs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.local import provision, services
from deploy.local.base import parse_env, port_is_free, render_env
from deploy.local.config import StackSettings
from deploy.local.exceptions import PortInUseError, StackError
from deploy.local.models import (
    ServiceHealth,
    ServiceName,
    ServiceRecord,
    ServiceStatus,
    StackState,
)
from ingest_api.config import ApiSettings
from sluice.config import AwsSettings, KafkaSettings, StreamSettings, ZoneSettings

_log = logging.getLogger(__name__)

LOCAL_AWS_KEY = "local"  # moto accepts any credentials; these are not secrets
PORT_SETTINGS = {
    ServiceName.KAFKA: "SLUICE_STACK_KAFKA_PORT",
    ServiceName.AWS: "SLUICE_STACK_AWS_PORT",
    ServiceName.POSTGRES: "SLUICE_STACK_PG_PORT",
}
MARKERS = {
    ServiceName.KAFKA: "tansu",
    ServiceName.AWS: "moto_server",
    ServiceName.POSTGRES: "postgres",
}


@dataclass(frozen=True)
class StackUpResult:
    """What ``up`` did: the env written, the services, and the time it took."""

    env: dict[str, str]
    env_file: Path
    health: list[ServiceHealth]
    started: list[ServiceName]
    created: list[str]
    seconds: float


def load_state(settings: StackSettings) -> StackState:
    """The recorded services, or an empty state."""
    try:
        return StackState.from_json(json.loads(settings.state_file.read_text()))
    except FileNotFoundError:
        return StackState()
    except (ValueError, KeyError) as exc:
        raise StackError(
            f"the stack state file {settings.state_file} is unreadable: {exc}"
        ) from exc


def save_state(settings: StackSettings, state: StackState) -> None:
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    tmp.replace(settings.state_file)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``SLUICE_*`` values of an env file ({} when it does not exist)."""
    try:
        return parse_env(path.read_text())
    except FileNotFoundError:
        return {}


def endpoints(settings: StackSettings) -> dict[ServiceName, str]:
    host = settings.stack_host
    return {
        ServiceName.KAFKA: f"{host}:{settings.stack_kafka_port}",
        ServiceName.AWS: f"http://{host}:{settings.stack_aws_port}",
        ServiceName.POSTGRES: services.postgres_dsn(
            host, settings.stack_pg_port, settings.stack_warehouse_database
        ),
    }


def ports(settings: StackSettings) -> dict[ServiceName, int]:
    return {
        ServiceName.KAFKA: settings.stack_kafka_port,
        ServiceName.AWS: settings.stack_aws_port,
        ServiceName.POSTGRES: settings.stack_pg_port,
    }


def check(record: ServiceRecord, timeout: float = 1.0) -> ServiceHealth:
    """Is the recorded process alive, and does it answer on its endpoint?"""
    if not services.pid_matches(record.pid, MARKERS[record.name]):
        return ServiceHealth(record, ServiceStatus.STOPPED, f"pid {record.pid} is not running")
    answers: Callable[[], bool] = {
        ServiceName.KAFKA: lambda: services.kafka_answers(record.endpoint, timeout),
        ServiceName.AWS: lambda: services.moto_answers(record.endpoint, timeout),
        ServiceName.POSTGRES: lambda: services.postgres_answers(record.endpoint, timeout),
    }[record.name]
    if answers():
        return ServiceHealth(record, ServiceStatus.RUNNING)
    return ServiceHealth(record, ServiceStatus.NOT_ANSWERING, "process alive but not answering")


def up(
    settings: StackSettings | None = None,
    *,
    provision_warehouse: bool = True,
    progress: Callable[[str], None] | None = None,
) -> StackUpResult:
    """Start what is not running, create what is missing, write the env file.

    Raises:
        PortInUseError: a port is taken by a process the stack did not start.
        StackError: a service failed to start (its log tail is in the message).
    """
    settings = settings or StackSettings()
    say = progress or (lambda _msg: None)
    started_at = time.monotonic()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(settings)
    eps, port_map = endpoints(settings), ports(settings)

    to_start: list[ServiceName] = []
    for name in ServiceName:
        record = state.services.get(name)
        if (
            record is not None
            and record.port == port_map[name]
            and check(record).status is ServiceStatus.RUNNING
        ):
            continue
        if record is not None and services.pid_matches(record.pid, MARKERS[name]):
            services.terminate(record.pid)
        if not port_is_free(settings.stack_host, port_map[name]):
            raise PortInUseError(
                name.value, settings.stack_host, port_map[name], PORT_SETTINGS[name]
            )
        to_start.append(name)

    pending: list[tuple[ServiceRecord, Callable[[], bool]]] = []
    try:
        for name in to_start:
            say(f"starting {name.value} on port {port_map[name]}")
            record, ready = _start(settings, name, eps[name], port_map[name])
            state.services[name] = record
            save_state(settings, state)
            pending.append((record, ready))
        for record, ready in pending:
            services.wait_until(
                ready,
                what=record.name.value,
                timeout=settings.stack_ready_timeout,
                pid=record.pid if record.name is not ServiceName.POSTGRES else None,
                log_file=Path(record.log_file),
            )
            say(f"{record.name.value} is ready")
    except BaseException:
        # A half-started stack is worse than none: stop what this call started.
        for record, _ready in pending:
            if services.pid_matches(record.pid, MARKERS[record.name]):
                services.terminate(record.pid)
            state.services.pop(record.name, None)
        save_state(settings, state)
        raise

    services.ensure_database(
        settings.stack_host, settings.stack_pg_port, settings.stack_warehouse_database
    )
    env = _stack_env(settings, eps)
    settings.env_file.write_text(render_env(env))
    os.chmod(settings.env_file, 0o600)

    created = _provision(settings, env, say, provision_warehouse=provision_warehouse)
    settings.env_file.write_text(render_env(env))  # with what provisioning found out
    health = [check(r) for r in state.services.values()]
    return StackUpResult(
        env=env,
        env_file=settings.env_file,
        health=health,
        started=to_start,
        created=created,
        seconds=time.monotonic() - started_at,
    )


def _start(
    settings: StackSettings, name: ServiceName, endpoint: str, port: int
) -> tuple[ServiceRecord, Callable[[], bool]]:
    host = settings.stack_host
    log_file = (settings.log_dir / f"{name.value}.log").resolve()
    if name is ServiceName.KAFKA:
        command = services.tansu_command(host, port)
        pid = services.spawn(command, log_file)
        ready: Callable[[], bool] = lambda: services.kafka_answers(endpoint)  # noqa: E731
    elif name is ServiceName.AWS:
        command = services.moto_command(host, port)
        pid = services.spawn(command, log_file)
        ready = lambda: services.moto_answers(endpoint)  # noqa: E731
    else:
        runner = services.PostgresRunner(settings.stack_dir / "pgdata", host, port, log_file)
        pid = runner.start()
        command = runner.command()
        admin_dsn = services.postgres_dsn(host, port, "postgres")
        ready = lambda: services.postgres_answers(admin_dsn)  # noqa: E731
    record = ServiceRecord(
        name=name,
        pid=pid,
        endpoint=endpoint,
        port=port,
        stands_for=services.STANDS_FOR[name],
        command=tuple(command),
        log_file=str(log_file),
    )
    return record, ready


def _stack_env(settings: StackSettings, eps: dict[ServiceName, str]) -> dict[str, str]:
    previous = read_env_file(settings.env_file)
    env = {
        "SLUICE_KAFKA_BOOTSTRAP_SERVERS": eps[ServiceName.KAFKA],
        # Tansu answers ListOffsets wrongly after idempotent writes (see docs); acks=all
        # and one in-flight request per connection keep ordering, the loader dedupes.
        "SLUICE_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "SLUICE_AWS_ENDPOINT_URL": eps[ServiceName.AWS],
        "SLUICE_AWS_REGION": "us-east-1",
        "SLUICE_AWS_ACCESS_KEY_ID": LOCAL_AWS_KEY,
        "SLUICE_AWS_SECRET_ACCESS_KEY": LOCAL_AWS_KEY,
        "SLUICE_WAREHOUSE_BACKEND": "postgres",
        "SLUICE_WAREHOUSE_DSN": eps[ServiceName.POSTGRES],
        "SLUICE_API_KEY": previous.get("SLUICE_API_KEY") or "sk_local_" + secrets.token_urlsafe(24),
        "SLUICE_PII_HMAC_KEY": previous.get("SLUICE_PII_HMAC_KEY") or secrets.token_hex(32),
        "SLUICE_S3_BUCKET": previous.get("SLUICE_S3_BUCKET") or ZoneSettings().s3_bucket,
        "SLUICE_STACK_DIR": str(settings.stack_dir),
        # The API's idempotency records and token buckets live in (moto's) DynamoDB, as
        # on Lambda, so that several API processes share them.
        "SLUICE_API_IDEMPOTENCY_STORE": "dynamodb",
        "SLUICE_API_RATE_LIMIT_STORE": "dynamodb",
    }
    # Keep any other SLUICE_* values an operator added by hand.
    return {**previous, **env}


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _provision(
    settings: StackSettings,
    env: dict[str, str],
    say: Callable[[str], None],
    *,
    provision_warehouse: bool,
) -> list[str]:
    created: list[str] = []
    with _environment({**env, "SLUICE_STACK_ENV": str(settings.env_file)}):
        streams = StreamSettings()
        aws = AwsSettings()
        created += [
            f"topic {n}"
            for n in provision.ensure_topics(
                KafkaSettings(), streams.all_names(), settings.stack_kafka_partitions
            )
        ]
        created += [
            f"stream {n}"
            for n in provision.ensure_streams(
                aws, streams.all_names(), settings.stack_kinesis_shards
            )
        ]
        created += [f"glue schema {n}" for n in provision.ensure_glue_schemas(aws)]
        zone = ZoneSettings()
        bucket = zone.s3_bucket
        if provision.ensure_bucket(aws, bucket):
            created.append(f"bucket {bucket}")
        env["SLUICE_WAREHOUSE_LOAD_QUEUE_URL"] = provision.ensure_load_queue(
            aws, bucket, zone.s3_clean_prefix
        )
        api = ApiSettings()
        created += [
            f"table {n}"
            for n in provision.ensure_api_tables(
                aws, api.api_idempotency_table, api.api_rate_limit_table
            )
        ]
        if provision_warehouse:
            provision.ensure_warehouse()
    for item in created:
        say(f"created {item}")
    return created


def status(settings: StackSettings | None = None) -> list[ServiceHealth]:
    """Health of every recorded service (empty when the stack never ran here)."""
    settings = settings or StackSettings()
    return [check(r) for r in load_state(settings).services.values()]


def down(settings: StackSettings | None = None) -> list[ServiceRecord]:
    """Stop the processes the stack started (by recorded pid); returns what was stopped."""
    settings = settings or StackSettings()
    state = load_state(settings)
    stopped: list[ServiceRecord] = []
    for name, record in list(state.services.items()):
        if services.pid_matches(record.pid, MARKERS[name]):
            # PostgreSQL: SIGINT is its "fast" shutdown (rolls back open transactions).
            sig = 2 if name is ServiceName.POSTGRES else 15
            services.terminate(record.pid, sig=sig)
            stopped.append(record)
        del state.services[name]
    save_state(settings, state)
    return stopped
