"""``sluice api``: keys create, openapi, serve arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest_api.auth import KeyStore, hash_key, parse_key_records
from sluice.cli import main


def test_keys_create_prints_key_once_and_storable_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "api",
            "keys",
            "create",
            "--tenant",
            "acme-bank",
            "--types",
            "financial-transaction",
            "--rate-limit",
            "20",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    key, record = out["key"], out["record"]
    assert record["hash"] == hash_key(key)
    assert record["tenant_id"] == "acme-bank"
    assert record["event_types"] == ["financial-transaction"]
    assert record["rate_limit"] == 20
    store = KeyStore(parse_key_records([record], source="cli"))
    assert store.authenticate(key) is not None


def test_keys_create_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "keys", "create", "--tenant", "t", "--key-id", "ops"]) == 0
    out = capsys.readouterr().out
    assert "slk_ops_" in out
    assert '"key_id": "ops"' in out


def test_openapi_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "openapi"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert "/v1/events/insurance-claim/batch" in spec["paths"]


def test_serve_passes_options_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert main(["api", "serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "2"]) == 0
    assert seen["app"] == "ingest_api.app:create_app"
    assert seen["factory"] is True
    assert (seen["host"], seen["port"], seen["workers"]) == ("0.0.0.0", 9001, 2)
