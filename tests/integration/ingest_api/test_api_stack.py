"""The ingest API on the real local stack: Kafka (Tansu) and Kinesis (moto).

Events posted through the app are read back from the topic / stream and decoded; PII
must be masked. A broker that stops answering gives 503s (never a 202, never a hang),
and every event that got a 202 is in the topic afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deploy.local import provision
from schemas import decode
from sluice.config import KafkaSettings
from tests.integration.ingest_api.conftest import (
    FT,
    IC,
    auth,
    build_app,
    event,
    read_stream,
    read_topic,
)

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"


def _check_masked(record: dict[str, Any], sent: dict[str, Any]) -> None:
    assert record["event_id"] == sent["event_id"]
    assert record["account_id"] == sent["account_id"]
    assert str(record["amount"]) == "125.4000"
    assert record["card_number"] == "411111******1111"
    assert record["merchant"]["name"] == "Shop 4111 11** **** 1111"
    assert record["ingested_at"] is not None


def test_kafka_round_trip(
    stack: Any, settings_env: dict[str, str], fresh_topics: tuple[str, str]
) -> None:
    ft_topic, ic_topic = fresh_topics
    app = build_app("kafka", ft_topic, ic_topic)
    sent = event(
        card_number=CARD, merchant={"name": f"Shop {CARD}", "mcc": "5462", "country": "DE"}
    )
    claim = event(IC, claimant_national_id="123-45-6789")
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        single = client.post(f"/v1/events/{FT}", json=sent, headers=auth())
        batch = client.post(
            f"/v1/events/{IC}/batch", json=[claim, event(IC, currency="??")], headers=auth()
        )
    assert single.status_code == 202, single.text
    assert single.json()["stream"] == ft_topic
    assert batch.status_code == 207
    (message,) = read_topic(stack.kafka_bootstrap, ft_topic, expected=1)
    assert message.key() == b"acc-42"
    headers = {k: v for k, v in message.headers()}
    assert headers["event_id"] == sent["event_id"].encode()
    assert headers["content-type"] == b"application/vnd.sluice.avro"
    decoded = decode(message.value())
    assert decoded.event_type == FT
    _check_masked(decoded.record, sent)
    assert CARD.replace(" ", "").encode() not in message.value()
    (claim_message,) = read_topic(stack.kafka_bootstrap, ic_topic, expected=1)
    claim_record = decode(claim_message.value()).record
    assert claim_record["event_id"] == claim["event_id"]
    assert claim_record["claimant_national_id"].startswith("hmac-sha256:")


def test_kinesis_round_trip(
    stack: Any, settings_env: dict[str, str], fresh_streams: tuple[str, str]
) -> None:
    ft_stream, ic_stream = fresh_streams
    app = build_app("kinesis", ft_stream, ic_stream)
    events = [
        event(card_number=CARD, merchant={"name": f"Shop {CARD}", "mcc": "5462", "country": "DE"})
        for _ in range(3)
    ]
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        single = client.post(f"/v1/events/{FT}", json=events[0], headers=auth())
        batch = client.post(f"/v1/events/{FT}/batch", json=events[1:], headers=auth())
    assert single.status_code == 202, single.text
    assert batch.status_code == 202, batch.text
    records = read_stream(stack.aws_client("kinesis"), ft_stream)
    by_id = {}
    for key, data in records:
        assert key == "acc-42"
        decoded = decode(data)
        by_id[decoded.record["event_id"]] = decoded.record
    assert set(by_id) == {e["event_id"] for e in events}
    for sent in events:
        _check_masked(by_id[sent["event_id"]], sent)


def test_readyz_not_ready_when_topics_are_missing(stack: Any, settings_env: dict[str, str]) -> None:
    app = build_app("kafka", "no-such-topic-a", "no-such-topic-b")
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "missing topics" in response.json()["detail"]


def test_readyz_kinesis_missing_stream(stack: Any, settings_env: dict[str, str]) -> None:
    app = build_app("kinesis", "no-such-stream-a", "no-such-stream-b")
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "ResourceNotFoundException" in response.json()["detail"]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung service)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_kinesis_hanging_endpoint_gives_503_within_the_bound(
    stack: Any,
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    silent_endpoint: str,
) -> None:
    monkeypatch.setenv("SLUICE_AWS_ENDPOINT_URL", silent_endpoint)
    app = build_app("kinesis", "s-a", "s-b", api_publish_timeout_s=1.5, api_ready_timeout_s=1.0)
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.post(f"/v1/events/{FT}", json=event(), headers=auth())
        elapsed = time.monotonic() - started
        ready = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["retryable"] is True
    assert elapsed < 3.0
    assert ready.status_code == 503


def test_kafka_broker_stopped_mid_run(
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    private_kafka_broker: Callable[[], dict[str, Any]],
) -> None:
    broker = private_kafka_broker()
    bootstrap, pid = broker["bootstrap"], broker["pid"]
    ft_topic, ic_topic = "api-stop-ft", "api-stop-ic"
    provision.ensure_topics(
        KafkaSettings(kafka_bootstrap_servers=bootstrap), [ft_topic, ic_topic], 2
    )
    monkeypatch.setenv("SLUICE_KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("SLUICE_PUBLISH_DELIVERY_TIMEOUT_S", "3")
    app = build_app("kafka", ft_topic, ic_topic, api_publish_timeout_s=1.5)
    accepted: list[str] = []
    refused: list[str] = []

    def send(client: TestClient) -> tuple[int, float]:
        body = event()
        started = time.monotonic()
        response = client.post(f"/v1/events/{FT}", json=body, headers=auth())
        elapsed = time.monotonic() - started
        if response.status_code == 202:
            accepted.append(body["event_id"])
        else:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            refused.append(body["event_id"])
        return response.status_code, elapsed

    with TestClient(app) as client:
        assert [send(client)[0] for _ in range(5)] == [202] * 5
        os.kill(pid, signal.SIGSTOP)
        try:
            during = [send(client) for _ in range(3)]
            batch = client.post(f"/v1/events/{FT}/batch", json=[event(), event()], headers=auth())
        finally:
            os.kill(pid, signal.SIGCONT)
        assert [status for status, _ in during] == [503, 503, 503]
        assert all(elapsed < 3.0 for _, elapsed in during)
        assert batch.status_code == 503
        assert [r["status"] for r in batch.json()["results"]] == ["failed", "failed"]
        deadline = time.monotonic() + 30
        after: list[int] = []
        while len([s for s in after if s == 202]) < 5 and time.monotonic() < deadline:
            after.append(send(client)[0])
    assert after.count(202) >= 5
    messages = read_topic(bootstrap, ft_topic, expected=len(accepted))
    landed = {decode(m.value()).record["event_id"] for m in messages}
    missing = set(accepted) - landed
    assert not missing, f"{len(missing)} accepted event(s) missing from the topic"
