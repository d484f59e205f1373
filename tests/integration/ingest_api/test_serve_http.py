"""``sluice api serve`` (uvicorn, a fresh process) against raw HTTP: what the server and
not the app sees (a malformed ``Content-Length``), slow and abandoned bodies, and no
redirect built from the client's ``Host``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.ingest_api.conftest import KEY, event

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(settings_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = _free_port()
    env = {
        **os.environ,
        "SLUICE_API_KEY": KEY,
        "SLUICE_API_BODY_READ_TIMEOUT_S": "1",
        "SLUICE_API_IDEMPOTENCY_STORE": "memory",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.cli",
                "api",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "info",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield port, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _raw(
    port: int, data: bytes, *, pause: float = 0.0, more: bytes = b""
) -> tuple[int, dict[str, str], Any]:
    """Send ``data`` (then ``more`` after ``pause``) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if pause:
            time.sleep(pause)
        if more:
            with contextlib.suppress(OSError):
                sock.sendall(more)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
            headers = _headers(head)
            if "content-length" in headers and len(body) >= int(headers["content-length"]):
                break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, _headers(head), json.loads(body) if body else None


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _request(path: str, body: bytes, extra: str = "", length: str | None = None) -> bytes:
    declared = str(len(body)) if length is None else length
    return (
        f"POST {path} HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n{extra}\r\n"
    ).encode() + body


@pytest.mark.parametrize("length", ["abc", "12x", "-5"])
def test_malformed_content_length_is_json_400(server: tuple[int, Path], length: str) -> None:
    port, _ = server
    status, headers, body = _raw(
        port, _request("/v1/events/financial-transaction", b"{}", length=length)
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body["code"] == "bad_content_length"
    assert length not in json.dumps(body)


def test_trailing_slash_is_not_redirected(server: tuple[int, Path]) -> None:
    port, _ = server
    data = json.dumps(event()).encode()
    status, headers, body = _raw(port, _request("/v1/events/financial-transaction/", data))
    assert (status, body["code"]) == (404, "not_found")
    assert "location" not in headers
    assert "evil.example" not in json.dumps(body)


def test_slow_body_is_408(server: tuple[int, Path]) -> None:
    port, _ = server
    data = json.dumps(event()).encode()
    started = time.monotonic()
    status, _, body = _raw(
        port, _request("/v1/events/financial-transaction", data[:40], length=str(len(data)))
    )
    assert (status, body["code"]) == (408, "body_timeout")
    assert time.monotonic() - started < 10


def test_client_gone_mid_body_is_not_a_server_error(server: tuple[int, Path]) -> None:
    port, log = server
    data = json.dumps(event()).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_request("/v1/events/financial-transaction", data[:40], length=str(len(data))))
        time.sleep(0.3)
    time.sleep(1.5)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'status="503"' not in metrics
    assert 'status="499"' in metrics
    assert "Traceback" not in log.read_text()
