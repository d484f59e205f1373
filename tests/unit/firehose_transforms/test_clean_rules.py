"""The transform applies the edge's rule set (schemas.rules) and its masking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firehose_transforms.clean import to_row
from firehose_transforms.exceptions import RecordRejected
from schemas.pii import ascii_digits
from schemas.rules import PlausibilityWindow
from tests.unit.firehose_transforms import builders as b

FULLWIDTH_PAN = "5555555555554444".translate({48 + d: 0xFF10 + d for d in range(10)})


def test_card_number_in_an_identifier_is_refused() -> None:
    with pytest.raises(RecordRejected) as info:
        to_row(b.transaction(account_id="4111111111111111"))
    assert info.value.code == "pan_in_identifier"
    assert "4111111111111111" not in str(info.value)


@pytest.mark.parametrize(
    "occurred_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1999-12-31T23:59:59Z"]
)
def test_implausible_occurred_at_is_refused(occurred_at: str) -> None:
    with pytest.raises(RecordRejected) as info:
        to_row(b.transaction(occurred_at=occurred_at))
    assert info.value.code == "invalid_timestamp"


def test_the_window_is_the_one_given() -> None:
    record = b.transaction(occurred_at="2019-06-01T00:00:00Z")
    to_row(record)
    window = PlausibilityWindow(datetime(2020, 1, 1, tzinfo=UTC), timedelta(days=1))
    with pytest.raises(RecordRejected):
        to_row(record, window=window)


def test_loss_date_after_reported_at_is_refused() -> None:
    with pytest.raises(RecordRejected) as info:
        to_row(b.claim(loss_date="2026-02-01", reported_at="2026-01-31T23:00:00Z"))
    assert info.value.code == "loss_date_after_report_date"


def test_every_string_and_key_is_masked() -> None:
    claim = b.claim(
        loss_location={"country": "GB", "region": "4111.1111.1111.1111", "postal_code": "x"},
        metadata={FULLWIDTH_PAN: "4111\t1111\u00a01111  1111"},
    )
    row = to_row(claim, hmac_key="k")
    digits = ascii_digits(repr(row))
    assert "4111111111111111" not in digits
    assert "5555555555554444" not in digits


@pytest.mark.parametrize(
    "changes",
    [{"event_type": "4111111111111111"}, {"status": "4111 1111 1111 1111"}],
)
def test_reasons_never_quote_a_card_number(changes: dict[str, str]) -> None:
    with pytest.raises(RecordRejected) as info:
        to_row(b.transaction(**changes))
    assert "4111111111111111" not in ascii_digits(str(info.value))
