"""Idempotency records and token buckets shared across processes, on moto's DynamoDB.

One contract test class runs over the in-memory and the DynamoDB implementation of each
store. Then two ``sluice api serve`` processes (two "containers") share the local
DynamoDB: the same event sent to both is published once, another tenant reusing an
``event_id`` gets its own answer and cannot block the owner, and a key's rate limit
holds across both.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import provision
from ingest_api.auth import generate_key
from ingest_api.dynamodb import DynamoIdempotencyStore, DynamoTokenBuckets
from ingest_api.idempotency import IdempotencyStore, MemoryIdempotencyStore
from ingest_api.ratelimit import MemoryTokenBuckets, SharedBuckets
from sluice.config import AwsSettings
from tests.integration.ingest_api.conftest import FT, KEY, event, read_topic

pytestmark = pytest.mark.integration


class WallClock:
    """A wall clock the test moves by hand (epoch seconds)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _aws(stack: Any) -> AwsSettings:
    return AwsSettings(
        aws_endpoint_url=stack.aws_endpoint,
        aws_region="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(params=["memory", "dynamodb"])
def store_factory(
    request: pytest.FixtureRequest, stack: Any, dynamodb_table_factory: Callable[..., str]
) -> Callable[[WallClock], IdempotencyStore]:
    def make(clock: WallClock) -> IdempotencyStore:
        if request.param == "memory":
            return MemoryIdempotencyStore(3600, 30, clock)
        table = dynamodb_table_factory("idem")
        provision.ensure_dynamodb_table(_aws(stack), table, "id", ttl_attribute="expiration")
        return DynamoIdempotencyStore(table, 3600, 30, aws=_aws(stack), clock=clock)

    return make


class TestIdempotencyStoreContract:
    """Every :class:`IdempotencyStore` behaves alike (Powertools' idempotency states)."""

    def test_first_claim_owns_the_key_the_next_sees_it_in_progress(
        self, store_factory: Callable[[WallClock], IdempotencyStore]
    ) -> None:
        store = store_factory(WallClock())
        assert asyncio.run(store.claim("k1", "fp")).state == "claimed"
        second = asyncio.run(store.claim("k1", "fp"))
        assert (second.state, second.fingerprint) == ("in_progress", "fp")
        assert asyncio.run(store.claim("k2", "fp")).state == "claimed"

    def test_completed_answer_is_replayed_with_its_fingerprint(
        self, store_factory: Callable[[WallClock], IdempotencyStore]
    ) -> None:
        store = store_factory(WallClock())
        asyncio.run(store.claim("k", "fp"))
        answer = {"event_id": "e", "status": "accepted", "stream": "s", "partition_key": "p"}
        asyncio.run(store.complete("k", "fp", answer))
        again = asyncio.run(store.claim("k", "other"))
        assert (again.state, again.fingerprint, dict(again.answer or {})) == (
            "completed",
            "fp",
            answer,
        )

    def test_release_frees_the_key_only_for_its_owner(
        self, store_factory: Callable[[WallClock], IdempotencyStore]
    ) -> None:
        store = store_factory(WallClock())
        asyncio.run(store.claim("k", "fp"))
        asyncio.run(store.release("k", "someone-else"))
        assert asyncio.run(store.claim("k", "fp")).state == "in_progress"
        asyncio.run(store.release("k", "fp"))
        assert asyncio.run(store.claim("k", "fp")).state == "claimed"

    def test_many_claims_at_once_each_get_their_own_answer(
        self, store_factory: Callable[[WallClock], IdempotencyStore]
    ) -> None:
        store = store_factory(WallClock())

        async def scenario() -> list[Any]:
            await store.claim("busy", "fp")
            await store.claim("done", "fp")
            await store.complete("done", "fp", {"status": "accepted"})
            keys = ["busy", "done", *(f"new-{n}" for n in range(30))]
            claims = await asyncio.gather(*(store.claim(k, "fp") for k in keys))
            await asyncio.gather(
                *(store.complete(k, "fp", {"n": k}) for k in keys[2:]),
            )
            again = await asyncio.gather(*(store.claim(k, "fp") for k in keys[2:]))
            return [*claims, *again]

        states = [c.state for c in asyncio.run(scenario())]
        assert states == ["in_progress", "completed", *["claimed"] * 30, *["completed"] * 30]

    def test_a_lapsed_claim_and_an_expired_answer_free_the_key(
        self, store_factory: Callable[[WallClock], IdempotencyStore]
    ) -> None:
        clock = WallClock()
        store = store_factory(clock)
        asyncio.run(store.claim("k", "fp"))
        clock.now += 31  # the owner died mid-publish
        assert asyncio.run(store.claim("k", "fp")).state == "claimed"
        asyncio.run(store.complete("k", "fp", {"status": "accepted"}))
        clock.now += 3000
        assert asyncio.run(store.claim("k", "fp")).state == "completed"
        clock.now += 601
        assert asyncio.run(store.claim("k", "fp")).state == "claimed"


@pytest.fixture(params=["memory", "dynamodb"])
def buckets_factory(
    request: pytest.FixtureRequest, stack: Any, dynamodb_table_factory: Callable[..., str]
) -> Callable[[WallClock], SharedBuckets]:
    def make(clock: WallClock) -> SharedBuckets:
        if request.param == "memory":
            return MemoryTokenBuckets(clock)
        table = dynamodb_table_factory("bucket")
        provision.ensure_dynamodb_table(_aws(stack), table, "key_id")
        return DynamoTokenBuckets(table, aws=_aws(stack), clock=clock)

    return make


class TestSharedBucketsContract:
    """Every :class:`SharedBuckets` is one token bucket per key."""

    def test_a_full_bucket_grants_then_empties_then_refills(
        self, buckets_factory: Callable[[WallClock], SharedBuckets]
    ) -> None:
        clock = WallClock()
        buckets = buckets_factory(clock)
        assert asyncio.run(buckets.take("a", 2.0, 4.0, 3.0)) == (3.0, 0.0)
        assert asyncio.run(buckets.take("a", 2.0, 4.0, 3.0))[0] == 1.0
        granted, wait = asyncio.run(buckets.take("a", 2.0, 4.0, 1.0))
        assert granted == 0.0
        assert 0 < wait <= 0.5
        clock.now += 1.0
        assert asyncio.run(buckets.take("a", 2.0, 4.0, 5.0))[0] == 2.0
        assert asyncio.run(buckets.take("b", 2.0, 4.0, 1.0))[0] == 1.0  # per key


# --------------------------------------------------------------------------- two processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_processes(
    stack: Any,
    settings_env: dict[str, str],
    topic_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """Two ``sluice api serve`` processes sharing moto's DynamoDB and one Kafka topic."""
    ft_topic = topic_factory(partitions=2, prefix="two-ft")
    ic_topic = topic_factory(partitions=1, prefix="two-ic")
    idem_table = dynamodb_table_factory("idem")
    bucket_table = dynamodb_table_factory("bucket")
    provision.ensure_api_tables(_aws(stack), idem_table, bucket_table)
    owner = generate_key("acme-bank", [FT], key_id="owner", rate_limit=1000)
    other = generate_key("evil-bank", [FT], key_id="other", rate_limit=1000)
    slow = generate_key("acme-bank", [FT], key_id="slow", rate_limit=2)
    records = [k.record.model_dump(mode="json") for k in (owner, other, slow)]
    env = {
        **os.environ,
        "SLUICE_API_KEY": KEY,
        "SLUICE_API_KEYS_JSON": json.dumps(records),
        "SLUICE_STREAM_BACKEND": "kafka",
        "SLUICE_STREAM_FINANCIAL_TRANSACTION": ft_topic,
        "SLUICE_STREAM_INSURANCE_CLAIM": ic_topic,
        "SLUICE_API_IDEMPOTENCY_STORE": "dynamodb",
        "SLUICE_API_IDEMPOTENCY_TABLE": idem_table,
        "SLUICE_API_RATE_LIMIT_STORE": "dynamodb",
        "SLUICE_API_RATE_LIMIT_TABLE": bucket_table,
        "SLUICE_API_RATE_LIMIT_BURST_S": "2",
    }
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for n in range(2):
            port = _free_port()
            log = (tmp_path / f"api-{n}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sluice.cli", "api", "serve", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes, strict=True):
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise AssertionError("an API process exited at startup")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("an API process did not start within 60 s")
                time.sleep(0.2)
        yield {
            "bases": bases,
            "topic": ft_topic,
            "owner": owner.key,
            "other": other.key,
            "slow": slow.key,
        }
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _post(base: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}/v1/events/{FT}", json=body, headers={"X-API-Key": key}, timeout=30)


def test_same_event_to_two_processes_is_published_once(
    stack: Any, two_processes: dict[str, Any]
) -> None:
    one, two = two_processes["bases"]
    owner = two_processes["owner"]
    sequential = event(tenant_id="acme-bank")
    first = _post(one, owner, sequential)
    second = _post(two, owner, {**sequential, "event_id": sequential["event_id"].upper()})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()

    concurrent = [event(tenant_id="acme-bank") for _ in range(5)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda job: _post(job[0], owner, job[1]),
                [(base, body) for body in concurrent for base in (one, two)],
            )
        )
    # each pair: both 202 (one published, one replayed), or 202 + 409 in progress
    for index in range(0, len(answers), 2):
        pair = sorted(a.status_code for a in answers[index : index + 2])
        assert pair in ([202, 202], [202, 409]), [a.text for a in answers[index : index + 2]]
    messages = read_topic(stack.kafka_bootstrap, two_processes["topic"], expected=6)
    ids = [dict(m.headers())["event_id"].decode() for m in messages]
    assert sorted(ids) == sorted([sequential["event_id"], *(b["event_id"] for b in concurrent)])


def test_another_tenant_reusing_an_event_id_is_not_told_and_cannot_block(
    stack: Any, two_processes: dict[str, Any]
) -> None:
    one, two = two_processes["bases"]
    owner_event = event(tenant_id="acme-bank")
    squat = {**owner_event, "tenant_id": "evil-bank", "account_id": "evil-1"}
    first = _post(two, two_processes["other"], squat)
    owner = _post(one, two_processes["owner"], owner_event)
    probe = _post(one, two_processes["other"], squat)
    assert first.status_code == owner.status_code == probe.status_code == 202
    assert probe.json() == first.json()
    assert owner.json()["partition_key"] == owner_event["account_id"]
    messages = read_topic(stack.kafka_bootstrap, two_processes["topic"], expected=2)
    assert sorted(m.key().decode() for m in messages) == sorted(
        [owner_event["account_id"], "evil-1"]
    )


def test_rate_limit_holds_across_processes(two_processes: dict[str, Any]) -> None:
    one, two = two_processes["bases"]
    started = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        statuses = [
            r.status_code
            for r in pool.map(
                lambda n: _post(
                    (one, two)[n % 2], two_processes["slow"], event(tenant_id="acme-bank")
                ),
                range(12),
            )
        ]
    elapsed = time.monotonic() - started
    # 2 requests/s with a 4-token bucket shared by both processes: per-process buckets
    # would let 8 through at once. Tokens refilled while the requests ran are allowed.
    assert set(statuses) <= {202, 429}
    assert statuses.count(202) <= 4 + 2 * elapsed, (statuses, elapsed)
    assert statuses.count(429) >= 1
