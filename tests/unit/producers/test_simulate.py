"""The load generator: realistic, seeded events; outcome bookkeeping; the run loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.cli import options_from_args, register
from producers.memory import Fault, MemoryPublisher
from producers.simulate import (
    CLAIM,
    DEFECT_KINDS,
    FINANCIAL,
    TEST_CARD_NUMBERS,
    DirectTarget,
    EventGenerator,
    GeneratedEvent,
    HttpTarget,
    Outcome,
    SimulationOptions,
    http_outcomes,
    luhn_check_digit,
    luhn_valid,
    percentile,
    run_simulation,
    simulate,
)
from schemas import codec
from schemas.countries import COUNTRY_CODES
from schemas.currencies import MINOR_UNITS
from schemas.exceptions import ValidationError
from schemas.pii import is_masked_card_number
from sluice.config import StreamSettings
from sluice.errors import ConfigurationError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- generator


def test_same_seed_same_events() -> None:
    a = [e.body for e in EventGenerator(42, now=NOW, invalid_ratio=0.2).events(200)]
    b = [e.body for e in EventGenerator(42, now=NOW, invalid_ratio=0.2).events(200)]
    c = [e.body for e in EventGenerator(43, now=NOW, invalid_ratio=0.2).events(200)]
    assert a == b
    assert a != c


def test_every_valid_event_passes_the_codec() -> None:
    generator = EventGenerator(1, now=NOW)
    for event in generator.events(1500):
        assert event.valid
        record = codec.parse_event(event.event_type, event.body)
        assert record["event_id"] == event.event_id


def test_transactions_are_realistic() -> None:
    generator = EventGenerator(5, now=NOW)
    bodies = [generator.transaction() for _ in range(2000)]
    kinds = Counter(b["transaction_type"] for b in bodies)
    assert kinds.most_common(1)[0][0] == "PURCHASE"
    for body in bodies:
        assert body["currency"] in MINOR_UNITS
        amount = Decimal(body["amount"])
        assert amount > 0
        assert -amount.as_tuple().exponent == MINOR_UNITS[body["currency"]]  # type: ignore[operator]
        if "card_number" in body:
            assert body["channel"] == "CARD"
            assert luhn_valid(body["card_number"])
            assert body["card_number"] in TEST_CARD_NUMBERS
        if "merchant" in body:
            assert body["merchant"]["country"] in COUNTRY_CODES
            assert len(body["merchant"]["mcc"]) == 4
        occurred = datetime.fromisoformat(body["occurred_at"])
        assert occurred <= NOW

    # Amounts are plausible per currency: JPY purchases are far larger numbers than USD.
    def median(currency: str) -> Decimal:
        values = sorted(
            Decimal(b["amount"])
            for b in bodies
            if b["currency"] == currency and b["transaction_type"] == "PURCHASE"
        )
        return values[len(values) // 2]

    assert median("JPY") > 20 * median("USD")


def test_claims_are_realistic() -> None:
    generator = EventGenerator(6, now=NOW)
    bodies = [generator.claim() for _ in range(3000)]
    lines = Counter(b["line_of_business"] for b in bodies)
    assert lines.most_common(1)[0][0] == "AUTO"
    assert 0.35 < lines["AUTO"] / len(bodies) < 0.55
    assert lines["LIFE"] < lines["TRAVEL"] < lines["HOME"]
    for body in bodies:
        assert body["loss_location"]["country"] in COUNTRY_CODES
        assert body["loss_date"] <= body["reported_at"][:10]
        assert Decimal(body["claim_amount"]) > 0
        if "reserve_amount" in body:
            assert Decimal(body["reserve_amount"]) <= Decimal(body["claim_amount"])


def test_both_types_are_mixed_and_one_type_can_be_chosen() -> None:
    mixed = Counter(e.event_type for e in EventGenerator(2, now=NOW).events(900))
    assert mixed[FINANCIAL] > mixed[CLAIM] > 150
    only = {e.event_type for e in EventGenerator(2, event_types=(CLAIM,)).events(50)}
    assert only == {CLAIM}


@pytest.mark.parametrize("event_type", [FINANCIAL, CLAIM])
@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_every_defect_kind_is_rejected_by_the_codec(event_type: str, kind: Any) -> None:
    generator = EventGenerator(9, now=NOW)
    for _ in range(5):
        event = generator.invalid_event(event_type, kind)
        assert event.defect == kind
        with pytest.raises(ValidationError):
            codec.parse_event(event_type, event.body)


def test_invalid_ratio_is_respected() -> None:
    events = list(EventGenerator(3, now=NOW, invalid_ratio=0.25).events(4000))
    share = sum(not e.valid for e in events) / len(events)
    assert 0.22 < share < 0.28
    assert len({e.defect for e in events if e.defect}) == len(DEFECT_KINDS)


def test_generator_refuses_bad_options() -> None:
    with pytest.raises(ConfigurationError):
        EventGenerator(1, invalid_ratio=1.5)
    with pytest.raises(ConfigurationError):
        EventGenerator(1, event_types=("payment",))


def test_luhn() -> None:
    assert all(luhn_valid(n) for n in TEST_CARD_NUMBERS)
    assert luhn_check_digit("411111111111111") == "1"
    assert not luhn_valid("4111111111111112")


def test_percentile() -> None:
    assert percentile([], 99) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0


# ----------------------------------------------------------------------------- HTTP answers


def _events(n: int) -> list[GeneratedEvent]:
    return [GeneratedEvent(FINANCIAL, {"event_id": f"e{i}"}) for i in range(n)]


def test_http_outcomes_single() -> None:
    assert http_outcomes(202, {"event_id": "e0"}, _events(1), batch=False)[0].status == "accepted"
    rejected = http_outcomes(
        422,
        {"code": "invalid_event", "errors": [{"code": "invalid_enum", "field": "channel"}]},
        _events(1),
        batch=False,
    )
    assert (rejected[0].status, rejected[0].reason) == ("rejected", "invalid_enum")
    failed = http_outcomes(503, {"code": "broker_unavailable"}, _events(1), batch=False)
    assert (failed[0].status, failed[0].reason) == ("failed", "broker_unavailable")
    limited = http_outcomes(429, None, _events(1), batch=False)
    assert (limited[0].status, limited[0].reason) == ("failed", "http_429")


def test_http_outcomes_batch_per_item() -> None:
    body = {
        "results": [
            {"index": 0, "event_id": "e0", "status": "accepted"},
            {"index": 1, "event_id": "e1", "status": "rejected", "errors": [{"code": "missing"}]},
            {"index": 2, "event_id": "e2", "status": "failed", "code": "_MSG_TIMED_OUT"},
        ]
    }
    outcomes = http_outcomes(207, body, _events(3), batch=True)
    assert [(o.status, o.reason) for o in outcomes] == [
        ("accepted", None),
        ("rejected", "missing"),
        ("failed", "_MSG_TIMED_OUT"),
    ]
    whole = http_outcomes(413, {"code": "body_too_large"}, _events(2), batch=True)
    assert [(o.status, o.reason) for o in whole] == [("rejected", "body_too_large")] * 2


# ----------------------------------------------------------------------------- runs


def _direct(publisher: MemoryPublisher) -> DirectTarget:
    return DirectTarget(publisher, streams=StreamSettings(), hmac_key=b"k")


def test_direct_run_counts_everything_and_publishes_only_valid_events() -> None:
    publisher = MemoryPublisher()
    options = SimulationOptions(
        count=300,
        rate=None,
        invalid_ratio=0.2,
        batch_size=25,
        concurrency=3,
        direct=True,
        seed=4,
        progress=False,
    )
    summary = asyncio.run(simulate(options, _direct(publisher)))
    assert summary.sent == 300
    assert summary.accepted + summary.rejected + summary.failed == 300
    assert summary.failed == 0
    assert summary.rejected == sum(summary.generated_invalid.values())
    assert sum(summary.rejected_by_reason.values()) == summary.rejected
    stored = publisher.records("sluice-financial-transaction") + publisher.records(
        "sluice-insurance-claim"
    )
    assert sorted(s.record.event_id for s in stored) == sorted(summary.accepted_event_ids)
    # PII never reaches the stream in clear.
    for stored_record in stored:
        decoded = codec.decode(stored_record.record.value).record
        card = decoded.get("card_number")
        assert card is None or is_masked_card_number(card)
        national = decoded.get("claimant_national_id")
        assert national is None or national.startswith("hmac-sha256:")
        assert decoded["ingested_at"] is not None
    data = summary.to_json()
    assert data["latency_ms"]["p99"] >= data["latency_ms"]["p50"] >= 0
    assert summary.requests >= 300 // 25
    json.dumps(data)


def test_publish_failures_are_counted_as_failed_with_their_code() -> None:
    publisher = MemoryPublisher()
    publisher.fail_next(7, Fault("_MSG_TIMED_OUT", "down", True))
    options = SimulationOptions(count=40, rate=None, direct=True, seed=1, progress=False)
    summary = asyncio.run(simulate(options, _direct(publisher)))
    assert summary.failed == 7
    assert summary.failed_by_reason == {"_MSG_TIMED_OUT": 7}
    assert summary.accepted == 33


def test_duration_ends_a_run() -> None:
    options = SimulationOptions(
        count=None, duration=0.3, rate=200, direct=True, seed=1, progress=False
    )
    summary = asyncio.run(simulate(options, _direct(MemoryPublisher())))
    assert 0 < summary.sent <= 200


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        SimulationOptions(url="http://x", direct=True).validate()
    with pytest.raises(ConfigurationError):
        SimulationOptions(direct=True, count=None, duration=None).validate()
    with pytest.raises(ConfigurationError):
        SimulationOptions(direct=True, batch_size=0).validate()


def test_http_target_against_a_scripted_api() -> None:
    seen: list[tuple[str, Any, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body, request.headers.get("X-API-Key")))
        if request.url.path.endswith("/batch"):
            results = [
                {"index": i, "event_id": e.get("event_id"), "status": "accepted"}
                for i, e in enumerate(body)
            ]
            return httpx.Response(202, json={"status": "accepted", "results": results})
        return httpx.Response(202, json={"event_id": body["event_id"], "status": "accepted"})

    for batch_size in (1, 10):
        seen.clear()
        client = httpx.AsyncClient(
            transport=httpx.MockTransport(handler),
            base_url="http://api",
            headers={"X-API-Key": "k"},
        )
        target = HttpTarget(
            "http://api", api_key="k", timeout=5, batch=batch_size > 1, client=client
        )
        options = SimulationOptions(
            count=30, rate=None, batch_size=batch_size, url="http://api", seed=2, progress=False
        )
        summary = run_simulation(options, target=target)
        assert summary.accepted == 30
        assert all(key == "k" for _, _, key in seen)
        if batch_size == 1:
            assert len(seen) == 30
            assert {path for path, _, _ in seen} <= {
                f"/v1/events/{FINANCIAL}",
                f"/v1/events/{CLAIM}",
            }
        else:
            assert all(path.endswith("/batch") for path, _, _ in seen)
            assert sum(len(body) for _, body, _ in seen) == 30


def test_http_transport_errors_are_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://api")
    target = HttpTarget("http://api", api_key=None, timeout=1, batch=False, client=client)
    options = SimulationOptions(count=5, rate=None, url="http://api", seed=2, progress=False)
    summary = run_simulation(options, target=target)
    assert summary.failed == 5
    assert summary.failed_by_reason == {"http_ConnectError": 5}


# ----------------------------------------------------------------------------- CLI


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser.parse_args(["simulate", *argv])


def test_cli_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_KEY", "secret-key")
    args = _parse(
        [
            "--url",
            "http://h:1",
            "--type",
            "insurance-claim",
            "--rate",
            "0",
            "--duration",
            "2",
            "--invalid-ratio",
            "0.1",
            "--batch-size",
            "50",
            "--concurrency",
            "8",
            "--seed",
            "3",
            "--json",
        ]
    )
    options = options_from_args(args)
    assert options.event_types == (CLAIM,)
    assert options.rate is None
    assert (options.duration, options.count) == (2.0, None)
    assert options.api_key == "secret-key"
    assert options.batch_size == 50 and options.concurrency == 8 and options.seed == 3
    assert options.progress is False
    default = options_from_args(_parse(["--direct"]))
    assert default.count == 100 and default.direct and default.api_key is None


def test_cli_requires_a_target() -> None:
    with pytest.raises(SystemExit):
        _parse(["--count", "3"])


class _SlowTarget:
    """A target whose answers take a while, recording when each request started."""

    name = "slow"

    def __init__(self) -> None:
        self.starts: list[float] = []

    async def send(self, event_type: str, events: Sequence[GeneratedEvent]) -> list[Outcome]:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0.5)
        return [Outcome("accepted", None, e.event_id) for e in events]

    async def close(self) -> None:
        return None


def test_request_workers_start_one_after_another_not_in_one_burst() -> None:
    target = _SlowTarget()
    options = SimulationOptions(
        count=4, rate=None, batch_size=1, concurrency=4, url="http://api", progress=False
    )
    started = time.monotonic()
    summary = asyncio.run(simulate(options, target))
    assert summary.accepted == 4
    # Every request is in flight at once (each takes 0.5 s), yet their starts are
    # spread: the last one began after the other three, by the stagger each.
    offsets = sorted(t - started for t in target.starts)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert all(gap >= 0.04 for gap in gaps), offsets
    assert offsets[-1] < 0.5


def test_an_accepted_ids_file_in_a_missing_folder_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    target = tmp_path / "missing" / "ids.txt"
    done = subprocess.run(
        [
            sys.executable, "-m", "sluice.cli", "simulate", "--url", "http://127.0.0.1:9",
            "--count", "5", "--accepted-ids", str(target), "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"--accepted-ids: the folder {target.parent} does not exist" in done.stderr
    assert done.stdout == ""  # no summary: nothing was sent
    assert not target.parent.exists()


def test_accepted_ids_can_go_to_a_sink_instead_of_a_list_kept_in_memory() -> None:
    publisher = MemoryPublisher()
    options = SimulationOptions(
        count=120, rate=None, invalid_ratio=0.2, batch_size=10, direct=True, seed=6,
        progress=False,
    )  # fmt: skip
    seen: list[str] = []
    summary = asyncio.run(simulate(options, _direct(publisher), on_accepted=seen.append))
    stored = publisher.records("sluice-financial-transaction") + publisher.records(
        "sluice-insurance-claim"
    )
    assert summary.accepted == len(seen) > 0
    assert sorted(seen) == sorted(s.record.event_id for s in stored)
    assert summary.accepted_event_ids == []


def test_generated_valid_events_pass_the_shared_event_rules() -> None:
    # The rules the API and the transform apply beyond the schema (schemas.rules):
    # random hex identifiers used to hold Luhn-valid digit runs now and then.
    from schemas.rules import PlausibilityWindow, check_event

    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    generator = EventGenerator(18, now=now)
    broken = []
    for event in generator.events(20_000):
        record = codec.parse_event(event.event_type, event.body)
        errors = check_event(event.event_type, record, window=PlausibilityWindow(), now=lambda: now)
        broken += [(error.code, event.event_id) for error in errors]
    assert broken == []
