"""Hostile and careless input at the edge: each bad input gets its exact status and code.

Also: no answer and no log line quotes a card number, error lists are bounded, and the
idempotency key holds the tenant and the canonical event_id.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest_api import lambda_function
from ingest_api.app import create_app
from ingest_api.config import ApiSettings
from ingest_api.idempotency import MemoryIdempotencyStore
from ingest_api.pii import EdgeMasker
from producers.memory import MemoryPublisher
from schemas import decode
from schemas.pii import ascii_digits
from tests.unit.ingest_api.conftest import FT, HMAC_KEY, IC, FakeClock, Keys, auth, event

URL = f"/v1/events/{FT}"
BATCH = f"/v1/events/{FT}/batch"
PAN = "4111111111111111"
LAMBDA_LIMIT = 6 * 1024 * 1024


def _digits_only(text: str) -> str:
    return ascii_digits(text)


# --------------------------------------------------------------------------- tenants


def test_non_ascii_tenant_with_a_tenant_bound_key_is_403(client: TestClient, keys: Keys) -> None:
    response = client.post(URL, json=event(tenant_id="acmé-bank"), headers=auth(keys.bank.key))
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_forbidden"


def test_non_ascii_tenant_never_sinks_a_batch(
    client: TestClient, keys: Keys, publisher: MemoryPublisher
) -> None:
    good = event()
    response = client.post(
        BATCH,
        json=[event(tenant_id="\uff41\uff43\uff4d\uff45-bank"), good],
        headers=auth(keys.bank.key),
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert body["results"][0]["code"] == "tenant_forbidden"
    assert len(publisher.records("sluice-financial-transaction")) == 1


def test_non_ascii_tenant_with_the_local_key_is_422(client: TestClient) -> None:
    response = client.post(URL, json=event(tenant_id="acmé\ud7ff"), headers=auth())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"][0]["field"] == "tenant_id"


# --------------------------------------------------------------------------- bounded errors


def test_error_list_is_bounded_with_a_count_of_the_rest(client: TestClient) -> None:
    body = event(**{f"unknown_{i}": "x" for i in range(500)})
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "validation_failed"
    assert len(answer["errors"]) == 20
    assert answer["errors_omitted"] == 480
    assert all(e["code"] == "unknown_field" for e in answer["errors"])


def test_megabyte_of_unknown_fields_answers_small_through_lambda(app: FastAPI) -> None:
    fields = {f"f{i:06d}" + "x" * 40: 1 for i in range(17_000)}
    raw = json.dumps(event(**fields))
    assert len(raw) > 900_000
    lambda_function.configure(app)
    try:
        response = lambda_function.lambda_handler(_apigw_v2(URL, raw), _Context())
    finally:
        lambda_function.configure(None)
    assert response["statusCode"] == 422
    assert len(json.dumps(response)) < 64 * 1024
    answer = json.loads(response["body"])
    assert answer["errors_omitted"] == 17_000 - 20


def test_batch_of_broken_events_answers_under_the_lambda_limit(app: FastAPI) -> None:
    broken = event(**{f"{'k' * 200}{i}": 1 for i in range(60)})
    raw = json.dumps([broken] * 70)
    assert len(raw) < 1_048_576
    lambda_function.configure(app)
    try:
        response = lambda_function.lambda_handler(_apigw_v2(BATCH, raw), _Context())
    finally:
        lambda_function.configure(None)
    assert response["statusCode"] == 422
    assert len(json.dumps(response)) < LAMBDA_LIMIT
    results = json.loads(response["body"])["results"]
    assert all(len(r["errors"]) <= 20 and r["errors_omitted"] >= 40 for r in results)
    # a field name is cut short in the answer
    assert all(len(e["field"]) <= 120 for r in results for e in r["errors"])


# --------------------------------------------------------------------------- PII in answers


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": PAN}, "currency"),
        ({"transaction_type": PAN}, "transaction_type"),
        ({"channel": "4111 1111 1111 1111"}, "channel"),
        ({PAN: "x"}, None),
        ({"metadata": {"k": 5}, "4111-1111-1111-1111": 1}, None),
        ({"merchant": {"name": "n", "mcc": PAN, "country": "DE"}}, "merchant.mcc"),
    ],
)
def test_errors_never_echo_a_card_number(
    client: TestClient, changes: dict[str, Any], field: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = client.post(URL, json=event(**changes), headers=auth())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    if field is not None:
        assert field in {e["field"] for e in response.json()["errors"]}
    assert PAN not in _digits_only(response.text)
    assert PAN not in _digits_only(caplog.text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", PAN),
        ("transaction_id", "tx-4111-1111-1111-1111"),
        ("account_id", "378282246310005"),
    ],
)
def test_identifier_holding_a_card_number_is_refused(
    client: TestClient, publisher: MemoryPublisher, field: str, value: str
) -> None:
    response = client.post(URL, json=event(**{field: value}), headers=auth())
    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "validation_failed"
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [
        ("card_number_in_identifier", field)
    ]
    assert ascii_digits(value) not in _digits_only(response.text)
    assert publisher.records("sluice-financial-transaction") == []


def test_claim_identifiers_holding_a_card_number_are_refused(client: TestClient) -> None:
    body = event(IC, claim_id=PAN, policyholder_id="5555555555554444")
    response = client.post(f"/v1/events/{IC}", json=body, headers=auth())
    assert response.status_code == 422
    codes = {(e["code"], e["field"]) for e in response.json()["errors"]}
    assert codes == {
        ("card_number_in_identifier", "claim_id"),
        ("card_number_in_identifier", "policyholder_id"),
    }


def test_every_string_and_key_is_masked_before_publishing(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    formats = [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111  1111\t1111\u00a01111",
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
        "4111 - 1111 - 1111 - 1111",
    ]
    body = event(
        IC,
        cause_of_loss=f"card {formats[0]} lost",
        source=f"src {formats[1]}",
        loss_location={"country": "GB", "region": formats[2], "postal_code": "4111111111111111"},
        metadata={formats[3]: formats[4], "k": formats[3]},
    )
    response = client.post(f"/v1/events/{IC}", json=body, headers=auth())
    assert response.status_code == 202, response.text
    (stored,) = publisher.records("sluice-insurance-claim")
    record = decode(stored.record.value).record
    assert PAN not in ascii_digits(json.dumps(record, default=str, ensure_ascii=False))
    assert PAN not in ascii_digits(stored.record.value.decode("utf-8", "replace"))
    assert record["loss_location"]["postal_code"] == "411111******1111"


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "occurred_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1999-12-31T23:59:59Z"]
)
def test_implausible_occurred_at_is_refused(client: TestClient, occurred_at: str) -> None:
    response = client.post(URL, json=event(occurred_at=occurred_at), headers=auth())
    assert response.status_code == 422
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("implausible_timestamp", "occurred_at")
    ]


def test_plausibility_window_is_configurable(make_app: Callable[..., FastAPI]) -> None:
    from datetime import UTC, datetime, timedelta

    from schemas.rules import PlausibilityWindow, check_event

    window = PlausibilityWindow(datetime(2020, 1, 1, tzinfo=UTC), timedelta(0))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = {"occurred_at": datetime(2019, 6, 1, tzinfo=UTC)}
    assert [e.code for e in check_event(FT, record, window=window, now=lambda: now)] == [
        "implausible_timestamp"
    ]
    record = {"occurred_at": "2026-01-01T00:00:01Z"}
    assert check_event(FT, record, window=window, now=lambda: now)
    record = {"occurred_at": "2025-12-31T23:59:59+00:00"}
    assert not check_event(FT, record, window=window, now=lambda: now)


def test_loss_date_after_reported_at_is_refused_at_the_edge(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    body = event(IC, loss_date="2026-01-31", reported_at="2026-01-30T23:30:00-05:00")
    response = client.post(f"/v1/events/{IC}", json=body, headers=auth())
    # reported 2026-01-31T04:30Z: the same UTC day, accepted
    assert response.status_code == 202
    body = event(IC, loss_date="2026-02-01", reported_at="2026-01-31T23:30:00Z")
    response = client.post(f"/v1/events/{IC}", json=body, headers=auth())
    assert response.status_code == 422
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("loss_date_after_report_date", "loss_date")
    ]
    assert len(publisher.records("sluice-insurance-claim")) == 1


# --------------------------------------------------------------------------- body handling


def test_gzip_body_is_decompressed(client: TestClient, publisher: MemoryPublisher) -> None:
    raw = gzip.compress(json.dumps(event()).encode())
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = client.post(URL, content=raw, headers=headers)
    assert response.status_code == 202
    assert len(publisher.records("sluice-financial-transaction")) == 1


def test_plain_body_labelled_gzip_is_400(client: TestClient) -> None:
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = client.post(URL, content=json.dumps(event()).encode(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "bad_gzip")


def test_truncated_gzip_is_400(client: TestClient) -> None:
    raw = gzip.compress(json.dumps(event()).encode())[:-12]
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = client.post(URL, content=raw, headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "bad_gzip")


@pytest.mark.parametrize(
    ("settings", "size"),
    [({"api_max_gzip_ratio": 50.0}, 1_000_000), ({"api_max_decompressed_bytes": 10_000}, 20_000)],
)
def test_gzip_bomb_is_413(
    make_app: Callable[..., FastAPI], settings: dict[str, Any], size: int
) -> None:
    raw = gzip.compress(b" " * size)
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    with TestClient(make_app(**settings)) as client:
        response = client.post(URL, content=raw, headers=headers)
    assert (response.status_code, response.json()["code"]) == (413, "decompressed_too_large")


@pytest.mark.parametrize("coding", ["br", "deflate", "gzip, br", "compress"])
def test_unsupported_content_encoding_is_415(client: TestClient, coding: str) -> None:
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": coding}
    response = client.post(URL, content=json.dumps(event()).encode(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_content_encoding")


def test_trailing_slash_is_404_without_redirect(client: TestClient) -> None:
    response = client.post(
        URL + "/",
        json=event(),
        headers={**auth(), "Host": "evil.example"},
        follow_redirects=False,
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert "location" not in response.headers
    response = client.get("/healthz/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers


def test_405_carries_allow(client: TestClient) -> None:
    response = client.get(URL, headers=auth())
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    response = client.post("/healthz")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET"}


def test_method_label_is_bounded(client: TestClient) -> None:
    for method in ("FOO", "BAR", "X" * 50):
        client.request(method, "/healthz")
    metrics = client.get("/metrics").text
    methods = set(re.findall(r'sluice_api_requests_total\{method="([^"]*)"', metrics))
    assert methods <= {"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods


def _asgi_post(
    app: FastAPI, messages: list[dict[str, Any]], delay: float = 0.0
) -> tuple[int, dict[str, Any]]:
    """POST the event route straight through ASGI with the given receive messages."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            message = queue.pop(0)
            if message.get("sleep"):
                await asyncio.sleep(message["sleep"])
                return {"type": "http.request", "body": b"", "more_body": True}
            return message
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"authorization", b"Bearer local-test-key"),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), json.loads(body) if body else {}


def test_slow_body_is_408(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(api_body_read_timeout_s=0.2)
    half = json.dumps(event()).encode()[:50]
    status, body = _asgi_post(
        app, [{"type": "http.request", "body": half, "more_body": True}, {"sleep": 0.1}]
    )
    assert (status, body["code"]) == (408, "body_timeout")
    assert body["retryable"] is True


def test_client_disconnect_is_not_a_server_error(
    make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    caplog.set_level(logging.WARNING)
    half = json.dumps(event()).encode()[:50]
    status, body = _asgi_post(
        app,
        [{"type": "http.request", "body": half, "more_body": True}, {"type": "http.disconnect"}],
    )
    assert (status, body["code"]) == (499, "client_closed_request")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    with TestClient(app) as client:
        metrics = client.get("/metrics").text
    assert 'status="499"' in metrics
    assert 'status="503"' not in metrics


# --------------------------------------------------------------------------- idempotency


def test_resend_with_the_uuid_in_another_case_is_the_same_event(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    body = event()
    first = client.post(URL, json={**body, "event_id": body["event_id"].upper()}, headers=auth())
    again = client.post(URL, json=body, headers=auth())
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.json()["event_id"] == body["event_id"]
    assert len(publisher.records("sluice-financial-transaction")) == 1


def test_another_tenant_reusing_an_event_id_learns_nothing_and_blocks_nothing(
    make_app: Callable[..., FastAPI], keys: Keys, publisher: MemoryPublisher
) -> None:
    from ingest_api.auth import generate_key

    other = generate_key("evil-bank", [FT], key_id="evil")
    keys.store = type(keys.store)(
        [keys.bank.record, keys.insurer.record, other.record], default_rate_limit=1000.0
    )
    app = make_app()
    owner_event = event(tenant_id="acme-bank")
    with TestClient(app) as client:
        # the other tenant sends the same event_id first, with other content
        squat = client.post(
            URL,
            json={**owner_event, "tenant_id": "evil-bank", "account_id": "x-1"},
            headers=auth(other.key),
        )
        owner = client.post(URL, json=owner_event, headers=auth(keys.bank.key))
        probe = client.post(
            URL,
            json={**owner_event, "tenant_id": "evil-bank", "account_id": "x-1"},
            headers=auth(other.key),
        )
    assert squat.status_code == owner.status_code == probe.status_code == 202
    assert probe.json() == squat.json()  # its own answer, nothing about the owner's event
    assert owner.json()["partition_key"] == owner_event["account_id"]
    assert len(publisher.records("sluice-financial-transaction")) == 2


def test_two_processes_sharing_a_store_publish_once(keys: Keys, clock: FakeClock) -> None:
    store = MemoryIdempotencyStore(3600, 30, clock)
    publishers = [MemoryPublisher(), MemoryPublisher()]
    apps = [
        create_app(
            ApiSettings(),
            p,
            key_store=keys.store,
            masker=EdgeMasker(HMAC_KEY),
            idempotency_store=store,
            clock=clock,
        )
        for p in publishers
    ]
    body = event()
    answers = []
    for app in apps:
        with TestClient(app) as client:
            answers.append(client.post(URL, json=body, headers=auth()))
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert sum(len(p.records("sluice-financial-transaction")) for p in publishers) == 1
    # a different event under the same id, on the second process: a conflict
    with TestClient(apps[1]) as client:
        changed = client.post(URL, json={**body, "amount": "1.00"}, headers=auth())
    assert (changed.status_code, changed.json()["code"]) == (409, "idempotency_conflict")


def test_event_in_progress_elsewhere_is_409_retryable(keys: Keys, clock: FakeClock) -> None:
    store = MemoryIdempotencyStore(3600, 30, clock)
    publisher = MemoryPublisher()
    app = create_app(
        ApiSettings(),
        publisher,
        key_store=keys.store,
        masker=EdgeMasker(HMAC_KEY),
        idempotency_store=store,
        clock=clock,
    )
    body = event()
    with TestClient(app) as client:
        # another process claimed the key and has not answered yet
        probe_key = json.dumps(
            ["event", "sluice-financial-transaction", body["tenant_id"], body["event_id"]]
        )
        fingerprint = _fingerprint(body)
        asyncio.run(store.claim(probe_key.replace(" ", ""), fingerprint))
        response = client.post(URL, json=body, headers=auth())
        assert (response.status_code, response.json()["code"]) == (409, "idempotency_in_progress")
        assert response.json()["retryable"] is True
        assert "retry-after" in response.headers
        clock.advance(31)  # the other process died: its claim lapses
        response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 202
    assert len(publisher.records("sluice-financial-transaction")) == 1


def _fingerprint(body: dict[str, Any]) -> str:
    from ingest_api.service import fingerprint_of

    return fingerprint_of(body)


# --------------------------------------------------------------------------- helpers


class _Context:
    function_name = "sluice-ingest"
    aws_request_id = "6b1f3c2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c"
    memory_limit_in_mb = 512

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def _apigw_v2(path: str, body: str) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event in the shape of tests/events/apigw-http-v2-*.json."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "authorization": "Bearer local-test-key",
            "content-type": "application/json",
            "host": "xyz987uvw6.execute-api.eu-west-1.amazonaws.com",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "xyz987uvw6",
            "domainName": "xyz987uvw6.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "xyz987uvw6",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.20",
                "userAgent": "test",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:03:14:15 +0000",
            "timeEpoch": 1795317255000,
        },
        "isBase64Encoded": True,
        "body": base64.b64encode(body.encode()).decode(),
    }


def test_a_wrong_key_beside_a_right_one_is_401(client: TestClient, keys: Keys) -> None:
    headers = {"X-API-Key": "slk_bank_wrong", "Authorization": f"Bearer {keys.bank.key}"}
    response = client.post(URL, json=event(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_api_key")
    headers = {"X-API-Key": "", "Authorization": f"Bearer {keys.bank.key}"}
    response = client.post(URL, json=event(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_api_key")
    headers = {"X-API-Key": keys.bank.key, "Authorization": f"Bearer {keys.bank.key}"}
    assert client.post(URL, json=event(), headers=headers).status_code == 202


class _BrokenStore(MemoryIdempotencyStore):
    """A store that cannot be reached."""

    async def claim(self, key: str, fingerprint: str) -> Any:
        from ingest_api.exceptions import StoreUnavailable

        raise StoreUnavailable("idempotency table t: ResourceNotFoundException")


def test_unreachable_idempotency_store_is_503_and_nothing_is_published(
    keys: Keys, clock: FakeClock
) -> None:
    publisher = MemoryPublisher()
    app = create_app(
        ApiSettings(),
        publisher,
        key_store=keys.store,
        masker=EdgeMasker(HMAC_KEY),
        idempotency_store=_BrokenStore(60, 30, clock),
        clock=clock,
    )
    with TestClient(app) as client:
        response = client.post(URL, json=event(), headers=auth())
        batch = client.post(BATCH, json=[event(), event()], headers=auth())
    assert (response.status_code, response.json()["code"]) == (503, "store_unavailable")
    assert response.json()["retryable"] is True
    assert "retry-after" in response.headers
    assert batch.status_code == 503
    assert {r["code"] for r in batch.json()["results"]} == {"store_unavailable"}
    assert publisher.records("sluice-financial-transaction") == []


def test_full_batch_of_worst_case_errors_stays_under_the_lambda_limit(
    make_app: Callable[..., FastAPI],
) -> None:
    # 500 events, each with 30 unknown fields whose names are control characters (six
    # bytes each once escaped in JSON) and multibyte characters
    names = ["\x01" * 4 + "\u4e00" * 4 + str(i) for i in range(30)]
    raw = json.dumps([{n: 1 for n in names}] * 500, separators=(",", ":"), ensure_ascii=False)
    assert len(raw.encode()) < 1_048_576
    lambda_function.configure(make_app())
    try:
        response = lambda_function.lambda_handler(_apigw_v2(BATCH, raw), _Context())
    finally:
        lambda_function.configure(None)
    assert response["statusCode"] == 422
    assert len(json.dumps(response)) < LAMBDA_LIMIT
    results = json.loads(response["body"])["results"]
    listed = sum(len(r["errors"]) for r in results)
    assert listed <= 1000
    assert listed + sum(r["errors_omitted"] for r in results) >= 500 * 30
    assert "\x01" not in response["body"]
