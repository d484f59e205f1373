"""``sluice lag`` and ``sluice reconcile`` in an 80-column terminal (fresh processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.api import ConsumerContext, build_consumer, build_sink
from tests.integration.consumers.consumer_support import make_events, put_kinesis, warehouse_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLUICE = str(Path(sys.executable).with_name("sluice"))
ROOT = Path(__file__).resolve().parents[3]


def _env(stack: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(stack.env)
    env["SLUICE_STACK_ENV"] = str(stack.env_file.parent / "unused-by-tests.env")
    env["COLUMNS"] = "80"
    env.update(extra)
    return env


def test_lag_at_80_columns_shows_full_stream_and_group_names(
    stack: Any, stream_factory: Any, settings_env: Any
) -> None:
    stream = stream_factory(shards=2, prefix="sluice-financial-transaction-eu-central-1")
    group = f"sluice-warehouse-consumers-eu-central-1-{uuid.uuid4().hex[:10]}"
    put_kinesis(stack.aws_client("kinesis"), stream, make_events(12))
    ctx = ConsumerContext.from_env(consumer_group=group, consumer_batch_max_records=2)
    consumer = build_consumer(
        ctx=ctx, backend="kinesis", streams=[stream], sink=build_sink("noop", ctx)
    )
    consumer.run(max_batches=1, timeout_s=60)
    argv = [SLUICE, "lag", "--group", group, "--backend", "kinesis", "--stream", stream]

    text = subprocess.run(argv, env=_env(stack), capture_output=True, text=True, timeout=60)
    as_json = subprocess.run(
        [*argv, "--json"], env=_env(stack), capture_output=True, text=True, timeout=60
    )

    lines = text.stdout.splitlines()
    assert any(group in line for line in lines), text.stdout
    assert any(stream in line for line in lines), text.stdout
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, text.stdout
    assert "…" not in "".join(line for line in lines if group in line or stream in line)
    doc = json.loads(as_json.stdout)
    shards = {p["partition"] for p in doc["partitions"]}
    assert len(shards) == 2 and all(s in text.stdout for s in shards)
    assert doc["total_lag_records"] == 10
    assert f"total lag {doc['total_lag_records']} records" in text.stdout
    assert text.returncode == as_json.returncode != 0  # lagging is not OK


def test_reconcile_at_80_columns(
    stack: Any, bucket_factory: Any, pg_schema_factory: Any, settings_env: Any
) -> None:
    schema = pg_schema_factory()
    warehouse_for(stack, schema).close()
    env = _env(stack, SLUICE_WAREHOUSE_SCHEMA=schema, SLUICE_S3_BUCKET=bucket_factory())
    result = subprocess.run(
        [SLUICE, "reconcile", "--no-stream"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[0].split() == [
        "stage",
        "events",
        "distinct",
        "diff",
        "dups",
        "missing",
        "unident",
        "tests",
    ]
    assert {line.split()[0] for line in lines[1:6]} == {
        "accepted",
        "stream",
        "s3_clean",
        "s3_errors",
        "warehouse",
    }
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert lines[-1] == "OK: nothing missing"
