"""Pure row handling: validate warehouse rows, encode them for ``COPY ... FROM STDIN``.

One compiled :class:`RowEncoder` per target table turns a row in the warehouse row
shape (a dict, or one NDJSON line of a zone file) into one line of PostgreSQL's COPY
text format, or into the reason it is rejected. The checks mirror the column types of
the DDL (uuid text, integer, timestamptz with an offset, date, DECIMAL(18,4) without
rounding, bounded VARCHAR in bytes, JSON object), so a row that passes here is a row
the warehouse takes: nothing is rounded, truncated or dropped on the way in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from json.scanner import make_scanner
from typing import Annotated, Any

from warehouse.models import Column, ColumnKind, RejectedRow, TableSpec, TargetTable
from warehouse.tables import spec_for

NULL = "\\N"
MAX_RAW_CHARS = 60000

# \Z, not $ (which also matches before a final newline); ASCII digits only.
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
# Canonical ISO-8601 with an offset and every field in range (year 0001 and later)
# except the day's upper bound per month, checked by a full parse when the day is above 28.
_TS_CANONICAL = re.compile(
    r"^(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z",
    re.ASCII,
)
_JSON_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')
_DECIMAL = re.compile(r"^-?\d{1,14}(?:\.\d{1,4})?\Z", re.ASCII)
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_DECIMAL_STEP = Decimal("0.0001")
_DECIMAL_LIMIT = Decimal(10) ** 14
_INT32 = 2**31
_dump_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class RowRejected(ValueError):
    """Raised inside the encoder for a value the warehouse would not take."""


Converter = Callable[[Any], str]


def copy_escape(text: str) -> str:
    """``text`` escaped for a field of the COPY text format (NUL refused)."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    if "\x00" in text:
        raise RowRejected("contains a NUL character")
    return text.translate(_COPY_ESCAPES)


def _text(column: Column) -> Converter:
    limit = column.max_length
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is str:
            text = value
        elif type(value) is int:
            text = str(value)
        else:
            raise RowRejected(f"{name}: expected a string, got {type(value).__name__}")
        if limit is not None and len(text) * 4 > limit and len(text.encode()) > limit:
            raise RowRejected(f"{name}: longer than {limit} bytes")
        return copy_escape(text)

    return convert


def _uuid(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is not str or _UUID.match(value) is None:
            raise RowRejected(f"{name}: not a UUID")
        return value.lower()

    return convert


def _int(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is not int or not -_INT32 <= value < _INT32:
            raise RowRejected(f"{name}: expected a 32-bit integer")
        return str(value)

    return convert


def _timestamp(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is str and _TS_CANONICAL.match(value) and value[8:10] <= "28":
            return value
        if type(value) is not str:
            raise RowRejected(f"{name}: expected an ISO-8601 timestamp string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RowRejected(f"{name}: not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise RowRejected(f"{name}: timestamp without a UTC offset")
        if _TS_CANONICAL.match(value):
            return value
        return parsed.isoformat()

    return convert


def _date(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is not str:
            raise RowRejected(f"{name}: expected a YYYY-MM-DD date string")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise RowRejected(f"{name}: not a YYYY-MM-DD date") from None

    return convert


def _decimal(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is str:
            if _DECIMAL.match(value):
                return value
            text = value
        elif type(value) in (int, float):
            text = repr(value)
        else:
            raise RowRejected(f"{name}: expected a decimal string or number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise RowRejected(f"{name}: not a decimal number") from None
        if not number.is_finite() or abs(number) >= _DECIMAL_LIMIT:
            raise RowRejected(f"{name}: out of range for DECIMAL(18,4)")
        if number != number.quantize(_DECIMAL_STEP):
            raise RowRejected(f"{name}: more than 4 decimal places")
        return format(number.quantize(_DECIMAL_STEP), "f")

    return convert


def _json(column: Column) -> Converter:
    name = column.name

    def convert(value: Any) -> str:
        if type(value) is not dict:
            raise RowRejected(f"{name}: expected a JSON object")
        text = _json_of_strings(value) if len(value) < 16 else None
        if text is not None:
            return text
        try:
            text = _dump_json(value)
        except ValueError:
            raise RowRejected(f"{name}: NaN or Infinity is not JSON") from None
        if "\\u0000" in text:
            raise RowRejected(f"{name}: contains a NUL character")
        return copy_escape(text)

    return convert


def _json_of_strings(obj: dict[Any, Any]) -> str | None:
    """Compact JSON of a small ``{str: str}`` object needing no escapes, else ``None``.

    The common ``metadata`` shape, written without the encoder's per-call cost; the
    output is byte for byte what ``_dump_json`` writes for it.
    """
    parts = []
    for key, val in obj.items():
        if type(key) is not str or type(val) is not str:
            return None
        if _JSON_UNSAFE.search(key) or _JSON_UNSAFE.search(val):
            return None
        parts.append(f'"{key}":"{val}"')
    return "{" + ",".join(parts) + "}"


_FACTORIES: dict[ColumnKind, Callable[[Column], Converter]] = {
    ColumnKind.TEXT: _text,
    ColumnKind.UUID: _uuid,
    ColumnKind.INT: _int,
    ColumnKind.TIMESTAMP: _timestamp,
    ColumnKind.DATE: _date,
    ColumnKind.DECIMAL: _decimal,
    ColumnKind.JSON: _json,
}


class RowEncoder:
    """Validates rows of one table and encodes them as COPY text lines.

    Text columns (most of a row) are checked inline; the other kinds go through their
    converter. Every check is the same whichever path a value takes.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.event_type = spec.table.event_type.value
        self._names = spec.column_names
        self._texts: tuple[tuple[int, str, bool, int, Converter], ...] = tuple(
            (i, c.name, c.nullable, c.max_length or 0, _text(c))
            for i, c in enumerate(spec.columns)
            if c.kind is ColumnKind.TEXT
        )
        self._others: tuple[tuple[int, str, bool, Converter], ...] = tuple(
            (i, c.name, c.nullable, _FACTORIES[c.kind](c))
            for i, c in enumerate(spec.columns)
            if c.kind is not ColumnKind.TEXT
        )

    def encode(self, row: Mapping[str, Any]) -> str:
        """One COPY text line (with the newline) for ``row``; raises :class:`RowRejected`."""
        get = row.get
        vals: list[Any] = [get(n) for n in self._names]
        for i, name, nullable, limit, slow in self._texts:
            v = vals[i]
            if type(v) is str:
                if (
                    (limit and len(v) > limit >> 2 and (len(v) > limit or not v.isascii()))
                    or "\\" in v
                    or "\t" in v
                    or "\n" in v
                    or "\r" in v
                ):
                    vals[i] = slow(v)
            elif v is None:
                if not nullable:
                    raise RowRejected(f"{name}: required")
                vals[i] = NULL
            else:
                vals[i] = slow(v)
        for i, name, nullable, convert in self._others:
            v = vals[i]
            if v is None:
                if not nullable:
                    raise RowRejected(f"{name}: required")
                vals[i] = NULL
            else:
                vals[i] = convert(v)
        if get("event_type") != self.event_type:
            raise RowRejected(
                f"event_type: {get('event_type')!r} does not belong in {self.spec.table.value}"
            )
        if "\x00" in (line := "\t".join(vals)):
            raise RowRejected("contains a NUL character")
        if not line.isascii():
            try:
                line.encode()
            except UnicodeEncodeError:
                raise RowRejected(
                    "contains text that is not valid Unicode (a lone surrogate)"
                ) from None
        return line + "\n"

    def values(self, row: Mapping[str, Any]) -> tuple[str | None, ...]:
        """The validated values as plain strings (for parameterised INSERTs)."""
        return self.values_from_line(self.encode(row))

    @staticmethod
    def values_from_line(line: str) -> tuple[str | None, ...]:
        """An encoded COPY line back into plain values (``None`` for NULL)."""
        return tuple(None if f == NULL else _copy_unescape(f) for f in line[:-1].split("\t"))


def _copy_unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out: list[str] = []
    it = iter(field)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


@cache
def encoder_for(table: TargetTable) -> RowEncoder:
    """The (cached) encoder of ``table``."""
    return RowEncoder(spec_for(table))


@dataclass(slots=True)
class EncodedBatch:
    """COPY text for the good rows of one source, and the rejected ones."""

    source: str
    text: list[str]
    rows_read: int
    rejected: list[RejectedRow]

    @property
    def rows_staged(self) -> int:
        """Rows that will be staged."""
        return self.rows_read - len(self.rejected)


def raw_text(raw: bytes | str) -> str:
    """A quarantined line as text: undecodable bytes replaced, length bounded."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")  # text columns cannot hold NUL
    if len(text) > MAX_RAW_CHARS:
        return text[:MAX_RAW_CHARS] + "...[truncated]"
    return text


def encode_lines(table: TargetTable, lines: Iterable[bytes | str], *, source: str) -> EncodedBatch:
    """Validate NDJSON lines (1-based line numbers; blank lines are not rows)."""
    encode = encoder_for(table).encode
    text: list[str] = []
    rejected: list[RejectedRow] = []
    read = 0
    for line_no, raw in enumerate(lines, start=1):
        if not raw or raw.isspace():
            continue
        read += 1
        _encode_line(table, encode, raw, line_no, source, text, rejected)
    return EncodedBatch(source, text, read, rejected)


def _encode_line(
    table: TargetTable,
    encode: Callable[[Mapping[str, Any]], str],
    raw: bytes | str,
    line_no: int,
    source: str,
    text: list[str],
    rejected: list[RejectedRow],
) -> None:
    """One NDJSON line: its COPY text appended to ``text``, or its rejection to ``rejected``."""
    try:
        obj = parse_json_line(raw)
    except ValueError as exc:
        reason = f"malformed JSON: {_json_reason(exc)}"
        rejected.append(RejectedRow(source, line_no, reason, raw_text(raw), table))
        return
    except RecursionError:
        reason = "malformed JSON: nested too deeply"
        rejected.append(RejectedRow(source, line_no, reason, raw_text(raw), table))
        return
    if type(obj) is not dict:
        rejected.append(RejectedRow(source, line_no, "not a JSON object", raw_text(raw), table))
        return
    try:
        text.append(encode(obj))
    except RowRejected as exc:
        rejected.append(RejectedRow(source, line_no, str(exc), raw_text(raw), table))


def encode_file(table: TargetTable, data: bytes, *, source: str) -> EncodedBatch:
    """Validate a whole NDJSON file (the loader's path; same result as :func:`encode_lines`).

    Lines with no backslash (what the transform writes for nearly every event) are
    decoded straight into typed records by :mod:`msgspec` and encoded without building
    a dict: in such a line no JSON string holds an escape, so each value is the text
    between its quotes and (control characters being invalid inside JSON strings)
    needs no COPY escaping. Any other line, and any line the typed decode or the
    checks refuse, takes the line-by-line path, which words the rejection. Both paths
    give the same COPY text for every line (property-tested), so the choice never
    changes what is loaded or quarantined.
    """
    fast_encode = fast_encoder_for(table).encode
    encode = encoder_for(table).encode
    text: list[str] = []
    rejected: list[RejectedRow] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # a trailing newline ends the last line; it does not add one
    blank = 0
    no_escapes = b"\\" not in data
    all_ascii = data.isascii()
    for line_no, raw in enumerate(lines, start=1):
        if no_escapes or b"\\" not in raw:
            line = fast_encode(raw, ascii=all_ascii or raw.isascii())
            if line is not None:
                text.append(line)
                continue
        if not raw or raw.isspace():
            blank += 1
            continue
        _encode_line(table, encode, _utf8(raw), line_no, source, text, rejected)
    read = len(lines) - blank
    return EncodedBatch(source, text, read, rejected)


def _utf8(raw: bytes) -> bytes | str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # json.loads words the error; raw_text keeps the bytes readable


class FastRowEncoder:
    """The typed fast path of one table (see :func:`encode_file`).

    A :func:`msgspec.defstruct` record built from the table's columns (so the column
    list and limits have one source, the DDL spec) lets the decoder itself enforce
    what it can: strings, 32-bit integers, required columns, length limits and maps
    of strings. What is left (UUIDs, timestamps, decimals,
    dates) uses the slow path's own patterns and converters, and the line is written
    straight from the record's attributes.
    """

    def __init__(self, spec: TableSpec) -> None:
        import msgspec

        self.spec = spec
        self.event_type = spec.table.event_type.value
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for c in spec.columns:
            typ = _FAST_TYPES[c.kind](c)
            fields.append((c.name, typ | None, None) if c.nullable else (c.name, typ))
        record = msgspec.defstruct(f"Fast_{spec.table.value}", fields, kw_only=True, gc=False)
        self._decode = msgspec.json.Decoder(record).decode
        self._json = msgspec.json.encode
        self._errors = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, RowRejected)
        self._convert: dict[str, Converter] = {
            c.name: _FACTORIES[c.kind](c)
            for c in spec.columns
            if c.kind in (ColumnKind.TIMESTAMP, ColumnKind.DECIMAL, ColumnKind.DATE)
        }
        self._limits = tuple(
            (c.name, c.max_length)
            for c in spec.columns
            if c.kind is ColumnKind.TEXT and c.max_length is not None
        )
        self._tail: Callable[[Any], str] = (
            self._transaction if spec.table is TargetTable.FINANCIAL_TRANSACTIONS else self._claim
        )

    def encode(self, raw: bytes, *, ascii: bool) -> str | None:
        """The COPY line of a line without backslashes, or ``None`` for the slow path.

        ``ascii`` says the line is plain ASCII, where the decoder's length limits (in
        characters) are the columns' limits in bytes; otherwise text values are
        measured in UTF-8 as the slow path measures them.
        """
        try:
            r: Any = self._decode(raw)
            if r.event_type != self.event_type:
                return None
            line = self._envelope(r) + self._tail(r)
        except self._errors:
            return None
        if not ascii:
            for name, limit in self._limits:
                v = getattr(r, name)
                if v is not None and len(v) * 4 > limit and len(v.encode()) > limit:
                    return None
        return line

    def _time(self, value: str, column: str) -> str:
        if _TS_MATCH(value) is not None and value[8:10] <= "28":
            return value
        return self._convert[column](value)

    def _envelope(self, r: Any) -> str:
        """The envelope columns (every table starts with them), tab-terminated."""
        event_id, occurred, ingested = r.event_id, r.occurred_at, r.ingested_at
        if (
            ingested is None
            or _ENVELOPE_MATCH(f"{event_id}|{occurred}|{ingested}") is None
            or occurred[8:10] > "28"
            or ingested[8:10] > "28"
        ):
            # one of the three needs a look of its own (or ingested_at is null)
            if _UUID_MATCH(event_id) is None:
                raise RowRejected("event_id")
            if _TS_MATCH(occurred) is None or occurred[8:10] > "28":
                occurred = self._convert["occurred_at"](occurred)
            if ingested is None:
                ingested = NULL
            elif _TS_MATCH(ingested) is None or ingested[8:10] > "28":
                ingested = self._convert["ingested_at"](ingested)
        source, metadata = r.source, r.metadata
        return (
            f"{event_id.lower()}\t{r.event_type}\t{r.schema_version}\t{occurred}\t{ingested}\t"
            f"{NULL if source is None else source}\t{r.tenant_id}\t"
            f"{NULL if metadata is None else self._json(metadata).decode()}\t"
        )

    def _transaction(self, r: Any) -> str:
        amount = r.amount
        if _DECIMAL_MATCH(amount) is None:
            amount = self._convert["amount"](amount)
        return (
            f"{r.transaction_id}\t{r.account_id}\t{amount}\t"
            f"{r.currency}\t"
            f"{NULL if r.transaction_type is None else r.transaction_type}\t"
            f"{NULL if r.channel is None else r.channel}\t"
            f"{NULL if r.status is None else r.status}\t"
            f"{NULL if r.card_number is None else r.card_number}\t"
            f"{NULL if r.merchant_name is None else r.merchant_name}\t"
            f"{NULL if r.merchant_mcc is None else r.merchant_mcc}\t"
            f"{NULL if r.merchant_country is None else r.merchant_country}\n"
        )

    def _claim(self, r: Any) -> str:
        loss_date, reported, amount = r.loss_date, r.reported_at, r.claim_amount
        if _DECIMAL_MATCH(amount) is None:
            amount = self._convert["claim_amount"](amount)
        return (
            f"{r.claim_id}\t{r.policy_id}\t"
            f"{NULL if r.policyholder_id is None else r.policyholder_id}\t"
            f"{NULL if r.line_of_business is None else r.line_of_business}\t"
            f"{NULL if loss_date is None else self._convert['loss_date'](loss_date)}\t"
            f"{NULL if reported is None else self._time(reported, 'reported_at')}\t"
            f"{amount}\t{r.currency}\t"
            f"{NULL if r.status is None else r.status}\t"
            f"{NULL if r.cause_of_loss is None else r.cause_of_loss}\t"
            f"{NULL if r.claimant_national_id is None else r.claimant_national_id}\t"
            f"{NULL if r.loss_location_country is None else r.loss_location_country}\t"
            f"{NULL if r.loss_location_region is None else r.loss_location_region}\t"
            f"{NULL if r.loss_location_postal_code is None else r.loss_location_postal_code}\n"
        )


_UUID_MATCH = _UUID.match
_TS_MATCH = _TS_CANONICAL.match
# event_id, occurred_at and ingested_at in one match. No pattern admits "|", so the
# joined text matches exactly when each value matches its own pattern.
_ENVELOPE_MATCH = re.compile(
    r"{}\|{}\|{}".format(
        _UUID.pattern.removeprefix("^").removesuffix("\\Z"),
        _TS_CANONICAL.pattern.removeprefix("^").removesuffix("\\Z"),
        _TS_CANONICAL.pattern.removeprefix("^"),
    ).join(("^", "")),
    re.ASCII,
).match
_DECIMAL_MATCH = _DECIMAL.match


def _fast_text(column: Column) -> Any:
    import msgspec

    if column.max_length is None:
        return str
    return Annotated[str, msgspec.Meta(max_length=column.max_length)]


def _fast_int(column: Column) -> Any:
    import msgspec

    return Annotated[int, msgspec.Meta(ge=-_INT32, lt=_INT32)]


def _fast_str(column: Column) -> Any:
    return str


def _fast_map(column: Column) -> Any:
    return dict[str, str]


_FAST_TYPES: dict[ColumnKind, Callable[[Column], Any]] = {
    ColumnKind.TEXT: _fast_text,
    ColumnKind.UUID: _fast_str,
    ColumnKind.INT: _fast_int,
    ColumnKind.TIMESTAMP: _fast_str,
    ColumnKind.DATE: _fast_str,
    ColumnKind.DECIMAL: _fast_str,
    ColumnKind.JSON: _fast_map,
}


@cache
def fast_encoder_for(table: TargetTable) -> FastRowEncoder:
    """The (cached) fast-path encoder of ``table``."""
    return FastRowEncoder(spec_for(table))


def encode_rows(
    table: TargetTable, rows: Iterable[Mapping[str, Any]], *, source: str
) -> EncodedBatch:
    """Validate row dicts (positions from 1); rejected rows keep their JSON form."""
    encode = encoder_for(table).encode
    text: list[str] = []
    rejected: list[RejectedRow] = []
    read = 0
    for pos, row in enumerate(rows, start=1):
        read += 1
        try:
            text.append(encode(row))
        except RowRejected as exc:
            rejected.append(RejectedRow(source, pos, str(exc), _row_json(row), table))
    return EncodedBatch(source, text, read, rejected)


_scan_once: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # the stub names the class, not the decoder
)


def parse_json_line(line: bytes | str) -> Any:
    """One NDJSON line as a Python value; ``ValueError`` when it is not one JSON value.

    Text lines go straight to the C scanner (the per-call work of ``json.loads`` is a
    fifth of the parse time of a row); anything unusual (bytes, surrounding
    whitespace, an error) takes ``json.loads``, which also words the error.
    """
    if type(line) is str:
        try:
            value, end = _scan_once(line, 0)
        except (StopIteration, ValueError):
            return json.loads(line)
        if end == len(line):
            return value
    return json.loads(line)


def _row_json(row: Mapping[str, Any]) -> str:
    return raw_text(json.dumps(dict(row), default=str, ensure_ascii=False))


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)
