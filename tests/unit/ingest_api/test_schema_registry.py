"""The API frames values with the ids the configured schema registry assigned.

``SLUICE_SCHEMA_REGISTRY=glue`` against moto's in-process Glue: startup fails naming
every version the registry lacks; once registered, values carry Glue's version UUIDs,
looked up once per version, and decode back through the same registry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto import mock_aws

import schemas
from producers.memory import MemoryPublisher
from schemas.registry import (
    SchemaNotRegisteredError,
    default_resolver,
    naming_for,
    register_catalogue,
)
from schemas.registry.config import RegistryKind
from schemas.registry.glue import GlueRegistry
from tests.unit.ingest_api.conftest import FT, IC, auth, event


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch) -> Iterator[GlueRegistry]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SLUICE_SCHEMA_REGISTRY": "glue",
        "SLUICE_SCHEMA_REGISTRY_NAME": "api-test",
        "SLUICE_AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLUICE_AWS_ENDPOINT_URL", raising=False)
    default_resolver.cache_clear()
    with mock_aws():
        yield GlueRegistry("api-test", client=boto3.client("glue", region_name="us-east-1"))
    default_resolver.cache_clear()


def test_startup_fails_naming_the_versions_the_registry_lacks(
    glue: GlueRegistry, make_app: Callable[..., FastAPI]
) -> None:
    register_catalogue(glue, schemas.catalogue(), naming_for(RegistryKind.GLUE), event_types=[IC])
    with pytest.raises(SchemaNotRegisteredError) as caught, TestClient(make_app()):
        pass
    message = str(caught.value)
    assert "financial-transaction v1" in message and "financial-transaction v2" in message
    assert "sluice schemas register" in message


def test_values_carry_the_glue_version_ids(
    glue: GlueRegistry, make_app: Callable[..., FastAPI], publisher: MemoryPublisher
) -> None:
    results = register_catalogue(glue, schemas.catalogue(), naming_for(RegistryKind.GLUE))
    ids = {(r.event_type, r.version): r.wire_id for r in results}
    with TestClient(make_app()) as client:
        lookups = default_resolver().lookups
        for _ in range(3):
            for event_type in (FT, IC):
                response = client.post(
                    f"/v1/events/{event_type}", json=event(event_type), headers=auth()
                )
                assert response.status_code == 202, response.text
        assert default_resolver().lookups == lookups  # all looked up at startup
    for event_type in (FT, IC):
        stored = publisher.records(f"sluice-{event_type}")
        assert len(stored) == 3
        for record in stored:
            value = record.record.value
            assert value[:2] == b"\x03\x00"
            assert uuid.UUID(bytes=value[2:18]) == ids[(event_type, 2)]
            decoded = schemas.decode(value, registry=default_resolver())
            assert decoded.event_type == event_type and decoded.wire_id == ids[(event_type, 2)]


def test_without_startup_a_missing_version_is_a_503_for_that_event_only(
    glue: GlueRegistry, make_app: Callable[..., FastAPI], publisher: MemoryPublisher
) -> None:
    """Where no lifespan runs (Lambda), the first event of a version looks its id up."""
    register_catalogue(glue, schemas.catalogue(), naming_for(RegistryKind.GLUE), event_types=[IC])
    client = TestClient(make_app(), raise_server_exceptions=False)  # no lifespan
    missing = client.post(f"/v1/events/{FT}", json=event(FT), headers=auth())
    assert missing.status_code == 503
    assert missing.json()["code"] == "schema_not_registered"
    assert publisher.records(f"sluice-{FT}") == []
    assert client.post(f"/v1/events/{IC}", json=event(IC), headers=auth()).status_code == 202


def test_unreachable_registry_is_a_retryable_503(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., FastAPI], publisher: MemoryPublisher
) -> None:
    for key, value in {
        "AWS_MAX_ATTEMPTS": "1",
        "SLUICE_SCHEMA_REGISTRY": "glue",
        "SLUICE_AWS_REGION": "us-east-1",
        "SLUICE_AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens there
        "SLUICE_AWS_ACCESS_KEY_ID": "x",
        "SLUICE_AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(key, value)
    default_resolver.cache_clear()
    try:
        client = TestClient(make_app(), raise_server_exceptions=False)  # no lifespan
        response = client.post(f"/v1/events/{FT}", json=event(FT), headers=auth())
    finally:
        default_resolver.cache_clear()
    assert response.status_code == 503
    assert response.json()["code"] == "registry_unavailable"
    assert response.json()["retryable"] is True
    assert publisher.records(f"sluice-{FT}") == []
