"""parse_event: valid events are normalised; invalid ones refused with a code and a path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

import schemas
from schemas import FieldError, ValidationError
from schemas.exceptions import FIELD_ERROR_CODES, UnknownSchemaError

from .conftest import ALL_VERSIONS, codes


@pytest.mark.parametrize(("event_type", "version"), ALL_VERSIONS)
def test_examples_are_valid(event_type: str, version: int) -> None:
    record = schemas.parse_event(event_type, schemas.example_event(event_type, version=version))
    assert record["schema_version"] == version
    assert record["event_type"] == event_type
    assert list(record) == schemas.catalogue().get(event_type, version).field_names


def test_normalisation(ft_event: dict[str, Any]) -> None:
    ft_event.update(
        event_id="8A4A1C55-2A47-4D8E-9C2E-5B0F3F6A7D21",
        occurred_at="2026-01-31T10:30:00.5+01:00",
        amount=125.4,
        currency="eur",
        card_number="4111 1111-1111 1111",
        merchant={"name": "Bakery", "mcc": "5462", "country": "de"},
    )
    ft_event.pop("metadata")
    record = schemas.parse_event("financial-transaction", ft_event)
    assert record["event_id"] == "8a4a1c55-2a47-4d8e-9c2e-5b0f3f6a7d21"
    assert record["occurred_at"] == datetime(2026, 1, 31, 9, 30, 0, 500000, tzinfo=UTC)
    assert record["occurred_at"].tzinfo is UTC
    assert record["amount"] == Decimal("125.4000")
    assert str(record["amount"]) == "125.4000"
    assert record["currency"] == "EUR"
    assert record["card_number"] == "4111111111111111"
    assert record["merchant"] == {"name": "Bakery", "mcc": "5462", "country": "DE"}
    assert record["metadata"] == {}
    assert record["ingested_at"] is None


def test_claim_normalisation(ic_event: dict[str, Any]) -> None:
    ic_event.update(claim_amount=2400, currency="JPY", loss_date="2024-02-29")
    ic_event["loss_location"] = {"country": "JP"}
    record = schemas.parse_event("insurance-claim", ic_event)
    assert record["claim_amount"] == Decimal("2400.0000")
    assert record["loss_date"] == date(2024, 2, 29)
    assert record["loss_location"] == {"country": "JP", "region": None, "postal_code": None}


@pytest.mark.parametrize(
    "amount", ["0", "0.0001", "99999999999999.9999", "-0", 7, 0.5, "1.2300000", "+3.5"]
)
def test_accepted_decimals(ft_event: dict[str, Any], amount: Any) -> None:
    ft_event.update(amount=amount, currency="CLF")  # CLF has 4 minor units
    record = schemas.parse_event("financial-transaction", ft_event)
    assert record["amount"] == Decimal(str(amount))
    assert record["amount"].as_tuple().exponent == -4
    assert not record["amount"].is_signed()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        target = event
        *parents, last = path.split(".")
        for p in parents:
            target = target[p]
        target[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        target = event
        *parents, last = path.split(".")
        for p in parents:
            target = target[p]
        del target[last]

    return change


FT_CASES: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (_drop("event_id"), "missing", "event_id"),
    (_drop("amount"), "missing", "amount"),
    (_drop("merchant.mcc"), "missing", "merchant.mcc"),
    (_drop("schema_version"), "missing", "schema_version"),
    (_drop("event_type"), "missing", "event_type"),
    (_set("event_id", "not-a-uuid"), "invalid_format", "event_id"),
    (_set("event_id", 12), "invalid_type", "event_id"),
    (_set("event_type", "insurance-claim"), "mismatch", "event_type"),
    (_set("schema_version", 9), "unsupported_version", "schema_version"),
    (_set("schema_version", "1"), "invalid_type", "schema_version"),
    (_set("schema_version", True), "invalid_type", "schema_version"),
    (_set("occurred_at", "2026-01-31T09:30:00"), "invalid_format", "occurred_at"),
    (_set("occurred_at", "2026-01-31"), "invalid_format", "occurred_at"),
    (_set("occurred_at", "2026-02-30T09:30:00Z"), "invalid_format", "occurred_at"),
    (_set("occurred_at", 1767173400), "invalid_type", "occurred_at"),
    (_set("source", ""), "invalid_format", "source"),
    (_set("source", "x" * 129), "out_of_range", "source"),
    (_set("tenant_id", "acme bank"), "invalid_format", "tenant_id"),
    (_set("tenant_id", None), "invalid_type", "tenant_id"),
    (_set("account_id", "a" * 129), "out_of_range", "account_id"),
    (_set("amount", "12,50"), "invalid_format", "amount"),
    (_set("amount", "1e3"), "invalid_format", "amount"),
    (_set("amount", "NaN"), "invalid_format", "amount"),
    (_set("amount", float("inf")), "invalid_format", "amount"),
    (_set("amount", True), "invalid_type", "amount"),
    (_set("amount", {"value": 1}), "invalid_type", "amount"),
    (_set("amount", "-1.00"), "out_of_range", "amount"),
    (_set("amount", "1.23456"), "out_of_range", "amount"),
    (_set("amount", "1.234"), "out_of_range", "amount"),  # EUR has two minor units
    (_set("amount", "123456789012345"), "out_of_range", "amount"),
    (_set("currency", "EURO"), "invalid_format", "currency"),
    (_set("currency", "XAU"), "invalid_format", "currency"),
    (_set("transaction_type", "purchase"), "invalid_enum", "transaction_type"),
    (_set("channel", "FAX"), "invalid_enum", "channel"),
    (_set("status", 1), "invalid_type", "status"),
    (_set("card_number", "4111111111111112"), "invalid_format", "card_number"),
    (_set("card_number", "4111"), "invalid_format", "card_number"),
    (_set("card_number", "41111111111111111111"), "invalid_format", "card_number"),
    (_set("merchant", "Bakery"), "invalid_type", "merchant"),
    (_set("merchant.mcc", "541"), "invalid_format", "merchant.mcc"),
    (_set("merchant.mcc", 5411), "invalid_type", "merchant.mcc"),
    (_set("merchant.country", "XX"), "invalid_format", "merchant.country"),
    (_set("merchant.country", "DEU"), "invalid_format", "merchant.country"),
    (_set("merchant.website", "x"), "unknown_field", "merchant.website"),
    (_set("metadata.terminal", 17), "invalid_type", "metadata.terminal"),
    (_set("metadata", ["a"]), "invalid_type", "metadata"),
    (_set("metadata", {f"k{i}": "v" for i in range(65)}), "out_of_range", "metadata"),
    (_set("metadata.", "v"), "invalid_format", "metadata."),
    (_set("note", "hello"), "unknown_field", "note"),
    (_set("account_id", "acc-42\n"), "invalid_format", "account_id"),
    (_set("merchant.mcc", "5462\n"), "invalid_format", "merchant.mcc"),
    (_set("occurred_at", "2026-01-31T09:30:00Z\n"), "invalid_format", "occurred_at"),
    (
        _set("occurred_at", "\u0662\u0660\u0662\u0666-01-31T09:30:00Z"),
        "invalid_format",
        "occurred_at",
    ),
    (_set("amount", "\u0661\u0662"), "invalid_format", "amount"),
    (_set("event_id", "8a4a1c55-2a47-4d8e-9c2e-5b0f3f6a7d21\n"), "invalid_format", "event_id"),
    (_set("ingested_at", "2026-01-31T09:30:00Z"), "server_owned", "ingested_at"),
    (_set("fraud_score", 0.5), "unknown_field", "fraud_score"),  # a v2 field in a v1 event
]


@pytest.mark.parametrize(
    ("change", "code", "field"), FT_CASES, ids=[c[2] + ":" + c[1] for c in FT_CASES]
)
def test_financial_transaction_rejections(
    ft_event: dict[str, Any], change: Callable[[dict[str, Any]], None], code: str, field: str
) -> None:
    change(ft_event)
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", ft_event)
    assert (code, field) in codes(info.value), info.value.errors
    assert all(e.code in FIELD_ERROR_CODES for e in info.value.errors)


IC_CASES: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (_drop("loss_location"), "missing", "loss_location"),
    (_drop("loss_location.country"), "missing", "loss_location.country"),
    (_set("loss_location.country", "ZZ"), "invalid_format", "loss_location.country"),
    (_set("loss_location.postal_code", "x" * 17), "out_of_range", "loss_location.postal_code"),
    (_set("loss_location.street", "Main St"), "unknown_field", "loss_location.street"),
    (_set("loss_date", "2026-02-30"), "invalid_format", "loss_date"),
    (_set("loss_date", "2026-01-29T00:00:00Z"), "invalid_format", "loss_date"),
    (_set("reported_at", "yesterday"), "invalid_format", "reported_at"),
    (_set("claim_amount", "12.345"), "out_of_range", "claim_amount"),
    (_set("line_of_business", "MARINE"), "invalid_enum", "line_of_business"),
    (_set("status", "REOPENED"), "invalid_enum", "status"),
    (_set("cause_of_loss", "   "), "invalid_format", "cause_of_loss"),
    (_set("claimant_national_id", ""), "invalid_format", "claimant_national_id"),
    (_set("claimant_national_id", 123456789), "invalid_type", "claimant_national_id"),
    (_set("adjuster_id", "adj-1"), "unknown_field", "adjuster_id"),
]


@pytest.mark.parametrize(
    ("change", "code", "field"), IC_CASES, ids=[c[2] + ":" + c[1] for c in IC_CASES]
)
def test_insurance_claim_rejections(
    ic_event: dict[str, Any], change: Callable[[dict[str, Any]], None], code: str, field: str
) -> None:
    change(ic_event)
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("insurance-claim", ic_event)
    assert (code, field) in codes(info.value), info.value.errors


def test_v2_fields_are_validated() -> None:
    event = schemas.example_event("financial-transaction", version=2)
    event.update(fraud_score=1.5, authorization_code="")
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", event)
    assert codes(info.value) == {
        ("out_of_range", "fraud_score"),
        ("invalid_format", "authorization_code"),
    }
    claim = schemas.example_event("insurance-claim", version=2)
    claim.update(reserve_amount="-5", currency="JPY", claim_amount="10")
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("insurance-claim", claim)
    assert codes(info.value) == {("out_of_range", "reserve_amount")}
    claim.update(reserve_amount="5.5")  # JPY has no minor units
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("insurance-claim", claim)
    assert codes(info.value) == {("out_of_range", "reserve_amount")}


def test_every_error_is_collected(ft_event: dict[str, Any]) -> None:
    ft_event.update(amount="abc", currency="usd1", channel="FAX", extra=1)
    ft_event["merchant"]["country"] = "ZZ"
    del ft_event["account_id"]
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", ft_event)
    assert codes(info.value) == {
        ("invalid_format", "amount"),
        ("invalid_format", "currency"),
        ("invalid_enum", "channel"),
        ("unknown_field", "extra"),
        ("invalid_format", "merchant.country"),
        ("missing", "account_id"),
    }
    assert "6 error(s)" in str(info.value)
    assert info.value.code == "validation_error"
    assert {
        "code": "missing",
        "message": "required",
        "field": "account_id",
    } in info.value.as_dicts()


def test_errors_never_echo_card_numbers(ft_event: dict[str, Any]) -> None:
    ft_event["card_number"] = "4111 1111 1111 1112"
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", ft_event)
    assert "1112" not in str(info.value.as_dicts())


def test_server_fields_allowed_when_asked(ft_event: dict[str, Any]) -> None:
    ft_event["ingested_at"] = "2026-01-31T09:30:01.000001Z"
    record = schemas.parse_event("financial-transaction", ft_event, allow_server_fields=True)
    assert record["ingested_at"] == datetime(2026, 1, 31, 9, 30, 1, 1, tzinfo=UTC)


def test_unknown_version_still_reports_other_errors(ft_event: dict[str, Any]) -> None:
    ft_event.update(schema_version=3, channel="FAX")
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", ft_event)
    assert codes(info.value) == {
        ("unsupported_version", "schema_version"),
        ("invalid_enum", "channel"),
    }


@pytest.mark.parametrize("body", [None, [], "event", 3])
def test_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", body)
    assert info.value.errors == [FieldError("invalid_type", info.value.errors[0].message, "")]


def test_unknown_event_type_is_a_routing_error(ft_event: dict[str, Any]) -> None:
    with pytest.raises(UnknownSchemaError) as info:
        schemas.parse_event("payment", ft_event)
    assert info.value.code == "unknown_event_type"


def test_event_type_enum_is_accepted(ft_event: dict[str, Any]) -> None:
    from sluice.config import EventType

    record = schemas.parse_event(EventType.FINANCIAL_TRANSACTION, ft_event)
    assert record["event_type"] == "financial-transaction"


def test_input_is_not_mutated(ft_event: dict[str, Any]) -> None:
    before = repr(ft_event)
    schemas.parse_event("financial-transaction", ft_event)
    assert repr(ft_event) == before


def test_validate_record_rechecks_a_parsed_record(ft_event: dict[str, Any]) -> None:
    record = schemas.parse_event("financial-transaction", ft_event)
    assert schemas.validate_record("financial-transaction", record) == record
    record["currency"] = "ABC"
    with pytest.raises(ValidationError):
        schemas.validate_record("financial-transaction", record)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("source", "core\x00banking"),
        ("cause_of_loss", "water \ud800 damage"),
        ("metadata.note", "a\x00b"),
        ("metadata.k\x00", "v"),
    ],
)
def test_text_the_warehouse_cannot_store_is_refused(
    ic_event: dict[str, Any], path: str, value: str
) -> None:
    _set(path, value)(ic_event)
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("insurance-claim", ic_event)
    assert ("invalid_format", path) in codes(info.value)


def test_integer_fields_refuse_floats(ft_event: dict[str, Any]) -> None:
    ft_event["schema_version"] = 1.0
    with pytest.raises(ValidationError) as info:
        schemas.parse_event("financial-transaction", ft_event)
    assert codes(info.value) == {("invalid_type", "schema_version")}
