"""ISO 4217 currency codes with their minor units (digits after the decimal point).

Used by the codec (a currency must be listed; an amount may not carry more decimal
places than its currency allows) and by the transform (to quantize amounts exactly).
Only codes with defined minor units are listed: precious metals, SDRs, bond-market
units and the testing codes (``XAU``, ``XDR``, ``XTS``, ``XXX``, ...) are not money
movements this platform accepts.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

_BY_MINOR_UNITS: dict[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
        "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
        "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR "
        "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP "
        "MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
        "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB "
        "TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW "
        "ZWG ZWL"
    ),
}

#: Currency code -> number of minor-unit digits (``USD`` 2, ``JPY`` 0, ``KWD`` 3).
MINOR_UNITS: MappingProxyType[str, int] = MappingProxyType(
    {code: units for units, codes in _BY_MINOR_UNITS.items() for code in codes.split()}
)

_QUANTA: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(5)}


def is_currency(code: str) -> bool:
    """True when ``code`` is a listed ISO 4217 code (upper case, three letters)."""
    return code in MINOR_UNITS


def minor_units(code: str) -> int:
    """Minor-unit digits of ``code``; ``KeyError`` for an unlisted code."""
    return MINOR_UNITS[code]


def quantum(code: str) -> Decimal:
    """The smallest amount of ``code`` (``Decimal('0.01')`` for USD, ``Decimal('1')`` for JPY)."""
    return _QUANTA[MINOR_UNITS[code]]


def quantize(amount: Decimal, code: str) -> Decimal:
    """``amount`` with exactly the minor units of ``code`` (``125.4`` USD -> ``125.40``).

    Raises ``ValueError`` when that would round, that is when ``amount`` carries more
    significant decimal places than the currency has: amounts are never rounded
    silently. The codec rejects such amounts at the door, so validated records never
    raise here.
    """
    q = quantum(code)
    result = amount.quantize(q)
    if result != amount:
        raise ValueError(f"{amount} has more decimal places than {code} allows")
    return result
