"""``sluice simulate`` on the local stack: every accepted event is on the stream, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.simulate import HttpTarget, SimulationOptions, run_simulation
from schemas import codec
from tests.integration.producers.test_publishers import read_stream, read_topic

pytestmark = pytest.mark.integration

FT = "financial-transaction"
IC = "insurance-claim"


def _point_streams(monkeypatch: pytest.MonkeyPatch, backend: str, ft: str, ic: str) -> None:
    monkeypatch.setenv("SLUICE_STREAM_BACKEND", backend)
    monkeypatch.setenv("SLUICE_STREAM_FINANCIAL_TRANSACTION", ft)
    monkeypatch.setenv("SLUICE_STREAM_INSURANCE_CLAIM", ic)


def test_simulate_direct_to_kafka(
    settings_env: dict[str, str],
    stack: Any,
    topic_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ft, ic = topic_factory(partitions=4), topic_factory(partitions=4)
    _point_streams(monkeypatch, "kafka", ft, ic)
    options = SimulationOptions(
        count=200,
        rate=None,
        invalid_ratio=0.1,
        batch_size=20,
        concurrency=4,
        direct=True,
        seed=8,
        progress=False,
    )
    summary = run_simulation(options)
    assert summary.failed == 0, summary.failed_by_reason
    assert summary.accepted + summary.rejected == 200
    assert summary.rejected == sum(summary.generated_invalid.values())
    landed = []
    for message in read_topic(stack.kafka_bootstrap, [ft, ic], summary.accepted):
        decoded = codec.decode(message.value())
        assert decoded.event_type == (FT if message.topic() == ft else IC)
        landed.append(decoded.record["event_id"])
    assert sorted(landed) == sorted(summary.accepted_event_ids)


def test_simulate_direct_to_kinesis(
    settings_env: dict[str, str],
    stack: Any,
    stream_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ft, ic = stream_factory(shards=2), stream_factory(shards=2)
    _point_streams(monkeypatch, "kinesis", ft, ic)
    options = SimulationOptions(
        count=150,
        rate=None,
        invalid_ratio=0.1,
        batch_size=50,
        concurrency=2,
        direct=True,
        seed=9,
        progress=False,
    )
    summary = run_simulation(options)
    assert summary.failed == 0, summary.failed_by_reason
    client = stack.aws_client("kinesis")
    landed = [
        codec.decode(data).record["event_id"]
        for s in (ft, ic)
        for _, _, data in read_stream(client, s)
    ]
    assert sorted(landed) == sorted(summary.accepted_event_ids)


@pytest.mark.parametrize("batch_size", [1, 25])
def test_simulate_through_the_api_to_kafka(
    settings_env: dict[str, str],
    stack: Any,
    topic_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int,
) -> None:
    from ingest_api.app import create_app
    from producers.factory import create_publisher
    from sluice.config import StreamSettings

    ft, ic = topic_factory(partitions=4), topic_factory(partitions=4)
    _point_streams(monkeypatch, "kafka", ft, ic)
    publisher = create_publisher()
    app = create_app(publisher=publisher, stream_settings=StreamSettings())
    api_key = settings_env["SLUICE_API_KEY"]
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"X-API-Key": api_key},
    )
    target = HttpTarget(
        "http://api", api_key=api_key, timeout=10, batch=batch_size > 1, client=client
    )
    options = SimulationOptions(
        count=120,
        rate=None,
        invalid_ratio=0.15,
        batch_size=batch_size,
        concurrency=4,
        url="http://api",
        seed=10,
        progress=False,
        api_key=api_key,
    )
    summary = run_simulation(options, target=target)
    assert summary.failed == 0, summary.failed_by_reason
    assert summary.rejected == sum(summary.generated_invalid.values())
    assert summary.rejected_by_reason  # reasons come from the API's error model
    landed = [
        codec.decode(m.value()).record["event_id"]
        for m in read_topic(stack.kafka_bootstrap, [ft, ic], summary.accepted)
    ]
    assert sorted(landed) == sorted(summary.accepted_event_ids)


def test_simulate_command_writes_the_accepted_ids_and_the_time_of_the_last_202(
    settings_env: dict[str, str],
    stack: Any,
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    ft, ic = topic_factory(partitions=2), topic_factory(partitions=2)
    env = {
        **os.environ,
        "SLUICE_STREAM_BACKEND": "kafka",
        "SLUICE_STREAM_FINANCIAL_TRANSACTION": ft,
        "SLUICE_STREAM_INSURANCE_CLAIM": ic,
    }
    ids_file = tmp_path / "accepted.txt"
    before = time.time()
    done = subprocess.run(
        [
            sys.executable, "-m", "sluice.cli", "simulate", "--direct",
            "--count", "150", "--rate", "0", "--invalid-ratio", "0.2", "--batch-size", "25",
            "--seed", "11", "--accepted-ids", str(ids_file), "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    after = time.time()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    ids = ids_file.read_text().split()
    assert summary["rejected"] > 0 and len(ids) == summary["accepted"] == 150 - summary["rejected"]
    assert before <= summary["first_accepted_at"] <= summary["last_accepted_at"] <= after
    landed = [
        codec.decode(message.value()).record["event_id"]
        for message in read_topic(stack.kafka_bootstrap, [ft, ic], len(ids))
    ]
    assert sorted(landed) == sorted(ids)
