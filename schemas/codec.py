"""The codec: JSON events in, Avro binary out and back, JSON-safe dicts for the warehouse.

* :func:`parse_event` validates a JSON object (the API's wire shape) against the schema
  version it names and returns the *Avro-ready* dict: ``uuid`` as a canonical
  lower-case string, timestamps as aware UTC ``datetime``, dates as ``date``, decimals
  as ``Decimal`` with exactly 4 places, currency and country codes upper case,
  optional fields filled with their defaults. Every problem is collected into one
  :class:`~schemas.exceptions.ValidationError`.
* :func:`encode` writes such a dict as schemaless Avro, by default in the Confluent
  wire format: magic byte ``0``, the 4-byte big-endian schema id, the Avro body.
* :func:`decode` reads framed data with the writer schema named by the id, and can
  resolve it to another version of the same event type.
* :func:`to_json` turns a record into JSON-safe values (decimals as strings,
  timestamps as ISO-8601 UTC with microseconds and ``Z``, dates as ``YYYY-MM-DD``).

Validators are compiled once per schema version from the ``.avsc`` documents (types
plus their ``sluice.*`` annotations) and cached; the functions here are pure.
"""

from __future__ import annotations

import decimal
import io
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Final, cast

import fastavro

from schemas import pii
from schemas.catalogue import SchemaCatalogue
from schemas.countries import COUNTRY_CODES
from schemas.currencies import MINOR_UNITS
from schemas.exceptions import (
    INVALID_ENUM,
    INVALID_FORMAT,
    INVALID_TYPE,
    MISMATCH,
    MISSING,
    OUT_OF_RANGE,
    SERVER_OWNED,
    UNKNOWN_FIELD,
    UNSUPPORTED_VERSION,
    CodecError,
    FieldError,
    FramingError,
    SchemaError,
    UnknownSchemaIdError,
    ValidationError,
)
from schemas.framing import (
    CONFLUENT_HEADER_SIZE,
    CONFLUENT_MAGIC,
    WireId,
    confluent_header,
    split,
    wire_id_of,
)
from schemas.models import DecodedEvent, SchemaVersion
from schemas.registry.base import SchemaResolver

MAGIC_BYTE: Final = CONFLUENT_MAGIC
HEADER_SIZE: Final = CONFLUENT_HEADER_SIZE
CONTENT_TYPE_AVRO: Final = "application/vnd.sluice.avro"
CONTENT_TYPE_JSON: Final = "application/json"

#: Longest accepted string when a field sets no ``sluice.max_length``.
DEFAULT_MAX_LENGTH: Final = 1024
IDENTIFIER_MAX_LENGTH: Final = 128
METADATA_MAX_ENTRIES: Final = 64
METADATA_KEY_MAX_LENGTH: Final = 128

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*\Z")
_MCC = re.compile(r"^[0-9]{4}\Z")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)\Z"
)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\Z")
# The canonical form ``str(uuid.UUID(...))`` gives: lower case, hyphenated.
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

_INVALID: Final = object()  # a value that failed validation (its errors were recorded)
_ABSENT: Final = object()  # a field the JSON object does not have

Errors = list[FieldError]
Validator = Callable[[Any, str, Errors], Any]
FastValidator = Callable[[Any], Any]
"""The success path of a validator: the same result for a valid value, else ``_INVALID``.

It builds no paths and records no errors; on ``_INVALID`` the caller runs the full
validator, which finds and describes every problem. A fast validator never accepts a
value the full one rejects, and returns an equal result for every value it accepts."""


def _with_fast(validator: Validator, fast: FastValidator) -> Validator:
    """Attach ``fast`` (the success path) to ``validator``."""
    validator._fast = fast  # type: ignore[attr-defined]
    return validator


def _fast_of(validator: Validator) -> FastValidator:
    """The success path of ``validator`` (the full validator itself when it has none)."""
    fast: FastValidator | None = getattr(validator, "_fast", None)
    if fast is not None:
        return fast

    def generic(value: Any) -> Any:
        return validator(value, "", [])

    return generic


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(errors: Errors, path: str, expected: str, value: Any) -> object:
    errors.append(FieldError(INVALID_TYPE, f"expected {expected}, got {_type_name(value)}", path))
    return _INVALID


# -- scalar validators -----------------------------------------------------------------


def _string_validator(attrs: Mapping[str, Any], logical: str | None) -> Validator:
    """A validator specialised, once, for the field's ``sluice.format``."""
    if logical == "uuid":
        return _validate_uuid
    fmt = attrs.get("sluice.format")
    check = _FORMAT_CHECKS.get(fmt) if isinstance(fmt, str) else None
    if check is None:
        max_length = int(attrs.get("sluice.max_length", 0)) or (
            IDENTIFIER_MAX_LENGTH if fmt == "identifier" else DEFAULT_MAX_LENGTH
        )
        check = _length_check(max_length, blank_ok=fmt is None, identifier=fmt == "identifier")

    def validate(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not str:
            return _wrong_type(errors, path, "a string", value)
        if "\x00" in value or (not value.isascii() and not _encodable(value)):
            errors.append(FieldError(INVALID_FORMAT, _unstorable(value) or "invalid text", path))
            return _INVALID
        return check(value, path, errors)

    if not isinstance(fmt, str) or fmt not in ("pan", "national-id"):
        fast = _fast_string(attrs, fmt, validate)
    else:
        special = check

        def fast(value: Any) -> Any:
            if type(value) is not str or "\x00" in value:
                return _INVALID
            if not value.isascii() and not _encodable(value):
                return _INVALID
            return special(value, "", [])

    return _with_fast(validate, fast)


def _fast_string(attrs: Mapping[str, Any], fmt: Any, full: Validator) -> FastValidator:
    """The success path of a plain, text, identifier or code string: ASCII values are
    checked here, anything else by the ``full`` validator."""
    if fmt == "iso4217" or fmt == "iso3166-alpha2":
        codes = MINOR_UNITS if fmt == "iso4217" else COUNTRY_CODES

        def code(value: Any) -> Any:
            if type(value) is not str or not value.isascii() or "\x00" in value:
                return full(value, "", [])
            upper = value.upper()
            return upper if upper in codes else _INVALID

        return code
    if fmt == "mcc":

        def mcc(value: Any) -> Any:
            if type(value) is str and value.isascii() and _MCC.match(value):
                return value
            return full(value, "", [])

        return mcc
    max_length = int(attrs.get("sluice.max_length", 0)) or (
        IDENTIFIER_MAX_LENGTH if fmt == "identifier" else DEFAULT_MAX_LENGTH
    )
    if fmt == "identifier":
        match = _IDENTIFIER.match

        def identifier(value: Any) -> Any:
            # The pattern starts with a letter or digit: a match is never blank.
            if (
                type(value) is str
                and value.isascii()
                and len(value) <= max_length
                and match(value)
                and "\x00" not in value
            ):
                return value
            return full(value, "", [])

        return identifier
    blank_ok = fmt is None

    def text(value: Any) -> Any:
        if (
            type(value) is str
            and value.isascii()
            and len(value) <= max_length
            and "\x00" not in value
            and (blank_ok or (not value.isspace() and value))
        ):
            return value
        return full(value, "", [])

    return text


def _length_check(max_length: int, *, blank_ok: bool, identifier: bool) -> Validator:
    def check(value: str, path: str, errors: Errors) -> Any:
        if not blank_ok and not value.strip():
            errors.append(FieldError(INVALID_FORMAT, "must not be empty or blank", path))
            return _INVALID
        if len(value) > max_length:
            msg = f"longer than {max_length} characters ({len(value)})"
            errors.append(FieldError(OUT_OF_RANGE, msg, path))
            return _INVALID
        if identifier and not _IDENTIFIER.match(value):
            msg = "an identifier starts with a letter or digit and holds no spaces"
            errors.append(FieldError(INVALID_FORMAT, msg, path))
            return _INVALID
        return value

    return check


def _check_currency(value: str, path: str, errors: Errors) -> Any:
    code = value.upper()
    if code not in MINOR_UNITS:
        msg = f"{_short(value)} is not an ISO 4217 currency code"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    return code


def _check_country(value: str, path: str, errors: Errors) -> Any:
    code = value.upper()
    if code not in COUNTRY_CODES:
        msg = f"{_short(value)} is not an ISO 3166-1 alpha-2 country code"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    return code


def _check_mcc(value: str, path: str, errors: Errors) -> Any:
    if not _MCC.match(value):
        msg = "a merchant category code is exactly four digits (ISO 18245)"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(value: str) -> str | None:
    """Why ``value`` cannot travel to the warehouse, if it cannot (NUL, lone surrogates)."""
    if value.isascii():
        return "must not contain NUL characters" if "\x00" in value else None
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text (lone surrogate)"
    return None


def _validate_uuid(value: Any, path: str, errors: Errors) -> Any:
    if not isinstance(value, str):
        return _wrong_type(errors, path, "a UUID string", value)
    if not _UUID.match(value):
        msg = "expected a UUID like 2f1c8c4e-3b4d-4f5e-9a6b-7c8d9e0f1a2b"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    return str(uuid.UUID(value))


def _fast_uuid(value: Any) -> Any:
    if type(value) is str and _CANONICAL_UUID.match(value):
        return value  # already what str(uuid.UUID(value)) gives
    return _validate_uuid(value, "", []) if isinstance(value, str) else _INVALID


_with_fast(_validate_uuid, _fast_uuid)


def _validate_pan(value: str, path: str, errors: Errors) -> Any:
    if pii.is_masked_card_number(value):
        return value
    digits = value.replace(" ", "").replace("-", "")
    if digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19 and pii.luhn_valid(digits):
        return digits
    # The value is never echoed: it may be a card number.
    msg = "expected a card number (12-19 digits, Luhn-valid) or its masked form first6******last4"
    errors.append(FieldError(INVALID_FORMAT, msg, path))
    return _INVALID


def _validate_national_id(value: str, path: str, errors: Errors) -> Any:
    if pii.is_hmac_national_id(value):
        return value
    if not value.strip() or len(value) > 64:
        msg = "expected a national id of 1-64 characters, or its hmac-sha256:<hex> form"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    return value


_FORMAT_CHECKS: dict[str, Validator] = {
    "pan": _validate_pan,
    "national-id": _validate_national_id,
    "iso4217": _check_currency,
    "iso3166-alpha2": _check_country,
    "mcc": _check_mcc,
}


def _int_validator(kind: str) -> Validator:
    low, high = (-(2**31), 2**31 - 1) if kind == "int" else (-(2**63), 2**63 - 1)

    def validate(value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return _wrong_type(errors, path, "an integer", value)
        if not low <= value <= high:
            errors.append(FieldError(OUT_OF_RANGE, f"outside the {kind} range", path))
            return _INVALID
        return value

    def fast(value: Any) -> Any:
        if type(value) is int and low <= value <= high:
            return value
        return validate(value, "", [])

    return _with_fast(validate, fast)


def _bounds(attrs: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    low, high = attrs.get("sluice.minimum"), attrs.get("sluice.maximum")
    return (
        Decimal(str(low)) if low is not None else None,
        Decimal(str(high)) if high is not None else None,
    )


def _check_bounds(
    value: Decimal | float, low: Decimal | None, high: Decimal | None, path: str, errors: Errors
) -> bool:
    if low is not None and value < low:
        errors.append(FieldError(OUT_OF_RANGE, f"must be at least {low}", path))
        return False
    if high is not None and value > high:
        errors.append(FieldError(OUT_OF_RANGE, f"must be at most {high}", path))
        return False
    return True


def _double_validator(attrs: Mapping[str, Any]) -> Validator:
    low, high = _bounds(attrs)

    def validate(value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _wrong_type(errors, path, "a number", value)
        number = float(value)
        if not math.isfinite(number):
            errors.append(FieldError(INVALID_FORMAT, "must be a finite number", path))
            return _INVALID
        if not _check_bounds(Decimal(repr(number)), low, high, path, errors):
            return _INVALID
        return number

    # Rounding to the nearest double is monotonic, so a double strictly inside the
    # doubles nearest to the bounds has its shortest decimal form inside the bounds.
    low_f = -math.inf if low is None else float(low)
    high_f = math.inf if high is None else float(high)

    def fast(value: Any) -> Any:
        if type(value) is float and low_f < value < high_f:
            return value
        return validate(value, "", [])

    return _with_fast(validate, fast)


def _boolean(value: Any, path: str, errors: Errors) -> Any:
    if not isinstance(value, bool):
        return _wrong_type(errors, path, "true or false", value)
    return value


_with_fast(_boolean, lambda value: value if type(value) is bool else _INVALID)


def _decimal_validator(schema: Mapping[str, Any], attrs: Mapping[str, Any]) -> Validator:
    precision = int(schema["precision"])
    scale = int(schema.get("scale", 0))
    quantum = Decimal(1).scaleb(-scale)
    max_integer_digits = precision - scale
    low, high = _bounds(attrs)

    def validate(value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            return _wrong_type(errors, path, "a decimal string or a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(INVALID_FORMAT, "must be a finite number", path))
            return _INVALID
        if isinstance(value, str) and not _DECIMAL_TEXT.match(value.strip()):
            msg = 'expected a decimal number written like "125.40"'
            errors.append(FieldError(INVALID_FORMAT, msg, path))
            return _INVALID
        try:
            # repr() of a float is its shortest round-tripping form: 0.1 -> "0.1".
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            errors.append(FieldError(INVALID_FORMAT, "not a decimal number", path))
            return _INVALID
        if not number.is_finite():
            errors.append(FieldError(INVALID_FORMAT, "must be a finite number", path))
            return _INVALID
        if not number.is_zero() and number.adjusted() + 1 > max_integer_digits:
            msg = f"more than {precision} digits ({max_integer_digits} before the decimal point)"
            errors.append(FieldError(OUT_OF_RANGE, msg, path))
            return _INVALID
        quantized = number.quantize(quantum, rounding=ROUND_DOWN)
        if quantized != number:
            errors.append(FieldError(OUT_OF_RANGE, f"more than {scale} decimal places", path))
            return _INVALID
        if not _check_bounds(quantized, low, high, path, errors):
            return _INVALID
        # -0 and +0 are the same amount; keep the canonical 0.
        return quantized + 0 if quantized.is_zero() else quantized

    match = _DECIMAL_TEXT.match

    def fast(value: Any) -> Any:
        if type(value) is not str or not match(value):
            return validate(value, "", [])
        number = Decimal(value)
        if number.is_zero() or number.adjusted() + 1 > max_integer_digits:
            return validate(value, "", [])
        quantized = number.quantize(quantum, rounding=ROUND_DOWN)
        if quantized != number:
            return _INVALID
        if (low is not None and quantized < low) or (high is not None and quantized > high):
            return _INVALID
        return quantized

    return _with_fast(validate, fast)


def _timestamp(value: Any, path: str, errors: Errors) -> Any:
    if not isinstance(value, str):
        return _wrong_type(errors, path, "an ISO-8601 timestamp string", value)
    if not _TIMESTAMP.match(value):
        msg = "expected an ISO-8601 timestamp with a UTC offset, like 2026-01-31T09:30:00Z"
        errors.append(FieldError(INVALID_FORMAT, msg, path))
        return _INVALID
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        errors.append(FieldError(INVALID_FORMAT, "not a valid date and time", path))
        return _INVALID
    if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        errors.append(FieldError(INVALID_FORMAT, "the timestamp needs a UTC offset", path))
        return _INVALID
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        errors.append(FieldError(OUT_OF_RANGE, "outside the representable range", path))
        return _INVALID


_with_fast(_timestamp, lambda value: _timestamp(value, "", []))


def _date(value: Any, path: str, errors: Errors) -> Any:
    if not isinstance(value, str):
        return _wrong_type(errors, path, "a date string YYYY-MM-DD", value)
    if not _DATE.match(value):
        errors.append(FieldError(INVALID_FORMAT, "expected a date like 2026-01-31", path))
        return _INVALID
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(INVALID_FORMAT, "not a valid calendar date", path))
        return _INVALID


def _enum_validator(symbols: list[str]) -> Validator:
    allowed = frozenset(symbols)
    listing = ", ".join(symbols)

    def validate(value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, str):
            return _wrong_type(errors, path, f"one of {listing}", value)
        if value not in allowed:
            errors.append(
                FieldError(INVALID_ENUM, f"{_short(value)} is not one of {listing}", path)
            )
            return _INVALID
        return value

    def fast(value: Any) -> Any:
        return value if type(value) is str and value in allowed else _INVALID

    return _with_fast(validate, fast)


def _map_validator(values: Validator) -> Validator:
    def validate(value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, dict):
            return _wrong_type(errors, path, "an object", value)
        if len(value) > METADATA_MAX_ENTRIES:
            msg = f"at most {METADATA_MAX_ENTRIES} entries ({len(value)})"
            errors.append(FieldError(OUT_OF_RANGE, msg, path))
            return _INVALID
        out: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            item_path = _join(path, str(key))
            if (
                not isinstance(key, str)
                or not key
                or len(key) > METADATA_KEY_MAX_LENGTH
                or _unstorable(key)
            ):
                msg = f"keys are 1-{METADATA_KEY_MAX_LENGTH} characters"
                errors.append(FieldError(INVALID_FORMAT, msg, item_path))
                ok = False
                continue
            result = values(item, item_path, errors)
            if result is _INVALID:
                ok = False
            out[key] = result
        return out if ok else _INVALID

    fast_values = _fast_of(values)

    def fast(value: Any) -> Any:
        if type(value) is not dict or len(value) > METADATA_MAX_ENTRIES:
            return _INVALID
        out: dict[str, Any] = {}
        for key, item in value.items():
            if (
                type(key) is not str
                or not key
                or len(key) > METADATA_KEY_MAX_LENGTH
                or not key.isascii()
                or "\x00" in key
            ):
                return _INVALID
            result = fast_values(item)
            if result is _INVALID:
                return _INVALID
            out[key] = result
        return out

    return _with_fast(validate, fast)


def _array_validator(items: Validator) -> Validator:
    def validate(value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, list):
            return _wrong_type(errors, path, "an array", value)
        out = [items(item, f"{path}[{i}]", errors) for i, item in enumerate(value)]
        return _INVALID if any(v is _INVALID for v in out) else out

    fast_items = _fast_of(items)

    def fast(value: Any) -> Any:
        if type(value) is not list:
            return _INVALID
        out = [fast_items(item) for item in value]
        return _INVALID if any(v is _INVALID for v in out) else out

    return _with_fast(validate, fast)


def _nullable(inner: Validator) -> Validator:
    def validate(value: Any, path: str, errors: Errors) -> Any:
        return None if value is None else inner(value, path, errors)

    fast_inner = _fast_of(inner)
    return _with_fast(validate, lambda value: None if value is None else fast_inner(value))


def _not_null(inner: Validator) -> Validator:
    def validate(value: Any, path: str, errors: Errors) -> Any:
        if value is None:
            errors.append(FieldError(INVALID_TYPE, "must not be null", path))
            return _INVALID
        return inner(value, path, errors)

    fast_inner = _fast_of(inner)
    return _with_fast(validate, lambda value: _INVALID if value is None else fast_inner(value))


def _null(value: Any, path: str, errors: Errors) -> Any:
    return None if value is None else _wrong_type(errors, path, "null", value)


_with_fast(_null, lambda value: None if value is None else _INVALID)


# -- records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    validate: Validator  # for non-null values
    nullable: bool
    has_default: bool
    default: Any
    server_owned: bool
    currency_field: str | None


class _RecordValidator:
    """Validates one JSON object against one Avro record; rejects unknown keys."""

    def __init__(self, fields: list[_FieldSpec]) -> None:
        self.fields = fields
        self.names = frozenset(f.name for f in fields)
        self.money = [f for f in fields if f.currency_field is not None]
        self.fast = _fast_record(fields, self.names)
        self._fast = self.fast

    def __call__(
        self, value: Any, path: str, errors: Errors, *, allow_server_fields: bool = False
    ) -> Any:
        if not isinstance(value, dict):
            return _wrong_type(errors, path, "an object", value)
        ok = True
        names = self.names
        for key in value:
            if key not in names:
                errors.append(
                    FieldError(UNKNOWN_FIELD, "not a field of this schema", _join(path, str(key)))
                )
                ok = False
        out: dict[str, Any] = {}
        for spec in self.fields:
            name = spec.name
            item = value.get(name, _ABSENT)
            if item is _ABSENT:
                if spec.has_default:
                    default = spec.default
                    if isinstance(default, dict):
                        default = dict(default)
                    elif isinstance(default, list):
                        default = list(default)
                    out[name] = default
                else:
                    errors.append(
                        FieldError(MISSING, "required", f"{path}.{name}" if path else name)
                    )
                    ok = False
            elif spec.server_owned and not allow_server_fields:
                message = "set by the server; clients may not send it"
                errors.append(FieldError(SERVER_OWNED, message, f"{path}.{name}" if path else name))
                ok = False
            elif item is None:
                if spec.nullable:
                    out[name] = None
                else:
                    message = "must not be null"
                    errors.append(
                        FieldError(INVALID_TYPE, message, f"{path}.{name}" if path else name)
                    )
                    ok = False
            else:
                result = spec.validate(item, f"{path}.{name}" if path else name, errors)
                if result is _INVALID:
                    ok = False
                out[name] = result
        for spec in self.money:
            if not self._check_currency_places(spec, out, path, errors):
                ok = False
        return out if ok else _INVALID

    @staticmethod
    def _check_currency_places(
        spec: _FieldSpec, out: dict[str, Any], path: str, errors: Errors
    ) -> bool:
        amount, currency = out.get(spec.name), out.get(spec.currency_field or "")
        if not isinstance(amount, Decimal) or not isinstance(currency, str):
            return True
        places = MINOR_UNITS[currency]
        if amount != amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):
            msg = f"{currency} amounts have at most {places} decimal places"
            errors.append(FieldError(OUT_OF_RANGE, msg, _join(path, spec.name)))
            return False
        return True


# currency -> the quantum of its minor units (EUR: Decimal("0.01")).
_MINOR_QUANTA: Final = {code: Decimal(1).scaleb(-places) for code, places in MINOR_UNITS.items()}


def _fast_record(fields: list[_FieldSpec], names: frozenset[str]) -> Callable[..., Any]:
    """The success path of a record: one flat loop, no paths, no error objects."""
    # (name, fast validator, nullable, has default, default, default kind, server owned)
    plan = tuple(
        (
            f.name,
            _fast_of(f.validate),
            f.nullable,
            f.has_default,
            f.default,
            dict if isinstance(f.default, dict) else list if isinstance(f.default, list) else None,
            f.server_owned,
        )
        for f in fields
    )
    money = tuple((f.name, f.currency_field or "") for f in fields if f.currency_field)
    superset = names.issuperset

    def fast(value: Any, allow_server_fields: bool = False) -> Any:
        if type(value) is not dict or not superset(value):
            return _INVALID
        out: dict[str, Any] = {}
        get = value.get
        for name, validate, nullable, has_default, default, copy, server_owned in plan:
            item = get(name, _ABSENT)
            if item is _ABSENT:
                if not has_default:
                    return _INVALID
                out[name] = copy(default) if copy is not None else default
            elif server_owned and not allow_server_fields:
                return _INVALID
            elif item is None:
                if not nullable:
                    return _INVALID
                out[name] = None
            else:
                result = validate(item)
                if result is _INVALID:
                    return _INVALID
                out[name] = result
        for amount_name, currency_name in money:
            amount, currency = out.get(amount_name), out.get(currency_name)
            if isinstance(amount, Decimal) and isinstance(currency, str):
                quantum = _MINOR_QUANTA.get(currency)
                if quantum is None or amount != amount.quantize(quantum, rounding=ROUND_DOWN):
                    return _INVALID
        return out

    return fast


class _Compiler:
    """Builds validators from one schema document (named types resolved in order)."""

    def __init__(self) -> None:
        self.named: dict[str, Validator] = {}
        self.path: list[str] = []  # the field being compiled, for error messages

    def unsupported(self, message: str) -> SchemaError:
        return SchemaError(message, field=".".join(self.path) or None, code="unsupported_schema")

    def type_(self, schema: Any, attrs: Mapping[str, Any], namespace: str | None) -> Validator:
        """A validator for ``schema`` that handles ``null`` itself (map values, items)."""
        validator, nullable = self.field_type(schema, attrs, namespace)
        return _nullable(validator) if nullable else _not_null(validator)

    def field_type(
        self, schema: Any, attrs: Mapping[str, Any], namespace: str | None
    ) -> tuple[Validator, bool]:
        """A validator for non-null values of ``schema``, and whether null is allowed."""
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) != 1:
                raise self.unsupported("the codec supports unions of null and one other type only")
            return self.raw(branches[0], attrs, namespace), "null" in schema
        return self.raw(schema, attrs, namespace), False

    def raw(self, schema: Any, attrs: Mapping[str, Any], namespace: str | None) -> Validator:
        if isinstance(schema, str):
            return self.named_or_primitive(schema, attrs, namespace)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if kind == "record":
            full = _fullname(schema, namespace)
            validator = self.record(schema, full.rpartition(".")[0] or None)
            self.named[full] = validator
            return validator
        if kind == "enum":
            enum = _enum_validator(schema["symbols"])
            self.named[_fullname(schema, namespace)] = enum
            return enum
        if kind == "array":
            return _array_validator(self.type_(schema["items"], {}, namespace))
        if kind == "map":
            return _map_validator(self.type_(schema["values"], {}, namespace))
        if logical == "decimal" and kind == "bytes":
            return _decimal_validator(schema, attrs)
        if logical in ("timestamp-micros", "timestamp-millis"):
            return _timestamp
        if logical == "date":
            return _date
        if kind == "string":
            return _string_validator(attrs, logical)
        return self.named_or_primitive(kind, attrs, namespace)

    def named_or_primitive(
        self, name: str, attrs: Mapping[str, Any], namespace: str | None
    ) -> Validator:
        if name == "string":
            return _string_validator(attrs, None)
        if name in ("int", "long"):
            return _int_validator(name)
        if name in ("float", "double"):
            return _double_validator(attrs)
        if name == "boolean":
            return _boolean
        if name == "null":
            return _null
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        for candidate in (full, name):
            if candidate in self.named:
                return self.named[candidate]
        raise self.unsupported(f"the codec cannot validate type {name!r}")

    def record(self, schema: Mapping[str, Any], namespace: str | None) -> _RecordValidator:
        specs = []
        for field in schema["fields"]:
            attrs = {k: v for k, v in field.items() if k.startswith("sluice.")}
            self.path.append(field["name"])
            validator, nullable = self.field_type(field["type"], attrs, namespace)
            self.path.pop()
            specs.append(
                _FieldSpec(
                    name=field["name"],
                    validate=validator,
                    nullable=nullable,
                    has_default="default" in field,
                    default=field.get("default"),
                    server_owned=bool(field.get("sluice.server_owned", False)),
                    currency_field=field.get("sluice.currency_field"),
                )
            )
        return _RecordValidator(specs)


def _fullname(schema: Mapping[str, Any], namespace: str | None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


# id(schema version) -> (that schema version, its compiled validator). The version is
# kept so that its id cannot be reused by another object while the entry exists.
_VALIDATORS: dict[int, tuple[SchemaVersion, _RecordValidator]] = {}


def compile_validator(sv: SchemaVersion) -> None:
    """Build (and cache) the validator of ``sv`` now; the catalogue calls it at load time.

    Raises:
        SchemaError: the schema uses a construct the codec cannot validate (a union of
            two non-null types, a ``fixed`` decimal, ...), naming the file and field.
    """
    try:
        _validator_for(sv)
    except SchemaError as exc:
        file = sv.path.name if sv.path else f"{sv.event_type}.v{sv.version}"
        raise SchemaError(
            str(exc).split(": ", 1)[-1] if exc.field else str(exc),
            file=file,
            field=exc.field,
            code=exc.code,
        ) from exc


def _validator_for(sv: SchemaVersion) -> _RecordValidator:
    entry = _VALIDATORS.get(id(sv))
    if entry is None or entry[0] is not sv:
        entry = (sv, _Compiler().record(sv.schema, sv.schema.get("namespace")))
        _VALIDATORS[id(sv)] = entry
    return entry[1]


# schemas.catalogue (a cached function), looked up once: the package imports this module.
_SHIPPED: list[Callable[[], SchemaCatalogue]] = []


def _catalogue(catalogue: SchemaCatalogue | None) -> SchemaCatalogue:
    if catalogue is not None:
        return catalogue
    if not _SHIPPED:
        from schemas import catalogue as shipped

        _SHIPPED.append(shipped)
    return _SHIPPED[0]()


_RESOLVER: list[Callable[[], SchemaResolver]] = []


def _default_resolver() -> SchemaResolver:
    if not _RESOLVER:
        from schemas.registry import default_resolver

        _RESOLVER.append(default_resolver)
    return _RESOLVER[0]()


# id(catalogue) -> (that catalogue, {(event type, version): schema version}).
_VERSIONS: dict[int, tuple[SchemaCatalogue, dict[tuple[str, int], SchemaVersion]]] = {}


def _versions_of(cat: SchemaCatalogue) -> dict[tuple[str, int], SchemaVersion]:
    entry = _VERSIONS.get(id(cat))
    if entry is None or entry[0] is not cat:
        entry = (cat, {(sv.event_type, sv.version): sv for sv in cat})
        _VERSIONS[id(cat)] = entry
    return entry[1]


# -- public API ------------------------------------------------------------------------


def parse_event(
    event_type: str,
    obj: Any,
    *,
    allow_server_fields: bool = False,
    catalogue: SchemaCatalogue | None = None,
) -> dict[str, Any]:
    """Validate a JSON object and return the Avro-ready dict.

    The schema version is the one the body's ``schema_version`` names; the body's
    ``event_type`` must equal ``event_type``. Unknown fields (at any level) are
    rejected, optional fields are filled with their defaults, and server-owned
    fields (``ingested_at``) are rejected unless ``allow_server_fields`` (for records
    that come back from the stream as JSON, where the server had set them).

    Raises:
        ValidationError: with every problem found, each a ``FieldError`` with a stable
            code and a dotted path.
        UnknownSchemaError: ``event_type`` is not in the catalogue (a routing
            problem, not a problem with the body).
    """
    cat = _catalogue(catalogue)
    if type(obj) is dict and type(event_type) is str:
        version = obj.get("schema_version")
        if type(version) is int and obj.get("event_type") == event_type:
            exact = _versions_of(cat).get((event_type, version))
            if exact is not None:
                result = _validator_for(exact).fast(obj, allow_server_fields)
                if result is not _INVALID:
                    return cast(dict[str, Any], result)
    # Something is wrong (or unusual): the full validation finds and describes it.
    event_type = str(event_type)
    sv = cat.latest(event_type)
    errors: Errors = []
    if not isinstance(obj, dict):
        _wrong_type(errors, "", "a JSON object", obj)
        raise ValidationError(errors, event_type=event_type)
    version = obj.get("schema_version")
    version_known = (
        isinstance(version, int) and not isinstance(version, bool) and cat.has(event_type, version)
    )
    if version_known:
        sv = cat.get(event_type, version)
    result = _validator_for(sv)(obj, "", errors, allow_server_fields=allow_server_fields)
    body_type = obj.get("event_type")
    if isinstance(body_type, str) and body_type != event_type:
        msg = f"the body says {_short(body_type)} but the event is posted as {event_type!r}"
        errors.append(FieldError(MISMATCH, msg, "event_type"))
    if isinstance(version, int) and not isinstance(version, bool) and not version_known:
        known = ", ".join(str(v.version) for v in cat.versions(event_type))
        errors.append(
            FieldError(UNSUPPORTED_VERSION, f"{event_type} has versions {known}", "schema_version")
        )
    if errors or not isinstance(result, dict):
        raise ValidationError(errors, event_type=event_type)
    return result


def validate_record(
    event_type: str, record: Mapping[str, Any], *, catalogue: SchemaCatalogue | None = None
) -> dict[str, Any]:
    """Re-check a record that is already Avro-ready (as :func:`parse_event` returns).

    Converts it back to JSON values and parses those, so the same rules apply;
    server-owned fields are allowed.
    """
    return parse_event(event_type, to_json(record), allow_server_fields=True, catalogue=catalogue)


def encode(
    event_type: str,
    record: Mapping[str, Any],
    *,
    version: int | None = None,
    framed: bool = True,
    catalogue: SchemaCatalogue | None = None,
    registry: SchemaResolver | None = None,
) -> bytes:
    """Avro-encode ``record`` (as :func:`parse_event` returns it).

    The writer version is ``version``, else the record's ``schema_version``, else the
    latest; ``version`` and ``schema_version`` must agree when both are given. With
    ``framed`` (the default) the header naming the writer schema comes first: the
    registry's (``registry``, else the process's registry from
    ``SLUICE_SCHEMA_REGISTRY``; the Confluent header with the catalogue's fixed id when
    ``catalogue`` is given), looked up once per schema version.

    Raises:
        CodecError: the record does not fit the schema.
        UnknownSchemaError: unknown event type or version.
        SchemaNotRegisteredError: the registry does not hold that version.
        RegistryUnavailableError: the registry cannot be asked now (retryable).
    """
    resolver: SchemaResolver | None = None
    if catalogue is None and framed:
        resolver = registry if registry is not None else _default_resolver()
        cat = resolver.catalogue
    else:
        cat = registry.catalogue if registry is not None else _catalogue(catalogue)
    record_version = record.get("schema_version")
    if version is not None and record_version is not None and record_version != version:
        raise CodecError(
            f"cannot encode a schema_version {record_version!r} record as version {version}",
            code="version_mismatch",
        )
    wanted = version if version is not None else record_version
    sv = None
    if type(wanted) is int and type(event_type) is str:
        sv = _versions_of(cat).get((event_type, wanted))
    if sv is None:
        sv = cat.get(str(event_type), wanted if isinstance(wanted, int) else None)
    header = b""
    if framed:
        header = resolver.header(sv) if resolver is not None else confluent_header(sv.schema_id)
    compress = resolver is not None and resolver.compress
    writer = _writer_for(sv)
    if writer is not None:
        out = bytearray() if compress else bytearray(header)
        try:
            writer(out, record)
        except (_NotCompiled, *_WRITE_ERRORS):
            pass  # fastavro below writes it, or says precisely what does not fit
        else:
            return resolver.frame_body(header, out) if compress and resolver else bytes(out)
    buffer = io.BytesIO()
    if not compress:
        buffer.write(header)
    payload = dict(record)
    event_id = payload.get("event_id")
    if isinstance(event_id, uuid.UUID):
        payload["event_id"] = str(event_id)
    try:
        fastavro.schemaless_writer(buffer, sv.codec_parsed or sv.parsed, payload)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error) as exc:
        raise CodecError(
            f"{sv.event_type} v{sv.version}: record does not fit the schema: {exc}",
            code="encode_failed",
        ) from exc
    if compress and resolver is not None:
        return resolver.frame_body(header, buffer.getvalue())
    return buffer.getvalue()


# -- the compiled Avro writer ----------------------------------------------------------
#
# Avro binary for the codec's own records, compiled once per schema version into
# closures that append to a bytearray. It writes exactly what fastavro's
# ``schemaless_writer`` writes for the values ``parse_event`` produces; a value it does
# not recognise (or cannot write) raises, and :func:`encode` then hands the record to
# fastavro, whose result or error is the reference.

Writer = Callable[[bytearray, Any], None]

_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAYS: Final = date(1970, 1, 1).toordinal()
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


# Enough precision that scaling a schema's decimal never rounds.
_EXACT: Final = decimal.Context(prec=100, Emin=-999999, Emax=999999)
_POWERS_OF_TEN: Final = tuple(10**n for n in range(40))


class _NotCompiled(Exception):
    """A value (or schema construct) the compiled writer leaves to fastavro."""


def _zigzag(n: int) -> bytes:
    """``n`` as an Avro long: zig-zag, then base-128 varint."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise _NotCompiled("long out of range")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_LONGS: Final = tuple(_zigzag(n) for n in range(1024))


def _write_long(buf: bytearray, value: Any) -> None:
    if type(value) is not int:
        raise _NotCompiled("not an int")
    buf += _SMALL_LONGS[value] if 0 <= value < 1024 else _zigzag(value)


def _write_string(buf: bytearray, value: Any) -> None:
    if type(value) is not str:
        raise _NotCompiled("not a str")
    data = value.encode()
    size = len(data)
    buf += _SMALL_LONGS[size] if size < 1024 else _zigzag(size)
    buf += data


def _write_bytes(buf: bytearray, value: Any) -> None:
    if type(value) is not bytes:
        raise _NotCompiled("not bytes")
    size = len(value)
    buf += _SMALL_LONGS[size] if size < 1024 else _zigzag(size)
    buf += value


def _write_double(buf: bytearray, value: Any) -> None:
    if type(value) is not float:
        raise _NotCompiled("not a float")
    buf += _DOUBLE.pack(value)


def _write_float(buf: bytearray, value: Any) -> None:
    if type(value) is not float:
        raise _NotCompiled("not a float")
    buf += _FLOAT.pack(value)


def _write_boolean(buf: bytearray, value: Any) -> None:
    if type(value) is not bool:
        raise _NotCompiled("not a bool")
    buf += b"\x01" if value else b"\x00"


def _write_null(buf: bytearray, value: Any) -> None:
    if value is not None:
        raise _NotCompiled("not None")


def _write_timestamp_micros(buf: bytearray, value: Any) -> None:
    if type(value) is datetime and value.tzinfo is not None:
        delta = value - _EPOCH
        _write_long(buf, (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    else:
        _write_long(buf, value)


def _write_timestamp_millis(buf: bytearray, value: Any) -> None:
    if type(value) is datetime and value.tzinfo is not None:
        delta = value - _EPOCH
        _write_long(buf, (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000)
    else:
        _write_long(buf, value)


def _write_date(buf: bytearray, value: Any) -> None:
    _write_long(buf, value.toordinal() - _EPOCH_DAYS if type(value) is date else value)


def _decimal_writer(schema: Mapping[str, Any]) -> Writer:
    precision = int(schema["precision"])
    scale = int(schema.get("scale", 0))

    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not Decimal:
            raise _NotCompiled("not a Decimal")
        sign, digits, exponent = value.as_tuple()
        if type(exponent) is not int or len(digits) > precision or exponent + scale < 0:
            raise _NotCompiled("decimal outside the schema")
        # The coefficient as an int (exact: the exponent only moves the point).
        shift = exponent + scale
        unscaled = abs(int(value.scaleb(-exponent, _EXACT)))
        unscaled *= _POWERS_OF_TEN[shift] if shift < 40 else 10**shift
        # The size comes from the magnitude, as fastavro computes it.
        size = (unscaled.bit_length() + 8) // 8
        _write_bytes(buf, (-unscaled if sign else unscaled).to_bytes(size, "big", signed=True))

    return write


def _enum_writer(symbols: Sequence[str]) -> Writer:
    index = {symbol: _zigzag(i) for i, symbol in enumerate(symbols)}

    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not str:
            raise _NotCompiled("not a str")
        buf += index[value]

    return write


def _map_writer(values: Writer) -> Writer:
    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not dict:
            raise _NotCompiled("not a dict")
        if value:
            buf += _zigzag(len(value))
            for key, item in value.items():
                _write_string(buf, key)
                values(buf, item)
        buf += b"\x00"

    return write


def _array_writer(items: Writer) -> Writer:
    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not list:
            raise _NotCompiled("not a list")
        if value:
            buf += _zigzag(len(value))
            for item in value:
                items(buf, item)
        buf += b"\x00"

    return write


def _optional_writer(inner: Writer, null_index: int) -> Writer:
    null_tag, value_tag = _zigzag(null_index), _zigzag(1 - null_index)

    def write(buf: bytearray, value: Any) -> None:
        if value is None:
            buf += null_tag
        else:
            buf += value_tag
            inner(buf, value)

    return write


def _record_writer(fields: Sequence[tuple[str, Writer]]) -> Writer:
    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not dict:
            raise _NotCompiled("not a dict")
        for name, writer in fields:
            writer(buf, value[name])

    return write


_PRIMITIVE_WRITERS: Final[dict[str, Writer]] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_long,
    "long": _write_long,
    "float": _write_float,
    "double": _write_double,
    "bytes": _write_bytes,
    "string": _write_string,
}


def _compile_writer(schema: Any, named: dict[str, Writer]) -> Writer:
    """A writer for a fastavro-parsed schema (raises ``_NotCompiled`` when unsupported)."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return _PRIMITIVE_WRITERS[schema]
        if schema in named:
            return named[schema]
        raise _NotCompiled(f"type {schema!r}")
    if isinstance(schema, list):
        if len(schema) == 2 and "null" in schema:
            null_index = schema.index("null")
            return _optional_writer(_compile_writer(schema[1 - null_index], named), null_index)
        raise _NotCompiled("union")
    kind, logical = schema["type"], schema.get("logicalType")
    if kind == "record":
        fields = [(f["name"], _compile_writer(f["type"], named)) for f in schema["fields"]]
        writer = _record_writer(fields)
        named[schema["name"]] = writer
        return writer
    if kind == "enum":
        writer = _enum_writer(schema["symbols"])
        named[schema["name"]] = writer
        return writer
    if kind == "map":
        return _map_writer(_compile_writer(schema["values"], named))
    if kind == "array":
        return _array_writer(_compile_writer(schema["items"], named))
    if logical == "decimal" and kind == "bytes":
        return _decimal_writer(schema)
    if logical == "timestamp-micros" and kind == "long":
        return _write_timestamp_micros
    if logical == "timestamp-millis" and kind == "long":
        return _write_timestamp_millis
    if logical == "date" and kind == "int":
        return _write_date
    if logical is None or (logical == "uuid" and kind == "string"):
        return _compile_writer(kind, named) if logical is None else _write_string
    raise _NotCompiled(f"logical type {logical!r}")


# id(schema version) -> (that schema version, its compiled writer or None).
_WRITERS: dict[int, tuple[SchemaVersion, Writer | None]] = {}


def _writer_for(sv: SchemaVersion) -> Writer | None:
    entry = _WRITERS.get(id(sv))
    if entry is None or entry[0] is not sv:
        try:
            writer: Writer | None = _compile_writer(sv.codec_parsed or sv.parsed, {})
        except (_NotCompiled, KeyError, TypeError, ValueError):
            writer = None  # fastavro writes every record of this version
        entry = (sv, writer)
        _WRITERS[id(sv)] = entry
    return entry[1]


_WRITE_ERRORS: Final = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    ArithmeticError,
    struct.error,
)


def schema_id_of(data: bytes | bytearray | memoryview) -> WireId:
    """The id in a framed value's header: a Confluent schema id (an int) or a Glue
    schema version id (a UUID); checks the first byte and the header's length."""
    return wire_id_of(data)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    reader_version: int | None = None,
    catalogue: SchemaCatalogue | None = None,
    registry: SchemaResolver | None = None,
) -> DecodedEvent:
    """Decode a framed value (Confluent or Glue framing) with the writer schema its
    header names.

    The id in the header is resolved by ``registry``; without one, by the process's
    registry (``SLUICE_SCHEMA_REGISTRY``, :func:`schemas.registry.default_resolver`),
    or, when ``catalogue`` is given, by that catalogue's fixed ids.

    With ``reader_version``, the record is resolved to that version of the same event
    type (Avro schema resolution: added fields get their defaults, removed ones are
    dropped); its ``schema_version`` field still says what it was written with.

    Raises:
        FramingError: too short for a header, or a first byte other than 0 or 3.
        UnknownSchemaIdError: the registry has no such id, or its schema is not in the
            catalogue.
        RegistryUnavailableError: the registry cannot be asked now (retryable).
        CodecError: the body is truncated or does not match the schema.
    """
    wire_id, body = split(data)
    if registry is None and catalogue is not None:
        if not isinstance(wire_id, int):
            raise UnknownSchemaIdError(f"Glue schema version {wire_id} without a registry")
        try:
            writer = catalogue.by_id(wire_id)
        except SchemaError as exc:
            raise UnknownSchemaIdError(f"unknown schema id {wire_id}") from exc
        cat = catalogue
    else:
        resolver = registry if registry is not None else _default_resolver()
        writer = resolver.writer(wire_id)
        cat = resolver.catalogue
    reader = writer if reader_version is None else cat.get(writer.event_type, reader_version)
    record = _read(body, writer, reader)
    return DecodedEvent(writer.event_type, reader.version, writer.schema_id, record, wire_id)


def decode_value(
    data: bytes | bytearray | memoryview,
    *,
    content_type: str | None = None,
    event_type: str | None = None,
    catalogue: SchemaCatalogue | None = None,
    registry: SchemaResolver | None = None,
) -> DecodedEvent:
    """Decode a stream record's value, framed Avro (either framing) or JSON.

    ``content_type`` is the record's ``content-type`` header/attribute when it has
    one: ``application/json`` selects the JSON path, anything else (or nothing) the
    framed Avro path, except that a value starting with ``{`` is taken for JSON when
    no content type is given (the magic byte of the wire format is 0, never ``{``).
    A JSON value is validated like an API body, with server-owned fields allowed; its
    event type is ``event_type`` or else the body's own ``event_type``.

    Raises:
        CodecError: invalid JSON, or a JSON value without a known event type; any
            error :func:`decode` raises for Avro.
        ValidationError: a JSON value that breaks the contract.
    """
    view = memoryview(data)
    is_json = (
        content_type.split(";")[0].strip().lower() == CONTENT_TYPE_JSON
        if content_type
        else len(view) > 0 and view[0] == 0x7B
    )
    if not is_json:
        return decode(view, catalogue=catalogue, registry=registry)
    cat = _catalogue(catalogue)
    try:
        body = json.loads(bytes(view))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"value is not valid JSON: {exc}", code="invalid_json") from exc
    name = event_type or (body.get("event_type") if isinstance(body, dict) else None)
    if not isinstance(name, str) or name not in cat.event_types():
        raise CodecError(
            "JSON value without a known event_type; pass event_type from the record's headers",
            code="unknown_event_type",
        )
    record = parse_event(name, body, allow_server_fields=True, catalogue=cat)
    sv = cat.get(name, record["schema_version"])
    return DecodedEvent(sv.event_type, sv.version, sv.schema_id, record)


def decode_unframed(
    data: bytes | bytearray | memoryview,
    event_type: str,
    version: int,
    *,
    reader_version: int | None = None,
    catalogue: SchemaCatalogue | None = None,
) -> dict[str, Any]:
    """Decode a schemaless Avro body written with ``version`` of ``event_type``."""
    cat = _catalogue(catalogue)
    writer = cat.get(str(event_type), version)
    reader = writer if reader_version is None else cat.get(writer.event_type, reader_version)
    return _read(bytes(data), writer, reader)


def _read(body: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    stream = io.BytesIO(body)
    writer_schema = writer.codec_parsed or writer.parsed
    try:
        if reader is writer:
            record = fastavro.schemaless_reader(stream, writer_schema)
        else:
            reader_schema = reader.codec_parsed or reader.parsed
            record = fastavro.schemaless_reader(stream, writer_schema, reader_schema)
    except EOFError as exc:
        raise FramingError(
            f"truncated {writer.event_type} v{writer.version} body ({len(body)} bytes)",
            code="truncated",
        ) from exc
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise CodecError(
            f"body does not decode as {writer.event_type} v{writer.version}: {exc}",
            code="decode_failed",
        ) from exc
    if stream.tell() != len(body):
        raise CodecError(
            f"{len(body) - stream.tell()} trailing byte(s) after the "
            f"{writer.event_type} v{writer.version} body",
            code="trailing_bytes",
        )
    if not isinstance(record, dict):  # pragma: no cover - the top level is a record
        raise CodecError("decoded value is not a record", code="decode_failed")
    event_id = record.get("event_id")
    if isinstance(event_id, uuid.UUID):
        record["event_id"] = str(event_id)
    return record


def to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of ``record``: ``Decimal`` -> string, ``datetime`` -> ISO-8601 UTC
    with microseconds and ``Z``, ``date`` -> ``YYYY-MM-DD``, ``UUID`` -> string."""
    return {key: _json_value(value) for key, value in record.items()}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CodecError("naive datetime in a record; timestamps must be timezone-aware")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    raise CodecError(f"cannot convert {type(value).__name__} to JSON")


def example_event(event_type: str, *, version: int | None = None) -> dict[str, Any]:
    """A valid JSON example of ``event_type`` (latest version unless ``version``)."""
    sv = _catalogue(None).get(str(event_type), version)
    examples = _EXAMPLES.get(sv.event_type)
    if examples is None:
        raise SchemaError(f"no example for {sv.event_type}")
    event: dict[str, Any] = {}
    for name in sv.field_names:
        if name in examples:
            event[name] = examples[name]
    event["schema_version"] = sv.version
    copied: dict[str, Any] = _deep_copy(event)
    return copied


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


_EXAMPLES: dict[str, dict[str, Any]] = {
    "financial-transaction": {
        "event_id": "8a4a1c55-2a47-4d8e-9c2e-5b0f3f6a7d21",
        "event_type": "financial-transaction",
        "occurred_at": "2026-01-31T09:30:00.123456Z",
        "source": "core-banking",
        "tenant_id": "acme-bank",
        "transaction_id": "txn-000001",
        "account_id": "acc-42",
        "amount": "125.40",
        "currency": "EUR",
        "transaction_type": "PURCHASE",
        "channel": "CARD",
        "status": "SETTLED",
        "card_number": "411111******1111",
        "merchant": {"name": "Corner Bakery", "mcc": "5462", "country": "DE"},
        "metadata": {"terminal": "T-17"},
        "authorization_code": "A1B2C3",
        "fraud_score": 0.02,
    },
    "insurance-claim": {
        "event_id": "5f0c2b9e-7d1a-4c3b-8e6f-1a2b3c4d5e6f",
        "event_type": "insurance-claim",
        "occurred_at": "2026-01-30T17:05:00Z",
        "source": "claims-portal",
        "tenant_id": "acme-insurance",
        "claim_id": "clm-1001",
        "policy_id": "pol-77",
        "policyholder_id": "ph-9",
        "line_of_business": "AUTO",
        "loss_date": "2026-01-29",
        "reported_at": "2026-01-30T17:04:12+01:00",
        "claim_amount": "2400.00",
        "currency": "GBP",
        "status": "OPENED",
        "cause_of_loss": "rear-end collision",
        "claimant_national_id": None,
        "loss_location": {"country": "GB", "region": "Greater London", "postal_code": "SW1A 1AA"},
        "metadata": {"channel": "web"},
        "adjuster_id": "adj-3",
        "reserve_amount": "2000.00",
    },
}
