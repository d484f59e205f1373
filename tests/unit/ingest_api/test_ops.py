"""Health, readiness, metrics, schemas, unknown routes, OpenAPI completeness, settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest_api.auth import KeyStore, generate_key
from ingest_api.config import ApiSettings
from ingest_api.examples import EXAMPLE_EVENTS
from ingest_api.exceptions import KeyStoreError
from ingest_api.memory import MemoryProbe
from producers.memory import MemoryPublisher
from schemas import catalogue, parse_event
from tests.unit.ingest_api.conftest import FT, IC, auth, event


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_ready_and_not_ready(client: TestClient, probe: MemoryProbe) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    probe.ready, probe.detail = False, "no answer within 2.0 s"
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json() == {
        "status": "not_ready",
        "backend": "memory",
        "detail": "no answer within 2.0 s",
    }
    assert "Retry-After" in not_ready.headers


def test_metrics_count_requests_events_and_latency(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    client.post(f"/v1/events/{FT}", json=event(), headers=auth())
    client.post(f"/v1/events/{FT}", json=event(colour="x"), headers=auth())
    client.post(f"/v1/events/{FT}", json=event())
    text = client.get("/metrics").text
    assert 'sluice_api_events_accepted_total{event_type="financial-transaction"} 1.0' in text
    assert (
        'sluice_api_events_rejected_total{event_type="financial-transaction",'
        'reason="validation_failed"} 1.0'
    ) in text
    assert (
        'sluice_api_events_rejected_total{event_type="financial-transaction",'
        'reason="unauthenticated"} 1.0'
    ) in text
    assert (
        'sluice_api_requests_total{method="POST",route="/v1/events/{event_type}",status="202"} 1.0'
    ) in text
    assert 'sluice_api_publish_seconds_count{event_type="financial-transaction"} 1.0' in text
    assert "sluice_api_requests_in_flight" in text


@pytest.mark.parametrize("event_type", [FT, IC])
def test_schema_route(client: TestClient, event_type: str) -> None:
    response = client.get(f"/v1/schemas/{event_type}")
    assert response.status_code == 200
    body = response.json()
    latest = catalogue().latest(event_type)
    assert body["version"] == latest.version
    assert body["schema_id"] == latest.schema_id
    assert body["schema"]["name"] == latest.schema["name"]
    parse_event(event_type, body["example"])  # the example is valid


def test_schema_route_unknown_type(client: TestClient) -> None:
    response = client.get("/v1/schemas/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_event_type"


def test_examples_are_valid() -> None:
    for event_type, example in EXAMPLE_EVENTS.items():
        parse_event(event_type, example)


def test_unknown_route_and_method_use_the_error_model(client: TestClient) -> None:
    missing = client.get("/v2/whatever")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = client.get(f"/v1/events/{FT}")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_construction_makes_no_publisher_until_startup(
    keys: Any,
) -> None:
    made: list[int] = []

    import ingest_api.app as app_module

    app = app_module.create_app(
        ApiSettings(), key_store=keys.store, readiness_probe=MemoryProbe(), masker=lambda _t, r: r
    )
    holder = app.state.ctx.service.publishers
    assert not holder.started
    holder._factory = lambda: made.append(1) or MemoryPublisher()  # type: ignore[assignment]
    with TestClient(app) as client:
        assert holder.started
        assert client.post(f"/v1/events/{FT}", json=event(), headers=auth()).status_code == 202
    assert made == [1]
    assert not holder.started  # closed at shutdown


def test_shutdown_closes_the_publisher(app: FastAPI, publisher: MemoryPublisher) -> None:
    with TestClient(app):
        pass
    assert publisher.closed


# --------------------------------------------------------------------------- OpenAPI


def _statuses_in_source() -> dict[str, set[int]]:
    """Every status a route can answer, derived from the code paths."""
    single = {202, 400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503}
    batch = {202, 207, 400, 401, 403, 404, 408, 413, 415, 422, 429, 503}
    return {
        **{f"/v1/events/{et}": single for et in (FT, IC)},
        **{f"/v1/events/{et}/batch": batch for et in (FT, IC)},
        **{f"/v1/schemas/{et}": {200, 404} for et in (FT, IC)},
        "/healthz": {200},
        "/readyz": {200, 503},
        "/metrics": {200},
    }


def test_openapi_lists_every_status_with_examples(app: FastAPI) -> None:
    spec = app.openapi()
    for path, statuses in _statuses_in_source().items():
        operations = spec["paths"][path]
        (operation,) = operations.values()
        documented = {int(s) for s in operation["responses"] if s.isdigit()}
        assert statuses <= documented, (path, statuses - documented)
        for status in documented:
            response = operation["responses"][str(status)]
            content = response.get("content", {})
            examples = [m.get("examples") or m.get("example") for m in content.values()]
            assert any(examples), f"{path} {status} has no example"
            if status in (429, 503) and path.startswith("/v1/events"):
                assert "Retry-After" in response.get("headers", {})


def test_every_error_code_raised_by_the_api_has_an_example(app: FastAPI) -> None:
    spec_text = json.dumps(app.openapi())
    root = Path(__file__).resolve().parents[3] / "ingest_api"
    codes: set[str] = set()
    for module in ("app.py", "body.py"):
        codes |= set(re.findall(r'code="([a-z_]+)"', (root / module).read_text()))
    codes |= set(re.findall(r'^[A-Z_]+ = "([a-z_]+)"$', (root / "service.py").read_text(), re.M))
    codes |= {"pii_key_missing", "unavailable"}
    missing = {c for c in codes if f'"{c}"' not in spec_text}
    assert not missing


def test_error_statuses_the_app_raises_are_documented(app: FastAPI) -> None:
    import ingest_api.exceptions as exc_module

    spec = app.openapi()
    single = {int(s) for s in spec["paths"][f"/v1/events/{FT}"]["post"]["responses"]}
    raised = {
        cls.status
        for cls in vars(exc_module).values()
        if isinstance(cls, type)
        and issubclass(cls, exc_module.ApiError)
        and cls is not exc_module.ApiError
        and cls is not exc_module.MethodNotAllowed
    }
    assert raised <= single


# --------------------------------------------------------------------------- settings


def test_key_store_from_file_and_env_json(tmp_path: Path) -> None:
    one = generate_key("t1", ["financial-transaction"], key_id="one")
    two = generate_key("t2", ["*"], key_id="two", rate_limit=3)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"keys": [one.record.model_dump(mode="json")]}))
    settings = ApiSettings(
        api_keys_file=keys_file,
        api_keys_json=json.dumps([two.record.model_dump(mode="json")]),
        api_key="local",
    )
    store = KeyStore.from_settings(settings)
    assert len(store) == 3
    assert store.authenticate(one.key).tenant_id == "t1"  # type: ignore[union-attr]
    assert store.authenticate(two.key).rate_limit == 3  # type: ignore[union-attr]
    assert store.authenticate("local").tenant_id == "*"  # type: ignore[union-attr]


def test_key_store_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore.from_settings(ApiSettings(api_keys_file=tmp_path / "missing.json"))
    with pytest.raises(KeyStoreError, match="not JSON"):
        KeyStore.from_settings(ApiSettings(api_keys_json="{"))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("SLUICE_API_PUBLISH_TIMEOUT_S", "1.5")
    monkeypatch.setenv("SLUICE_API_KEY", "abc")
    settings = ApiSettings()
    assert settings.api_max_body_bytes == 2048
    assert settings.api_publish_timeout_s == 1.5
    assert settings.api_key is not None
    assert "abc" not in repr(settings)


def test_fast_paths_match_only_event_posts() -> None:
    from ingest_api.app import BATCH_TEMPLATE, SINGLE_TEMPLATE, FastPaths

    async def endpoint(request: Any) -> Any:
        return None

    paths = FastPaths()
    paths.single = paths.batch = endpoint

    def match(method: str, path: str, root: str = "") -> Any:
        found = paths.match({"method": method, "path": path, "root_path": root})
        return None if found is None else found[1:]

    assert match("POST", "/v1/events/financial-transaction") == (SINGLE_TEMPLATE, FT)
    assert match("POST", "/v1/events/insurance-claim/batch") == (BATCH_TEMPLATE, IC)
    assert match("POST", "/prod/v1/events/x", root="/prod") == (SINGLE_TEMPLATE, "x")
    assert match("GET", "/v1/events/financial-transaction") is None
    assert match("POST", "/v1/events/a/b") is None
    assert match("POST", "/v2/events/a") is None


def test_openapi_declares_security_idempotency_key_and_batch_bodies(app: FastAPI) -> None:
    spec = app.openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {
        **schemes["ApiKeyHeader"],
        "in": "header",
        "name": "X-API-Key",
    }
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    for et in (FT, IC):
        single = spec["paths"][f"/v1/events/{et}"]["post"]
        batch = spec["paths"][f"/v1/events/{et}/batch"]["post"]
        assert single["security"] == batch["security"]
        assert {"ApiKeyHeader", "BearerAuth"} == {k for s in single["security"] for k in s}
        assert "Idempotency-Key" in {p["name"] for p in single["parameters"]}
        for status in ("403", "422", "503"):
            schema = batch["responses"][status]["content"]["application/json"]["schema"]
            assert {r["$ref"].rsplit("/", 1)[1] for r in schema["oneOf"]} == {
                "BatchModel",
                "ErrorModel",
            }


def test_openapi_examples_belong_to_their_route(app: FastAPI) -> None:
    spec = app.openapi()
    for path in (f"/v1/events/{IC}", f"/v1/events/{IC}/batch", f"/v1/schemas/{IC}"):
        text = json.dumps(spec["paths"][path])
        assert "financial" not in text and "card_number" not in text and "acc-42" not in text
    for path in (f"/v1/events/{FT}", f"/v1/events/{FT}/batch"):
        assert "insurance" not in json.dumps(spec["paths"][path]["post"]["requestBody"])
