"""Values written by other libraries' serializers, read by our transform and consumers.

- confluent-kafka's own ``AvroSerializer`` with ``auto.register.schemas`` against
  ``MockSchemaRegistryClient``: the registry assigns id 1, 2, ... (not our 1001...).
- The ``aws-glue-schema-registry`` package's ``KafkaSerializer`` (a Python port of
  AWS's serializer, header layout of ``awslabs/aws-glue-schema-registry``) against
  moto's Glue, with and without zlib compression (``aws_schema_registry.codec.encode``).

Each must decode, through the Firehose transform (Lambda handler shape, MSK and Kinesis
source events from ``tests/events``) and the consumers' decoder, to the same records
and rows as our own catalogue-framed bytes.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_schema_registry import DataAndSchema, KafkaSerializer
from aws_schema_registry import SchemaRegistryClient as GlueSerdeClient
from aws_schema_registry.avro import AvroSchema
from aws_schema_registry.codec import decode as glue_split
from aws_schema_registry.codec import encode as glue_encode
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from moto import mock_aws

import schemas
from consumers.base import decode_record
from consumers.models import StreamRecord
from firehose_transforms.base import Transformer
from schemas.config import PiiSettings
from schemas.registry import SchemaResolver, definition_of, register_catalogue
from schemas.registry.confluent import ConfluentRegistry
from schemas.registry.glue import GlueRegistry

EVENTS = Path(__file__).parents[2] / "events"
TOPIC = "sluice-financial-transaction"
PII = PiiSettings(pii_hmac_key="unit-test-key")


def _records() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for index, sv in enumerate(schemas.catalogue()):
        body = schemas.example_event(sv.event_type, version=sv.version)
        body["event_id"] = f"00000000-0000-4000-8000-{index:012d}"  # distinct: no duplicates
        out.append((sv.event_type, schemas.parse_event(sv.event_type, body)))
    return out


def _firehose(values: list[bytes], source: str) -> dict[str, Any]:
    """A Firehose transformation event of ``source``'s recorded shape carrying ``values``."""
    sample = json.loads((EVENTS / f"firehose-{source}-source.json").read_text())
    field = "kafkaRecordValue" if source == "msk" else "data"
    template = sample["records"][0]
    event = {k: v for k, v in sample.items() if k != "records"}
    event["records"] = []
    for index, value in enumerate(values):
        record = copy.deepcopy(template)
        record["recordId"] = f"r{index}"
        record[field] = base64.b64encode(value).decode("ascii")
        event["records"].append(record)
    return event


def _rows(response: dict[str, Any], source: str) -> list[dict[str, Any]]:
    field = "kafkaRecordValue" if source == "msk" else "data"
    rows = []
    for record in response["records"]:
        assert record["result"] == "Ok", record
        rows.append(json.loads(base64.b64decode(record[field])))
    return rows


def _check_same_everywhere(values: list[bytes], resolver: SchemaResolver) -> None:
    """``values`` (one per catalogue version, in _records() order) decode like ours."""
    ours = [schemas.encode(t, r, catalogue=schemas.catalogue()) for t, r in _records()]
    assert values != ours  # other ids, other framing: not our bytes
    for source in ("msk", "kinesis"):
        theirs = Transformer(pii=PII, registry=resolver).handle(_firehose(values, source))
        reference = Transformer(pii=PII).handle(_firehose(ours, source))
        assert _rows(theirs, source) == _rows(reference, source)
    for (event_type, record), value in zip(_records(), values, strict=True):
        stream_record = StreamRecord(
            TOPIC, "0", 0, value, headers={"content-type": schemas.CONTENT_TYPE_AVRO}
        )
        decoded = decode_record(stream_record, registry=resolver)
        assert (decoded.event_type, decoded.event) == (event_type, record)


def test_confluent_avro_serializer_with_registry_assigned_ids() -> None:
    client = MockSchemaRegistryClient({"url": "mock://producer"})
    values = []
    for event_type, record in _records():
        sv = schemas.catalogue().get(event_type, record["schema_version"])
        serializer = AvroSerializer(
            client,
            json.dumps(sv.schema),  # the producer's own text of the schema
            conf={"auto.register.schemas": True},
        )
        topic = f"sluice-{event_type}"
        values.append(serializer(record, SerializationContext(topic, MessageField.VALUE)))
    ids = sorted({int.from_bytes(v[1:5], "big") for v in values})
    assert ids == [1, 2, 3, 4]  # the registry's ids, not the catalogue's
    resolver = SchemaResolver(
        ConfluentRegistry(client=client),
        schemas.catalogue(),
        lambda event_type: f"sluice-{event_type}-value",
    )
    _check_same_everywhere(values, resolver)


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        client = boto3.client("glue", region_name="us-east-1")
        client.create_registry(RegistryName="sluice")
        yield client


@pytest.mark.parametrize("compress", [False, True], ids=["none", "zlib"])
def test_glue_serializer_values(glue: Any, compress: bool) -> None:
    serializer = KafkaSerializer(
        GlueSerdeClient(glue, registry_name="sluice", wait_interval_seconds=0),
        compatibility_mode="FULL_ALL",
        # AWS's Java serializer names a schema after the topic (its default strategy,
        # AWSSchemaNamingStrategyDefaultImpl); this package's default adds "-value".
        schema_naming_strategy=lambda topic, is_key, schema: topic,
    )
    values = []
    for event_type, record in _records():
        sv = schemas.catalogue().get(event_type, record["schema_version"])
        schema = AvroSchema(definition_of(sv))
        value = serializer.serialize(f"sluice-{event_type}", DataAndSchema(record, schema))
        if compress:
            body, version_id = glue_split(value)
            value = glue_encode(body, version_id, compression=True)
            assert value[:2] == b"\x03\x05"
        else:
            assert value[:2] == b"\x03\x00"
        values.append(value)
    registry = GlueRegistry("sluice", client=glue)
    resolver = SchemaResolver(registry, schemas.catalogue(), lambda t: f"sluice-{t}")
    _check_same_everywhere(values, resolver)
    # what the serializer registered is what `sluice schemas register` finds: no new versions
    results = register_catalogue(registry, schemas.catalogue(), lambda t: f"sluice-{t}")
    assert {r.status.value for r in results} == {"existing"}


def test_our_glue_bytes_read_by_the_glue_deserializer(glue: Any) -> None:
    """The other direction: values our API writes are read by the package's deserializer."""
    from aws_schema_registry import KafkaDeserializer

    registry = GlueRegistry("sluice", client=glue)
    naming = lambda t: f"sluice-{t}"  # noqa: E731
    register_catalogue(registry, schemas.catalogue(), naming)
    resolver = SchemaResolver(registry, schemas.catalogue(), naming)
    deserializer = KafkaDeserializer(GlueSerdeClient(glue, registry_name="sluice"))
    for event_type, record in _records():
        value = schemas.encode(event_type, record, registry=resolver)
        data = deserializer.deserialize(f"sluice-{event_type}", value).data
        assert schemas.validate_record(event_type, data) == record


# -- failure kinds through the transform and the consumers --------------------------------


def test_unknown_version_uuid_is_a_failed_record_not_a_failed_invocation(glue: Any) -> None:
    import uuid as uuid_mod

    from consumers.exceptions import DecodeError
    from schemas.framing import frame

    registry = GlueRegistry("sluice", client=glue)
    register_catalogue(registry, schemas.catalogue(), lambda t: f"sluice-{t}")
    resolver = SchemaResolver(registry, schemas.catalogue(), lambda t: f"sluice-{t}")
    event_type, record = _records()[0]
    good = schemas.encode(event_type, record, registry=resolver)
    unknown = frame(uuid_mod.uuid4(), good[18:])
    response = Transformer(pii=PII, registry=resolver).handle(_firehose([good, unknown], "msk"))
    results = [r["result"] for r in response["records"]]
    assert results == ["Ok", "ProcessingFailed"]
    error = json.loads(base64.b64decode(response["records"][1]["kafkaRecordValue"]))
    assert error["errorCode"] == "undecodable" and "unknown_schema_id" in error["errorMessage"]
    with pytest.raises(DecodeError, match="unknown schema id"):
        decode_record(StreamRecord(TOPIC, "0", 1, unknown), registry=resolver)


def test_unreachable_registry_fails_the_invocation_and_the_batch_retryably() -> None:
    from botocore.config import Config

    from schemas.registry import RegistryUnavailableError

    client = boto3.client(
        "glue",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: connection refused
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    resolver = SchemaResolver(
        GlueRegistry("sluice", client=client), schemas.catalogue(), lambda t: f"sluice-{t}"
    )
    import uuid as uuid_mod

    from schemas.framing import frame

    value = frame(uuid_mod.uuid4(), b"\x00")
    with pytest.raises(RegistryUnavailableError) as caught:
        Transformer(pii=PII, registry=resolver).handle(_firehose([value], "kinesis"))
    assert caught.value.retryable
    with pytest.raises(RegistryUnavailableError):
        decode_record(StreamRecord(TOPIC, "0", 1, value), registry=resolver)
