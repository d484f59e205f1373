"""PII masking: card numbers, national ids, card numbers hidden in any text.

The one masking module of the project: the ingest API (before an event is published),
the transform (before a record reaches the warehouse) and the load generator call it.
Every function is pure and idempotent: masking a masked value returns it unchanged.

* Card numbers (PCI DSS v4 requirement 3.4.1: at most the first six and last four
  digits displayed): ``4111 1111 1111 1111`` -> ``411111******1111``. At least six
  digits always stay hidden, so a 12-digit PAN keeps two leading digits
  (``41******1111``) and a 13-digit one three. The mask keeps the PAN's length.
* National ids: keyed HMAC-SHA256 (key from ``SLUICE_PII_HMAC_KEY``) of the id with
  spaces, dashes, dots and slashes removed and letters upper-cased, so that
  ``123-45-6789`` and ``123456789`` hash alike: ``hmac-sha256:<64 hex digits>``.
* Text: a run of 12-19 digits (any Unicode decimal digits, normalised to ASCII before
  the Luhn check) with any separators between them (spaces, tabs, NBSP and other
  Unicode spaces, dashes, dots, slashes, several in a row) that passes the Luhn check
  is masked in place, separators kept.
* Records: :func:`mask_record` walks the event's Avro schema (every string field, at
  any depth, every map key and value, every array item); ``sluice.format: pan`` fields
  are masked as card numbers, ``national-id`` fields hashed, UUIDs left alone and every
  other string scanned as text. Without a schema every string and key is scanned.
* Messages: :func:`excerpt` is what an error message or a log line may show of a
  submitted value: short, with every long digit run masked whether Luhn-valid or not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import SecretStr

from schemas.exceptions import PiiError

HMAC_PREFIX: Final = "hmac-sha256:"
MASK_CHAR: Final = "*"
PAN_MIN_DIGITS: Final = 12
PAN_MAX_DIGITS: Final = 19
#: Digits of a PAN that a mask always hides (6 for a 12-digit PAN's first 2 / last 4).
MIN_HIDDEN_DIGITS: Final = 6
#: Longest excerpt of a submitted value an error message or log line may hold.
EXCERPT_CHARS: Final = 24
#: Kept for callers that name it: text is scanned from 12 digits on.
TEXT_PAN_MIN_DIGITS: Final = PAN_MIN_DIGITS

# Separators allowed between the digits of a card number written by hand: Unicode
# spaces (tab, NBSP, thin space... all of ``\s``), zero-width characters, dashes of
# every kind, dots, slashes, underscores and their fullwidth forms.
_SEP: Final = (
    r"[\s\u200b-\u200d\u2060\ufeff\u00ad_\-./\u2010-\u2015\u2212\u00b7\u30fb\uff0d\uff0e\uff0f]"
)
# A maximal run of digits with any number of separators between them (possessive: no
# backtracking over the run itself). ``\d`` matches every Unicode decimal digit.
_DIGIT_RUN = re.compile(rf"\d(?:{_SEP}*\d)*+")
# Is there any run of at least 12 digits at all? (the cheap test before the real scan)
_MAY_HOLD_PAN = re.compile(rf"\d(?:{_SEP}*\d){{{PAN_MIN_DIGITS - 1}}}").search
_DIGIT_GROUP = re.compile(r"\d+")
_NON_DIGITS = re.compile(r"\D+")
_MASKED_PAN = re.compile(r"^([0-9]{2,6})(\*{2,15})([0-9]{4})\Z")
_HMAC_VALUE = re.compile(r"^hmac-sha256:[0-9a-f]{64}\Z")
_PAN_SEPARATORS = re.compile(r"[ -]")
_ID_SEPARATORS = re.compile(r"[\s./-]")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
)

Key = str | bytes | SecretStr


# Luhn doubling of one digit, as a translation table: 5 -> 1 (10 -> 1 + 0), 7 -> 5, ...
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """True when the ASCII digit string ``digits`` passes the Luhn (mod 10) check."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return (kept + doubled) % 10 == 0


def ascii_digits(text: str) -> str:
    """The decimal digits of ``text`` (any script) as ASCII digits, everything else dropped."""
    digits = _NON_DIGITS.sub("", text)
    if digits.isascii():
        return digits
    return "".join(str(unicodedata.decimal(c)) for c in digits)


def visible_digits(length: int) -> tuple[int, int]:
    """``(first, last)``: digits a mask of a ``length``-digit PAN shows at each end.

    At most six first and four last, and at least :data:`MIN_HIDDEN_DIGITS` hidden.
    """
    shown = max(0, length - MIN_HIDDEN_DIGITS)
    last = min(4, shown)
    return min(6, shown - last), last


#: Per length, the full match of a PAN masked as :func:`mask_card_number` makes it.
_CANONICAL_MASKED: Final = {
    length: re.compile(rf"[0-9]{{{first}}}\*{{{length - first - 4}}}[0-9]{{4}}").fullmatch
    for length in range(PAN_MIN_DIGITS, PAN_MAX_DIGITS + 1)
    for first in (visible_digits(length)[0],)
}


def is_masked_card_number(value: str) -> bool:
    """True for a masked PAN as :func:`mask_card_number` makes it (12-19 characters).

    ``first`` digits (2-6), at least six ``*``... and the last four digits: exactly the
    shape :func:`visible_digits` gives for the value's length.
    """
    canonical = _CANONICAL_MASKED.get(len(value))
    return canonical is not None and canonical(value) is not None


def mask_card_number(pan: str) -> str:
    """``first6`` + ``*`` + ``last4`` of a card number (spaces and dashes dropped).

    A masked value is returned unchanged; a value masked with fewer than six hidden
    digits (``411111**1111``) is masked again. Raises :class:`PiiError` for a value that
    is neither a masked PAN nor 12-19 ASCII digits (the message does not echo it).
    """
    canonical = _CANONICAL_MASKED.get(len(pan))
    if canonical is not None and canonical(pan) is not None:
        return pan  # already masked with the shape visible_digits gives its length
    partly = _MASKED_PAN.match(pan)
    if partly is not None and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS:
        first, _ = visible_digits(len(pan))
        head = partly.group(1)[:first]
        return head + MASK_CHAR * (len(pan) - len(head) - 4) + partly.group(3)
    digits = _PAN_SEPARATORS.sub("", pan)
    if not (digits.isascii() and digits.isdigit()) or not (
        PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS
    ):
        raise PiiError("not a card number: expected 12-19 digits", code="invalid_pan")
    first, last = visible_digits(len(digits))
    return digits[:first] + MASK_CHAR * (len(digits) - first - last) + digits[-last:]


def is_hmac_national_id(value: str) -> bool:
    """True for a hashed national id ``hmac-sha256:<64 lower-case hex digits>``."""
    return bool(_HMAC_VALUE.match(value))


def _key_bytes(key: Key | None) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise PiiError("no HMAC key: set SLUICE_PII_HMAC_KEY", code="pii_key_missing")
    return key


def hmac_national_id(value: str, key: Key | None) -> str:
    """``hmac-sha256:<hex>`` of the normalised national id; hashed values pass unchanged."""
    if _HMAC_VALUE.match(value):
        return value
    normalised = _ID_SEPARATORS.sub("", value).upper()
    digest = hmac.new(_key_bytes(key), normalised.encode("utf-8"), hashlib.sha256).hexdigest()
    return HMAC_PREFIX + digest


def _mask_digits(segment: str) -> str:
    """``segment`` with every digit hidden but the first and last :func:`visible_digits`."""
    count = sum(1 for c in segment if c.isdigit())
    first, last = visible_digits(count)
    out: list[str] = []
    seen = 0
    for c in segment:
        if c.isdigit():
            out.append(c if seen < first or seen >= count - last else MASK_CHAR)
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def _mask_run(run: str) -> str:
    """A digit run with every Luhn-valid 12-19 digit part made of whole groups masked.

    The whole run is tried first; otherwise, leftmost first, the longest Luhn-valid
    sequence of whole digit groups. A single group of more than 19 digits is an
    identifier, not a card number.
    """
    groups = [(m.start(), m.end(), ascii_digits(m.group(0))) for m in _DIGIT_GROUP.finditer(run)]
    total = sum(len(g[2]) for g in groups)
    if total < PAN_MIN_DIGITS:
        return run
    if total <= PAN_MAX_DIGITS and luhn_valid("".join(g[2] for g in groups)):
        return _mask_digits(run)
    if len(groups) < 2:
        return run
    out: list[str] = []
    position = 0
    i = 0
    while i < len(groups):
        best: int | None = None
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > PAN_MAX_DIGITS:
                break
            if len(digits) >= PAN_MIN_DIGITS and luhn_valid(digits):
                best = j
        if best is None:
            i += 1
            continue
        start, end = groups[i][0], groups[best][1]
        out.append(run[position:start])
        out.append(_mask_digits(run[start:end]))
        position = end
        i = best + 1
    out.append(run[position:])
    return "".join(out)


_ASCII_DIGITS: Final = b"0123456789"
_is_ascii = str.isascii
_encode = str.encode


def may_hold_card_number(text: str) -> bool:
    """True when ``text`` holds a run of at least 12 digits (a cheap pre-check).

    An ASCII text with fewer than 12 digit characters in all cannot hold one: that is
    counted first (the only decimal digits of ASCII are ``0-9``); the run itself is
    looked for only in the other texts.
    """
    if len(text) < PAN_MIN_DIGITS:
        return False
    if (
        _is_ascii(text)
        and len(text) - len(_encode(text).translate(None, _ASCII_DIGITS)) < PAN_MIN_DIGITS
    ):
        return False
    return _MAY_HOLD_PAN(text) is not None


def mask_luhn_in_text(text: str) -> str:
    """``text`` with every Luhn-valid 12-19 digit run masked (see the module docstring)."""
    if not may_hold_card_number(text):
        return text
    parts: list[str] | None = None
    position = 0
    for match in _DIGIT_RUN.finditer(text):
        run = match.group(0)
        if len(run) < PAN_MIN_DIGITS:
            continue
        masked = _mask_run(run)
        if masked == run:
            continue
        if parts is None:
            parts = []
        start, end = match.span()
        parts.append(text[position:start])
        parts.append(masked)
        position = end
    if parts is None:
        return text
    parts.append(text[position:])
    return "".join(parts)


def _mask_every_long_run(text: str) -> str:
    if not may_hold_card_number(text):
        return text
    return _DIGIT_RUN.sub(
        lambda m: (
            _mask_digits(m.group(0))
            if len(ascii_digits(m.group(0))) >= PAN_MIN_DIGITS
            else m.group(0)
        ),
        text,
    )


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """What a message may show of a submitted value: ``repr``, long digit runs masked, short.

    Every run of 12 or more digits is masked whether or not it passes the Luhn check (a
    mistyped card number is still one), and the text is cut to ``limit`` characters.
    """
    text = _mask_every_long_run(value if isinstance(value, str) else str(value))
    return repr(text[:limit] + "...") if len(text) > limit else repr(text)


def redact_message(text: str, limit: int = 300) -> str:
    """A message (which may quote submitted values) safe to answer or log.

    Long digit runs are masked (as :func:`excerpt` does) and the text is cut to ``limit``.
    """
    text = _mask_every_long_run(text)
    if not text.isprintable():
        # control characters would be escaped six-fold in JSON: one "?" each
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- records

Mask = Callable[[Any, "Key | None"], Any]


def _keep(value: Any, key: Key | None) -> Any:
    return value


def _text(value: Any, key: Key | None) -> Any:
    return mask_luhn_in_text(value) if type(value) is str else _generic(value, key)


def _pan(value: Any, key: Key | None) -> Any:
    return mask_card_number(value) if type(value) is str else value


def _national_id(value: Any, key: Key | None) -> Any:
    return hmac_national_id(value, key) if type(value) is str else value


def _generic(value: Any, key: Key | None) -> Any:
    """Every string and every map key scanned, at any depth (no schema known)."""
    if type(value) is str:
        return mask_luhn_in_text(value)
    if isinstance(value, Mapping):
        return {
            (mask_luhn_in_text(k) if type(k) is str else k): _generic(v, key)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_generic(v, key) for v in value]
    return value


def _string_mask(schema: Mapping[str, Any] | str, fmt: Any) -> Mask:
    if fmt == "pan":
        return _pan
    if fmt == "national-id":
        return _national_id
    if isinstance(schema, Mapping) and schema.get("logicalType") == "uuid":
        return _keep
    return _text


def _none_or(only: Mask) -> Mask:
    """The mask of ``["null", T]``: None kept, anything else by ``T``'s mask."""
    return lambda value, key: None if value is None else only(value, key)


def compile_mask(
    schema: Any,
    named: dict[str, Mask] | None = None,
    fmt: Any = None,
    *,
    fast: bool = True,
) -> Mask:
    """The masking function of an Avro schema (record, union, map, array, string...).

    ``fmt`` is the ``sluice.format`` of the field holding this type. ``fast=False``
    gives the field-by-field walk of every record and map (the reference the fast
    path is tested against); both give equal results and raise alike.
    """
    named = {} if named is None else named
    if isinstance(schema, list):
        branches = [compile_mask(s, named, fmt, fast=fast) for s in schema if s != "null"]
        return _none_or(branches[0]) if len(branches) == 1 else _generic
    if isinstance(schema, str):
        if schema in named:
            ref = schema
            return lambda value, key: named[ref](value, key)
        if schema == "string":
            return _string_mask(schema, fmt)
        return _keep if schema != "enum" else _text
    kind = schema.get("type")
    if kind == "string":
        return _string_mask(schema, fmt)
    if kind == "enum":
        return _text
    if kind == "map":
        values = compile_mask(schema["values"], named, fast=fast)
        strings = fast and values is _text

        def map_mask(value: Any, key: Key | None) -> Any:
            if type(value) is not dict and not isinstance(value, Mapping):
                return _generic(value, key)
            if strings:
                # Keys and values all strings: one scan of them joined by NUL (neither a
                # digit nor a separator, so no run spans two of them). No run of 12
                # digits in the whole means none in any part: the map comes out as is.
                try:
                    joined = "\x00".join(value) + "\x00" + "\x00".join(value.values())
                except TypeError:
                    pass
                else:
                    if not may_hold_card_number(joined):
                        return dict(value)
            return {
                (mask_luhn_in_text(k) if type(k) is str else k): values(v, key)
                for k, v in value.items()
            }

        return map_mask
    if kind == "array":
        items = compile_mask(schema["items"], named, fast=fast)
        return lambda value, key: (
            [items(v, key) for v in value] if isinstance(value, list) else _generic(value, key)
        )
    if kind in ("record", "error"):
        return _compile_record(schema, named, fast)
    return _keep


def _compile_record(schema: Mapping[str, Any], named: dict[str, Mask], fast: bool) -> Mask:
    """The mask of a record schema (registered in ``named`` under its full names)."""
    fields: dict[str, tuple[int, Mask]] = {}
    # the fast path's plan, filled below once every field is compiled
    known: set[str] = set()
    texts: list[str] = []
    others: dict[str, Mask] = {}
    ordered = [False]

    def walk(value: Mapping[str, Any], key: Key | None) -> dict[str, Any]:
        """Field by field, in the value's order."""
        out: dict[str, Any] = {}
        for name, item in value.items():
            entry = fields.get(name)
            if entry is None:
                # a field the schema does not know: scanned like everything else
                if type(name) is str:
                    name = mask_luhn_in_text(name)
                out[name] = _generic(item, key)
                continue
            how, mask = entry
            if item is None or how == _KEEP:
                out[name] = item
            elif how == _TEXT and type(item) is str:
                # the common case inline: most strings are too short to hold a PAN
                out[name] = item if not may_hold_card_number(item) else mask_luhn_in_text(item)
            else:
                out[name] = mask(item, key)
        return out

    def slow_mask(value: Any, key: Key | None) -> Any:
        if not isinstance(value, Mapping):
            return _generic(value, key)
        return walk(value, key)

    def record_mask(value: Any, key: Key | None) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            return _generic(value, key)
        if not known.issuperset(value) or ordered[0]:
            # an unknown field (its name is scanned too), or several fields whose
            # masks may raise: the walk keeps the value's order of fields
            return walk(value, key)
        # A copy (same order), then only the fields that may change: fields that cannot
        # hold a string (numbers, bytes, dates, UUIDs...) and None are never visited.
        out = dict(value)
        get = out.get
        for name in texts:
            item = get(name)
            if type(item) is str:
                # may_hold_card_number inline: too short, or ASCII with under 12 digits
                if len(item) >= PAN_MIN_DIGITS and (
                    not _is_ascii(item)
                    or len(item) - len(_encode(item).translate(None, _ASCII_DIGITS))
                    >= PAN_MIN_DIGITS
                ):
                    out[name] = mask_luhn_in_text(item)
            elif item is not None:
                out[name] = _generic(item, key)
        for name, mask in others.items():
            item = get(name)
            if item is not None:
                out[name] = mask(item, key)
        return out

    mask_of_record = record_mask if fast else slow_mask
    name = schema.get("name")
    if isinstance(name, str):
        named[name] = mask_of_record
        namespace = schema.get("namespace")
        if isinstance(namespace, str):
            named[f"{namespace}.{name}"] = mask_of_record
    raising = 0
    for field in schema.get("fields", ()):
        fmt = field.get("sluice.format")
        kind = field["type"]
        branches = [s for s in kind if s != "null"] if isinstance(kind, list) else None
        if branches is not None and len(branches) == 1:
            # ``["null", T]``: as compile_mask builds it; the fast path skips None itself
            inner = compile_mask(branches[0], named, fmt, fast=fast)
            mask = _none_or(inner)
        else:
            inner = mask = compile_mask(kind, named, fmt, fast=fast)
        how = _how(kind, fmt)
        fields[field["name"]] = (how, mask)
        known.add(field["name"])
        if how == _TEXT or (how == _OTHER and inner is _text):  # strings and enums
            texts.append(field["name"])
        elif how == _OTHER:
            others[field["name"]] = inner
            raising += _may_raise(kind, fmt)
    # masks that may raise run in the value's order (the first error is the same)
    ordered[0] = raising > 1
    return mask_of_record


_RAISING_FORMATS: Final = frozenset({"pan", "national-id"})


def _may_raise(schema: Any, fmt: Any) -> bool:
    """Whether the mask of ``schema`` may raise (a ``pan`` or ``national-id`` string at
    any depth; a reference to a named type counts as one)."""
    if isinstance(schema, list):
        return any(_may_raise(s, fmt) for s in schema if s != "null")
    if isinstance(schema, str):
        if schema == "string":
            return fmt in _RAISING_FORMATS
        return schema not in _PRIMITIVES and schema != "enum"
    if not isinstance(schema, Mapping):
        return True
    kind = schema.get("type")
    if kind == "string":
        return fmt in _RAISING_FORMATS
    if kind in ("record", "error"):
        return any(_may_raise(f["type"], f.get("sluice.format")) for f in schema.get("fields", ()))
    if kind == "map":
        return _may_raise(schema["values"], None)
    if kind == "array":
        return _may_raise(schema["items"], None)
    return False


_KEEP, _TEXT, _OTHER = 0, 1, 2
_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes"})


def _how(schema: Any, fmt: Any) -> int:
    """How a record field is masked: kept as is, scanned as text, or by its own mask."""
    if isinstance(schema, list):
        branches = [s for s in schema if s != "null"]
        return _how(branches[0], fmt) if len(branches) == 1 else _OTHER
    kind = schema.get("type") if isinstance(schema, Mapping) else schema
    if kind in _PRIMITIVES or (isinstance(schema, Mapping) and "logicalType" in schema):
        # numbers, bytes, decimals, dates, timestamps, UUIDs: never text
        return _KEEP
    if kind == "string" and fmt not in ("pan", "national-id"):
        return _TEXT
    return _OTHER


_COMPILED: dict[int, tuple[Mapping[str, Any], Mask]] = {}


def _mask_of(schema: Mapping[str, Any]) -> Mask:
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, compile_mask(schema))
        _COMPILED[id(schema)] = entry
    return entry[1]


#: Fields masked by name when no schema is given (the schema's ``sluice.format``).
_PAN_FIELDS: Final = frozenset({"card_number"})
_NATIONAL_ID_FIELDS: Final = frozenset({"claimant_national_id"})


def mask_record(
    record: Mapping[str, Any],
    *,
    hmac_key: Key | None,
    schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of an event record with its PII masked (idempotent).

    With ``schema`` (the Avro schema of the record's version), the walk follows it:
    ``pan`` fields masked as card numbers, ``national-id`` fields hashed with
    ``hmac_key``, UUIDs kept, every other string and every map key scanned for card
    numbers. Without it, ``card_number`` and ``claimant_national_id`` are treated so
    by name and every other string and key, at any depth, is scanned. Works on the
    Avro-ready dict and on its JSON form alike.

    Raises:
        PiiError: a national id must be hashed and no key was given, or a ``pan``
            field is not a card number.
    """
    if schema is not None:
        masked = _mask_of(schema)(record, hmac_key)
        # a record's mask returns a fresh dict: no second copy
        return masked if type(masked) is dict and masked is not record else dict(masked)
    out: dict[str, Any] = {}
    for name, value in record.items():
        if name in _PAN_FIELDS and type(value) is str:
            out[name] = mask_card_number(value)
        elif name in _NATIONAL_ID_FIELDS and type(value) is str:
            out[name] = hmac_national_id(value, hmac_key)
        elif name == "event_id" and type(value) is str and _UUID.match(value):
            out[name] = value
        else:
            out[mask_luhn_in_text(name) if type(name) is str else name] = _generic(value, hmac_key)
    return out
