"""The Lambda entry point with recorded API Gateway events (REST v1 and HTTP v2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ingest_api import lambda_function
from producers.memory import MemoryPublisher
from schemas import decode

EVENTS = Path(__file__).resolve().parents[2] / "events"


class Context:
    """The parts of a Lambda context object Mangum may read."""

    function_name = "sluice-ingest"
    aws_request_id = "6b1f3c2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c"
    memory_limit_in_mb = 512

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def handler(app: FastAPI) -> Iterator[None]:
    lambda_function.configure(app)
    yield
    lambda_function.configure(None)


def _call(name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = lambda_function.lambda_handler(_load(name), Context())
    body = response["body"]
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], json.loads(body) if body else {}, headers


@pytest.mark.parametrize("name", ["apigw-rest-v1-post-event.json", "apigw-http-v2-post-event.json"])
def test_single_event_through_lambda(handler: None, publisher: MemoryPublisher, name: str) -> None:
    status, body, headers = _call(name)
    assert status == 202
    assert body["status"] == "accepted"
    assert headers["content-type"] == "application/json"
    (stored,) = publisher.records("sluice-financial-transaction")
    record = decode(stored.record.value).record
    assert record["event_id"] == body["event_id"]
    assert record["card_number"] == "411111******1111"


@pytest.mark.parametrize(
    "name", ["apigw-rest-v1-post-batch-base64.json", "apigw-http-v2-post-batch-base64.json"]
)
def test_base64_batch_through_lambda(handler: None, publisher: MemoryPublisher, name: str) -> None:
    status, body, _ = _call(name)
    assert status == 207
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert len(publisher.records("sluice-insurance-claim")) == 1


def test_errors_through_lambda(handler: None) -> None:
    assert _call("apigw-rest-v1-post-malformed.json")[0] == 400
    status, body, _ = _call("apigw-http-v2-post-no-key.json")
    assert (status, body["code"]) == (401, "unauthenticated")


def test_get_routes_through_lambda(handler: None) -> None:
    assert _call("apigw-rest-v1-get-healthz.json")[:2] == (200, {"status": "ok"})
    status, body, _ = _call("apigw-http-v2-get-schema.json")
    assert status == 200
    assert body["event_type"] == "insurance-claim"


def test_publisher_is_made_once_and_kept_across_invocations(
    handler: None, app: FastAPI, publisher: MemoryPublisher
) -> None:
    _call("apigw-http-v2-post-event.json")
    _call("apigw-rest-v1-post-batch-base64.json")
    assert app.state.ctx.service.publishers.started
    assert not publisher.closed


def test_default_handler_builds_app_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_STREAM_BACKEND", "kafka")
    lambda_function.configure(None)
    try:
        status, body, _ = _call("apigw-rest-v1-get-healthz.json")
    finally:
        lambda_function.configure(None)
    assert (status, body) == (200, {"status": "ok"})
