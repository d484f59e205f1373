"""The codec's success paths give exactly what the full validator and fastavro give.

``parse_event`` first tries each schema's compiled success path and falls back to the
full validator; ``encode`` first tries the compiled Avro writer and falls back to
fastavro. These tests check, over many valid and invalid variations of every schema
version, that the success path never accepts what the full validator rejects, returns
an equal result when it accepts, and that the compiled writer's bytes equal fastavro's.
"""

from __future__ import annotations

import io
import itertools
import struct
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from schemas import catalogue, codec
from schemas.exceptions import CodecError, ValidationError
from schemas.models import SchemaVersion

VERSIONS = [pytest.param(sv, id=f"{sv.event_type}-v{sv.version}") for sv in catalogue()]

ODD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\t",
    "x" * 200,
    "x" * 2000,
    "Café Zürich",
    "nul\x00byte",
    "\ud800",
    "eur",
    "Eur",
    "de",
    "\u0131NR",  # dotless i: upper() gives INR
    "0",
    "-0",
    "0.000",
    "-0.00",
    "1e3",
    " 12.5",
    "12.345",
    "12.34567",
    "99999999999999.9999",
    "100000000000000",
    "-1",
    "NaN",
    "Infinity",
    "5462",
    "54 62",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111112",
    "411111******1111",
    "hmac-sha256:" + "a" * 64,
    "2026-01-31T09:30:00Z",
    "2026-01-31t09:30:00z",
    "2026-01-31 09:30:00+01:00",
    "2026-02-30T09:30:00Z",
    "2026-01-31T09:30:00",
    "9999-12-31T23:59:59-23:59",
    "2026-01-31",
    "2026-13-01",
    "2F1C8C4E-3B4D-4F5E-9A6B-7C8D9E0F1A2B",
    "2f1c8c4e-3b4d-4f5e-9a6b-7c8d9e0f1a2b",
    "2f1c8c4e3b4d4f5e9a6b7c8d9e0f1a2b",
    "PURCHASE",
    "purchase",
    "AUTO",
    "OPENED",
    "acme-bank",
    "acme bank",
    "-acme",
    0,
    1,
    -1,
    2**31,
    2**63,
    True,
    False,
    0.0,
    -0.0,
    0.5,
    1.0,
    1.0000000000000002,
    -1e-300,
    float("nan"),
    float("inf"),
    1e20,
    Decimal("1.5"),
    [],
    ["a"],
    {},
    {"k": "v"},
    {"k": 1},
    {"": "v"},
    {"k" * 129: "v"},
    {"k\x00": "v"},
    {"ключ": "значение"},
    {"k": None},
    {f"k{i}": "v" for i in range(65)},
    {"name": "Corner Bakery", "mcc": "5462", "country": "DE"},
    {"name": "Corner Bakery", "mcc": "5462", "country": "DE", "extra": 1},
    {"name": " ", "mcc": "5462", "country": "de"},
    {"country": "GB", "region": None, "postal_code": "SW1A 1AA"},
]


def _events(sv: SchemaVersion) -> list[dict[str, Any]]:
    """The example of ``sv`` and many variations of it (one field changed, added or dropped)."""
    base = codec.example_event(sv.event_type, version=sv.version)
    events = [base]
    for name in [*sv.field_names, "unknown_field"]:
        dropped = dict(base)
        dropped.pop(name, None)
        events.append(dropped)
        for value in ODD_VALUES:
            changed = dict(base)
            changed[name] = value
            events.append(changed)
    return events


def _full(sv: SchemaVersion, event: Any, allow: bool) -> tuple[Any, list[Any]]:
    errors: list[Any] = []
    result = codec._validator_for(sv)(event, "", errors, allow_server_fields=allow)
    return result, errors


@pytest.mark.parametrize("sv", VERSIONS)
@pytest.mark.parametrize("allow", [False, True])
def test_success_path_agrees_with_full_validation(sv: SchemaVersion, allow: bool) -> None:
    fast = codec._validator_for(sv).fast
    accepted = 0
    for event in _events(sv):
        result = fast(event, allow)
        full, errors = _full(sv, event, allow)
        if result is codec._INVALID:
            continue
        accepted += 1
        assert not errors, (event, errors)
        assert result == full
        assert [type(v) for v in result.values()] == [type(v) for v in full.values()]
    assert accepted > 50


@pytest.mark.parametrize("sv", VERSIONS)
def test_parse_event_matches_full_validation(sv: SchemaVersion) -> None:
    for event in _events(sv):
        event = {**event, "schema_version": sv.version}
        full, errors = _full(sv, event, False)
        body_type = event.get("event_type")
        mismatch = isinstance(body_type, str) and body_type != sv.event_type
        if errors or full is codec._INVALID or mismatch:
            with pytest.raises(ValidationError):
                codec.parse_event(sv.event_type, event)
        else:
            assert codec.parse_event(sv.event_type, event) == full


def _fastavro_bytes(sv: SchemaVersion, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, sv.schema_id))
    fastavro.schemaless_writer(buffer, sv.codec_parsed or sv.parsed, record)
    return buffer.getvalue()


@pytest.mark.parametrize("sv", VERSIONS)
def test_compiled_writer_writes_what_fastavro_writes(sv: SchemaVersion) -> None:
    assert codec._writer_for(sv) is not None
    written = 0
    for event in _events(sv):
        event = {**event, "schema_version": sv.version}
        full, errors = _full(sv, event, False)
        if errors:
            continue
        for stamp in (None, datetime(2026, 1, 31, 9, 30, 0, 123456, tzinfo=UTC)):
            record = {**full, "ingested_at": stamp}
            assert codec.encode(sv.event_type, record) == _fastavro_bytes(sv, record)
            assert codec.decode(codec.encode(sv.event_type, record)).record == record
            written += 1
    assert written > 100


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "0.0001",
        "1",
        "127",
        "128",
        "255",
        "256",
        "-1",
        "-128",
        "-129",
        "-0",
        "99999999999999.9999",
        "-99999999999999.9999",
        "1E+3",
        "12.5",
        "0E-10",
    ],
)
def test_decimal_bytes_match_fastavro(amount: str) -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "D",
            "fields": [
                {
                    "name": "d",
                    "type": {
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": 18,
                        "scale": 4,
                    },
                },
                {
                    "name": "o",
                    "type": [
                        "null",
                        {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
                    ],
                },
            ],
        }
    )
    writer = codec._compile_writer(schema, {})
    record = {"d": Decimal(amount), "o": Decimal(amount)}
    expected = io.BytesIO()
    try:
        fastavro.schemaless_writer(expected, schema, record)
    except ValueError:
        with pytest.raises((codec._NotCompiled, ValueError)):
            writer(bytearray(), record)
        return
    out = bytearray()
    writer(out, record)
    assert bytes(out) == expected.getvalue()


def test_other_primitives_and_logical_types_match_fastavro() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "P",
            "fields": [
                {"name": "b", "type": "boolean"},
                {"name": "i", "type": "int"},
                {"name": "l", "type": "long"},
                {"name": "f", "type": "float"},
                {"name": "d", "type": "double"},
                {"name": "s", "type": "string"},
                {"name": "y", "type": "bytes"},
                {"name": "n", "type": "null"},
                {"name": "a", "type": {"type": "array", "items": "long"}},
                {"name": "dt", "type": {"type": "int", "logicalType": "date"}},
                {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "u", "type": ["string", "null"]},
            ],
        }
    )
    writer = codec._compile_writer(schema, {})
    stamps = [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 31, 9, 30, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 31, 9, 30, tzinfo=UTC).astimezone(
            __import__("datetime").timezone(timedelta(hours=5, minutes=30))
        ),
    ]
    numbers = [0, 1, -1, 63, 64, -64, -65, 1023, 1024, 2**31 - 1, -(2**31), 2**62, -(2**63)]
    for stamp, number, flag in itertools.product(stamps, numbers, (True, False)):
        record = {
            "b": flag,
            "i": max(min(number, 2**31 - 1), -(2**31)),
            "l": number,
            "f": 1.5,
            "d": -0.1,
            "s": "h\u00e9llo",
            "y": b"\x00\xff",
            "n": None,
            "a": [number, 1] if flag else [],
            "dt": date(1960, 2, 29) if flag else date(2026, 1, 31),
            "ms": stamp,
            "us": stamp,
            "u": None if flag else "x",
        }
        expected = io.BytesIO()
        fastavro.schemaless_writer(expected, schema, record)
        out = bytearray()
        writer(out, record)
        assert bytes(out) == expected.getvalue(), record


def test_encode_falls_back_to_fastavro_for_values_it_does_not_write() -> None:
    sv = catalogue().latest("financial-transaction")
    record = codec.parse_event(sv.event_type, codec.example_event(sv.event_type))
    record["event_id"] = uuid.UUID(record["event_id"])  # converted, as before
    record["fraud_score"] = 1  # an int for a double: fastavro converts it
    expected = dict(record, event_id=str(record["event_id"]), fraud_score=1.0)
    assert codec.encode(sv.event_type, record) == _fastavro_bytes(sv, expected)


def test_encode_errors_still_come_from_fastavro() -> None:
    sv = catalogue().latest("financial-transaction")
    record = codec.parse_event(sv.event_type, codec.example_event(sv.event_type))
    with pytest.raises(CodecError) as bad_enum:
        codec.encode(sv.event_type, {**record, "channel": "PIGEON"})
    assert bad_enum.value.code == "encode_failed"
    missing = dict(record)
    del missing["amount"]
    with pytest.raises(CodecError) as no_amount:
        codec.encode(sv.event_type, missing)
    assert no_amount.value.code == "encode_failed"
    with pytest.raises(CodecError):
        codec.encode(sv.event_type, {**record, "amount": Decimal("1.23456")})
