"""Properties of the masker: any written form of any card number is masked, at least six
digits always stay hidden, masking is idempotent, and excerpts never carry a PAN."""

from __future__ import annotations

import ast
import re

from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import pii
from schemas.exceptions import PiiError
from schemas.pii import (
    ascii_digits,
    excerpt,
    is_masked_card_number,
    luhn_valid,
    mask_card_number,
    mask_luhn_in_text,
    mask_record,
    may_hold_card_number,
    visible_digits,
)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)

_DOUBLED = str.maketrans("0123456789", "0246813579")
SEPARATORS = [" ", "-", ".", "/", "\t", "\u00a0", "  ", " - ", "\u2009", "\u202f", "_"]
SCRIPTS = [
    "0123456789",
    "".join(chr(0xFF10 + d) for d in range(10)),  # fullwidth
    "".join(chr(0x0660 + d) for d in range(10)),  # Arabic-Indic
    "".join(chr(0x0966 + d) for d in range(10)),  # Devanagari
]


def _complete(body: str) -> str:
    digits = body + "0"
    total = sum(int(d) for d in digits[-1::-2]) + sum(
        int(d) for d in digits[-2::-2].translate(_DOUBLED)
    )
    return body + str((10 - total % 10) % 10)


pans = st.integers(min_value=12, max_value=19).flatmap(
    lambda n: st.text("0123456789", min_size=n - 1, max_size=n - 1).map(_complete)
)


@st.composite
def written(draw: st.DrawFn) -> tuple[str, str]:
    """A PAN and one way of writing it: groups, separators, a script."""
    pan = draw(pans)
    cuts = sorted(draw(st.sets(st.integers(1, len(pan) - 1), max_size=6)))
    parts = [pan[i:j] for i, j in zip([0, *cuts], [*cuts, len(pan)], strict=True)]
    text = ""
    for n, part in enumerate(parts):
        if n:
            text += draw(st.sampled_from(SEPARATORS))
        text += part
    script = draw(st.sampled_from(SCRIPTS))
    return pan, text.translate(str.maketrans("0123456789", script))


def _hidden_ok(masked: str) -> None:
    """At most 6 + 4 digits shown per masked run, and at least 6 hidden."""
    for run in re.findall(r"[\d\s\-./_\u00a0\u2009\u202f*]+", masked):
        if "*" in run:
            shown = len(ascii_digits(run))
            assert run.count("*") >= 6
            assert shown <= 10


@PROPERTY_SETTINGS
@given(written(), st.text(max_size=20), st.text(max_size=20))
def test_any_written_pan_is_masked(case: tuple[str, str], before: str, after: str) -> None:
    pan, text = case
    prefix = before + " x "
    suffix = " y " + after
    masked = mask_luhn_in_text(prefix + text + suffix)
    assert len(masked) == len(prefix + text + suffix)  # one character for one
    middle = masked[len(prefix) : len(masked) - len(suffix)]
    assert pan not in ascii_digits(middle)
    assert mask_luhn_in_text(masked) == masked
    _hidden_ok(middle)


@PROPERTY_SETTINGS
@given(pans)
def test_card_number_mask_hides_at_least_six(pan: str) -> None:
    assert luhn_valid(pan)
    masked = mask_card_number(pan)
    first, last = visible_digits(len(pan))
    assert first <= 6 and last <= 4 and len(pan) - first - last >= 6
    assert masked == pan[:first] + "*" * (len(pan) - first - last) + pan[len(pan) - last :]
    assert mask_card_number(masked) == masked


@PROPERTY_SETTINGS
@given(written())
def test_excerpt_never_carries_a_pan(case: tuple[str, str]) -> None:
    pan, text = case
    shown = excerpt("value " + text + " end")
    assert pan not in ascii_digits(shown)
    assert len(ast.literal_eval(excerpt("value " + text * 10))) <= 24 + 3


@PROPERTY_SETTINGS
@given(written(), written(), st.sampled_from(["financial-transaction", "insurance-claim"]))
def test_every_string_field_and_map_key_is_masked(
    a: tuple[str, str], b: tuple[str, str], event_type: str
) -> None:
    record = schemas.parse_event(event_type, schemas.example_event(event_type))
    version = record["schema_version"]
    schema = schemas.catalogue().get(event_type, version).schema
    record["source"] = "s " + a[1]
    record["metadata"] = {a[1]: b[1]}
    if event_type == "insurance-claim":
        record["loss_location"] = {**record["loss_location"], "region": b[1]}
        record["cause_of_loss"] = a[1]
    else:
        record["merchant"] = {**record["merchant"], "name": b[1]}
    masked = mask_record(record, hmac_key="k", schema=schema)
    for text in _strings(masked):
        assert a[0] not in ascii_digits(text)
        assert b[0] not in ascii_digits(text)
    assert mask_record(masked, hmac_key="k", schema=schema) == masked


def _strings(value: object) -> list[str]:
    """Every string value and map key inside ``value``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)] + [
            s for v in value.values() for s in _strings(v)
        ]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# --------------------------------------------------------------------------- fast paths

_RUN_ALPHABET = [*"0123456789 -./_ab*", "\u00a0", "\u2009", "\u0661", "\uff11", "\u0967"]
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.sampled_from(_RUN_ALPHABET), max_size=40),
    written().map(lambda case: case[1]),
    pans.map(mask_card_number),
)


@PROPERTY_SETTINGS
@given(texts, texts)
def test_digit_count_pre_check_agrees_with_the_full_scan(text: str, other: str) -> None:
    for value in (text, other + text, text + "\x00" + other):
        full = len(value) >= 12 and pii._MAY_HOLD_PAN(value) is not None
        assert may_hold_card_number(value) is full


values = st.one_of(
    texts,
    st.none(),
    st.integers(),
    st.dictionaries(texts, texts, max_size=3),
    st.lists(texts, max_size=3),
)


@st.composite
def hostile_records(draw: st.DrawFn) -> tuple[dict[str, object], dict[str, object]]:
    """A catalogued event (Avro-ready or JSON form) with some fields replaced, some
    dropped and perhaps unknown ones added, and the schema of its version."""
    event_type = draw(st.sampled_from(["financial-transaction", "insurance-claim"]))
    cat = schemas.catalogue()
    version = draw(st.sampled_from([sv.version for sv in cat.versions(event_type)]))
    event = schemas.example_event(event_type)
    record: dict[str, object] = (
        schemas.parse_event(event_type, event) if draw(st.booleans()) else dict(event)
    )
    for name in list(record):
        choice = draw(st.integers(0, 5))
        if choice == 0:
            record[name] = draw(values)
        elif choice == 1:
            del record[name]
        elif choice == 2 and isinstance(record[name], dict):
            nested = dict(record[name])  # type: ignore[call-overload]
            nested[draw(st.sampled_from(sorted(nested) or ["x"]))] = draw(values)
            record[name] = nested
    if draw(st.booleans()):
        record[draw(texts)] = draw(values)
    return record, cat.get(event_type, version).schema


def _outcome(mask: pii.Mask, record: dict[str, object]) -> tuple[str, object]:
    try:
        out = mask(record, "k")
    except PiiError as exc:
        return ("raised", exc.code)
    return ("masked", _ordered(out))


def _ordered(value: object) -> object:
    """``value`` with the order of every mapping's keys made part of it."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(hostile_records())
def test_fast_record_mask_equals_the_field_by_field_walk(
    case: tuple[dict[str, object], dict[str, object]],
) -> None:
    record, schema = case
    fast = pii.compile_mask(schema)
    walk = pii.compile_mask(schema, fast=False)
    assert _outcome(fast, record) == _outcome(walk, record)
    assert _outcome(fast, record)[0] == "raised" or mask_record(
        record, hmac_key="k", schema=schema
    ) == fast(record, "k")


def _masked_shape(value: str) -> bool:
    """The shape rule spelt out: 2-6 digits, stars, 4 digits; 12-19 characters; as many
    leading digits as :func:`visible_digits` shows for that length."""
    match = re.fullmatch(r"([0-9]{2,6})(\*{2,15})([0-9]{4})", value)
    return (
        match is not None
        and 12 <= len(value) <= 19
        and len(match.group(1)) == visible_digits(len(value))[0]
    )


@PROPERTY_SETTINGS
@given(st.from_regex(r"[0-9\uff11]{0,8}[*x]{0,16}[0-9]{2,6}\n?", fullmatch=True) | texts)
def test_masked_pan_check_and_pass_through_agree_with_the_shape_rule(value: str) -> None:
    assert is_masked_card_number(value) is _masked_shape(value)
    if _masked_shape(value):
        assert mask_card_number(value) == value
