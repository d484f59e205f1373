"""`sluice stack up/status/down` against real processes on free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from deploy.local import services
from deploy.local import stack as local_stack
from deploy.local.base import free_port, parse_env, port_is_free
from deploy.local.config import StackSettings
from deploy.local.exceptions import PortInUseError
from deploy.local.models import ServiceName, ServiceStatus

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path) -> StackSettings:
    return StackSettings(
        stack_dir=tmp_path / ".sluice",
        stack_kafka_port=free_port(),
        stack_aws_port=free_port(),
        stack_pg_port=free_port(),
    )


def test_up_is_ready_idempotent_and_down_stops_only_its_processes(stack_base_dir: Path) -> None:
    settings = _settings(stack_base_dir)
    try:
        first = local_stack.up(settings, provision_warehouse=False)
        assert first.seconds < 15, f"stack took {first.seconds:.1f} s"
        assert {h.record.name for h in first.health} == set(ServiceName)
        assert all(h.status is ServiceStatus.RUNNING for h in first.health)
        env = parse_env(settings.env_file.read_text())
        assert all(k.startswith("SLUICE_") for k in env)
        for key in (
            "SLUICE_KAFKA_BOOTSTRAP_SERVERS",
            "SLUICE_AWS_ENDPOINT_URL",
            "SLUICE_WAREHOUSE_DSN",
            "SLUICE_API_KEY",
            "SLUICE_WAREHOUSE_LOAD_QUEUE_URL",
        ):
            assert env[key], key
        # the bucket notifies the loader's queue of new clean objects, as on AWS
        s3 = boto3.client(
            "s3",
            endpoint_url=env["SLUICE_AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        notification = s3.get_bucket_notification_configuration(Bucket=env["SLUICE_S3_BUCKET"])
        (queue,) = notification["QueueConfigurations"]
        assert queue["Events"] == ["s3:ObjectCreated:*"]
        rules = queue["Filter"]["Key"]["FilterRules"]  # rule names are case-insensitive
        assert [(r["Name"].lower(), r["Value"]) for r in rules] == [("prefix", "clean/")]
        assert oct(settings.env_file.stat().st_mode & 0o777) == "0o600"
        assert "topic sluice-financial-transaction" in first.created
        assert "stream sluice-insurance-claim" in first.created

        second = local_stack.up(settings, provision_warehouse=False)
        assert second.started == [] and second.created == []
        assert parse_env(settings.env_file.read_text())["SLUICE_API_KEY"] == env["SLUICE_API_KEY"]
        pids = {h.record.pid for h in first.health}
        assert {h.record.pid for h in second.health} == pids
    finally:
        stopped = local_stack.down(settings)
    assert {r.name for r in stopped} == set(ServiceName)
    assert local_stack.status(settings) == []
    assert not any(services.pid_alive(pid) for pid in pids)


def test_taken_port_is_reported_with_its_setting(stack_base_dir: Path) -> None:
    settings = _settings(stack_base_dir)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.stack_aws_port))
        sock.listen()
        with pytest.raises(PortInUseError) as info:
            local_stack.up(settings, provision_warehouse=False)
    assert info.value.port == settings.stack_aws_port
    assert "SLUICE_STACK_AWS_PORT" in str(info.value)
    local_stack.down(settings)


def test_cli_status_json_and_exit_codes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_STACK_DIR"] = str(tmp_path / ".sluice")
    cli = [sys.executable, "-m", "sluice.cli"]
    result = subprocess.run(
        [*cli, "stack", "status", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"services": []}
    result = subprocess.run(
        [*cli, "stack", "down"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "nothing to stop" in result.stdout


def test_a_service_failing_to_start_stops_the_ones_already_started(
    stack_base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy.local.exceptions import StackError

    def broken_start(self: object) -> int:
        raise StackError("PostgreSQL did not start (simulated)")

    monkeypatch.setattr(services.PostgresRunner, "start", broken_start)
    settings = _settings(stack_base_dir)
    with pytest.raises(StackError, match="simulated"):
        local_stack.up(settings, provision_warehouse=False)
    assert local_stack.status(settings) == []
    assert port_is_free(settings.stack_host, settings.stack_kafka_port)
    assert port_is_free(settings.stack_host, settings.stack_aws_port)
