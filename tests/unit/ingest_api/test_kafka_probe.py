"""The Kafka readiness probe polls its AdminClient, so OAUTHBEARER callbacks run."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from confluent_kafka.admin import AdminClient

from ingest_api.kafka import KafkaProbe


class _Topic:
    error = None


class _Metadata:
    def __init__(self, topics: list[str]) -> None:
        self.topics = {name: _Topic() for name in topics}


class RecordingAdmin:
    """Records the order of calls the probe makes."""

    def __init__(self, topics: list[str]) -> None:
        self.calls: list[str] = []
        self._topics = topics

    def poll(self, timeout: float) -> int:
        self.calls.append("poll")
        return 0

    def list_topics(self, timeout: float) -> _Metadata:
        self.calls.append("list_topics")
        return _Metadata(self._topics)


def test_probe_polls_before_every_metadata_request() -> None:
    admin = RecordingAdmin(["a", "b"])
    probe = KafkaProbe(admin=admin)
    first = asyncio.run(probe.check(["a", "b"], 1.0))
    second = asyncio.run(probe.check(["a", "c"], 1.0))
    assert first.ready
    assert not second.ready
    assert "missing topics: c" in (second.detail or "")
    assert admin.calls == ["poll", "list_topics", "poll", "list_topics"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_oauthbearer_admin_client_gets_its_token_and_answers_within_the_bound() -> None:
    tokens: list[float] = []

    def oauth_cb(_config: Any) -> tuple[str, float]:
        tokens.append(time.monotonic())
        return "token", time.time() + 3600

    admin = AdminClient(
        {
            "bootstrap.servers": f"127.0.0.1:{_closed_port()}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": oauth_cb,
            "socket.connection.setup.timeout.ms": 1000,
            "log_level": 0,
        }
    )
    probe = KafkaProbe(admin=admin)
    started = time.monotonic()
    readiness = asyncio.run(probe.check(["a"], 1.0))
    assert time.monotonic() - started < 3.0
    assert not readiness.ready
    assert "broker did not answer" in (readiness.detail or "")
    assert tokens, "the oauth_cb was never called"
