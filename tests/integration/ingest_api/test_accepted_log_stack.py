"""The accepted-events log on the real local stack, read back by ``sluice reconcile``'s source.

Events are posted with ``SLUICE_API_ACCEPTED_LOG=file``: the file must then hold exactly
the accepted event ids (no rejected, no replayed twice), every one of them on the topic
or stream, and ``warehouse.reconcile.accepted_log_source`` must read it. One test runs
``sluice api serve`` with two uvicorn workers appending to the same file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas import decode
from tests.integration.ingest_api.conftest import (
    FT,
    KEY,
    auth,
    build_app,
    event,
    read_stream,
    read_topic,
)
from warehouse.reconcile import Window, accepted_log_source

pytestmark = pytest.mark.integration

FIELDS = {
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "tenant_id",
    "stream",
    "partition_key",
    "accepted_at",
}


def _post_mix(client: TestClient) -> list[str]:
    """Single, batch, rejected and replayed events; the ids answered ``accepted``, in order."""
    a, b, c, d = event(), event(), event(), event()
    assert client.post(f"/v1/events/{FT}", json=a, headers=auth()).status_code == 202
    bad = client.post(f"/v1/events/{FT}", json=event(currency="EURO"), headers=auth())
    assert bad.status_code == 422
    partial = client.post(f"/v1/events/{FT}/batch", json=[b, event(amount="x"), c], headers=auth())
    assert partial.status_code == 207, partial.text
    assert [r["status"] for r in partial.json()["results"]] == ["accepted", "rejected", "accepted"]
    # Replays: answered 202 from the idempotency memory, not published nor logged again.
    assert client.post(f"/v1/events/{FT}", json=a, headers=auth()).status_code == 202
    again = client.post(f"/v1/events/{FT}/batch", json=[b, d], headers=auth())
    assert again.status_code == 202, again.text
    return [a["event_id"], b["event_id"], c["event_id"], d["event_id"]]


def _check_log(path: Path, accepted: list[str], stream: str) -> None:
    lines = [json.loads(line) for line in path.read_text("ascii").splitlines()]
    assert [line["event_id"] for line in lines] == accepted
    for line in lines:
        assert set(line) == FIELDS
        assert line["stream"] == stream
        assert line["event_type"] == FT
        assert line["occurred_at"].endswith("Z")
    sightings = accepted_log_source(path)(Window())
    assert sightings is not None
    assert sorted(s.event_id or "" for s in sightings) == sorted(accepted)
    assert all(s.occurred_at is not None for s in sightings)


def test_kafka_accepted_log_holds_exactly_the_accepted_events(
    stack: Any,
    settings_env: dict[str, str],
    fresh_topics: tuple[str, str],
    tmp_path: Path,
) -> None:
    ft_topic, ic_topic = fresh_topics
    path = tmp_path / "accepted.ndjson"
    app = build_app(
        "kafka", ft_topic, ic_topic, api_accepted_log="file", api_accepted_log_path=path
    )
    with TestClient(app) as client:
        accepted = _post_mix(client)
    _check_log(path, accepted, ft_topic)
    messages = read_topic(stack.kafka_bootstrap, ft_topic, expected=len(accepted))
    on_topic = sorted(decode(m.value()).record["event_id"] for m in messages)
    assert on_topic == sorted(accepted)


def test_kinesis_accepted_log_holds_exactly_the_accepted_events(
    stack: Any,
    settings_env: dict[str, str],
    fresh_streams: tuple[str, str],
    tmp_path: Path,
) -> None:
    ft_stream, ic_stream = fresh_streams
    path = tmp_path / "accepted.ndjson"
    app = build_app(
        "kinesis", ft_stream, ic_stream, api_accepted_log="file", api_accepted_log_path=path
    )
    with TestClient(app) as client:
        accepted = _post_mix(client)
    _check_log(path, accepted, ft_stream)
    records = read_stream(stack.aws_client("kinesis"), ft_stream)
    assert sorted(decode(data).record["event_id"] for _, data in records) == sorted(accepted)


# --------------------------------------------------------------------------- workers


def _writers(parent: int, path: Path) -> list[int]:
    """Child processes of ``parent`` holding ``path`` open (Linux ``/proc``)."""
    target = os.path.realpath(path)
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            fds = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except (OSError, IndexError, ValueError):
            continue
        if target in fds:
            out.append(int(entry.name))
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_workers(
    settings_env: dict[str, str], fresh_topics: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[str, Path, str, int]]:
    """``sluice api serve --workers 2`` with the file log; (base URL, log path, topic, pid)."""
    ft_topic, ic_topic = fresh_topics
    path = tmp_path / "accepted.ndjson"
    port = _free_port()
    env = {
        **os.environ,
        "SLUICE_API_KEY": KEY,
        "SLUICE_STREAM_BACKEND": "kafka",
        "SLUICE_STREAM_FINANCIAL_TRANSACTION": ft_topic,
        "SLUICE_STREAM_INSURANCE_CLAIM": ic_topic,
        "SLUICE_API_ACCEPTED_LOG": "file",
        "SLUICE_API_ACCEPTED_LOG_PATH": str(path),
    }
    command = [sys.executable, "-m", "sluice.cli", "api", "serve", "--port", str(port)]
    output = tmp_path / "server.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--workers", "2"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {output.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not start within 60 s")
            time.sleep(0.2)
        yield base, path, ft_topic, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_two_uvicorn_workers_append_to_one_file(
    stack: Any, two_workers: tuple[str, Path, str, int]
) -> None:
    base, path, topic, server_pid = two_workers
    # each worker opens the file at its startup; /healthz answers once the first is up
    deadline = time.monotonic() + 30
    while len(_writers(server_pid, path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_writers(server_pid, path)) == 2

    def send(batch: int) -> list[str]:
        events = [event() for _ in range(1 + batch % 5)]
        events.append(event(amount="x"))  # rejected, never logged
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.post(f"/v1/events/{FT}/batch", json=events, headers=auth())
        assert response.status_code == 207, response.text
        return [r["event_id"] for r in response.json()["results"] if r["status"] == "accepted"]

    with ThreadPoolExecutor(8) as pool:
        accepted = [eid for ids in pool.map(send, range(40)) for eid in ids]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    logged = [json.loads(line)["event_id"] for line in lines[:-1]]  # every line whole
    assert sorted(logged) == sorted(accepted)
    assert len(set(logged)) == len(logged)
    sightings = accepted_log_source(path)(Window())
    assert sightings is not None
    assert {s.event_id for s in sightings} == set(accepted)
    messages = read_topic(stack.kafka_bootstrap, topic, expected=len(accepted))
    assert {decode(m.value()).record["event_id"] for m in messages} == set(accepted)
