"""Properties of the masker: any written form of any card number is masked, at least six
digits always stay hidden, masking is idempotent, and excerpts never carry a PAN."""

from __future__ import annotations

import ast
import re

from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas.pii import (
    ascii_digits,
    excerpt,
    luhn_valid,
    mask_card_number,
    mask_luhn_in_text,
    mask_record,
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
