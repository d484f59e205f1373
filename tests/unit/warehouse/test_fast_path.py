"""The loader's typed fast path gives exactly what the line-by-line path gives.

:func:`warehouse.rows.encode_file` decodes lines without backslashes straight into
typed records; every other line, and every line those records or checks refuse, takes
:func:`warehouse.rows.encode_lines`' path. The property below builds files from rows
with edge values in every column (and from malformed lines) and requires the same
COPY text, the same rows read and the same rejections, line numbers and reasons.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.warehouse.contract import ft_row, ic_row
from warehouse.models import ColumnKind, TargetTable
from warehouse.rows import EncodedBatch, encode_file, encode_lines, encoder_for, fast_encoder_for
from warehouse.tables import spec_for

FT = TargetTable.FINANCIAL_TRANSACTIONS
IC = TargetTable.INSURANCE_CLAIMS

UUIDS = [
    "9f1c2d3e-0000-4000-8000-000000000001",
    "9F1C2D3E-0000-4000-8000-00000000000A",
    "9f1c2d3e000040008000000000000001",
    "9f1c2d3e-0000-4000-8000-00000000001",
    "9f1c2d3e-0000-4000-8000-000000000001\n",
    "{9f1c2d3e-0000-4000-8000-000000000001}",
    "",
    7,
]
TIMESTAMPS = [
    "2026-11-22T03:00:00.123456Z",
    "2026-11-22T03:00:00Z",
    "2026-11-22 03:00:00+05:30",
    "2026-01-31T23:59:59.5-08:00",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-04-30T00:00:00Z",
    "2026-11-22T03:00:00",
    "2026-11-22T03:00:00.1234567Z",
    "2026-11-22T24:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-11-22t03:00:00z",
    "yesterday",
    1700000000,
]
DECIMALS = [
    "125.40",
    "-0.0001",
    "99999999999999.9999",
    "100000000000000",
    "1.23456",
    "1e3",
    " 12 ",
    "ten",
    12,
    12.5,
    0.1,
    True,
    [1],
]
DATES = ["2026-11-20", "2024-02-29", "2026-02-29", "2026-11-20T00:00:00", "20261120", 5]
INTS = [1, 0, -(2**31), 2**31 - 1, 2**31, 1.0, True, "1", 10**30]
MAPS = [
    {},
    {"channel": "ios"},
    {"a": "1", "b": "2"},
    {"k": "caf\u00e9", "\u00e9": "v"},
    {"k": "del\x7f"},
    {"k": 'q"uote'},
    {"k": "tab\there"},
    {"k": 1},
    {"k": {"n": "v"}},
    {"k": None},
    {f"k{i}": "v" for i in range(20)},
    [],
    "{}",
]


def _texts(limit: int | None) -> list[Any]:
    n = limit or 40
    return [
        "plain",
        "",
        "x" * n,
        "x" * (n + 1),
        "\u00e9" * (n // 2),
        "\u00e9" * (n // 2 + 1),
        "\u20ac" * max(1, n // 3),
        "\U0001f600" * max(1, n // 4 + 1),
        "back\\slash",
        "tab\tand\nnewline",
        "nul\x00",
        "del\x7f",
        "\u2028line sep",
        "\\N",
        "None",
        5411,
        True,
        1.5,
        {"x": "y"},
    ]


def _choices(table: TargetTable) -> dict[str, list[Any]]:
    by_kind: dict[ColumnKind, list[Any]] = {
        ColumnKind.UUID: UUIDS,
        ColumnKind.TIMESTAMP: TIMESTAMPS,
        ColumnKind.DECIMAL: DECIMALS,
        ColumnKind.DATE: DATES,
        ColumnKind.INT: INTS,
        ColumnKind.JSON: MAPS,
    }
    out = {}
    for c in spec_for(table).columns:
        values = by_kind.get(c.kind) or _texts(c.max_length)
        out[c.name] = [*values, None]
    out["event_type"] = [
        table.event_type.value,
        "financial-transaction",
        "insurance-claim",
        "other",
        None,
    ]
    return out


MISSING = object()


def clean_row(table: TargetTable) -> dict[str, Any]:
    """A valid row whose JSON needs no escapes (the fast path's usual input)."""
    if table is FT:
        return ft_row(merchant_name="Merchant 1", metadata={"channel": "ios"})
    return ic_row()


def single_changes() -> list[tuple[TargetTable, str, Any]]:
    return [
        (table, name, value)
        for table in (FT, IC)
        for name, values in _choices(table).items()
        for value in [*values, MISSING]
    ]


@pytest.mark.parametrize(("table", "name", "value"), single_changes())
@pytest.mark.parametrize("ascii_only", [True, False])
def test_every_edge_value_alone_gives_the_same_result(
    table: TargetTable, name: str, value: Any, ascii_only: bool
) -> None:
    row = clean_row(table)
    if value is MISSING:
        del row[name]
    else:
        row[name] = value
    content = json.dumps(row, ensure_ascii=ascii_only, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )
    assert encode_file(table, content, source="s3://b/clean/f.gz") == line_by_line(table, content)


@st.composite
def rows(draw: st.DrawFn, table: TargetTable) -> bytes:
    """One line: a valid row with some columns changed, dropped or doubled."""
    row = clean_row(table)
    choices = _choices(table)
    for name in draw(st.sets(st.sampled_from(sorted(choices)), max_size=4)):
        value = draw(st.sampled_from([*choices[name], MISSING]))
        if value is MISSING:
            del row[name]
        else:
            row[name] = value
    if draw(st.booleans()):
        row["extra"] = draw(st.sampled_from(["x", [1, {"y": None}], {"deep": [[[]]]}, 1e300]))
    ascii_only = draw(st.booleans())
    compact = draw(st.booleans())
    line = json.dumps(
        row,
        ensure_ascii=ascii_only,
        separators=(",", ":") if compact else None,
        allow_nan=True,
        default=str,
    )
    if draw(st.booleans()) and '"currency":' in line:
        # a duplicate key: the last one wins on both paths
        line = line[:-1] + ', "currency": "USD"}'
    return line.encode("utf-8", "surrogatepass")


ODD_LINES = [
    b"",
    b"   ",
    b"\t",
    b"[1, 2]",
    b"null",
    b'"text"',
    b"{",
    b'{"a": 1} {"b": 2}',
    b"\xff\xfe not utf8",
    b"\xef\xbb\xbf{}",
    b'{"event_id": NaN}',
    b'{"x": ' + b"[" * 995 + b"]" * 995 + b"}",
    b'{"x": ' + b"[" * 1005 + b"]" * 1005 + b"}",
    b'{"x": ' + b"[" * 1200 + b"]" * 1200 + b"}",
    b"\x00{}",
]


def files(table: TargetTable) -> st.SearchStrategy[bytes]:
    line = st.one_of(rows(table), rows(table), st.sampled_from(ODD_LINES))
    ending = st.sampled_from([b"\n", b"\r\n"])
    return st.builds(
        lambda lines, end, trailing: end.join(lines) + (end if trailing else b""),
        st.lists(line, min_size=1, max_size=6),
        ending,
        st.booleans(),
    )


def line_by_line(table: TargetTable, data: bytes) -> EncodedBatch:
    """The reference: every line through :func:`encode_lines`, decoded on its own."""
    lines: list[bytes | str] = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw)
    return encode_lines(table, lines, source="s3://b/clean/f.gz")


@pytest.mark.parametrize("table", [FT, IC])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_agrees_with_the_line_by_line_path(
    table: TargetTable, data: st.DataObject
) -> None:
    content = data.draw(files(table))
    assert encode_file(table, content, source="s3://b/clean/f.gz") == line_by_line(table, content)


@pytest.mark.parametrize(
    ("table", "row"),
    [
        (FT, ft_row(merchant_name="Plain Name", metadata={"channel": "ios"})),
        (IC, ic_row()),
        (FT, ft_row(merchant_name="Caf\u00e9 M\u00fcller", metadata={"k": "\u00e9"})),
    ],
)
def test_clean_rows_take_the_fast_path(table: TargetTable, row: dict[str, Any]) -> None:
    """A row as the transform writes it (compact UTF-8, no escapes) is decoded typed."""
    raw = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    assert b"\\" not in raw
    line = fast_encoder_for(table).encode(raw, ascii=raw.isascii())
    assert line is not None
    assert line == encoder_for(table).encode(row)


def test_rows_the_fast_path_refuses_are_worded_by_the_slow_path() -> None:
    lines = [
        json.dumps(ft_row(metadata={})),
        json.dumps(ft_row(amount="1.23456", metadata={})),
        "",
        json.dumps(ft_row(occurred_at="2026-02-29T00:00:00Z", metadata={})),
        json.dumps(ft_row(currency="EURO", metadata={})),
    ]
    batch = encode_file(FT, "\n".join(lines).encode(), source="f")
    assert (batch.rows_read, batch.rows_staged) == (4, 1)
    assert [(r.line_no, r.reason) for r in batch.rejected] == [
        (2, "amount: more than 4 decimal places"),
        (4, "occurred_at: not an ISO-8601 timestamp"),
        (5, "currency: longer than 3 bytes"),
    ]


def test_the_transforms_own_lines_take_the_fast_path() -> None:
    """The transform's serialiser and the fast path agree on what a clean line is."""
    from firehose_transforms import jsonio
    from firehose_transforms.clean import to_row
    from schemas import codec

    for event_type in ("financial-transaction", "insurance-claim"):
        table = TargetTable.for_event_type(event_type)
        row = to_row(codec.parse_event(event_type, codec.example_event(event_type)), hmac_key=b"k")
        raw = jsonio.dumps_line(row).rstrip(b"\n")
        assert fast_encoder_for(table).encode(raw, ascii=raw.isascii()) == encoder_for(
            table
        ).encode(row)
