"""encode / decode / to_json: the Confluent wire format, schema resolution, framing errors."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

import schemas
from schemas import CodecError, FramingError, UnknownSchemaError, UnknownSchemaIdError
from schemas.codec import CONTENT_TYPE_AVRO, HEADER_SIZE

from .conftest import ALL_VERSIONS


@pytest.mark.parametrize(("event_type", "version"), ALL_VERSIONS)
def test_round_trip_every_version(event_type: str, version: int) -> None:
    body = schemas.example_event(event_type, version=version)
    record = schemas.parse_event(event_type, body)
    data = schemas.encode(event_type, record)
    sv = schemas.catalogue().get(event_type, version)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == sv.schema_id
    decoded = schemas.decode(data)
    assert decoded.event_type == event_type
    assert decoded.version == version
    assert decoded.schema_id == sv.schema_id
    assert decoded.record == record
    assert schemas.to_json(decoded.record) == schemas.to_json(record)
    event_type_, version_, record_ = schemas.decode(data)  # the contract's triple
    assert (event_type_, version_, record_) == (event_type, version, record)


def test_to_json_shapes(ft_event: dict[str, Any]) -> None:
    ft_event.update(occurred_at="2026-01-31T10:30:00+01:00", amount="125.4")
    record = schemas.parse_event("financial-transaction", ft_event, allow_server_fields=True)
    record["ingested_at"] = datetime(2026, 1, 31, 9, 30, 1, tzinfo=UTC)
    out = schemas.to_json(record)
    assert out["occurred_at"] == "2026-01-31T09:30:00.000000Z"
    assert out["ingested_at"] == "2026-01-31T09:30:01.000000Z"
    assert out["amount"] == "125.4000"
    assert out["merchant"] == {"name": "Corner Bakery", "mcc": "5462", "country": "DE"}
    assert schemas.to_json({"d": date(2026, 1, 2), "big": Decimal("1E+3")}) == {
        "d": "2026-01-02",
        "big": "1000",
    }
    with pytest.raises(CodecError, match="naive datetime"):
        schemas.to_json({"t": datetime(2026, 1, 1)})
    with pytest.raises(CodecError, match="cannot convert"):
        schemas.to_json({"x": object()})


def test_json_of_a_record_parses_back_to_the_record(ic_event: dict[str, Any]) -> None:
    # JSON values on the stream (content-type application/json) are read this way.
    record = schemas.parse_event("insurance-claim", ic_event)
    again = schemas.parse_event(
        "insurance-claim", schemas.to_json(record), allow_server_fields=True
    )
    assert again == record


def test_unframed_round_trip(ic_event: dict[str, Any]) -> None:
    record = schemas.parse_event("insurance-claim", ic_event)
    body = schemas.encode("insurance-claim", record, framed=False)
    framed = schemas.encode("insurance-claim", record)
    assert framed[HEADER_SIZE:] == body
    assert schemas.decode_unframed(body, "insurance-claim", 1) == record


def test_v1_data_read_as_v2_gets_defaults(ft_event: dict[str, Any]) -> None:
    record = schemas.parse_event("financial-transaction", ft_event)
    decoded = schemas.decode(schemas.encode("financial-transaction", record), reader_version=2)
    assert decoded.version == 2
    assert decoded.schema_id == 1001
    assert decoded.record["authorization_code"] is None
    assert decoded.record["fraud_score"] is None
    assert decoded.record["schema_version"] == 1  # what it was written with
    assert {k: v for k, v in decoded.record.items() if k in record} == record


def test_v2_data_read_as_v1_drops_new_fields() -> None:
    event = schemas.example_event("insurance-claim", version=2)
    record = schemas.parse_event("insurance-claim", event)
    decoded = schemas.decode(schemas.encode("insurance-claim", record), reader_version=1)
    assert decoded.version == 1
    assert "adjuster_id" not in decoded.record
    assert "reserve_amount" not in decoded.record
    assert decoded.record == {k: v for k, v in record.items() if k in decoded.record}


def test_encode_picks_the_record_version(ft_event: dict[str, Any]) -> None:
    record = schemas.parse_event("financial-transaction", ft_event)
    assert schemas.decode(schemas.encode("financial-transaction", record)).schema_id == 1001
    with pytest.raises(CodecError, match="cannot encode a schema_version 1 record as version 2"):
        schemas.encode("financial-transaction", record, version=2)
    with pytest.raises(UnknownSchemaError):
        schemas.encode("financial-transaction", {**record, "schema_version": 5})


def test_encode_refuses_a_record_that_does_not_fit(ft_event: dict[str, Any]) -> None:
    record = schemas.parse_event("financial-transaction", ft_event)
    record["amount"] = "not a decimal"
    with pytest.raises(CodecError) as info:
        schemas.encode("financial-transaction", record)
    assert info.value.code == "encode_failed"


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        (b"", FramingError, "truncated"),
        (b"\x00\x00\x00", FramingError, "truncated"),
        (b"\x01\x00\x00\x03\xe9rest", FramingError, "bad_magic_byte"),
        (b'{"event_id": 1}', FramingError, "bad_magic_byte"),
        (b"\x00\x00\x00\x00\x07", UnknownSchemaIdError, "unknown_schema_id"),
    ],
)
def test_framing_errors(data: bytes, error: type[Exception], code: str) -> None:
    with pytest.raises(error) as info:
        schemas.decode(data)
    assert getattr(info.value, "code", None) == code


def test_unknown_schema_id_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="unknown schema id 7"):
        schemas.decode(b"\x00\x00\x00\x00\x07body")


def test_truncated_body(ft_event: dict[str, Any]) -> None:
    data = schemas.encode(
        "financial-transaction", schemas.parse_event("financial-transaction", ft_event)
    )
    for cut in (HEADER_SIZE, HEADER_SIZE + 1, len(data) // 2, len(data) - 1):
        with pytest.raises(CodecError):
            schemas.decode(data[:cut])


def test_trailing_bytes_are_refused(ft_event: dict[str, Any]) -> None:
    data = schemas.encode(
        "financial-transaction", schemas.parse_event("financial-transaction", ft_event)
    )
    with pytest.raises(CodecError) as info:
        schemas.decode(data + b"\x00")
    assert info.value.code == "trailing_bytes"


def test_wrong_schema_id_for_the_body(ic_event: dict[str, Any]) -> None:
    # An insurance claim body framed with the transaction id does not decode quietly.
    body = schemas.encode(
        "insurance-claim", schemas.parse_event("insurance-claim", ic_event), framed=False
    )
    with pytest.raises(CodecError):
        schemas.decode(b"\x00" + (1001).to_bytes(4, "big") + body)


def test_decode_accepts_memoryview_and_bytearray(ft_event: dict[str, Any]) -> None:
    data = schemas.encode(
        "financial-transaction", schemas.parse_event("financial-transaction", ft_event)
    )
    assert schemas.decode(memoryview(data)) == schemas.decode(bytearray(data))
    assert schemas.schema_id_of(data) == 1001


def test_example_event_is_json_and_versioned() -> None:
    import json

    for sv in schemas.catalogue():
        event = schemas.example_event(sv.event_type, version=sv.version)
        assert json.loads(json.dumps(event)) == event
        assert set(event) <= set(sv.field_names)
        assert "ingested_at" not in event
    assert schemas.example_event("insurance-claim")["schema_version"] == 2
    assert CONTENT_TYPE_AVRO == "application/vnd.sluice.avro"


def test_decode_value_reads_avro_and_json(ft_event: dict[str, Any]) -> None:
    import json

    record = schemas.parse_event("financial-transaction", ft_event)
    avro = schemas.encode("financial-transaction", record)
    as_json = json.dumps(schemas.to_json(record)).encode()
    from_avro = schemas.decode_value(avro, content_type=CONTENT_TYPE_AVRO)
    from_json = schemas.decode_value(as_json, content_type="application/json; charset=utf-8")
    sniffed = schemas.decode_value(as_json)
    assert from_avro == from_json == sniffed
    assert from_json.schema_id == 1001
    assert schemas.decode_value(avro) == from_avro


def test_decode_value_errors(ft_event: dict[str, Any]) -> None:
    import json

    with pytest.raises(CodecError) as info:
        schemas.decode_value(b"{not json", content_type="application/json")
    assert info.value.code == "invalid_json"
    del ft_event["event_type"]
    body = json.dumps(ft_event).encode()
    with pytest.raises(CodecError) as info:
        schemas.decode_value(body)
    assert info.value.code == "unknown_event_type"
    with pytest.raises(schemas.ValidationError):  # event_type from a header; the body lacks it
        schemas.decode_value(body, event_type="financial-transaction")


def test_encode_accepts_a_uuid_object(ft_event: dict[str, Any]) -> None:
    import uuid

    record = schemas.parse_event("financial-transaction", ft_event)
    as_object = {**record, "event_id": uuid.UUID(record["event_id"])}
    assert schemas.encode("financial-transaction", as_object) == schemas.encode(
        "financial-transaction", record
    )


def test_codec_schema_has_the_same_wire_format() -> None:
    import io

    import fastavro

    for sv in schemas.catalogue():
        record = schemas.parse_event(
            sv.event_type, schemas.example_event(sv.event_type, version=sv.version)
        )
        plain = io.BytesIO()
        fastavro.schemaless_writer(plain, sv.parsed, record)
        assert schemas.encode(sv.event_type, record, framed=False) == plain.getvalue()
