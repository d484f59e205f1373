"""Fixtures for the ingest API unit tests: the app on an in-memory publisher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest_api.app import create_app
from ingest_api.auth import KeyStore, generate_key
from ingest_api.config import ApiSettings
from ingest_api.examples import example_event
from ingest_api.memory import MemoryProbe
from ingest_api.pii import EdgeMasker
from producers.memory import MemoryPublisher

LOCAL_KEY = "local-test-key"
HMAC_KEY = b"unit-test-hmac-key"
FT = "financial-transaction"
IC = "insurance-claim"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Keys:
    """Keys of the test key store: the local key and tenant-bound ones."""

    def __init__(self) -> None:
        self.bank = generate_key("acme-bank", [FT], key_id="bank")
        self.insurer = generate_key("acme-insurance", [IC], key_id="insurer", rate_limit=2.0)
        self.store = KeyStore(
            [self.bank.record, self.insurer.record],
            local_key=LOCAL_KEY,
            default_rate_limit=1000.0,
        )


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def probe() -> MemoryProbe:
    return MemoryProbe()


@pytest.fixture
def make_app(
    publisher: MemoryPublisher, keys: Keys, clock: FakeClock, probe: MemoryProbe
) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        settings = ApiSettings(**overrides)
        return create_app(
            settings,
            publisher,
            key_store=keys.store,
            readiness_probe=probe,
            masker=EdgeMasker(HMAC_KEY),
            clock=clock,
        )

    return make


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def auth(key: str = LOCAL_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event(event_type: str = FT, **changes: Any) -> dict[str, Any]:
    """The example event with a fresh event_id and ``changes`` applied."""
    import uuid

    body = example_event(event_type)
    body["event_id"] = str(uuid.uuid4())
    body.update(changes)
    return body
