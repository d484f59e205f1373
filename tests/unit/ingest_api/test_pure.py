"""Pure logic: token bucket, idempotency cache, batch verdicts, body checks, keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingest_api.auth import (
    ApiKeyRecord,
    KeyStore,
    generate_key,
    hash_key,
    key_id_of,
    parse_key_records,
    presented_key,
)
from ingest_api.base import batch_verdict
from ingest_api.body import (
    canonical_json,
    check_content_length,
    check_content_type,
    parse_json,
)
from ingest_api.exceptions import (
    KeyStoreError,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ingest_api.idempotency import Coalescer, IdempotencyCache
from ingest_api.models import EventOutcome
from ingest_api.ratelimit import RateLimiter, TokenBucket

# --------------------------------------------------------------------------- token bucket


def test_bucket_allows_capacity_then_refuses_with_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=4.0, now=0.0)
    assert all(bucket.take(0.0).allowed for _ in range(4))
    refused = bucket.take(0.0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"


def test_bucket_refills_at_rate_up_to_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=4.0, now=0.0)
    for _ in range(4):
        bucket.take(0.0)
    assert bucket.take(0.5).allowed  # one token back after 0.5 s
    assert not bucket.take(0.5).allowed
    bucket.take(100.0)
    assert bucket.tokens == pytest.approx(3.0)  # capped at 4, one taken


def test_bucket_ignores_time_going_backwards() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0, now=10.0)
    assert bucket.take(10.0).allowed
    assert not bucket.take(5.0).allowed


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0)


def test_limiter_is_per_key_and_unlimited_without_rate() -> None:
    limiter = RateLimiter(burst_s=1.0)
    assert limiter.check("a", 1.0, 0.0).allowed
    assert not limiter.check("a", 1.0, 0.0).allowed
    assert limiter.check("b", 1.0, 0.0).allowed
    assert all(limiter.check("c", None, 0.0).allowed for _ in range(1000))


# --------------------------------------------------------------------------- idempotency


def test_cache_expires_entries_after_ttl() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache(ttl_s=10, max_entries=10)
    cache.put("k", "fp", "answer", now=0)
    assert cache.get("k", now=9.9) is not None
    assert cache.get("k", now=10.0) is None
    assert len(cache) == 0


def test_cache_evicts_least_recently_used() -> None:
    cache: IdempotencyCache[int] = IdempotencyCache(ttl_s=100, max_entries=2)
    cache.put("a", "", 1, now=0)
    cache.put("b", "", 2, now=0)
    assert cache.get("a", now=1) is not None  # a is now the most recent
    cache.put("c", "", 3, now=1)
    assert cache.get("b", now=1) is None
    assert cache.get("a", now=1) is not None
    assert cache.get("c", now=1) is not None


def test_cache_purge_expired() -> None:
    cache: IdempotencyCache[int] = IdempotencyCache(ttl_s=5, max_entries=10)
    cache.put("a", "", 1, now=0)
    cache.put("b", "", 2, now=3)
    assert cache.purge_expired(now=6) == 1
    assert len(cache) == 1


def _coalescer() -> Coalescer[str]:
    cache: IdempotencyCache[str] = IdempotencyCache(ttl_s=60, max_entries=100)
    return Coalescer(cache, lambda: 0.0, lambda value: value.startswith("ok"))


def test_coalescer_runs_once_and_replays() -> None:
    coalescer = _coalescer()
    runs: list[int] = []

    async def action() -> str:
        runs.append(1)
        return "ok-1"

    async def scenario() -> None:
        first = await coalescer.run("k", "fp", action)
        second = await coalescer.run("k", "fp", action)
        assert (first.source, first.value) == ("fresh", "ok-1")
        assert (second.source, second.value) == ("cached", "ok-1")
        conflict = await coalescer.run("k", "other", action)
        assert conflict.source == "conflict"

    asyncio.run(scenario())
    assert len(runs) == 1


def test_coalescer_does_not_remember_failures() -> None:
    coalescer = _coalescer()
    answers = iter(["failed", "ok-2"])

    async def action() -> str:
        return next(answers)

    async def scenario() -> None:
        assert (await coalescer.run("k", "fp", action)).value == "failed"
        assert (await coalescer.run("k", "fp", action)).value == "ok-2"

    asyncio.run(scenario())


def test_concurrent_duplicates_are_coalesced() -> None:
    coalescer = _coalescer()
    runs: list[int] = []

    async def action() -> str:
        runs.append(1)
        await asyncio.sleep(0.01)
        return "ok"

    async def scenario() -> list[str]:
        replays = await asyncio.gather(*(coalescer.run("k", "fp", action) for _ in range(5)))
        return sorted(r.source for r in replays)

    sources = asyncio.run(scenario())
    assert runs == [1]
    assert sources == ["coalesced"] * 4 + ["fresh"]
    assert coalescer.in_flight == 0


def test_in_flight_failure_reaches_waiters_and_is_not_cached() -> None:
    coalescer = _coalescer()

    async def action() -> str:
        await asyncio.sleep(0.01)
        return "failed"

    async def scenario() -> None:
        replays = await asyncio.gather(*(coalescer.run("k", "fp", action) for _ in range(3)))
        assert [r.value for r in replays] == ["failed"] * 3
        assert coalescer.lookup("k", "fp") is None

    asyncio.run(scenario())


def test_run_many_duplicates_within_one_call_share_the_answer() -> None:
    coalescer = _coalescer()
    seen: list[list[int]] = []

    async def action(indexes: object) -> list[str]:
        idx = list(indexes)  # type: ignore[call-overload]
        seen.append(idx)
        return [f"ok-{i}" for i in idx]

    async def scenario() -> None:
        items = [("a", "1"), ("b", "1"), ("a", "1"), ("a", "2")]
        replays = await coalescer.run_many(items, action)
        assert [r.source for r in replays] == ["fresh", "fresh", "duplicate", "conflict"]
        assert replays[2].value == "ok-0"
        again = await coalescer.run_many([("a", "1"), ("c", "1")], action)
        assert [r.source for r in again] == ["cached", "fresh"]

    asyncio.run(scenario())
    assert seen == [[0, 1], [1]]


def test_run_many_action_error_leaves_nothing_in_flight() -> None:
    coalescer = _coalescer()

    async def action(indexes: object) -> list[str]:
        raise RuntimeError("boom")

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            await coalescer.run_many([("a", "1")], action)
        assert coalescer.in_flight == 0

    asyncio.run(scenario())


# --------------------------------------------------------------------------- verdicts


def _o(status: str, code: str | None = None) -> EventOutcome:
    return EventOutcome(status, event_id="e", code=code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "http", "overall"),
    [
        (["accepted", "accepted"], 202, "accepted"),
        (["accepted", "rejected"], 207, "partially_accepted"),
        (["rejected", "rejected"], 422, "rejected"),
        (["accepted", "failed"], 207, "retry_failed"),
        (["failed", "rejected"], 503, "retry_failed"),
        (["failed"], 503, "retry_failed"),
    ],
)
def test_batch_verdict(statuses: list[str], http: int, overall: str) -> None:
    verdict = batch_verdict([_o(s) for s in statuses], forbidden_code="tenant_forbidden")
    assert (verdict.http_status, verdict.status) == (http, overall)
    assert verdict.accepted + verdict.rejected + verdict.failed == len(statuses)
    assert verdict.retry_after == ("failed" in statuses)


def test_batch_verdict_all_forbidden_is_403() -> None:
    outcomes = [_o("rejected", "tenant_forbidden")] * 2
    assert batch_verdict(outcomes, forbidden_code="tenant_forbidden").http_status == 403


# --------------------------------------------------------------------------- body


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.sluice+json",
        'application/json; charset="UTF-8"',
    ],
)
def test_json_content_types_are_accepted(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "multipart/form-data",
    ],
)
def test_other_content_types_are_refused(value: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_content_type(value)


def test_content_length_checks() -> None:
    check_content_length(None, 10)
    check_content_length("10", 10)
    with pytest.raises(PayloadTooLarge):
        check_content_length("11", 10)
    with pytest.raises(MalformedBody):
        check_content_length("ten", 10)
    with pytest.raises(MalformedBody):
        check_content_length("-1", 10)


@pytest.mark.parametrize("body", [b"", b"  ", b"{", b"[1,]", b"NaN", b"\xff\xfe", b"{'a': 1}"])
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_json(body)


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"a": 1, "b": {"c": 2, "d": 3}}) == canonical_json(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )


# --------------------------------------------------------------------------- keys


def test_generated_key_is_stored_hashed_and_authenticates() -> None:
    new = generate_key("acme", ["financial-transaction"], key_id="k1", rate_limit=5)
    assert new.key.startswith("slk_k1_")
    assert new.record.hash == hash_key(new.key)
    assert new.key not in new.record.model_dump_json()
    store = KeyStore([new.record])
    principal = store.authenticate(new.key)
    assert principal is not None
    assert principal.tenant_id == "acme"
    assert principal.rate_limit == 5
    assert principal.may_send_type("financial-transaction")
    assert not principal.may_send_type("insurance-claim")
    assert store.authenticate(new.key + "x") is None
    assert store.authenticate("slk_k1_wrong") is None
    assert store.authenticate("garbage") is None


def test_local_key_may_send_everything() -> None:
    store = KeyStore(local_key="secret-local")
    principal = store.authenticate("secret-local")
    assert principal is not None
    assert principal.may_send_tenant("anyone")
    assert principal.may_send_type("insurance-claim")
    assert principal.rate_limit is None


def test_key_id_parsing() -> None:
    assert key_id_of("slk_abc_def") == "abc"
    assert key_id_of("slk_abc") is None
    assert key_id_of("other") is None


def test_presented_key_from_headers() -> None:
    assert presented_key("Bearer abc", None) == "abc"
    assert presented_key("bearer  abc ", None) == "abc"
    assert presented_key(None, "xyz") == "xyz"
    assert presented_key("Basic abc", None) is None
    assert presented_key("Bearer ", None) is None
    assert presented_key(None, None) is None


def test_key_records_are_validated() -> None:
    good = generate_key("t", ["*"], key_id="g").record.model_dump(mode="json")
    assert len(parse_key_records({"keys": [good]}, source="x")) == 1
    assert len(parse_key_records([good], source="x")) == 1
    with pytest.raises(KeyStoreError, match="event_types"):
        parse_key_records([{**good, "event_types": ["card-swipe"]}], source="x")
    with pytest.raises(KeyStoreError, match="hash"):
        parse_key_records([{**good, "hash": "plain"}], source="x")
    with pytest.raises(KeyStoreError):
        parse_key_records({"nope": 1}, source="x")
    with pytest.raises(KeyStoreError, match="duplicate"):
        KeyStore([ApiKeyRecord(**good), ApiKeyRecord(**good)])


def test_stdlib_json_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest_api.body as body

    monkeypatch.setattr(body, "_orjson", None)
    assert body.parse_json(b'{"a": [1, "\xc3\xa9"]}') == {"a": [1, "é"]}
    for bad in (b"{", b"NaN", b"\xff"):
        with pytest.raises(MalformedBody):
            body.parse_json(bad)
    assert body.dump_json({"a": "é"}) == '{"a":"é"}'.encode()
    assert body.canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


# --------------------------------------------------------------------------- coalescing


def _records(*ids: str) -> list[Any]:
    from producers.models import OutgoingRecord

    return [OutgoingRecord(i, "financial-transaction", "k", b"v") for i in ids]


def test_concurrent_publishes_share_one_call_and_get_their_own_results() -> None:
    from ingest_api.service import PublishCoalescer, PublisherHolder
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher()
    coalescer = PublishCoalescer(PublisherHolder(publisher=publisher))

    async def scenario() -> list[list[str]]:
        results = await asyncio.gather(
            coalescer.publish("s", _records("a")),
            coalescer.publish("s", _records("b", "c")),
            coalescer.publish("t", _records("d")),
        )
        return [[r.event_id for r in rs] for rs in results]

    assert asyncio.run(scenario()) == [["a"], ["b", "c"], ["d"]]
    assert sorted(publisher.calls) == [("s", 3), ("t", 1)]


def test_coalesced_publisher_error_reaches_every_caller() -> None:
    from ingest_api.service import PublishCoalescer, PublisherHolder
    from producers.exceptions import PublisherClosedError
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher()
    coalescer = PublishCoalescer(PublisherHolder(publisher=publisher))

    async def scenario() -> list[Any]:
        await publisher.close()
        return await asyncio.gather(
            coalescer.publish("s", _records("a")),
            coalescer.publish("s", _records("b")),
            return_exceptions=True,
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, PublisherClosedError) for o in outcomes)


def test_caller_that_stops_waiting_leaves_the_shared_call_running() -> None:
    from ingest_api.service import PublishCoalescer, PublisherHolder
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher(latency=0.05)
    coalescer = PublishCoalescer(PublisherHolder(publisher=publisher))

    async def impatient() -> str:
        try:
            async with asyncio.timeout(0.01):
                await coalescer.publish("s", _records("a"))
        except TimeoutError:
            return "timed out"
        return "answered"

    async def scenario() -> tuple[str, list[str]]:
        first, second = await asyncio.gather(impatient(), coalescer.publish("s", _records("b")))
        await coalescer.drain(1.0)
        return first, [r.event_id for r in second]

    assert asyncio.run(scenario()) == ("timed out", ["b"])
    assert {s.record.event_id for s in publisher.records("s")} == {"a", "b"}


def test_shared_call_time_bound_answers_waiting_callers_and_keeps_publishing() -> None:
    from ingest_api.service import PublishCoalescer, PublisherHolder
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher(latency=0.2)
    coalescer = PublishCoalescer(PublisherHolder(publisher=publisher))

    async def bounded(ids: tuple[str, ...], timeout: float) -> str:
        try:
            await coalescer.publish("s", _records(*ids), timeout)
        except TimeoutError:
            return "timed out"
        return "answered"

    async def scenario() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # One shared call; its timer is due at the earliest caller's deadline.
        answers = await asyncio.gather(bounded(("a",), 0.05), bounded(("b", "c"), 5.0))
        elapsed = loop.time() - started
        await coalescer.drain(1.0)
        return answers, elapsed

    answers, elapsed = asyncio.run(scenario())
    assert answers == ["timed out", "timed out"]
    assert elapsed < 0.15
    # The shared call was not cancelled: every record still reached the stream.
    assert {s.record.event_id for s in publisher.records("s")} == {"a", "b", "c"}
    assert publisher.calls == [("s", 3)]


def test_shared_call_within_its_bound_answers_normally() -> None:
    from ingest_api.service import PublishCoalescer, PublisherHolder
    from producers.memory import MemoryPublisher

    publisher = MemoryPublisher()
    coalescer = PublishCoalescer(PublisherHolder(publisher=publisher))

    async def scenario() -> list[str]:
        results = await coalescer.publish("s", _records("a", "b"), 1.0)
        return [r.event_id for r in results]

    assert asyncio.run(scenario()) == ["a", "b"]


def test_header_lookup_takes_the_first_value_like_starlette() -> None:
    from starlette.requests import Request

    from ingest_api.app import header

    scope = {
        "type": "http",
        "headers": [
            (b"x-api-key", b"first"),
            (b"content-type", b"application/json"),
            (b"x-api-key", b"second"),
        ],
    }
    request = Request(scope)
    assert header(request, "x-api-key") == request.headers.get("x-api-key") == "first"
    assert header(request, "content-type") == "application/json"
    assert header(request, "authorization") is None
