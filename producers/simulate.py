"""The load generator behind ``sluice simulate``.

Two parts:

- :class:`EventGenerator` (pure, seeded): realistic financial transactions and
  insurance claims as the API's JSON bodies: Luhn-valid test card numbers, ISO 4217
  currencies with amounts plausible for each, ISO 3166 countries, merchant category
  codes, a realistic share of claims per line of business; and, at
  ``invalid_ratio``, invalid events of several kinds (wrong enum, missing field, bad
  currency, negative amount, ...), each labelled with its defect.
- :func:`run_simulation` (I/O): sends the events at a target rate with bounded
  concurrency to the HTTP API (``POST /v1/events/{type}`` or ``/batch``) or straight
  to a publisher after validation with the schemas codec, and returns a
  :class:`SimulationSummary` (sent, accepted, rejected by reason, failed by reason,
  throughput, latency percentiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any, Literal, Protocol

import orjson

from producers.base import Publisher, build_outgoing_record
from producers.models import OutgoingRecord
from schemas.currencies import quantum
from schemas.pii import mask_luhn_in_text
from sluice.config import EventType, StreamSettings
from sluice.errors import ConfigurationError

FINANCIAL = EventType.FINANCIAL_TRANSACTION.value
CLAIM = EventType.INSURANCE_CLAIM.value
ALL_TYPES: tuple[str, ...] = (FINANCIAL, CLAIM)

SCHEMA_VERSION = 2

# Published test card numbers of the card schemes (Luhn-valid, never issued to people).
TEST_CARD_NUMBERS: tuple[str, ...] = (
    "4111111111111111",
    "4012888888881881",
    "4222222222222",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
)

# Currency -> (weight, typical purchase amount, [(merchant country, weight)]).
_CURRENCIES: dict[str, tuple[int, Decimal, tuple[tuple[str, int], ...]]] = {
    "USD": (30, Decimal("45"), (("US", 1),)),
    "EUR": (28, Decimal("40"), (("DE", 5), ("FR", 4), ("NL", 2), ("ES", 3), ("IT", 3), ("IE", 1))),
    "GBP": (12, Decimal("35"), (("GB", 1),)),
    "JPY": (6, Decimal("5000"), (("JP", 1),)),
    "CHF": (4, Decimal("50"), (("CH", 1),)),
    "CAD": (5, Decimal("55"), (("CA", 1),)),
    "AUD": (4, Decimal("60"), (("AU", 1),)),
    "SEK": (3, Decimal("450"), (("SE", 1),)),
    "INR": (4, Decimal("2500"), (("IN", 1),)),
    "BRL": (2, Decimal("180"), (("BR", 1),)),
    "KWD": (1, Decimal("15"), (("KW", 1),)),
    "SGD": (1, Decimal("55"), (("SG", 1),)),
}

# (MCC, merchant names) per purchase kind; ISO 18245 codes.
_MERCHANTS: tuple[tuple[str, tuple[str, ...], int, float], ...] = (
    ("5411", ("FreshMart", "Green Grocer", "City Supermarket"), 24, 1.2),
    ("5812", ("Trattoria Roma", "The Oak Table", "Sushi Place"), 14, 1.0),
    ("5814", ("Burger Corner", "Quick Bite", "Coffee Stop"), 14, 0.3),
    ("5541", ("Shell Station", "Fuel & Go"), 9, 1.4),
    ("4111", ("Metro Transit", "City Rail"), 7, 0.15),
    ("5912", ("Care Pharmacy", "Health Plus"), 6, 0.6),
    ("5732", ("Electro World", "Gadget Store"), 5, 6.0),
    ("5311", ("Grand Department Store",), 5, 2.0),
    ("4511", ("Blue Sky Airlines", "Euro Air"), 3, 9.0),
    ("7011", ("Harbour Hotel", "Central Inn"), 3, 5.0),
    ("5462", ("Corner Bakery", "Daily Bread"), 5, 0.2),
    ("5999", ("General Store",), 5, 0.8),
)

_TRANSACTION_TYPES = (
    ("PURCHASE", 70),
    ("TRANSFER", 10),
    ("WITHDRAWAL", 7),
    ("DEPOSIT", 6),
    ("REFUND", 5),
    ("FEE", 2),
)
_TRANSACTION_STATUSES = (("SETTLED", 80), ("PENDING", 12), ("DECLINED", 6), ("REVERSED", 2))
_TRANSFER_CHANNELS = {"EUR": "SEPA", "USD": "ACH"}

# Line of business -> (share of claims, median amount in the local currency unit ~USD,
# causes of loss).
_LINES: dict[str, tuple[int, Decimal, tuple[str, ...]]] = {
    "AUTO": (
        45,
        Decimal("3000"),
        ("rear-end collision", "hail damage", "theft", "windscreen damage", "parking damage"),
    ),
    "HOME": (25, Decimal("6000"), ("burst pipe", "storm damage", "fire", "burglary", "flood")),
    "HEALTH": (15, Decimal("1200"), ("emergency admission", "outpatient surgery", "physiotherapy")),
    "TRAVEL": (
        8,
        Decimal("600"),
        ("trip cancellation", "lost luggage", "medical expenses abroad", "flight delay"),
    ),
    "COMMERCIAL": (
        5,
        Decimal("40000"),
        ("business interruption", "liability claim", "equipment breakdown"),
    ),
    "LIFE": (2, Decimal("150000"), ("death benefit", "terminal illness benefit")),
}
_CLAIM_STATUSES = (
    ("OPENED", 40),
    ("UNDER_REVIEW", 25),
    ("APPROVED", 12),
    ("PAID", 12),
    ("DENIED", 6),
    ("CLOSED", 5),
)
# Loss locations: country, currency, amount scale against USD, (region, postal code) pairs.
_LOCATIONS: tuple[tuple[str, str, Decimal, tuple[tuple[str, str], ...]], ...] = (
    (
        "US",
        "USD",
        Decimal("1"),
        (("California", "94105"), ("New York", "10001"), ("Texas", "73301")),
    ),
    ("GB", "GBP", Decimal("0.8"), (("Greater London", "SW1A 1AA"), ("West Midlands", "B1 1AA"))),
    ("DE", "EUR", Decimal("0.9"), (("Bayern", "80331"), ("Berlin", "10115"), ("Hessen", "60311"))),
    ("FR", "EUR", Decimal("0.9"), (("Île-de-France", "75001"), ("Auvergne-Rhône-Alpes", "69001"))),
    ("NL", "EUR", Decimal("0.9"), (("Noord-Holland", "1012 AB"), ("Zuid-Holland", "3011 AD"))),
    ("JP", "JPY", Decimal("150"), (("Tokyo", "100-0001"), ("Osaka", "530-0001"))),
    ("CA", "CAD", Decimal("1.35"), (("Ontario", "M5V 2T6"), ("Quebec", "H2Y 1C6"))),
    ("AU", "AUD", Decimal("1.5"), (("New South Wales", "2000"), ("Victoria", "3000"))),
    ("CH", "CHF", Decimal("0.9"), (("Zürich", "8001"), ("Genève", "1201"))),
)
_LOCATION_WEIGHTS = (30, 18, 16, 8, 5, 6, 7, 6, 4)

TRANSACTION_SOURCES = ("core-banking", "card-processor", "mobile-app")
CLAIM_SOURCES = ("claims-portal", "broker-gateway", "call-centre")
BANK_TENANTS = ("acme-bank", "globex-bank")
INSURER_TENANTS = ("acme-insurance", "initech-insurance")

DefectKind = Literal[
    "invalid_enum",
    "missing_field",
    "bad_currency",
    "negative_amount",
    "bad_country",
    "unknown_field",
    "bad_card_number",
    "too_many_decimals",
    "bad_timestamp",
    "wrong_type",
]
DEFECT_KINDS: tuple[DefectKind, ...] = (
    "invalid_enum",
    "missing_field",
    "bad_currency",
    "negative_amount",
    "bad_country",
    "unknown_field",
    "bad_card_number",
    "too_many_decimals",
    "bad_timestamp",
    "wrong_type",
)


@dataclass(frozen=True, slots=True)
class _Weights:
    """Values with their cumulative weights, for one weighted draw."""

    values: tuple[Any, ...]
    cumulative: tuple[int, ...]
    total: float
    hi: int


def _weights(pairs: Sequence[tuple[Any, int]]) -> _Weights:
    values = tuple(value for value, _ in pairs)
    cumulative = tuple(accumulate(weight for _, weight in pairs))
    return _Weights(values, cumulative, cumulative[-1] + 0.0, len(values) - 1)


_EVENT_TYPE_WEIGHTS = _weights(((FINANCIAL, 2), (CLAIM, 1)))
_CURRENCY_WEIGHTS = _weights([(code, v[0]) for code, v in _CURRENCIES.items()])
_COUNTRY_WEIGHTS = {code: _weights(v[2]) for code, v in _CURRENCIES.items()}
_MERCHANT_WEIGHTS = _weights([(m, m[2]) for m in _MERCHANTS])
_TRANSACTION_TYPE_WEIGHTS = _weights(_TRANSACTION_TYPES)
_TRANSACTION_STATUS_WEIGHTS = _weights(_TRANSACTION_STATUSES)
_LINE_WEIGHTS = _weights([(name, v[0]) for name, v in _LINES.items()])
_CLAIM_STATUS_WEIGHTS = _weights(_CLAIM_STATUSES)
_LOCATION_CHOICE = _weights(list(zip(_LOCATIONS, _LOCATION_WEIGHTS, strict=True)))


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when ``number`` (digits only) passes the Luhn check."""
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    """One generated event: its type, its JSON body, and its defect (``None``: valid)."""

    event_type: str
    body: dict[str, Any]
    defect: DefectKind | None = None

    @property
    def valid(self) -> bool:
        """True when the event was generated to pass validation."""
        return self.defect is None

    @property
    def event_id(self) -> str | None:
        """The body's ``event_id`` (a defect may have removed it)."""
        value = self.body.get("event_id")
        return value if isinstance(value, str) else None


class EventGenerator:
    """Seeded generator of realistic events; the same seed gives the same events.

    Args:
        seed: the random seed (``None``: a random one).
        invalid_ratio: share of events generated with a defect (0..1).
        event_types: which types to produce (alternating at random, weighted 2:1
            transactions to claims when both).
        now: the wall clock the events' timestamps are placed before (default: now).
        accounts: size of the account pool (some accounts are much busier than others).
        policies: size of the policy pool.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        invalid_ratio: float = 0.0,
        event_types: Sequence[str] = ALL_TYPES,
        now: datetime | None = None,
        accounts: int = 5_000,
        policies: int = 20_000,
    ) -> None:
        if not 0.0 <= invalid_ratio <= 1.0:
            raise ConfigurationError("invalid_ratio is between 0 and 1", code="bad_invalid_ratio")
        unknown = [t for t in event_types if t not in ALL_TYPES]
        if unknown or not event_types:
            raise ConfigurationError(f"unknown event types: {unknown}", code="bad_event_type")
        self._rng = random.Random(seed)
        self.invalid_ratio = invalid_ratio
        self.event_types = tuple(event_types)
        self._now = now
        self._accounts = accounts
        self._policies = policies

    # ------------------------------------------------------------------ helpers

    def _now_utc(self) -> datetime:
        return self._now or datetime.now(UTC)

    def _weighted(self, table: _Weights) -> Any:
        # What random.choices(values, weights, k=1) does, without rebuilding the
        # cumulative weights at every call: the same draws, the same events.
        return table.values[bisect(table.cumulative, self._rng.random() * table.total, 0, table.hi)]

    def _uuid(self) -> str:
        # str(uuid.UUID(int=bits, version=4)), formatted directly.
        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
        bits = (bits & ~(0xF000 << 64)) | (4 << 76)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def _identifier(self, prefix: str, digits: int) -> str:
        # Random hex can hold a Luhn-valid run of 12+ digits, which the shared rules
        # refuse in an identifier (it could be a card number): draw again.
        while True:
            candidate = f"{prefix}-{self._hex(digits)}"
            if mask_luhn_in_text(candidate) == candidate:
                return candidate

    def _skewed(self, pool: int) -> int:
        # Busy entities: the top 1% of the pool makes about 10% of the events.
        return min(int(pool * self._rng.random() ** 2), pool - 1)

    def _amount(self, median: Decimal, currency: str, *, sigma: float = 0.9) -> str:
        value = float(median) * math.exp(self._rng.gauss(0.0, sigma))
        step = quantum(currency)
        return str(max(Decimal(str(value)).quantize(step), step))

    def _event_type(self) -> str:
        if len(self.event_types) == 1:
            return self.event_types[0]
        return self._weighted(_EVENT_TYPE_WEIGHTS)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ valid events

    def transaction(self) -> dict[str, Any]:
        """A valid ``financial-transaction`` JSON body."""
        now = self._now_utc()
        currency = self._weighted(_CURRENCY_WEIGHTS)
        typical = _CURRENCIES[currency][1]
        kind = self._weighted(_TRANSACTION_TYPE_WEIGHTS)
        account = self._skewed(self._accounts)
        body: dict[str, Any] = {
            "event_id": self._uuid(),
            "event_type": FINANCIAL,
            "schema_version": SCHEMA_VERSION,
            "occurred_at": _iso(now - timedelta(seconds=self._rng.uniform(0, 120))),
            "source": self._rng.choice(TRANSACTION_SOURCES),
            "tenant_id": BANK_TENANTS[account % len(BANK_TENANTS)],
            "transaction_id": self._identifier("txn", 16),
            "account_id": f"acc-{account:06d}",
            "currency": currency,
            "transaction_type": kind,
            "status": self._weighted(_TRANSACTION_STATUS_WEIGHTS),
            "metadata": {},
        }
        scale = Decimal(1)
        if kind in ("PURCHASE", "REFUND"):
            mcc, names, _, scale_f = self._weighted(_MERCHANT_WEIGHTS)
            scale = Decimal(str(scale_f))
            channel = "CARD" if self._rng.random() < 0.8 else "MOBILE"
            body["merchant"] = {
                "name": self._rng.choice(names),
                "mcc": mcc,
                "country": self._weighted(_COUNTRY_WEIGHTS[currency]),
            }
        elif kind == "WITHDRAWAL":
            channel = "CARD" if self._rng.random() < 0.85 else "BRANCH"
            scale = Decimal(3)
            if channel == "CARD":
                body["merchant"] = {
                    "name": "ATM",
                    "mcc": "6011",
                    "country": self._weighted(_COUNTRY_WEIGHTS[currency]),
                }
        elif kind == "TRANSFER":
            channel = _TRANSFER_CHANNELS.get(currency) or self._rng.choice(("WIRE", "MOBILE"))
            if self._rng.random() < 0.25:
                channel = self._rng.choice(("WIRE", "MOBILE"))
            scale = Decimal(12)
        elif kind == "DEPOSIT":
            channel = self._rng.choice(("BRANCH", "ACH" if currency == "USD" else "SEPA", "MOBILE"))
            if channel == "SEPA" and currency != "EUR":
                channel = "WIRE"
            scale = Decimal(20)
        else:  # FEE
            channel = "BRANCH"
            scale = Decimal("0.1")
        body["channel"] = channel
        body["amount"] = self._amount(typical * scale, currency)
        if channel == "CARD":
            body["card_number"] = self._rng.choice(TEST_CARD_NUMBERS)
            body["authorization_code"] = self._hex(6).upper()
            body["metadata"] = {"terminal": f"T-{self._rng.randint(1, 99)}"}
        elif channel == "MOBILE":
            body["metadata"] = {
                "app_version": f"5.{self._rng.randint(0, 12)}.{self._rng.randint(0, 9)}"
            }
        body["fraud_score"] = round(self._rng.betavariate(1.2, 30), 4)
        return body

    def claim(self) -> dict[str, Any]:
        """A valid ``insurance-claim`` JSON body."""
        now = self._now_utc()
        line = self._weighted(_LINE_WEIGHTS)
        _, median, causes = _LINES[line]
        country, currency, rate, places = self._weighted(_LOCATION_CHOICE)
        region, postal = self._rng.choice(places)
        reported = now - timedelta(seconds=self._rng.uniform(0, 3600))
        loss_day: date = (reported - timedelta(days=self._rng.randint(0, 60))).date()
        policy = self._skewed(self._policies)
        amount = self._amount(median * rate, currency, sigma=0.8)
        body: dict[str, Any] = {
            "event_id": self._uuid(),
            "event_type": CLAIM,
            "schema_version": SCHEMA_VERSION,
            "occurred_at": _iso(reported + timedelta(seconds=self._rng.uniform(0, 5))),
            "source": self._rng.choice(CLAIM_SOURCES),
            "tenant_id": INSURER_TENANTS[policy % len(INSURER_TENANTS)],
            "claim_id": self._identifier("clm", 12),
            "policy_id": f"pol-{policy:07d}",
            "policyholder_id": f"ph-{(policy * 7919) % 1_000_003:07d}",
            "line_of_business": line,
            "loss_date": loss_day.isoformat(),
            "reported_at": _iso(reported),
            "claim_amount": amount,
            "currency": currency,
            "status": self._weighted(_CLAIM_STATUS_WEIGHTS),
            "cause_of_loss": self._rng.choice(causes),
            "loss_location": {"country": country, "region": region, "postal_code": postal},
            "metadata": {"channel": self._rng.choice(("web", "phone", "broker", "app"))},
        }
        if self._rng.random() < 0.3:
            # Synthetic ids from never-issued ranges (QQ prefix, 9xx area numbers).
            body["claimant_national_id"] = (
                f"QQ{self._rng.randint(0, 999999):06d}C"
                if country == "GB"
                else f"9{self._rng.randint(0, 99):02d}-{self._rng.randint(70, 99)}-"
                f"{self._rng.randint(0, 9999):04d}"
            )
        if self._rng.random() < 0.6:
            body["adjuster_id"] = f"adj-{self._rng.randint(1, 250)}"
            share = Decimal(str(round(self._rng.uniform(0.5, 1.0), 2)))
            body["reserve_amount"] = str((Decimal(amount) * share).quantize(quantum(currency)))
        return body

    def valid_event(self, event_type: str) -> dict[str, Any]:
        """A valid JSON body of ``event_type``."""
        return self.transaction() if event_type == FINANCIAL else self.claim()

    # ------------------------------------------------------------------ invalid events

    def invalid_event(self, event_type: str, kind: DefectKind | None = None) -> GeneratedEvent:
        """An event of ``event_type`` with one defect (``kind``, or one at random)."""
        body = self.valid_event(event_type)
        kind = kind or self._rng.choice(DEFECT_KINDS)
        money = "amount" if event_type == FINANCIAL else "claim_amount"
        if kind == "invalid_enum":
            if event_type == FINANCIAL:
                body["transaction_type"] = self._rng.choice(("PAYMENT", "purchase", "CHARGEBACK"))
            else:
                body["line_of_business"] = self._rng.choice(("PET", "MARINE", "auto"))
        elif kind == "missing_field":
            required = (
                ("account_id", "currency", "transaction_id", "amount")
                if event_type == FINANCIAL
                else ("policy_id", "claim_amount", "loss_date", "cause_of_loss")
            )
            body.pop(self._rng.choice(required))
        elif kind == "bad_currency":
            body["currency"] = self._rng.choice(("EURO", "XYZ", "US$", "usdollar"))
        elif kind == "negative_amount":
            body[money] = "-" + str(body[money]).lstrip("-")
        elif kind == "bad_country":
            if event_type == FINANCIAL:
                body["merchant"] = {"name": "Nowhere Shop", "mcc": "5999", "country": "ZZ"}
            else:
                body["loss_location"] = {**body["loss_location"], "country": "UK"}
        elif kind == "unknown_field":
            if self._rng.random() < 0.5:
                body["ingested_at"] = _iso(self._now_utc())  # server-owned
            else:
                body["customer_segment"] = "retail"
        elif kind == "bad_card_number":
            if event_type == FINANCIAL:
                body["channel"] = "CARD"
                good = self._rng.choice(TEST_CARD_NUMBERS)
                body["card_number"] = good[:-1] + str((int(good[-1]) + 1) % 10)
            else:
                body["claimant_national_id"] = ""
        elif kind == "too_many_decimals":
            body["currency"] = "JPY"
            body[money] = "1500.5"
        elif kind == "bad_timestamp":
            body["occurred_at"] = self._rng.choice(
                ("yesterday", "2026-13-45T25:61:00Z", "1700000000")
            )
        else:  # wrong_type
            body[money] = self._rng.choice((True, [1, 2], {"value": 10}))
        return GeneratedEvent(event_type, body, kind)

    # ------------------------------------------------------------------ stream

    def next_event(self) -> GeneratedEvent:
        """The next event: a type at random, invalid at ``invalid_ratio``."""
        event_type = self._event_type()
        if self.invalid_ratio and self._rng.random() < self.invalid_ratio:
            return self.invalid_event(event_type)
        return GeneratedEvent(event_type, self.valid_event(event_type))

    def events(self, count: int | None = None) -> Iterator[GeneratedEvent]:
        """``count`` events (endless when ``None``)."""
        produced = 0
        while count is None or produced < count:
            produced += 1
            yield self.next_event()


# =========================================================================== runner


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one sent event."""

    status: Literal["accepted", "rejected", "failed"]
    reason: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class SimulationOptions:
    """What ``sluice simulate`` does.

    Exactly one of ``url`` (the HTTP API) and ``direct`` (a publisher) is the target.
    ``count`` or ``duration`` ends the run (``count`` wins when both are set); ``rate``
    is events per second over all workers (``None``: as fast as the target allows).
    """

    event_types: tuple[str, ...] = ALL_TYPES
    rate: float | None = 100.0
    duration: float | None = None
    count: int | None = 100
    invalid_ratio: float = 0.0
    batch_size: int = 1
    concurrency: int = 4
    url: str | None = None
    direct: bool = False
    seed: int | None = None
    api_key: str | None = None
    timeout: float = 10.0
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` for contradictory or impossible options."""
        if bool(self.url) == bool(self.direct):
            raise ConfigurationError("choose one target: --url URL or --direct", code="bad_target")
        if self.count is None and self.duration is None:
            raise ConfigurationError("give --count or --duration", code="bad_limit")
        if self.count is not None and self.count < 0:
            raise ConfigurationError("--count is not negative", code="bad_limit")
        if self.rate is not None and self.rate <= 0:
            raise ConfigurationError("--rate is positive", code="bad_rate")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ConfigurationError(
                "--batch-size and --concurrency are at least 1", code="bad_size"
            )


@dataclass
class SimulationSummary:
    """The result of a run (``to_json`` for ``--json``)."""

    target: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    elapsed_s: float = 0.0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    generated_invalid: dict[str, int] = field(default_factory=dict)
    sent_by_type: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    accepted_event_ids: list[str] = field(default_factory=list, repr=False)
    # Given: each accepted id goes to it instead of ``accepted_event_ids``, so a long
    # run's memory stays flat.
    on_accepted: Callable[[str], None] | None = field(default=None, repr=False)
    # Wall clock (Unix seconds) when the first / last accepting answer arrived.
    first_accepted_at: float | None = None
    last_accepted_at: float | None = None

    @property
    def throughput(self) -> float:
        """Events answered per second."""
        return (
            (self.accepted + self.rejected + self.failed) / self.elapsed_s
            if self.elapsed_s
            else 0.0
        )

    def latency(self) -> dict[str, float]:
        """Request latency percentiles in milliseconds."""
        return {
            "p50": round(percentile(self.latencies_ms, 50), 3),
            "p95": round(percentile(self.latencies_ms, 95), 3),
            "p99": round(percentile(self.latencies_ms, 99), 3),
            "max": round(max(self.latencies_ms, default=0.0), 3),
        }

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON."""
        return {
            "target": self.target,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_events_per_s": round(self.throughput, 1),
            "latency_ms": self.latency(),
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "generated_invalid": dict(sorted(self.generated_invalid.items())),
            "sent_by_type": dict(sorted(self.sent_by_type.items())),
            "first_accepted_at": self.first_accepted_at,
            "last_accepted_at": self.last_accepted_at,
        }

    def record(self, outcomes: Sequence[Outcome], latency_s: float) -> None:
        """Count one request's outcomes."""
        self.requests += 1
        self.latencies_ms.append(latency_s * 1000.0)
        answered_at = time.time()
        for outcome in outcomes:
            if outcome.status == "accepted":
                self.accepted += 1
                if self.first_accepted_at is None:
                    self.first_accepted_at = answered_at
                self.last_accepted_at = answered_at
                if outcome.event_id:
                    if self.on_accepted is not None:
                        self.on_accepted(outcome.event_id)
                    else:
                        self.accepted_event_ids.append(outcome.event_id)
            elif outcome.status == "rejected":
                self.rejected += 1
                reason = outcome.reason or "unknown"
                self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
            else:
                self.failed += 1
                reason = outcome.reason or "unknown"
                self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + 1


class Target(Protocol):
    """Where simulated events go: one call per batch, one outcome per event, in order."""

    name: str

    async def send(self, event_type: str, events: Sequence[GeneratedEvent]) -> list[Outcome]:
        """Send ``events`` (all of ``event_type``)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# Request bodies are encoded with orjson: several times faster than httpx's ``json=``.
_JSON_CONTENT = {"Content-Type": "application/json"}


class HttpTarget:
    """The ingest API over HTTP (httpx, one connection pool)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        timeout: float,
        batch: bool,
        client: Any = None,
    ) -> None:
        self.name = url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._batch = batch
        self._client = client

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"X-API-Key": self._api_key} if self._api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.name,
                headers=headers,
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
            )
        return self._client

    async def send(self, event_type: str, events: Sequence[GeneratedEvent]) -> list[Outcome]:
        """POST one event (``/v1/events/{type}``) or a batch (``.../batch``)."""
        import httpx

        client = self._http()
        try:
            if self._batch:
                response = await client.post(
                    f"/v1/events/{event_type}/batch",
                    content=orjson.dumps([e.body for e in events]),
                    headers=_JSON_CONTENT,
                )
            else:
                response = await client.post(
                    f"/v1/events/{event_type}",
                    content=orjson.dumps(events[0].body),
                    headers=_JSON_CONTENT,
                )
        except httpx.TimeoutException:
            return [Outcome("failed", "http_timeout", e.event_id) for e in events]
        except httpx.TransportError as exc:
            return [Outcome("failed", f"http_{type(exc).__name__}", e.event_id) for e in events]
        return http_outcomes(response.status_code, _json_or_none(response), events, self._batch)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()


def _json_or_none(response: Any) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _error_reason(body: Any, status: int) -> str:
    """The most specific reason in an error body: the first field error's code."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            if code:
                return str(code)
        if body.get("code"):
            return str(body["code"])
    return f"http_{status}"


def http_outcomes(
    status: int, body: Any, events: Sequence[GeneratedEvent], batch: bool
) -> list[Outcome]:
    """Per-event outcomes of an API answer (pure; unit-tested)."""
    results = body.get("results") if isinstance(body, dict) else None
    if batch and isinstance(results, list) and len(results) == len(events):
        outcomes = []
        for item, event in zip(results, events, strict=True):
            item_status = item.get("status") if isinstance(item, dict) else None
            event_id = (item.get("event_id") if isinstance(item, dict) else None) or event.event_id
            if item_status == "accepted":
                outcomes.append(Outcome("accepted", None, event_id))
            elif item_status == "rejected":
                outcomes.append(Outcome("rejected", _error_reason(item, status), event_id))
            else:
                outcomes.append(Outcome("failed", _error_reason(item, status), event_id))
        return outcomes
    if status == 202 and not batch:
        event_id = body.get("event_id") if isinstance(body, dict) else None
        return [Outcome("accepted", None, event_id or events[0].event_id)]
    reason = _error_reason(body, status)
    # 4xx: the request will not succeed as sent; 5xx / 429: it may later.
    kind: Literal["rejected", "failed"] = (
        "rejected" if 400 <= status < 500 and status != 429 else "failed"
    )
    return [Outcome(kind, reason, e.event_id) for e in events]


class DirectTarget:
    """Validate with the schemas codec, mask PII, publish through a :class:`Publisher`.

    Does what the API does between the request and the broker, without HTTP.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        streams: StreamSettings | None = None,
        hmac_key: Any = None,
        name: str = "direct",
    ) -> None:
        self.name = name
        self._publisher = publisher
        self._streams = streams or StreamSettings()
        self._hmac_key = hmac_key

    def prepare(self, event: GeneratedEvent) -> OutgoingRecord | Outcome:
        """The outgoing record of a valid event, or its rejection."""
        from schemas import codec, pii
        from schemas.exceptions import CodecError, PiiError, ValidationError

        try:
            record = codec.parse_event(event.event_type, event.body)
        except ValidationError as exc:
            reason = exc.errors[0].code if exc.errors else "invalid_event"
            return Outcome("rejected", reason, event.event_id)
        try:
            record = pii.mask_record(record, hmac_key=self._hmac_key)
        except PiiError as exc:
            return Outcome("failed", exc.code, event.event_id)
        record["ingested_at"] = datetime.now(UTC)
        try:
            return build_outgoing_record(event.event_type, record)
        except CodecError as exc:
            return Outcome("rejected", exc.code, event.event_id)

    async def send(self, event_type: str, events: Sequence[GeneratedEvent]) -> list[Outcome]:
        """Validate every event, publish the valid ones in one call."""
        prepared = [self.prepare(e) for e in events]
        records = [p for p in prepared if isinstance(p, OutgoingRecord)]
        results = iter(await self._publisher.publish(self._streams.name_for(event_type), records))
        outcomes: list[Outcome] = []
        for item in prepared:
            if isinstance(item, Outcome):
                outcomes.append(item)
                continue
            result = next(results)
            if result.ok:
                outcomes.append(Outcome("accepted", None, result.event_id))
            else:
                outcomes.append(Outcome("failed", result.error_code, result.event_id))
        return outcomes

    async def close(self) -> None:
        """Flush and close the publisher."""
        await self._publisher.close()


ProgressHook = Callable[[SimulationSummary], None]

# Delay between the starts of two request workers (see ``simulate``).
_WORKER_STAGGER_S = 0.05


async def simulate(
    options: SimulationOptions,
    target: Target,
    *,
    generator: EventGenerator | None = None,
    on_progress: ProgressHook | None = None,
    on_accepted: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Send generated events to ``target`` per ``options``; the summary of the run.

    With ``on_accepted``, each accepted event id is handed to it as its answer arrives
    and ``summary.accepted_event_ids`` stays empty.
    """
    options.validate()
    generator = generator or EventGenerator(
        options.seed, invalid_ratio=options.invalid_ratio, event_types=options.event_types
    )
    summary = SimulationSummary(target=target.name, on_accepted=on_accepted)
    queue: asyncio.Queue[list[GeneratedEvent] | None] = asyncio.Queue(
        maxsize=options.concurrency * 2
    )
    started = time.monotonic()

    async def feed() -> None:
        # Batches hold one event type each (one route / one stream per request).
        pending: dict[str, list[GeneratedEvent]] = {}
        for produced, event in enumerate(generator.events(options.count)):
            if options.duration is not None and time.monotonic() - started >= options.duration:
                break
            if options.rate is not None:
                due = started + produced / options.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            bucket = pending.setdefault(event.event_type, [])
            bucket.append(event)
            if len(bucket) >= options.batch_size:
                await queue.put(pending.pop(event.event_type))
        for rest in pending.values():
            await queue.put(rest)
        for _ in range(options.concurrency):
            await queue.put(None)

    async def work(index: int) -> None:
        # Workers start one after another, as independent clients arrive: a burst of
        # simultaneous connects would all be accepted by one process of a server
        # whose worker processes share a listening socket (uvicorn --workers).
        await asyncio.sleep(index * _WORKER_STAGGER_S)
        while True:
            batch = await queue.get()
            if batch is None:
                return
            for event in batch:
                summary.sent += 1
                summary.sent_by_type[event.event_type] = (
                    summary.sent_by_type.get(event.event_type, 0) + 1
                )
                if event.defect:
                    summary.generated_invalid[event.defect] = (
                        summary.generated_invalid.get(event.defect, 0) + 1
                    )
            sent_at = time.monotonic()
            outcomes = await target.send(batch[0].event_type, batch)
            summary.record(outcomes, time.monotonic() - sent_at)
            summary.elapsed_s = time.monotonic() - started
            if on_progress is not None:
                on_progress(summary)

    await asyncio.gather(feed(), *(work(i) for i in range(options.concurrency)))
    summary.elapsed_s = time.monotonic() - started
    return summary


def build_target(options: SimulationOptions) -> Target:
    """The HTTP or direct target the options name (clients created lazily)."""
    if options.url:
        return HttpTarget(
            options.url,
            api_key=options.api_key,
            timeout=options.timeout,
            batch=options.batch_size > 1,
        )
    from producers.factory import create_publisher
    from schemas.config import PiiSettings

    streams = StreamSettings()
    publisher = create_publisher(stream_settings=streams)
    return DirectTarget(
        publisher,
        streams=streams,
        hmac_key=PiiSettings().pii_hmac_key,
        name=f"direct:{streams.stream_backend}",
    )


def run_simulation(
    options: SimulationOptions,
    *,
    target: Target | None = None,
    console: Any = None,
    on_accepted: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Run a simulation to the end (blocking) with a progress bar; returns its summary.

    The demo and ``sluice simulate`` call this. ``console`` is a ``rich`` console for
    the progress bar (default: stderr); no bar when ``options.progress`` is false;
    ``on_accepted`` as in :func:`simulate`.
    """
    options.validate()
    chosen = target or build_target(options)

    async def main() -> SimulationSummary:
        try:
            with _progress(options, console) as hook:
                return await simulate(options, chosen, on_progress=hook, on_accepted=on_accepted)
        finally:
            await chosen.close()

    return asyncio.run(main())


@contextlib.contextmanager
def _progress(options: SimulationOptions, console: Any) -> Iterator[ProgressHook | None]:
    if not options.progress:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    by_count = options.count is not None
    total = float(options.count) if by_count and options.count is not None else options.duration
    progress = Progress(
        TextColumn("[bold]simulate"),
        BarColumn(),
        MofNCompleteColumn() if by_count else TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("[green]{task.fields[accepted]} accepted"),
        TextColumn("[yellow]{task.fields[rejected]} rejected"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]:.0f} ev/s"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    task = progress.add_task("simulate", total=total, accepted=0, rejected=0, failed=0, rate=0.0)

    def hook(summary: SimulationSummary) -> None:
        done = summary.accepted + summary.rejected + summary.failed
        progress.update(
            task,
            completed=done if by_count else min(summary.elapsed_s, total or 0.0),
            accepted=summary.accepted,
            rejected=summary.rejected,
            failed=summary.failed,
            rate=summary.throughput,
        )

    with progress:
        yield hook


def summary_table(summary: SimulationSummary) -> Any:
    """A ``rich`` table of the summary for people."""
    from rich.table import Table

    table = Table(title=f"sluice simulate → {summary.target}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    latency = summary.latency()
    rows: list[tuple[str, str]] = [
        ("sent", str(summary.sent)),
        ("accepted", str(summary.accepted)),
        ("rejected", str(summary.rejected)),
        ("failed", str(summary.failed)),
        ("requests", str(summary.requests)),
        ("elapsed", f"{summary.elapsed_s:.2f} s"),
        ("throughput", f"{summary.throughput:.1f} events/s"),
        (
            "latency p50 / p95 / p99",
            f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f} ms",
        ),
    ]
    rows += [
        (f"rejected: {k}", str(v)) for k, v in Counter(summary.rejected_by_reason).most_common()
    ]
    rows += [(f"failed: {k}", str(v)) for k, v in Counter(summary.failed_by_reason).most_common()]
    for what, value in rows:
        table.add_row(what, value)
    return table
