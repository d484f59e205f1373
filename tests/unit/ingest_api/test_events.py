"""POST /v1/events/{event_type}: every status code and error path."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producers.memory import Fault, MemoryPublisher
from producers.models import OutgoingRecord, PublishResult
from schemas import decode
from tests.unit.ingest_api.conftest import FT, IC, FakeClock, Keys, auth, event

URL = f"/v1/events/{FT}"


def _stored(publisher: MemoryPublisher, stream: str = "sluice-financial-transaction") -> list[Any]:
    return [decode(s.record.value).record for s in publisher.records(stream)]


def test_accepted_event_is_published_masked_and_stamped(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    body = event(
        merchant={"name": "Shop 4111 1111 1111 1111", "mcc": "5462", "country": "DE"},
        metadata={"note": "card 5500-0000-0000-0004 used", "terminal": "T-1"},
    )
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 202
    assert response.json() == {
        "event_id": body["event_id"],
        "status": "accepted",
        "stream": "sluice-financial-transaction",
        "partition_key": "acc-42",
    }
    (stored,) = publisher.records("sluice-financial-transaction")
    assert stored.record.partition_key == "acc-42"
    headers = dict(stored.record.headers)
    assert headers["event_type"] == FT
    assert headers["event_id"] == body["event_id"]
    record = decode(stored.record.value).record
    assert record["event_id"] == body["event_id"]
    assert record["card_number"] == "411111******1111"
    assert record["merchant"]["name"] == "Shop 4111 11** **** 1111"
    assert record["metadata"]["note"] == "card 5500-00**-****-0004 used"
    assert record["ingested_at"] is not None
    assert "4111 1111 1111 1111" not in stored.record.value.decode("latin-1")


def test_national_id_becomes_keyed_hmac(client: TestClient, publisher: MemoryPublisher) -> None:
    body = event(IC, claimant_national_id="123-45-6789")
    response = client.post(f"/v1/events/{IC}", json=body, headers=auth())
    assert response.status_code == 202
    (record,) = _stored(publisher, "sluice-insurance-claim")
    assert record["claimant_national_id"].startswith("hmac-sha256:")
    assert "6789" not in record["claimant_national_id"]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        URL, content=b'{"event_id": ', headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "malformed_json"
    assert body["status"] == 400
    assert "Traceback" not in response.text


def test_empty_body_is_400(client: TestClient) -> None:
    response = client.post(URL, content=b"", headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "empty_body"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml"])
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = auth()
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(URL, content=json.dumps(event()).encode(), headers=headers)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_unknown_event_type_is_404(client: TestClient) -> None:
    response = client.post("/v1/events/card-swipe", json=event(), headers=auth())
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_event_type"


def test_body_over_limit_is_413_by_content_length(
    make_app: Callable[..., FastAPI], publisher: MemoryPublisher
) -> None:
    with TestClient(make_app(api_max_body_bytes=1000)) as client:
        body = event(metadata={"pad": "x" * 2000})
        response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert publisher.records("sluice-financial-transaction") == []


def test_chunked_body_over_limit_is_413_while_streaming(
    make_app: Callable[..., FastAPI],
) -> None:
    sent: list[int] = []

    def chunks() -> Any:
        for _ in range(100):
            sent.append(1)
            yield b" " * 100

    with TestClient(make_app(api_max_body_bytes=1000)) as client:
        response = client.post(
            URL, content=chunks(), headers={**auth(), "Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert "content-length" not in {k.lower() for k in response.request.headers}


def test_schema_violations_are_422_with_every_field_path(client: TestClient) -> None:
    body = event(amount="-5", currency="XXX")
    body["merchant"] = {"name": "Bakery", "mcc": "5462", "country": "ZZ"}
    del body["account_id"]
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "validation_failed"
    fields = {e["field"] for e in payload["errors"]}
    assert {"merchant.country", "account_id", "currency"} <= fields
    for error in payload["errors"]:
        assert set(error) == {"code", "message", "field"}


def test_unknown_field_is_422(client: TestClient) -> None:
    response = client.post(URL, json=event(colour="blue"), headers=auth())
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "code": "unknown_field",
            "message": response.json()["errors"][0]["message"],
            "field": "colour",
        }
    ]
    assert response.json()["field"] == "colour"


def test_server_owned_field_is_422(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post(URL, json=event(ingested_at="2026-01-01T00:00:00Z"), headers=auth())
    assert response.status_code == 422
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("server_owned", "ingested_at")
    ]
    assert publisher.records("sluice-financial-transaction") == []


def test_json_array_instead_of_object_is_422(client: TestClient) -> None:
    response = client.post(URL, json=[event()], headers=auth())
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_type"


def test_missing_key_is_401(client: TestClient) -> None:
    response = client.post(URL, json=event())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_unknown_key_is_401(client: TestClient) -> None:
    response = client.post(URL, json=event(), headers=auth("slk_bank_not-the-secret"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_x_api_key_header_is_accepted(client: TestClient, keys: Keys) -> None:
    response = client.post(URL, json=event(), headers={"X-API-Key": keys.bank.key})
    assert response.status_code == 202


def test_forbidden_type_is_403(client: TestClient, keys: Keys) -> None:
    response = client.post(f"/v1/events/{IC}", json=event(IC), headers=auth(keys.bank.key))
    assert response.status_code == 403
    assert response.json()["code"] == "event_type_forbidden"


def test_other_tenant_is_403(client: TestClient, keys: Keys, publisher: MemoryPublisher) -> None:
    response = client.post(URL, json=event(tenant_id="other-bank"), headers=auth(keys.bank.key))
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_forbidden"
    assert response.json()["field"] == "tenant_id"
    assert publisher.records("sluice-financial-transaction") == []


def test_rate_limit_is_429_with_retry_after(
    client: TestClient, keys: Keys, clock: FakeClock
) -> None:
    headers = auth(keys.insurer.key)  # 2 requests/s, bucket of 4
    codes = [
        client.post(f"/v1/events/{IC}", json=event(IC), headers=headers).status_code
        for _ in range(5)
    ]
    assert codes == [202, 202, 202, 202, 429]
    limited = client.post(f"/v1/events/{IC}", json=event(IC), headers=headers)
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert limited.json()["retryable"] is True
    assert int(limited.headers["Retry-After"]) >= 1
    clock.advance(1.0)
    assert client.post(f"/v1/events/{IC}", json=event(IC), headers=headers).status_code == 202


def test_idempotent_resend_gets_same_answer_and_publishes_once(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    body = event()
    first = client.post(URL, json=body, headers=auth())
    reordered = dict(reversed(list(body.items())))
    second = client.post(URL, json=reordered, headers=auth())
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert len(publisher.records("sluice-financial-transaction")) == 1


def test_idempotency_key_header(client: TestClient, publisher: MemoryPublisher) -> None:
    headers = {**auth(), "Idempotency-Key": "order-77"}
    body = event()
    assert client.post(URL, json=body, headers=headers).status_code == 202
    assert client.post(URL, json=body, headers=headers).status_code == 202
    assert len(publisher.records("sluice-financial-transaction")) == 1
    conflict = client.post(URL, json=event(), headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"


def test_bad_idempotency_key_is_400(client: TestClient) -> None:
    response = client.post(URL, json=event(), headers={**auth(), "Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_same_event_id_different_event_is_409(client: TestClient) -> None:
    body = event()
    assert client.post(URL, json=body, headers=auth()).status_code == 202
    changed = {**body, "amount": "999.00"}
    response = client.post(URL, json=changed, headers=auth())
    assert response.status_code == 409


def test_resend_after_ttl_publishes_again(
    client: TestClient, publisher: MemoryPublisher, clock: FakeClock
) -> None:
    body = event()
    client.post(URL, json=body, headers=auth())
    clock.advance(24 * 3600 + 1)
    client.post(URL, json=body, headers=auth())
    assert len(publisher.records("sluice-financial-transaction")) == 2


def test_publisher_failure_is_503_with_retry_after_and_not_remembered(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    publisher.set_unavailable()
    body = event()
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    payload = response.json()
    assert payload["retryable"] is True
    assert payload["code"] == "publish_failed"
    publisher.set_available()
    retried = client.post(URL, json=body, headers=auth())
    assert retried.status_code == 202
    assert len(publisher.records("sluice-financial-transaction")) == 1


def test_broker_timeout_answer_comes_as_503(client: TestClient, publisher: MemoryPublisher) -> None:
    publisher.fail_next(1, Fault("_MSG_TIMED_OUT", "timed out", True))
    response = client.post(URL, json=event(), headers=auth())
    assert response.status_code == 503
    assert response.json()["code"] == "publish_timeout"


class HangingPublisher:
    """Never answers: publish waits forever."""

    def __init__(self) -> None:
        self.calls = 0

    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        self.calls += 1
        await asyncio.Event().wait()
        return []

    async def flush(self, timeout: float | None = None) -> int:
        return 0

    async def close(self) -> None:
        return None


def test_publisher_hang_is_503_within_the_bound(keys: Keys, clock: FakeClock) -> None:
    from ingest_api.app import create_app
    from ingest_api.config import ApiSettings
    from ingest_api.memory import MemoryProbe

    hanging = HangingPublisher()
    app = create_app(
        ApiSettings(api_publish_timeout_s=0.3, api_retry_after_s=2),
        hanging,
        key_store=keys.store,
        readiness_probe=MemoryProbe(),
        masker=lambda _t, record: record,
        clock=clock,
    )
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.post(URL, json=event(), headers=auth())
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json()["code"] == "publish_timeout"
    assert elapsed < 2.0
    assert hanging.calls == 1


class RaisingPublisher(HangingPublisher):
    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        from producers.exceptions import PublisherClosedError

        raise PublisherClosedError("publish after close")


def test_publisher_error_is_503(keys: Keys) -> None:
    from ingest_api.app import create_app
    from ingest_api.config import ApiSettings
    from ingest_api.memory import MemoryProbe

    app = create_app(
        ApiSettings(),
        RaisingPublisher(),
        key_store=keys.store,
        readiness_probe=MemoryProbe(),
        masker=lambda _t, r: r,
    )
    with TestClient(app) as client:
        response = client.post(URL, json=event(), headers=auth())
    assert response.status_code == 503
    assert response.json()["code"] == "broker_unavailable"


def test_missing_hmac_key_is_503_not_500(keys: Keys, publisher: MemoryPublisher) -> None:
    from ingest_api.app import create_app
    from ingest_api.config import ApiSettings
    from ingest_api.memory import MemoryProbe
    from ingest_api.pii import EdgeMasker

    app = create_app(
        ApiSettings(),
        publisher,
        key_store=keys.store,
        readiness_probe=MemoryProbe(),
        masker=EdgeMasker(None),
    )
    with TestClient(app) as client:
        response = client.post(
            f"/v1/events/{IC}", json=event(IC, claimant_national_id="AB1"), headers=auth()
        )
    assert response.status_code == 503
    assert response.json()["code"] == "pii_key_missing"
    assert publisher.records("sluice-insurance-claim") == []


def test_unexpected_error_is_clean_503(keys: Keys, publisher: MemoryPublisher) -> None:
    from ingest_api.app import create_app
    from ingest_api.config import ApiSettings
    from ingest_api.memory import MemoryProbe

    def broken_masker(_t: str, record: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError("bug")

    app = create_app(
        ApiSettings(),
        publisher,
        key_store=keys.store,
        readiness_probe=MemoryProbe(),
        masker=broken_masker,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(URL, json=event(), headers=auth())
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert "ZeroDivision" not in response.text
    assert "Traceback" not in response.text


def test_concurrent_duplicates_publish_once(app: FastAPI, publisher: MemoryPublisher) -> None:
    import httpx

    publisher.latency = 0.05
    body = event()

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(
                *(client.post(URL, json=body, headers=auth()) for _ in range(5))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [202] * 5
    assert len(publisher.records("sluice-financial-transaction")) == 1
