"""PII masking: card numbers (PCI DSS 3.4.1), keyed hashes of national ids, PANs in free text."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

import schemas
from schemas import PiiError
from schemas.config import PiiSettings
from schemas.pii import (
    hmac_national_id,
    is_hmac_national_id,
    is_masked_card_number,
    luhn_valid,
    mask_card_number,
    mask_luhn_in_text,
    mask_record,
)
from sluice.errors import ConfigurationError

KEY = "test-key"
TEST_PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]


@pytest.mark.parametrize("pan", TEST_PANS)
def test_known_test_pans_are_luhn_valid(pan: str) -> None:
    assert luhn_valid(pan)
    assert not luhn_valid(pan[:-1] + str((int(pan[-1]) + 1) % 10))


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("4111111111111111", "411111******1111"),
        ("4111 1111 1111 1111", "411111******1111"),
        ("4111-1111-1111-1111", "411111******1111"),
        ("5555555555554444", "555555******4444"),
        ("378282246310005", "37828******0005"),
        ("6759649826438453", "675964******8453"),
        ("123456789012", "12******9012"),
        ("4111111111111", "411******1111"),
        ("4111111111111111110", "411111*********1110"),
    ],
)
def test_mask_card_number(pan: str, masked: str) -> None:
    assert mask_card_number(pan) == masked
    assert len(masked) == len(pan.replace(" ", "").replace("-", ""))
    assert is_masked_card_number(masked)
    assert mask_card_number(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "bad", ["", "4111", "4111x11111111111", "41111111111111111111", "١٢٣٤٥٦٧٨٩٠١٢"]
)
def test_mask_card_number_refuses_non_pans_without_echoing(bad: str) -> None:
    with pytest.raises(PiiError) as info:
        mask_card_number(bad)
    assert bad not in str(info.value) or not bad


def test_hmac_national_id() -> None:
    hashed = hmac_national_id("123-45-6789", KEY)
    assert hashed.startswith("hmac-sha256:")
    assert len(hashed) == len("hmac-sha256:") + 64
    assert is_hmac_national_id(hashed)
    assert hmac_national_id(hashed, KEY) == hashed  # idempotent
    assert hmac_national_id("123456789", KEY) == hashed  # separators do not matter
    assert hmac_national_id("ab 12.34/56", KEY) == hmac_national_id("AB123456", KEY)
    assert hmac_national_id("123456789", "other-key") != hashed  # keyed
    assert hmac_national_id("123456789", SecretStr(KEY)) == hashed
    assert hmac_national_id("123456789", KEY.encode()) == hashed


@pytest.mark.parametrize("key", [None, "", b""])
def test_hmac_needs_a_key(key: Any) -> None:
    with pytest.raises(PiiError, match="SLUICE_PII_HMAC_KEY"):
        hmac_national_id("123456789", key)


def test_pii_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="SLUICE_PII_HMAC_KEY"):
        PiiSettings().hmac_key()
    monkeypatch.setenv("SLUICE_PII_HMAC_KEY", "s3cret")
    settings = PiiSettings()
    assert settings.hmac_key() == b"s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card 4111111111111111 declined", "card 411111******1111 declined"),
        ("card 4111 1111 1111 1111.", "card 4111 11** **** 1111."),
        ("amex 3782-822463-10005 ok", "amex 3782-8*****-*0005 ok"),
        ("two: 5555555555554444 and 378282246310005", "two: 555555******4444 and 37828******0005"),
        ("order 1234 5678 4111 1111 1111 1111", "order 1234 5678 4111 11** **** 1111"),
        ("4111111111111111", "411111******1111"),
    ],
)
def test_mask_luhn_in_text(text: str, masked: str) -> None:
    assert mask_luhn_in_text(text) == masked
    assert mask_luhn_in_text(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no digits here",
        "ref 4111111111111112",  # fails the Luhn check
        "phone +1 555 0100",
        "short 411111111111",  # 12 digits, not Luhn-valid
        "iban 12345678901234567890123",  # one long digit string is an identifier
        "at 2026-01-31 09:30:00",
        "masked 411111******1111 stays",
    ],
)
def test_text_without_pans_is_untouched(text: str) -> None:
    assert mask_luhn_in_text(text) == text


def test_digits_glued_to_letters_are_still_scanned() -> None:
    assert mask_luhn_in_text("x4111111111111111y") == "x411111******1111y"


def test_mask_record_masks_every_pii_field() -> None:
    ft = schemas.parse_event(
        "financial-transaction", schemas.example_event("financial-transaction")
    )
    ft.update(card_number="5555555555554444", metadata={"note": "paid with 4111 1111 1111 1111"})
    ft["merchant"]["name"] = "Shop 378282246310005"
    masked = mask_record(ft, hmac_key=None)
    assert masked["card_number"] == "555555******4444"
    assert masked["metadata"] == {"note": "paid with 4111 11** **** 1111"}
    assert masked["merchant"]["name"] == "Shop 37828******0005"
    assert ft["card_number"] == "5555555555554444"  # the input is not changed
    assert mask_record(masked, hmac_key=None) == masked
    # the masked record is still a valid event
    assert (
        schemas.validate_record("financial-transaction", masked)["card_number"]
        == masked["card_number"]
    )

    ic = schemas.parse_event("insurance-claim", schemas.example_event("insurance-claim", version=1))
    ic.update(claimant_national_id="AB 12 34 56 C", cause_of_loss="card 4111111111111111 stolen")
    masked_claim = mask_record(ic, hmac_key=KEY)
    assert is_hmac_national_id(masked_claim["claimant_national_id"])
    assert masked_claim["cause_of_loss"] == "card 411111******1111 stolen"
    assert mask_record(masked_claim, hmac_key=KEY) == masked_claim
    assert mask_record(masked_claim, hmac_key=None) == masked_claim  # hashed: no key needed
    with pytest.raises(PiiError):
        mask_record(ic, hmac_key=None)
    schemas.validate_record("insurance-claim", masked_claim)
