"""The SchemaRegistry boundary: one contract over the catalogue, Glue and Confluent.

Glue runs against moto's in-process Glue (registries, schemas, versions; it checks no
compatibility), Confluent against confluent-kafka's ``MockSchemaRegistryClient`` (no
compatibility either). Real-service behaviour that neither stand-in has (Glue's
``FAILURE`` status, Confluent's HTTP 409) is exercised with stubs below.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from moto import mock_aws

import schemas
from schemas.catalogue import AVRO_DIR, SCHEMA_IDS, SchemaCatalogue
from schemas.compatibility import CompatibilityLevel
from schemas.exceptions import UnknownSchemaIdError
from schemas.framing import Framing
from schemas.registry import (
    RegistrationRefusedError,
    RegistrationStatus,
    RegistryKind,
    RegistryUnavailableError,
    SchemaNotRegisteredError,
    SchemaResolver,
    definition_of,
    register_catalogue,
)
from schemas.registry.base import SchemaRegistry
from schemas.registry.catalogue import CatalogueRegistry
from schemas.registry.confluent import ConfluentRegistry
from schemas.registry.glue import GlueRegistry
from sluice.errors import FatalError, RetryableError

KINDS = ("catalogue", "glue", "confluent")


def _naming(kind: str) -> Any:
    suffix = "-value" if kind == "confluent" else ""
    return lambda event_type: f"sluice-{event_type}{suffix}"


@pytest.fixture
def aws_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def make_registry(kind: str, catalogue: SchemaCatalogue) -> SchemaRegistry:
    if kind == "catalogue":
        return CatalogueRegistry(catalogue)
    if kind == "glue":
        return GlueRegistry("sluice-test", client=boto3.client("glue", region_name="us-east-1"))
    return ConfluentRegistry(client=MockSchemaRegistryClient({"url": "mock://test"}))


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, aws_mock: None) -> str:
    return str(request.param)


@pytest.fixture
def shipped() -> SchemaCatalogue:
    return schemas.catalogue()


@pytest.fixture
def registered(kind: str, shipped: SchemaCatalogue) -> SchemaRegistry:
    """A registry of ``kind`` holding every shipped version."""
    registry = make_registry(kind, shipped)
    if kind != "catalogue":
        register_catalogue(registry, shipped, _naming(kind))
    return registry


def v3_catalogue(tmp_path: Path) -> SchemaCatalogue:
    """The shipped financial-transaction v1 and v2 plus a v3 that removes the required
    field ``channel`` (old readers cannot read v3 data: not FORWARD compatible)."""
    target = tmp_path / "avro-v3"
    target.mkdir()
    for name in ("envelope.avsc", "financial-transaction.v1.avsc", "financial-transaction.v2.avsc"):
        shutil.copy(AVRO_DIR / name, target / name)
    v3 = json.loads((AVRO_DIR / "financial-transaction.v2.avsc").read_text())
    v3["fields"] = [f for f in v3["fields"] if f["name"] != "channel"]
    (target / "financial-transaction.v3.avsc").write_text(json.dumps(v3, indent=2))
    ids = {**SCHEMA_IDS, ("financial-transaction", 3): 1003}
    return SchemaCatalogue.load(target, schema_ids=ids)


def _record(event_type: str = "financial-transaction", version: int = 2) -> dict[str, Any]:
    return schemas.parse_event(event_type, schemas.example_event(event_type, version=version))


class TestRegistryContract:
    """What every SchemaRegistry implementation promises."""

    def test_framing_matches_the_kind_of_id(self, kind: str, registered: SchemaRegistry) -> None:
        assert registered.kind is RegistryKind(kind)
        expected = Framing.GLUE if kind == "glue" else Framing.CONFLUENT
        assert registered.framing is expected

    def test_every_version_found_and_fetched_back(
        self, kind: str, registered: SchemaRegistry, shipped: SchemaCatalogue
    ) -> None:
        ids = set()
        for sv in shipped:
            wire_id = registered.find(_naming(kind)(sv.event_type), definition_of(sv))
            assert wire_id is not None
            ids.add(wire_id)
            fetched = registered.fetch(wire_id)
            assert fetched.wire_id == wire_id
            assert json.loads(fetched.definition)["fields"] == sv.schema["fields"]
            id_type = uuid.UUID if kind == "glue" else int
            assert isinstance(wire_id, id_type)
        assert len(ids) == len(shipped)

    def test_register_is_idempotent(
        self, kind: str, registered: SchemaRegistry, shipped: SchemaCatalogue
    ) -> None:
        again = register_catalogue(registered, shipped, _naming(kind))
        assert {r.status for r in again} == {RegistrationStatus.EXISTING}
        assert [(r.event_type, r.version) for r in again] == [
            (sv.event_type, sv.version)
            for sv in sorted(shipped, key=lambda s: (s.event_type, s.version))
        ]

    def test_unknown_id_is_fatal(self, kind: str, registered: SchemaRegistry) -> None:
        unknown: Any = uuid.uuid4() if kind == "glue" else 987654
        with pytest.raises(UnknownSchemaIdError) as caught:
            registered.fetch(unknown)
        assert isinstance(caught.value, FatalError)
        assert not caught.value.retryable

    def test_unregistered_definition_is_not_found(
        self, kind: str, registered: SchemaRegistry, tmp_path: Path
    ) -> None:
        v3 = v3_catalogue(tmp_path).get("financial-transaction", 3)
        assert registered.find(_naming(kind)("financial-transaction"), definition_of(v3)) is None

    def test_incompatible_v3_is_refused_with_the_reason(self, kind: str, tmp_path: Path) -> None:
        catalogue = v3_catalogue(tmp_path)
        registry = make_registry(kind, catalogue)
        with pytest.raises(RegistrationRefusedError) as caught:
            register_catalogue(registry, catalogue, _naming(kind))
        error = caught.value
        assert (error.event_type, error.version) == ("financial-transaction", 3)
        assert "sluice-financial-transaction" in str(error)
        assert "version 3" in str(error)
        assert "channel" in error.reason and "FORWARD" in error.reason
        # v1 and v2 went in; v3 did not
        name = _naming(kind)("financial-transaction")
        assert registry.find(name, definition_of(catalogue.get("financial-transaction", 2)))
        if kind != "catalogue":  # the catalogue holds v3 by construction; it is still refused
            v3 = definition_of(catalogue.get("financial-transaction", 3))
            assert registry.find(name, v3) is None

    def test_dry_run_registers_nothing(self, kind: str, shipped: SchemaCatalogue) -> None:
        registry = make_registry(kind, shipped)
        results = register_catalogue(registry, shipped, _naming(kind), dry_run=True)
        statuses = {r.status for r in results}
        if kind == "catalogue":
            assert statuses == {RegistrationStatus.EXISTING}
        else:
            assert statuses == {RegistrationStatus.WOULD_REGISTER}
            sv = shipped.get("insurance-claim", 1)
            assert registry.find(_naming(kind)(sv.event_type), definition_of(sv)) is None

    def test_resolver_round_trip_asks_the_registry_once_per_version(
        self, kind: str, registered: SchemaRegistry, shipped: SchemaCatalogue
    ) -> None:
        writer = SchemaResolver(registered, shipped, _naming(kind))
        reader = SchemaResolver(registered, shipped, _naming(kind))
        record = _record()
        values = [
            schemas.encode("financial-transaction", record, registry=writer) for _ in range(5)
        ]
        assert writer.lookups == 1
        decoded = [schemas.decode(v, registry=reader) for v in values]
        assert reader.lookups == 1
        assert all(d.record == record for d in decoded)
        assert decoded[0].schema_id == 1002
        if kind == "catalogue":
            assert values[0] == schemas.encode("financial-transaction", record, catalogue=shipped)


# -- resolver ----------------------------------------------------------------------------


class CountingRegistry:
    """A registry double that counts fetches and can be made unreachable."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self.inner = CatalogueRegistry(catalogue)
        self.fetches = 0
        self.down = False

    kind = RegistryKind.CATALOGUE
    framing = Framing.CONFLUENT

    def fetch(self, wire_id: Any) -> Any:
        self.fetches += 1
        if self.down:
            raise RegistryUnavailableError("registry down")
        return self.inner.fetch(wire_id)

    def find(self, name: str, definition: str) -> Any:
        if self.down:
            raise RegistryUnavailableError("registry down")
        return self.inner.find(name, definition)

    def set_compatibility(self, name: str, level: CompatibilityLevel) -> None:
        return None

    def register(self, name: str, definition: str, level: CompatibilityLevel) -> Any:
        return self.inner.register(name, definition, level)


def test_cache_is_bounded_and_evicts_oldest(shipped: SchemaCatalogue) -> None:
    registry = CountingRegistry(shipped)
    resolver = SchemaResolver(registry, shipped, _naming("catalogue"), cache_size=2)
    for schema_id in (1001, 1002, 2001):
        resolver.writer(schema_id)
    assert registry.fetches == 3
    resolver.writer(2001)
    resolver.writer(1002)
    assert registry.fetches == 3
    resolver.writer(1001)  # evicted first
    assert registry.fetches == 4


def test_misses_are_remembered_for_their_ttl(shipped: SchemaCatalogue) -> None:
    now = [0.0]
    registry = CountingRegistry(shipped)
    resolver = SchemaResolver(
        registry, shipped, _naming("catalogue"), miss_ttl=10.0, clock=lambda: now[0]
    )
    for _ in range(3):
        with pytest.raises(UnknownSchemaIdError):
            resolver.writer(4242)
    assert registry.fetches == 1
    now[0] = 11.0
    with pytest.raises(UnknownSchemaIdError):
        resolver.writer(4242)
    assert registry.fetches == 2


def test_unreachable_registry_is_retryable_and_not_remembered(shipped: SchemaCatalogue) -> None:
    registry = CountingRegistry(shipped)
    resolver = SchemaResolver(registry, shipped, _naming("catalogue"))
    value = schemas.encode("insurance-claim", _record("insurance-claim", 1), catalogue=shipped)
    registry.down = True
    with pytest.raises(RegistryUnavailableError) as caught:
        schemas.decode(value, registry=resolver)
    assert isinstance(caught.value, RetryableError)
    registry.down = False
    assert schemas.decode(value, registry=resolver).record["schema_version"] == 1


def test_registry_schema_outside_the_catalogue_is_unknown(
    shipped: SchemaCatalogue, tmp_path: Path, aws_mock: None
) -> None:
    """A version a newer producer registered (v3) is fatal for a reader without it."""
    newer = v3_catalogue(tmp_path)
    client = MockSchemaRegistryClient({"url": "mock://newer"})
    registry = ConfluentRegistry(client=client)
    from confluent_kafka.schema_registry import Schema

    v3_id = client.register_schema(
        "sluice-financial-transaction-value",
        Schema(definition_of(newer.get("financial-transaction", 3)), "AVRO"),
    )
    resolver = SchemaResolver(registry, shipped, _naming("confluent"))
    with pytest.raises(UnknownSchemaIdError, match="not a version in this build's catalogue"):
        resolver.writer(v3_id)


def test_require_names_every_missing_version(shipped: SchemaCatalogue) -> None:
    client = MockSchemaRegistryClient({"url": "mock://partial"})
    registry = ConfluentRegistry(client=client)
    register_catalogue(registry, shipped, _naming("confluent"), event_types=["insurance-claim"])
    resolver = SchemaResolver(registry, shipped, _naming("confluent"))
    with pytest.raises(SchemaNotRegisteredError) as caught:
        resolver.require()
    message = str(caught.value)
    assert "financial-transaction v1" in message and "financial-transaction v2" in message
    assert "insurance-claim" not in message
    assert "sluice schemas register" in message


def test_compression_only_with_glue(shipped: SchemaCatalogue) -> None:
    with pytest.raises(ValueError, match="Glue"):
        SchemaResolver(CatalogueRegistry(shipped), shipped, _naming("catalogue"), compress=True)


def test_zlib_compressed_glue_values_round_trip(shipped: SchemaCatalogue, aws_mock: None) -> None:
    registry = make_registry("glue", shipped)
    register_catalogue(registry, shipped, _naming("glue"))
    writer = SchemaResolver(registry, shipped, _naming("glue"), compress=True)
    record = _record("insurance-claim", 2)
    value = schemas.encode("insurance-claim", record, registry=writer)
    assert value[:2] == b"\x03\x05"
    reader = SchemaResolver(registry, shipped, _naming("glue"))
    assert schemas.decode(value, registry=reader).record == record


# -- what the stand-ins do not do: real registries' answers, stubbed -----------------------


def test_glue_failure_status_is_the_registrys_refusal() -> None:
    client = boto3.client(
        "glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    version_id = str(uuid.uuid4())
    with Stubber(client) as stub:
        stub.add_response(
            "register_schema_version",
            {"SchemaVersionId": version_id, "VersionNumber": 3, "Status": "PENDING"},
        )
        stub.add_response(
            "get_schema_version",
            {"SchemaVersionId": version_id, "Status": "FAILURE"},
            {"SchemaVersionId": version_id},
        )
        registry = GlueRegistry("r", client=client, sleep=lambda s: None)
        with pytest.raises(RegistrationRefusedError) as caught:
            registry.register("s", "{}", CompatibilityLevel.FULL_TRANSITIVE)
    assert "FAILURE" in caught.value.reason and "FULL_ALL" in caught.value.reason


def test_glue_unreachable_is_retryable() -> None:
    client = boto3.client(
        "glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )

    def refuse(**kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    client.get_schema_version = refuse  # type: ignore[method-assign]
    with pytest.raises(RegistryUnavailableError):
        GlueRegistry("r", client=client).fetch(uuid.uuid4())


def test_glue_throttling_is_retryable() -> None:
    client = boto3.client(
        "glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_client_error("get_schema_version", service_error_code="ThrottlingException")
        with pytest.raises(RegistryUnavailableError):
            GlueRegistry("r", client=client).fetch(uuid.uuid4())


def test_confluent_409_is_the_registrys_refusal() -> None:
    class Refusing(MockSchemaRegistryClient):
        def register_schema(
            self, subject_name: str, schema: Any, normalize_schemas: bool = False
        ) -> int:
            raise SchemaRegistryError(
                409, 409, "Schema being registered is incompatible with an earlier schema"
            )

    registry = ConfluentRegistry(client=Refusing({"url": "mock://x"}))
    with pytest.raises(RegistrationRefusedError) as caught:
        registry.register("t-value", "{}", CompatibilityLevel.FULL_TRANSITIVE)
    assert "HTTP 409" in caught.value.reason and "incompatible" in caught.value.reason


def test_confluent_server_error_is_retryable() -> None:
    class Failing(MockSchemaRegistryClient):
        def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
            raise SchemaRegistryError(503, 50301, "unavailable")

    with pytest.raises(RegistryUnavailableError):
        ConfluentRegistry(client=Failing({"url": "mock://x"})).fetch(1)


def test_confluent_unreachable_is_retryable() -> None:
    registry = ConfluentRegistry("http://127.0.0.1:1")
    with pytest.raises(RegistryUnavailableError):
        registry.fetch(1)


def test_rerun_sets_a_changed_glue_compatibility_back(
    shipped: SchemaCatalogue, aws_mock: None
) -> None:
    client = boto3.client("glue", region_name="us-east-1")
    registry = GlueRegistry("sluice-test", client=client)
    register_catalogue(registry, shipped, _naming("glue"))
    schema_id = {"RegistryName": "sluice-test", "SchemaName": "sluice-insurance-claim"}
    client.update_schema(SchemaId=schema_id, Compatibility="BACKWARD")
    register_catalogue(registry, shipped, _naming("glue"), dry_run=True)
    assert client.get_schema(SchemaId=schema_id)["Compatibility"] == "BACKWARD"
    results = register_catalogue(registry, shipped, _naming("glue"))
    assert {r.status for r in results} == {RegistrationStatus.EXISTING}
    assert client.get_schema(SchemaId=schema_id)["Compatibility"] == "FULL_ALL"
