"""deploy/docker-compose.yml and the app image: services, settings and commands line up."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sluice.cli import build_parser
from sluice.config import EventType, StreamSettings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
APP_IMAGE = "sluice:local"
# What `sluice stack up` writes into .sluice/stack.env (team contract), less the
# stack's own bookkeeping (SLUICE_STACK_DIR).
STACK_ENV_KEYS = {
    "SLUICE_KAFKA_BOOTSTRAP_SERVERS",
    "SLUICE_KAFKA_ENABLE_IDEMPOTENCE",
    "SLUICE_AWS_ENDPOINT_URL",
    "SLUICE_AWS_REGION",
    "SLUICE_AWS_ACCESS_KEY_ID",
    "SLUICE_AWS_SECRET_ACCESS_KEY",
    "SLUICE_WAREHOUSE_BACKEND",
    "SLUICE_WAREHOUSE_DSN",
    "SLUICE_API_KEY",
    "SLUICE_PII_HMAC_KEY",
    "SLUICE_S3_BUCKET",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services(compose).items()
        if service.get("image") == APP_IMAGE
    }


def _interpolate_default(value: str) -> str:
    """``${NAME:-default}`` -> ``default`` (what compose uses when NAME is unset)."""
    if value.startswith("${") and ":-" in value:
        return value[value.index(":-") + 2 : -1]
    return value


def test_infrastructure_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert not any("zookeeper" in name for name in services)
    assert services["localstack"]["image"].startswith("localstack/localstack:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("kafka", "localstack", "postgres"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_application_services_run_the_path(compose: dict[str, Any]) -> None:
    apps = _app_services(compose)
    commands = {name: service["command"] for name, service in apps.items()}
    assert commands["api"][:2] == ["api", "serve"]
    assert "/healthz" in " ".join(apps["api"]["healthcheck"]["test"])
    assert commands["loader"][:1] == ["load"]
    assert commands["consumer"][:1] == ["consume"]
    runners = {
        tuple(command[command.index("--event-type") + 1 :][:1])
        for command in commands.values()
        if command[:2] == ["firehose", "run"]
    }
    assert runners == {(event_type.value,) for event_type in EventType}


def test_application_services_share_the_local_stack_settings(compose: dict[str, Any]) -> None:
    apps = _app_services(compose)
    assert len(apps) >= 6
    for name, service in apps.items():
        env = service["environment"]
        missing = STACK_ENV_KEYS - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert all(key.startswith("SLUICE_") for key in env)
    env = next(iter(apps.values()))["environment"]
    services = set(_services(compose))
    # Every endpoint points at a service of this file.
    assert env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in services
    assert urlsplit(env["SLUICE_AWS_ENDPOINT_URL"]).hostname in services
    assert urlsplit(env["SLUICE_WAREHOUSE_DSN"]).hostname in services
    assert env["SLUICE_WAREHOUSE_BACKEND"] == "postgres"
    # Apache Kafka (unlike the local Tansu broker) handles the idempotent producer.
    assert env["SLUICE_KAFKA_ENABLE_IDEMPOTENCE"] == "true"


def test_compose_settings_are_valid_sluice_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = next(iter(_app_services(compose).values()))["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolate_default(str(value)))
    streams = StreamSettings()
    kafka_init = " ".join(_services(compose)["kafka-init"]["command"])
    for name in streams.all_names():
        assert name in kafka_init, f"kafka-init does not create {name}"
    assert streams.stream_backend.value in {"kafka", "kinesis"}


def test_service_commands_are_real_sluice_commands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name, service in _app_services(compose).items():
        command = [str(part) for part in service["command"]]
        if command[0] not in registered:
            pytest.fail(f"{name}: `sluice {shlex.join(command)}` is not a registered command")
        args = parser.parse_args(command)
        assert callable(args.handler), name


def test_app_image_builds_from_the_repository_root(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file(), name
        assert (context / "pyproject.toml").is_file(), name
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["sluice"]' in dockerfile
    assert "USER sluice" in dockerfile
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", ".sluice"} <= set(ignored)


def test_localstack_init_hook_provisions_streams_and_bucket(compose: dict[str, Any]) -> None:
    localstack = _services(compose)["localstack"]
    [mount] = localstack["volumes"]
    source = (DEPLOY / mount.split(":")[0]).resolve()
    assert source.is_file()
    assert os.access(source, os.X_OK)
    script = source.read_text(encoding="utf-8")
    for key in (
        "SLUICE_STREAM_FINANCIAL_TRANSACTION",
        "SLUICE_STREAM_INSURANCE_CLAIM",
        "SLUICE_STREAM_DLQ",
        "SLUICE_S3_BUCKET",
    ):
        assert key in script
        assert key in localstack["environment"]
