"""ISO 4217 and ISO 3166 tables."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.countries import COUNTRY_CODES, is_country
from schemas.currencies import MINOR_UNITS, is_currency, minor_units, quantize, quantum


def test_tables() -> None:
    assert len(COUNTRY_CODES) == 249
    assert all(len(c) == 2 and c.isupper() for c in COUNTRY_CODES)
    assert is_country("DE") and not is_country("XK") and not is_country("de")
    assert all(len(c) == 3 and c.isupper() for c in MINOR_UNITS)
    assert is_currency("USD") and not is_currency("XAU") and not is_currency("usd")
    assert (minor_units("USD"), minor_units("JPY"), minor_units("KWD"), minor_units("CLF")) == (
        2,
        0,
        3,
        4,
    )


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("125.4", "USD", "125.40"),
        ("125.4000", "USD", "125.40"),
        ("1200.0000", "JPY", "1200"),
        ("1.5", "KWD", "1.500"),
    ],
)
def test_quantize(amount: str, code: str, expected: str) -> None:
    assert str(quantize(Decimal(amount), code)) == expected


def test_quantize_never_rounds() -> None:
    assert quantum("USD") == Decimal("0.01")
    with pytest.raises(ValueError, match="more decimal places than JPY allows"):
        quantize(Decimal("10.5"), "JPY")
