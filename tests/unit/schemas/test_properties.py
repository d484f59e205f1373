"""Property tests: generated valid events survive parse -> encode -> decode -> to_json."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import CodecError, ValidationError
from schemas.countries import COUNTRY_CODES
from schemas.currencies import MINOR_UNITS
from schemas.pii import mask_record

PROPERTY_SETTINGS = settings(max_examples=75, deadline=None)

COUNTRIES = sorted(COUNTRY_CODES)
CURRENCIES = sorted(MINOR_UNITS)

identifiers = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,40}\Z")
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() != "")
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
timestamps = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
).map(lambda dt: dt.isoformat())
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)).map(date.isoformat)


def _luhn_complete(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        d = int(char)
        if index % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


pans = st.integers(min_value=10, max_value=17).flatmap(
    lambda n: st.from_regex(rf"\A[1-9][0-9]{{{n}}}\Z").map(_luhn_complete)
)


@st.composite
def money(draw: st.DrawFn) -> tuple[Any, str]:
    currency = draw(st.sampled_from(CURRENCIES))
    amount = draw(
        st.decimals(
            min_value=0,
            max_value=Decimal("99999999999999"),
            places=MINOR_UNITS[currency],
            allow_nan=False,
            allow_infinity=False,
        )
    )
    form = draw(st.sampled_from(["str", "number"]))
    if form == "number" and amount == amount.to_integral_value():
        return int(amount), currency
    return str(amount), currency


def _envelope(draw: st.DrawFn, event_type: str, version: int) -> dict[str, Any]:
    return {
        "event_id": str(draw(st.uuids())),
        "event_type": event_type,
        "schema_version": version,
        "occurred_at": draw(timestamps),
        "source": draw(text),
        "tenant_id": draw(identifiers),
    }


def _optional(
    draw: st.DrawFn, event: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]
) -> None:
    choice = draw(st.sampled_from(["omit", "null", "value"]))
    if choice == "null":
        event[name] = None
    elif choice == "value":
        event[name] = draw(strategy)


metadata = st.dictionaries(
    identifiers, st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=40), max_size=5
)


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([1, 2]))
    amount, currency = draw(money())
    event = _envelope(draw, "financial-transaction", version) | {
        "transaction_id": draw(identifiers),
        "account_id": draw(identifiers),
        "amount": amount,
        "currency": currency,
        "transaction_type": draw(
            st.sampled_from(["PURCHASE", "REFUND", "TRANSFER", "WITHDRAWAL", "DEPOSIT", "FEE"])
        ),
        "channel": draw(st.sampled_from(["CARD", "ACH", "WIRE", "SEPA", "MOBILE", "BRANCH"])),
        "status": draw(st.sampled_from(["PENDING", "SETTLED", "DECLINED", "REVERSED"])),
    }
    _optional(draw, event, "card_number", pans)
    merchant = st.fixed_dictionaries(
        {
            "name": text,
            "mcc": st.from_regex(r"\A[0-9]{4}\Z"),
            "country": st.sampled_from(COUNTRIES),
        }
    )
    _optional(draw, event, "merchant", merchant)
    if draw(st.booleans()):
        event["metadata"] = draw(metadata)
    if version == 2:
        _optional(draw, event, "authorization_code", st.from_regex(r"\A[A-Z0-9]{6}\Z"))
        _optional(draw, event, "fraud_score", st.floats(min_value=0, max_value=1))
    return event


@st.composite
def claims(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([1, 2]))
    amount, currency = draw(money())
    location: dict[str, Any] = {"country": draw(st.sampled_from(COUNTRIES))}
    _optional(draw, location, "region", text)
    _optional(draw, location, "postal_code", st.from_regex(r"\A[A-Z0-9]{3,5}( [A-Z0-9]{3})?\Z"))
    event = _envelope(draw, "insurance-claim", version) | {
        "claim_id": draw(identifiers),
        "policy_id": draw(identifiers),
        "policyholder_id": draw(identifiers),
        "line_of_business": draw(
            st.sampled_from(["AUTO", "HOME", "HEALTH", "LIFE", "TRAVEL", "COMMERCIAL"])
        ),
        "loss_date": draw(dates),
        "reported_at": draw(timestamps),
        "claim_amount": amount,
        "currency": currency,
        "status": draw(
            st.sampled_from(["OPENED", "UNDER_REVIEW", "APPROVED", "DENIED", "PAID", "CLOSED"])
        ),
        "cause_of_loss": draw(text),
        "loss_location": location,
    }
    _optional(draw, event, "claimant_national_id", st.from_regex(r"\A[A-Z0-9]{6,12}\Z"))
    if draw(st.booleans()):
        event["metadata"] = draw(metadata)
    if version == 2:
        _optional(draw, event, "adjuster_id", identifiers)
        reserve, _ = draw(money())
        _optional(draw, event, "reserve_amount", st.just(reserve))
        if isinstance(event.get("reserve_amount"), str) and "." in event["reserve_amount"]:
            event["reserve_amount"] = event["reserve_amount"].split(".")[0]  # fits any currency
    return event


events = st.one_of(transactions(), claims())


@PROPERTY_SETTINGS
@given(events)
def test_round_trip(event: dict[str, Any]) -> None:
    event_type = event["event_type"]
    record = schemas.parse_event(event_type, event)
    decoded = schemas.decode(schemas.encode(event_type, record))
    assert decoded.event_type == event_type
    assert decoded.version == event["schema_version"]
    assert decoded.record == record
    assert schemas.to_json(decoded.record) == schemas.to_json(record)
    # The JSON form is itself a valid event that parses back to the same record.
    assert (
        schemas.parse_event(event_type, schemas.to_json(record), allow_server_fields=True) == record
    )


@PROPERTY_SETTINGS
@given(events)
def test_every_version_reads_every_other(event: dict[str, Any]) -> None:
    event_type = event["event_type"]
    data = schemas.encode(event_type, schemas.parse_event(event_type, event))
    for sv in schemas.catalogue().versions(event_type):
        decoded = schemas.decode(data, reader_version=sv.version)
        assert list(decoded.record) == sv.field_names


@PROPERTY_SETTINGS
@given(events)
def test_masking_is_idempotent_and_keeps_events_valid(event: dict[str, Any]) -> None:
    event_type = event["event_type"]
    record = schemas.parse_event(event_type, event)
    masked = mask_record(record, hmac_key="k")
    assert mask_record(masked, hmac_key="k") == masked
    assert schemas.validate_record(event_type, masked) == masked


@PROPERTY_SETTINGS
@given(events, st.data())
def test_a_field_of_the_wrong_type_is_named(event: dict[str, Any], data: st.DataObject) -> None:
    event_type = event["event_type"]
    name = data.draw(st.sampled_from(sorted(event)))
    event[name] = {"unexpected": ["object"]}
    with pytest.raises(ValidationError) as info:
        schemas.parse_event(event_type, event)
    fields = {e.field for e in info.value.errors}
    assert name in fields or any(f.startswith(f"{name}.") for f in fields)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1001, 1002, 2001, 2002]), st.binary(max_size=300))
def test_garbage_bodies_fail_with_codec_errors_only(schema_id: int, body: bytes) -> None:
    data = b"\x00" + schema_id.to_bytes(4, "big") + body
    try:
        decoded = schemas.decode(data)
    except CodecError:
        return
    # A body that happens to decode must re-encode to the same bytes.
    assert schemas.encode(decoded.event_type, decoded.record) == data
