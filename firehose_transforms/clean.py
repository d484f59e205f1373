"""Event -> warehouse row: the one cleaning function the transform and the consumers'
warehouse sink share.

:func:`to_row` takes a validated event as the codec produces it (``schemas.codec.decode``
or ``schemas.codec.parse_event``: decimals as :class:`~decimal.Decimal`, timestamps as
aware :class:`~datetime.datetime`, dates as :class:`~datetime.date`) and also accepts the
JSON forms (strings, numbers). It returns the flat row of the S3 zone contract
(``docs/s3-zone.md``) or raises :class:`~firehose_transforms.exceptions.RecordRejected`
with a stable reason code. It is pure: no I/O, no environment.

Cleaning rules (each has a unit test in ``tests/unit/firehose_transforms/test_clean.py``):

- strings are trimmed; an optional string that is empty after trimming is ``null``;
- codes are upper-cased and checked: currency (ISO 4217, ``unknown_currency``),
  countries (ISO 3166-1 alpha-2, ``invalid_code``), MCC (four digits, ``invalid_code``);
  enum values are upper-cased;
- amounts are exact decimals with the currency's minor units (``"125.40"`` USD,
  ``"1000"`` JPY); an amount that would need rounding is ``invalid_amount``, a negative
  one ``negative_amount`` / ``negative_claim_amount``;
- timestamps become UTC ISO-8601 with microseconds and ``Z``; dates ``YYYY-MM-DD``;
- the rules of :mod:`schemas.rules`, the same the ingest edge applies: a loss date after
  the report date (in UTC) is ``loss_date_after_report_date``, an ``occurred_at``
  outside the plausibility window ``invalid_timestamp``, a card number inside an
  identifier field ``pan_in_identifier``;
- PII is masked as at the ingest edge, by the same module (:func:`schemas.pii.mask_record`
  walking the record's schema): card numbers ``first6******last4``, national ids keyed
  HMAC (``hmac-sha256:<hex>``), Luhn-valid digit runs in every other string field and
  every map key masked. Masking is idempotent, so a record masked upstream is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from firehose_transforms.exceptions import RecordRejected
from firehose_transforms.models import Reason
from schemas import catalogue, pii, rules
from schemas.countries import COUNTRY_CODES
from schemas.currencies import MINOR_UNITS
from schemas.exceptions import PiiError
from sluice.config import EventType

FINANCIAL_TRANSACTION = EventType.FINANCIAL_TRANSACTION.value
INSURANCE_CLAIM = EventType.INSURANCE_CLAIM.value

TEST_FLAG_VALUES: frozenset[str] = frozenset({"true", "1", "yes"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_MCC = re.compile(r"^[0-9]{4}$")
_QUANTA: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(5)}
# A non-negative decimal within precision 18 / scale 4, no exponent, no sign.
_PLAIN_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,13})(?:\.([0-9]{1,4}))?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_MATCH = _UUID.fullmatch


def reject(reason: Reason, message: str) -> RecordRejected:
    """A :class:`RecordRejected` with ``reason`` as its code."""
    return RecordRejected(message, code=reason.value)


# --------------------------------------------------------------------------- scalars


def clean_text(value: Any, field: str) -> str:
    """A required string, trimmed; missing or blank is ``invalid_event``."""
    if type(value) is str:
        text = value.strip()
        if text:
            return text
    if value is None:
        raise reject(Reason.INVALID_EVENT, f"{field} is missing")
    text = str(value).strip()
    if not text:
        raise reject(Reason.INVALID_EVENT, f"{field} is blank")
    return text


def clean_optional_text(value: Any) -> str | None:
    """An optional string, trimmed; blank becomes ``None``."""
    if value is None:
        return None
    text = value.strip() if type(value) is str else str(value).strip()
    return text or None


def format_timestamp(value: Any, field: str) -> str:
    """A timestamp as ISO-8601 UTC with microseconds and ``Z``.

    Accepts an aware ``datetime`` (naive ones are UTC, as Avro ``timestamp-micros``
    defines), epoch microseconds (``int``) or an ISO-8601 string with an offset. A
    string already in the canonical form is checked and passed through.
    """
    if type(value) is str and _is_canonical_timestamp(value):
        return value
    if type(value) is datetime and (value.tzinfo is UTC or value.tzinfo is None):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    moment = _to_datetime(value, field)
    return moment.isoformat(timespec="microseconds") + "Z"


_CANONICAL_TS = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z"
)
_CANONICAL_TS_MATCH = _CANONICAL_TS.fullmatch
_VALID_DATES: dict[str, bool] = {}


def _valid_date(text: str) -> bool:
    """``YYYY-MM-DD`` names a real day (memoised: few distinct days pass by)."""
    known = _VALID_DATES.get(text)
    if known is None:
        try:
            date.fromisoformat(text)
            known = len(text) == 10
        except ValueError:
            known = False
        if len(_VALID_DATES) > 10_000:
            _VALID_DATES.clear()
        _VALID_DATES[text] = known
    return known


def _is_canonical_timestamp(text: str) -> bool:
    return (
        len(text) == 27
        and _CANONICAL_TS_MATCH(text) is not None
        and (_VALID_DATES.get(text[:10]) or _valid_date(text[:10]))
    )


def _to_datetime(value: Any, field: str) -> datetime:
    """A naive UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int) and not isinstance(value, bool):
        moment = _EPOCH + timedelta(microseconds=value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise reject(Reason.INVALID_TIMESTAMP, f"{field} is not an ISO-8601 timestamp") from exc
        if moment.tzinfo is None:
            raise reject(Reason.INVALID_TIMESTAMP, f"{field} has no UTC offset")
    else:
        raise reject(Reason.INVALID_TIMESTAMP, f"{field} is not a timestamp")
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _to_date(value: Any, field: str) -> date:
    if isinstance(value, datetime):
        return _to_datetime(value, field).date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH_DATE + timedelta(days=value)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise reject(Reason.INVALID_TIMESTAMP, f"{field} is not a YYYY-MM-DD date") from exc
    raise reject(Reason.INVALID_TIMESTAMP, f"{field} is not a date")


def clean_currency(value: Any) -> str:
    """An ISO 4217 code, upper-cased; unlisted codes are ``unknown_currency``."""
    code = str(value).strip().upper() if value is not None else ""
    if code not in MINOR_UNITS:
        raise reject(Reason.UNKNOWN_CURRENCY, f"currency {code[:8]!r} is not a known ISO 4217 code")
    return code


def clean_country(value: Any, field: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased; others are ``invalid_code``."""
    code = str(value).strip().upper() if value is not None else ""
    if code not in COUNTRY_CODES:
        raise reject(Reason.INVALID_CODE, f"{field} {code[:8]!r} is not an ISO 3166-1 alpha-2 code")
    return code


def clean_amount(value: Any, currency: str, field: str, negative_reason: Reason) -> str:
    """An exact decimal string with ``currency``'s minor units.

    Raises ``invalid_amount`` for a non-number or an amount that would need rounding,
    ``negative_reason`` for an amount below zero.
    """
    places = MINOR_UNITS[currency]
    if type(value) is str:
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain is not None:
            fraction = plain.group(2)
            if fraction is None:
                return f"{value}.{'0' * places}" if places else value
            if len(fraction) == places:
                return value
            if len(fraction) < places:
                return value + "0" * (places - len(fraction))
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            amount = Decimal(str(value).strip())
        else:
            raise reject(Reason.INVALID_AMOUNT, f"{field} is not a number")
    except InvalidOperation as exc:
        raise reject(Reason.INVALID_AMOUNT, f"{field} is not a decimal number") from exc
    if not amount.is_finite():
        raise reject(Reason.INVALID_AMOUNT, f"{field} is not a finite number")
    if amount < 0:
        raise reject(negative_reason, f"{field} must not be negative")
    quantum = _QUANTA[places]
    try:
        exact = amount.quantize(quantum)
    except InvalidOperation as exc:
        raise reject(Reason.INVALID_AMOUNT, f"{field} is out of range") from exc
    if exact != amount:
        raise reject(
            Reason.INVALID_AMOUNT,
            f"{field} has more decimal places than {currency} allows ({MINOR_UNITS[currency]})",
        )
    if not exact:
        exact = abs(exact)  # no "-0.00"
    return str(exact)


def clean_enum(value: Any, field: str, symbols: frozenset[str]) -> str:
    """An enum symbol, trimmed and upper-cased; not one of ``symbols`` is ``invalid_event``."""
    if type(value) is str and value in symbols:
        return value
    symbol = clean_text(value, field).upper()
    if symbol not in symbols:
        raise reject(
            Reason.INVALID_EVENT, f"{field} {pii.excerpt(symbol)} is not a symbol of the schema"
        )
    return symbol


def _enum_symbols(event_type: str) -> dict[str, frozenset[str]]:
    """Field name -> symbols of every enum field of every version of ``event_type``."""
    from schemas import catalogue

    found: dict[str, set[str]] = {}
    for version in catalogue().versions(event_type):
        for spec in version.schema["fields"]:
            kind = spec["type"]
            if isinstance(kind, dict) and kind.get("type") == "enum":
                found.setdefault(spec["name"], set()).update(kind["symbols"])
    return {name: frozenset(symbols) for name, symbols in found.items()}


def mask_text(value: str | None) -> str | None:
    """Free text with Luhn-valid card numbers masked (idempotent)."""
    if value is None:
        return None
    return pii.mask_luhn_in_text(value)


def clean_card_number(value: Any) -> str | None:
    """``first6******last4`` or ``None``; an already masked value is kept."""
    text = clean_optional_text(value)
    if text is None:
        return None
    try:
        return pii.mask_card_number(text)
    except PiiError as exc:
        raise reject(Reason.INVALID_EVENT, "card_number is not a card number") from exc


def clean_national_id(value: Any, hmac_key: str | bytes | None) -> str | None:
    """``hmac-sha256:<hex>`` or ``None``; an already hashed value is kept."""
    text = clean_optional_text(value)
    if text is None:
        return None
    if pii.is_hmac_national_id(text):
        return text
    if not hmac_key:
        raise reject(
            Reason.PII_KEY_MISSING,
            "claimant_national_id arrived unmasked and no PII HMAC key is configured",
        )
    return pii.hmac_national_id(text, hmac_key)


def clean_metadata(value: Any) -> dict[str, str]:
    """The metadata map: keys and values trimmed, card numbers in values masked."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise reject(Reason.INVALID_EVENT, "metadata is not a map of strings")
    mask = pii.mask_luhn_in_text
    return {str(key).strip(): mask(str(raw).strip()) for key, raw in value.items()}


# --------------------------------------------------------------------------- rows


def is_test_event(record: Mapping[str, Any], test_sources: tuple[str, ...] = ()) -> bool:
    """True when the event is marked as a test: ``metadata.test`` is ``true``/``1``/``yes``
    (any case), or ``source`` starts with one of ``test_sources`` (lower-case prefixes)."""
    metadata = record.get("metadata")
    if (
        type(metadata) is dict
        and "test" in metadata
        and str(metadata["test"]).strip().lower() in TEST_FLAG_VALUES
    ):
        return True
    if test_sources:
        source = record.get("source")
        text = source if type(source) is str else str(source or "")
        return text.lstrip().lower().startswith(test_sources)
    return False


def to_row(
    record: Mapping[str, Any],
    *,
    hmac_key: str | bytes | None = None,
    window: rules.PlausibilityWindow | None = None,
) -> dict[str, Any]:
    """The warehouse row of one validated event (see the module docstring for the rules).

    Args:
        record: the event as the codec returns it (or its JSON form).
        hmac_key: the PII HMAC key; needed only when a national id arrives unmasked.
        window: the plausibility window of ``occurred_at``; ``SLUICE_RULES_OCCURRED_AT_*``
            when omitted.

    Raises:
        RecordRejected: the event breaks a rule; ``code`` is a
            :class:`~firehose_transforms.models.Reason` value.
    """
    raw_type = record.get("event_type")
    event_type: str = raw_type if type(raw_type) is str else ""
    builder = _BUILDERS.get(event_type)
    if builder is None:
        event_type = str(raw_type or "").strip()
        builder = _BUILDERS.get(event_type)
        if builder is None:
            raise reject(Reason.UNKNOWN_EVENT_TYPE, f"unknown event_type {pii.excerpt(event_type)}")
    masked = _masked(record, event_type, hmac_key)
    row = _common(masked, event_type)
    builder(masked, row, hmac_key)
    # the rules see the record as it came (masking would hide a card number in an id)
    broken = rules.check_event(event_type, record, window=window or _default_window(), now=_now)
    if broken:
        first = broken[0]
        raise reject(_RULE_REASONS.get(first.code, Reason.INVALID_EVENT), first.message)
    return row


def _masked(
    record: Mapping[str, Any], event_type: str, hmac_key: str | bytes | None
) -> Mapping[str, Any]:
    """``record`` with every string field and map key masked (``schemas.pii``, by schema).

    National ids are left to :func:`clean_national_id` (its own reason when no key is
    configured); every other field follows the schema of the record's version.
    """
    version = record.get("schema_version")
    schema = None
    if type(version) is int:
        schema = _SCHEMAS.get((event_type, version))
        if schema is None:
            cat = catalogue()
            if cat.has(event_type, version):
                schema = _SCHEMAS[(event_type, version)] = cat.get(event_type, version).schema
    national_id = record.get("claimant_national_id")
    try:
        masked = pii.mask_record(
            {**record, "claimant_national_id": None} if national_id is not None else record,
            hmac_key=None,
            schema=schema,
        )
    except PiiError as exc:
        raise reject(Reason.INVALID_EVENT, "card_number is not a card number") from exc
    if national_id is not None:
        masked["claimant_national_id"] = national_id
    return masked


#: The schema of each catalogued (event type, version) seen (the catalogue is loaded
#: once per process, so an entry never goes stale).
_SCHEMAS: dict[tuple[str, int], Mapping[str, Any]] = {}


@cache
def _default_window() -> rules.PlausibilityWindow:
    """The plausibility window of ``SLUICE_RULES_OCCURRED_AT_*`` (read once)."""
    return rules.PlausibilityWindow.from_settings()


def _now() -> datetime:
    return datetime.now(UTC)


_RULE_REASONS: Mapping[str, Reason] = {
    rules.CARD_NUMBER_IN_IDENTIFIER: Reason.PAN_IN_IDENTIFIER,
    rules.IMPLAUSIBLE_TIMESTAMP: Reason.INVALID_TIMESTAMP,
    rules.LOSS_DATE_AFTER_REPORT_DATE: Reason.LOSS_DATE_AFTER_REPORT_DATE,
}


def _text(value: Any, field: str) -> str:
    if type(value) is str:
        text = value.strip()
        if text:
            return text
    return clean_text(value, field)


def _free_text(text: str) -> str:
    # mask_luhn_in_text only ever changes a run of 12 or more digits
    return _mask_luhn(text) if _may_hold_pan(text) else text


def _common(record: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    version = record.get("schema_version")
    if type(version) is not int:
        try:
            version = int(version)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise reject(Reason.INVALID_EVENT, "schema_version is not an integer") from exc
    if not 0 < version < 2**31:
        raise reject(Reason.INVALID_EVENT, "schema_version is out of range")
    ingested = record.get("ingested_at")
    metadata = record.get("metadata")
    if metadata:
        if type(metadata) is not dict and not isinstance(metadata, Mapping):
            raise reject(Reason.INVALID_EVENT, "metadata is not a map of strings")
        try:  # all strings, the usual case
            metadata = {
                key.strip(): (
                    text
                    if len(text := raw.strip()) < _PAN_MIN or not _may_hold_pan(text)
                    else _mask_luhn(text)
                )
                for key, raw in metadata.items()
            }
        except (AttributeError, TypeError):
            metadata = clean_metadata(metadata)
    else:
        metadata = {}
    event_id = record.get("event_id")
    if type(event_id) is not str or not _UUID_MATCH(event_id):
        event_id = _event_id(event_id)
    occurred = record.get("occurred_at")
    if not (type(occurred) is str and _is_canonical_timestamp(occurred)):
        occurred = format_timestamp(occurred, "occurred_at")
    if ingested is not None and not (type(ingested) is str and _is_canonical_timestamp(ingested)):
        ingested = format_timestamp(ingested, "ingested_at")
    source = record.get("source")
    if not (type(source) is str and (source := source.strip())):
        source = clean_text(record.get("source"), "source")
    if _may_hold_pan(source):
        source = _mask_luhn(source)
    tenant = record.get("tenant_id")
    if not (type(tenant) is str and (tenant := tenant.strip())):
        tenant = clean_text(record.get("tenant_id"), "tenant_id")
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": version,
        "occurred_at": occurred,
        "ingested_at": ingested,
        "source": source,
        "tenant_id": tenant,
        "metadata": metadata,
    }


def _event_id(value: Any) -> str:
    text = value if type(value) is str else clean_text(value, "event_id")
    if not _UUID.fullmatch(text):
        text = clean_text(text, "event_id").lower()
        if not _UUID.fullmatch(text):
            raise reject(Reason.INVALID_EVENT, "event_id is not a UUID")
    return text


def _currency(value: Any) -> str:
    return value if type(value) is str and value in _CURRENCIES else clean_currency(value)


def _country(value: Any, field: str) -> str:
    return value if type(value) is str and value in COUNTRY_CODES else clean_country(value, field)


def _financial_transaction(
    record: Mapping[str, Any], row: dict[str, Any], hmac_key: str | bytes | None
) -> None:
    # Values already in their clean form are recognised inline (type check and a set
    # lookup or strip); anything else goes through the clean_* function of the rule.
    # The order of the checks decides the reason of an event breaking several rules.
    get = record.get
    currency = get("currency")
    if not (type(currency) is str and currency in _CURRENCIES):
        currency = clean_currency(currency)
    merchant = get("merchant")
    value = get("transaction_id")
    if not (type(value) is str and (value := value.strip())):
        value = clean_text(get("transaction_id"), "transaction_id")
    row["transaction_id"] = value
    value = get("account_id")
    if not (type(value) is str and (value := value.strip())):
        value = clean_text(get("account_id"), "account_id")
    row["account_id"] = value
    row["amount"] = clean_amount(get("amount"), currency, "amount", Reason.NEGATIVE_AMOUNT)
    row["currency"] = currency
    value = get("transaction_type")
    if not (type(value) is str and value in _TX_TYPES):
        value = clean_enum(value, "transaction_type", _TX_TYPES)
    row["transaction_type"] = value
    value = get("channel")
    if not (type(value) is str and value in _TX_CHANNELS):
        value = clean_enum(value, "channel", _TX_CHANNELS)
    row["channel"] = value
    value = get("status")
    if not (type(value) is str and value in _TX_STATUSES):
        value = clean_enum(value, "status", _TX_STATUSES)
    row["status"] = value
    card = get("card_number")
    if card is not None and not (type(card) is str and _is_masked_pan(card)):
        card = clean_card_number(card)
    row["card_number"] = card
    if merchant:
        if type(merchant) is not dict and not isinstance(merchant, Mapping):
            raise reject(Reason.INVALID_EVENT, "merchant is not a record")
        mcc = merchant.get("mcc")
        if not (type(mcc) is str and (mcc := mcc.strip())):
            mcc = clean_text(merchant.get("mcc"), "merchant.mcc")
        if not _MCC.match(mcc):
            raise reject(Reason.INVALID_CODE, "merchant.mcc is not four digits")
        name = merchant.get("name")
        if name is not None:
            name = name.strip() if type(name) is str else str(name).strip()
            if not name:
                name = None
            elif _may_hold_pan(name):
                name = _mask_luhn(name)
        row["merchant_name"] = name
        row["merchant_mcc"] = mcc
        country = merchant.get("country")
        if not (type(country) is str and country in COUNTRY_CODES):
            country = clean_country(country, "merchant.country")
        row["merchant_country"] = country
    else:
        row["merchant_name"] = row["merchant_mcc"] = row["merchant_country"] = None


def _insurance_claim(
    record: Mapping[str, Any], row: dict[str, Any], hmac_key: str | bytes | None
) -> None:
    get = record.get
    currency = _currency(get("currency"))
    location = get("loss_location")
    if not location or (type(location) is not dict and not isinstance(location, Mapping)):
        raise reject(Reason.INVALID_EVENT, "loss_location is missing")
    raw_loss = get("loss_date")
    if type(raw_loss) is str and len(raw_loss) == 10 and _valid_date(raw_loss):
        loss_date = raw_loss
    else:
        loss_date = _to_date(raw_loss, "loss_date").isoformat()
    reported = format_timestamp(get("reported_at"), "reported_at")
    # loss_date after reported_at: a rule of schemas.rules, checked by to_row
    row["claim_id"] = _text(get("claim_id"), "claim_id")
    row["policy_id"] = _text(get("policy_id"), "policy_id")
    row["policyholder_id"] = _text(get("policyholder_id"), "policyholder_id")
    row["line_of_business"] = clean_enum(get("line_of_business"), "line_of_business", _CLAIM_LINES)
    row["loss_date"] = loss_date
    row["reported_at"] = reported
    row["claim_amount"] = clean_amount(
        get("claim_amount"), currency, "claim_amount", Reason.NEGATIVE_CLAIM_AMOUNT
    )
    row["currency"] = currency
    row["status"] = clean_enum(get("status"), "status", _CLAIM_STATUSES)
    cause = clean_optional_text(get("cause_of_loss"))
    row["cause_of_loss"] = None if cause is None else _free_text(cause)
    row["claimant_national_id"] = clean_national_id(get("claimant_national_id"), hmac_key)
    row["loss_location_country"] = _country(location.get("country"), "loss_location.country")
    region = clean_optional_text(location.get("region"))
    row["loss_location_region"] = None if region is None else _free_text(region)
    row["loss_location_postal_code"] = clean_optional_text(location.get("postal_code"))


_TX_ENUMS = _enum_symbols(FINANCIAL_TRANSACTION)
_CLAIM_ENUMS = _enum_symbols(INSURANCE_CLAIM)
_TX_TYPES = _TX_ENUMS["transaction_type"]
_TX_CHANNELS = _TX_ENUMS["channel"]
_TX_STATUSES = _TX_ENUMS["status"]
_CLAIM_LINES = _CLAIM_ENUMS["line_of_business"]
_CLAIM_STATUSES = _CLAIM_ENUMS["status"]
_CURRENCIES: frozenset[str] = frozenset(MINOR_UNITS)
_mask_luhn = pii.mask_luhn_in_text
# A run of 12 digits (any separators, any script): the shortest that mask_luhn_in_text
# can change (a text without one is returned unchanged).
_may_hold_pan = pii.may_hold_card_number
_is_masked_pan = pii.is_masked_card_number
_PAN_MIN = pii.PAN_MIN_DIGITS

_BUILDERS: Mapping[str, Callable[[Mapping[str, Any], dict[str, Any], str | bytes | None], None]] = {
    FINANCIAL_TRANSACTION: _financial_transaction,
    INSURANCE_CLAIM: _insurance_claim,
}
