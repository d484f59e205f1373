"""Validation and COPY encoding of warehouse rows (the pure core)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.warehouse.contract import ft_row, ic_row
from warehouse.models import TargetTable
from warehouse.rows import RowEncoder, RowRejected, copy_escape, encode_lines, encoder_for

FT = TargetTable.FINANCIAL_TRANSACTIONS
IC = TargetTable.INSURANCE_CLAIMS


def fields(line: str) -> list[str]:
    assert line.endswith("\n")
    return line[:-1].split("\t")


def test_a_valid_row_encodes_in_column_order() -> None:
    row = ft_row(event_id="9F1C2D3E-0000-4000-8000-000000000001")
    out = fields(encoder_for(FT).encode(row))
    assert len(out) == len(encoder_for(FT).spec.columns)
    assert out[0] == "9f1c2d3e-0000-4000-8000-000000000001"  # lower-cased
    assert out[3] == "2026-11-22T03:00:00.123456Z"
    assert out[7] == '{"channel":"ios","note":"tab\\\\there"}'
    assert out[16] == "Back\\\\slash Café"


def test_nulls_and_claim_row() -> None:
    out = fields(encoder_for(IC).encode(ic_row(ingested_at=None, cause_of_loss=None)))
    assert out[4] == "\\N"
    assert out[12] == "2026-11-20"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_id": None}, "event_id: required"),
        ({"event_id": "123"}, "event_id: not a UUID"),
        ({"schema_version": "1"}, "schema_version: expected a 32-bit integer"),
        ({"schema_version": True}, "schema_version: expected a 32-bit integer"),
        ({"occurred_at": "2026-11-22T03:00:00"}, "occurred_at: timestamp without a UTC offset"),
        ({"occurred_at": "yesterday"}, "occurred_at: not an ISO-8601 timestamp"),
        ({"occurred_at": 1700000000}, "occurred_at: expected an ISO-8601 timestamp string"),
        ({"amount": "1.23456"}, "amount: more than 4 decimal places"),
        ({"amount": "1e20"}, "amount: out of range for DECIMAL(18,4)"),
        ({"amount": "ten"}, "amount: not a decimal number"),
        ({"amount": [1]}, "amount: expected a decimal string or number"),
        ({"currency": "EURO"}, "currency: longer than 3 bytes"),
        ({"merchant_country": "ÄÄ"}, "merchant_country: longer than 2 bytes"),
        ({"merchant_name": {"x": 1}}, "merchant_name: expected a string, got dict"),
        ({"metadata": ["a"]}, "metadata: expected a JSON object"),
        ({"metadata": {"x": float("nan")}}, "metadata: NaN or Infinity is not JSON"),
        ({"amount": float("inf")}, "amount: out of range for DECIMAL(18,4)"),
        ({"merchant_name": "nul\x00"}, "contains a NUL character"),
        ({"event_type": "insurance-claim"}, "event_type: 'insurance-claim' does not belong"),
    ],
)
def test_rejections_name_the_field(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(RowRejected) as info:
        encoder_for(FT).encode(ft_row(**change))
    assert str(info.value).startswith(reason)


def test_loss_date_must_be_a_date() -> None:
    with pytest.raises(RowRejected, match="loss_date: not a YYYY-MM-DD date"):
        encoder_for(IC).encode(ic_row(loss_date="2026-13-01"))


@pytest.mark.parametrize(
    ("value", "text"),
    [(12, "12.0000"), (1.5, "1.5000"), ("-0.0100", "-0.0100"), ("7.10000", "7.1000")],
)
def test_decimals_are_exact(value: Any, text: str) -> None:
    assert fields(encoder_for(FT).encode(ft_row(amount=value)))[10] == text


def test_int_is_accepted_for_text_columns() -> None:
    assert fields(encoder_for(FT).encode(ft_row(merchant_mcc=5411)))[17] == "5411"


def test_non_canonical_timestamp_is_normalised() -> None:
    out = fields(encoder_for(FT).encode(ft_row(occurred_at="20261122T030000Z")))
    assert out[3] == "2026-11-22T03:00:00+00:00"


def test_copy_escape() -> None:
    assert copy_escape("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert copy_escape("plain") == "plain"


def test_values_round_trip_the_escapes() -> None:
    enc = RowEncoder(encoder_for(FT).spec)
    values = enc.values(ft_row(merchant_name="a\tb\\c\nd"))
    assert values[16] == "a\tb\\c\nd"
    assert values[4] is not None


def test_encode_lines_keeps_line_numbers_and_raw_text() -> None:
    lines = [
        json.dumps(ft_row()).encode(),
        b"",
        b"[1, 2]",
        b"\xff\xfe not utf8",
        json.dumps(ft_row(amount="x")).encode(),
        json.dumps(ft_row()).encode(),
        b"",
    ]
    batch = encode_lines(FT, lines, source="s3://b/clean/f.gz")
    assert (batch.rows_read, batch.rows_staged) == (5, 2)
    assert [(r.line_no, r.reason) for r in batch.rejected] == [
        (3, "not a JSON object"),
        (4, batch.rejected[1].reason),
        (5, "amount: not a decimal number"),
    ]
    assert batch.rejected[1].reason.startswith("malformed JSON")
    assert batch.rejected[1].raw.endswith("not utf8")
    assert all(r.source == "s3://b/clean/f.gz" and r.table is FT for r in batch.rejected)


@pytest.mark.parametrize("event_type", ["financial-transaction", "insurance-claim"])
def test_the_transforms_rows_are_accepted(event_type: str) -> None:
    """The rows the Firehose transform and the consumers' sink produce load as they are."""
    from firehose_transforms.clean import to_row
    from schemas import codec

    event = codec.parse_event(event_type, codec.example_event(event_type))
    row = to_row(event, hmac_key=b"test-key")
    line = encoder_for(TargetTable.for_event_type(event_type)).encode(row)
    assert fields(line)[0] == row["event_id"]


def test_lines_postgres_would_refuse_are_quarantined_readably() -> None:
    lone_surrogate = json.dumps(ft_row(merchant_name="\ud800")).encode()
    nul = json.dumps(ft_row(merchant_name="a\u0000b")).encode()
    raw_nul = b'{"event_id": "\x00"'
    batch = encode_lines(FT, [lone_surrogate, nul, raw_nul], source="f")
    assert [r.reason.split(" (")[0] for r in batch.rejected] == [
        "contains text that is not valid Unicode",
        "contains a NUL character",
        batch.rejected[2].reason.split(" (")[0],
    ]
    assert batch.rejected[2].reason.startswith("malformed JSON")
    for r in batch.rejected:
        r.raw.encode("utf-8")  # storable as text
        assert "\x00" not in r.raw


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_id": "9f1c2d3e-0000-4000-8000-000000000001\n"}, "event_id: not a UUID"),
        ({"occurred_at": "2026-11-22T03:00:00Z\n"}, "occurred_at: not an ISO-8601 timestamp"),
        ({"occurred_at": "0000-01-01T00:00:00Z"}, "occurred_at: not an ISO-8601 timestamp"),
        (
            {"occurred_at": "\u0662\u0660\u0662\u0666-11-22T03:00:00Z"},
            "occurred_at: not an ISO-8601 timestamp",
        ),
    ],
)
def test_values_postgres_would_refuse_are_rejected_not_passed_through(
    change: dict[str, Any], reason: str
) -> None:
    """A value that once matched a fast-path pattern (``$`` before a final newline,
    non-ASCII digits, year 0) and reached COPY, failing the whole file, is rejected."""
    with pytest.raises(RowRejected) as info:
        encoder_for(FT).encode(ft_row(**change))
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize(("value", "text"), [("12.5\n", "12.5000"), ("\u0661\u0662", "12.0000")])
def test_decimals_in_other_spellings_are_normalised_for_copy(value: str, text: str) -> None:
    line = encoder_for(FT).encode(ft_row(amount=value))
    assert fields(line)[10] == text
    assert line.count("\n") == 1


# Lines at the edges of JSON: the parser's fast path must give exactly what json.loads
# gives (value and type) or fail with json.loads' message.
PARSER_CORPUS = [
    '{"a": 1, "a": 2}',
    '{"n": 18446744073709551616}',
    '{"n": -9223372036854775809, "m": {"x": 123456789012345678901234567890}}',
    '{"n": [1, [2, 18446744073709551616]]}',
    '{"f": 1.5, "g": 1e2, "h": -0.0}',
    '{"x": NaN}',
    '{"x": Infinity}',
    '{"x": 1e400}',
    '{"s": "\\ud800"}',
    '{"s": "\\ud83d\\ude00 caf\\u00e9 \\u0000"}',
    '{"s": "tab\\there"}',
    '{"s": "raw\ttab"}',
    '{"s": "raw\x01control"}',
    '{"s": "\\/ \\b \\f"}',
    '{"a": 1,}',
    "{'a': 1}",
    '{"a": 01}',
    '{"a": +1}',
    '{"a": .5}',
    '{"a": 1.}',
    '{"a": 0x10}',
    '{"a": 1} // note',
    '{"a": true, "b": false, "c": null, "d": []}',
    ' {"a": 1} ',
    '{"a": 1}\r',
    "\ufeff{}",
    "[1, 2]",
    '"just a string"',
    "18446744073709551616",
    "1.5",
    "null",
    '{"a": 1',
    '{"a": 1} {"b": 2}',
    "",
    "   ",
    '{"a": ' + "1" * 5000 + "}",
    '{"d": ' + "[" * 1100 + "]" * 1100 + "}",
    json.dumps(ft_row()),
]


def _outcome(parse: Any, line: str | bytes) -> tuple[str, Any]:
    try:
        value = parse(line)
    except RecursionError:
        return ("recursion", None)
    except ValueError as exc:
        return ("error", str(exc))
    return ("value", (value, repr(value), _types(value)))


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("line", PARSER_CORPUS)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_parse_json_line_agrees_with_json_loads(line: str, as_bytes: bool) -> None:
    from warehouse.rows import parse_json_line

    raw: str | bytes = line.encode("utf-8", "surrogatepass") if as_bytes else line
    expected = _outcome(json.loads, raw)
    got = _outcome(parse_json_line, raw)
    if expected[0] == "value" and expected[1][1] == "nan":
        assert got[0] == "value" and got[1][1] == "nan"
    else:
        assert got == expected


def test_a_line_nested_too_deeply_is_quarantined_not_raised() -> None:
    deep = '{"event_id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    batch = encode_lines(FT, [deep, json.dumps(ft_row())], source="f")
    assert (batch.rows_read, batch.rows_staged) == (2, 1)
    assert [(r.line_no, r.reason) for r in batch.rejected] == [
        (1, "malformed JSON: nested too deeply")
    ]
