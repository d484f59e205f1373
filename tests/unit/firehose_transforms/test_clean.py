"""Each cleaning rule of ``firehose_transforms.clean.to_row``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from firehose_transforms.clean import is_test_event, to_row
from firehose_transforms.exceptions import RecordRejected
from schemas import codec, pii
from sluice.zone import FINANCIAL_TRANSACTION_COLUMNS, INSURANCE_CLAIM_COLUMNS
from tests.unit.firehose_transforms.builders import HMAC_KEY, claim, transaction


def _tx(**overrides: Any) -> dict[str, Any]:
    return codec.parse_event("financial-transaction", transaction(**overrides))


def _claim(**overrides: Any) -> dict[str, Any]:
    return codec.parse_event("insurance-claim", claim(**overrides))


def _rejected(record: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(RecordRejected) as info:
        to_row(record, **kwargs)
    return info.value.code


class TestRowShape:
    def test_transaction_row_has_exactly_the_warehouse_columns(self) -> None:
        row = to_row(_tx())
        assert set(row) == set(FINANCIAL_TRANSACTION_COLUMNS)

    def test_claim_row_has_exactly_the_warehouse_columns(self) -> None:
        row = to_row(_claim(), hmac_key=HMAC_KEY)
        assert set(row) == set(INSURANCE_CLAIM_COLUMNS)

    def test_avro_decoded_and_json_forms_give_the_same_row(self) -> None:
        event = transaction()
        from_avro = codec.decode(
            codec.encode("financial-transaction", codec.parse_event("financial-transaction", event))
        ).record
        assert to_row(from_avro) == to_row(
            codec.to_json(codec.parse_event("financial-transaction", event))
        )

    def test_unknown_event_type_is_rejected(self) -> None:
        record = _tx()
        record["event_type"] = "payroll"
        assert _rejected(record) == "unknown_event_type"

    def test_merchant_absent_gives_null_merchant_columns(self) -> None:
        row = to_row(_tx(merchant=None, card_number=None))
        assert row["merchant_name"] is row["merchant_mcc"] is row["merchant_country"] is None
        assert row["card_number"] is None


class TestAmounts:
    @pytest.mark.parametrize(
        ("amount", "currency", "expected"),
        [
            (Decimal("125.4000"), "USD", "125.40"),
            ("125.4", "EUR", "125.40"),
            (Decimal("1000.0000"), "JPY", "1000"),
            (Decimal("1.2340"), "KWD", "1.234"),
            (0, "USD", "0.00"),
            (Decimal("-0.0000"), "USD", "0.00"),
            (12.5, "GBP", "12.50"),
        ],
    )
    def test_amount_is_exact_with_the_currency_minor_units(
        self, amount: Any, currency: str, expected: str
    ) -> None:
        record = _tx(currency=currency, amount="1")
        record["amount"] = amount
        assert to_row(record)["amount"] == expected

    def test_amount_needing_rounding_is_rejected_not_rounded(self) -> None:
        record = _tx(currency="JPY", amount="1")
        record["amount"] = Decimal("100.5000")
        assert _rejected(record) == "invalid_amount"

    @pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", None, [1]])
    def test_non_numbers_are_rejected(self, bad: Any) -> None:
        record = _tx()
        record["amount"] = bad
        assert _rejected(record) == "invalid_amount"

    def test_negative_transaction_amount_is_rejected(self) -> None:
        record = _tx()
        record["amount"] = Decimal("-1.0000")
        assert _rejected(record) == "negative_amount"

    def test_negative_claim_amount_is_rejected(self) -> None:
        record = _claim()
        record["claim_amount"] = Decimal("-0.0100")
        assert _rejected(record, hmac_key=HMAC_KEY) == "negative_claim_amount"

    def test_zero_claim_amount_is_accepted(self) -> None:
        record = _claim()
        record["claim_amount"] = Decimal("0")
        assert to_row(record, hmac_key=HMAC_KEY)["claim_amount"] == "0.00"


class TestCodes:
    def test_currency_is_upper_cased_and_trimmed(self) -> None:
        record = _tx()
        record["currency"] = " eur "
        assert to_row(record)["currency"] == "EUR"

    @pytest.mark.parametrize("bad", ["XYZ", "XAU", "", None, "EURO"])
    def test_unknown_currency_is_rejected(self, bad: Any) -> None:
        record = _tx()
        record["currency"] = bad
        assert _rejected(record) == "unknown_currency"

    def test_country_codes_are_upper_cased_and_checked(self) -> None:
        record = _tx()
        record["merchant"] = {"name": "Shop", "mcc": "5462", "country": " de"}
        assert to_row(record)["merchant_country"] == "DE"
        record["merchant"] = {"name": "Shop", "mcc": "5462", "country": "ZZ"}
        assert _rejected(record) == "invalid_code"

    def test_loss_location_country_is_checked(self) -> None:
        record = _claim()
        record["loss_location"] = {"country": "gb", "region": None, "postal_code": None}
        assert to_row(record, hmac_key=HMAC_KEY)["loss_location_country"] == "GB"
        record["loss_location"] = {"country": "UK", "region": None, "postal_code": None}
        assert _rejected(record, hmac_key=HMAC_KEY) == "invalid_code"

    def test_mcc_must_be_four_digits(self) -> None:
        record = _tx()
        record["merchant"] = {"name": "Shop", "mcc": "54a2", "country": "DE"}
        assert _rejected(record) == "invalid_code"

    def test_enum_values_are_upper_cased(self) -> None:
        record = _tx()
        record["status"] = " settled "
        assert to_row(record)["status"] == "SETTLED"


class TestStringsAndTimestamps:
    def test_strings_are_trimmed_and_blank_optionals_become_null(self) -> None:
        record = _claim()
        record["policy_id"] = "  pol-77  "
        record["loss_location"] = {"country": "GB", "region": "   ", "postal_code": " SW1A 1AA "}
        row = to_row(record, hmac_key=HMAC_KEY)
        assert row["policy_id"] == "pol-77"
        assert row["loss_location_region"] is None
        assert row["loss_location_postal_code"] == "SW1A 1AA"

    def test_blank_required_string_is_rejected(self) -> None:
        record = _tx()
        record["account_id"] = "   "
        assert _rejected(record) == "invalid_event"

    @pytest.mark.parametrize(
        "value",
        [
            datetime(2026, 1, 31, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
            "2026-01-31T10:30:00.123456+01:00",
            "2026-01-31T09:30:00.123456Z",
            1_769_851_800_123_456,
        ],
    )
    def test_timestamps_become_utc_iso_with_micros_and_z(self, value: Any) -> None:
        record = _tx()
        record["occurred_at"] = value
        assert to_row(record)["occurred_at"] == "2026-01-31T09:30:00.123456Z"

    def test_timestamp_without_offset_in_json_is_rejected(self) -> None:
        record = _tx()
        record["occurred_at"] = "2026-01-31T09:30:00"
        assert _rejected(record) == "invalid_timestamp"

    def test_ingested_at_null_stays_null(self) -> None:
        assert to_row(_tx())["ingested_at"] is None

    def test_loss_date_is_iso_date(self) -> None:
        record = _claim()
        record["loss_date"] = date(2026, 1, 29)
        assert to_row(record, hmac_key=HMAC_KEY)["loss_date"] == "2026-01-29"


class TestBusinessRules:
    def test_loss_date_after_report_date_is_rejected(self) -> None:
        record = _claim()
        record["loss_date"] = date(2026, 2, 1)
        record["reported_at"] = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
        assert _rejected(record, hmac_key=HMAC_KEY) == "loss_date_after_report_date"

    def test_loss_date_is_compared_with_the_utc_report_date(self) -> None:
        record = _claim()
        # 00:30 on Feb 1 in UTC+2 is Jan 31 in UTC: a loss on Feb 1 is after it.
        record["loss_date"] = date(2026, 2, 1)
        record["reported_at"] = datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
        assert _rejected(record, hmac_key=HMAC_KEY) == "loss_date_after_report_date"

    def test_loss_on_the_report_day_is_accepted(self) -> None:
        record = _claim()
        record["loss_date"] = date(2026, 1, 31)
        record["reported_at"] = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
        assert to_row(record, hmac_key=HMAC_KEY)["loss_date"] == "2026-01-31"


class TestPii:
    def test_clear_card_number_is_masked(self) -> None:
        record = _tx()
        record["card_number"] = "4111 1111 1111 1111"
        assert to_row(record)["card_number"] == "411111******1111"

    def test_masked_card_number_is_unchanged(self) -> None:
        record = _tx()
        record["card_number"] = "411111******1111"
        assert to_row(record)["card_number"] == "411111******1111"

    def test_garbage_card_number_is_rejected_without_echoing_it(self) -> None:
        record = _tx()
        record["card_number"] = "not-a-card"
        with pytest.raises(RecordRejected) as info:
            to_row(record)
        assert info.value.code == "invalid_event"
        assert "not-a-card" not in str(info.value)

    def test_clear_national_id_is_hashed_with_the_key(self) -> None:
        record = _claim()
        record["claimant_national_id"] = "123-45-6789"
        row = to_row(record, hmac_key=HMAC_KEY)
        assert row["claimant_national_id"] == pii.hmac_national_id("123456789", HMAC_KEY)

    def test_hashed_national_id_is_unchanged(self) -> None:
        hashed = pii.hmac_national_id("123456789", "another-key")
        record = _claim()
        record["claimant_national_id"] = hashed
        assert to_row(record)["claimant_national_id"] == hashed

    def test_clear_national_id_without_key_fails_rather_than_leaking(self) -> None:
        record = _claim()
        record["claimant_national_id"] = "123-45-6789"
        assert _rejected(record) == "pii_key_missing"

    def test_card_numbers_in_free_text_are_masked(self) -> None:
        record = _tx()
        record["metadata"] = {"note": "paid with 4111-1111-1111-1111 today"}
        record["merchant"] = {"name": "Shop 4111111111111111", "mcc": "5462", "country": "DE"}
        row = to_row(record)
        assert "4111-1111-1111-1111" not in row["metadata"]["note"]
        assert "4111111111111111" not in row["merchant_name"]

    def test_claim_free_text_is_masked(self) -> None:
        record = _claim()
        record["cause_of_loss"] = "card 4111111111111111 stolen"
        assert "4111111111111111" not in to_row(record, hmac_key=HMAC_KEY)["cause_of_loss"]


class TestTestEvents:
    @pytest.mark.parametrize("flag", ["true", "TRUE", "1", "yes", " True "])
    def test_metadata_test_flag_marks_a_test_event(self, flag: str) -> None:
        assert is_test_event({"metadata": {"test": flag}, "source": "core-banking"})

    @pytest.mark.parametrize("flag", ["false", "0", "", "no"])
    def test_other_flags_do_not(self, flag: str) -> None:
        assert not is_test_event({"metadata": {"test": flag}, "source": "core-banking"})

    def test_source_prefix_marks_a_test_event(self) -> None:
        assert is_test_event({"metadata": {}, "source": "Test-harness"}, ("test-",))
        assert not is_test_event({"metadata": {}, "source": "core-banking"}, ("test-",))
