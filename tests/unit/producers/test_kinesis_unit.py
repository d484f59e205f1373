"""KinesisPublisher retry and mapping logic, with a scripted fake client."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from producers.config import PublisherSettings
from producers.kinesis import KinesisPublisher
from tests.unit.producers.contract import deaggregate, make_records

Script = Callable[[int, list[dict[str, Any]]], dict[str, Any]]


class FakeKinesis:
    """Answers put_records by a script ``(call number, entries) -> response``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        return self.script(len(self.calls), Records)

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "Shards": [
                {
                    "ShardId": "shardId-000000000000",
                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**127 - 1)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                },
                {
                    "ShardId": "shardId-000000000001",
                    "HashKeyRange": {
                        "StartingHashKey": str(2**127),
                        "EndingHashKey": str(2**128 - 1),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                },
            ]
        }


def ok(entries: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    return [
        {"ShardId": "shardId-000000000000", "SequenceNumber": str(start + i)}
        for i in range(len(entries))
    ]


def settings(**overrides: Any) -> PublisherSettings:
    values: dict[str, Any] = {
        "kinesis_aggregation": False,
        "kinesis_backoff_base_s": 0.001,
        "kinesis_backoff_max_s": 0.005,
        "publish_delivery_timeout_s": 2.0,
    }
    values.update(overrides)
    return PublisherSettings(**values)


def publish(publisher: KinesisPublisher, count: int, **kw: Any) -> list[Any]:
    return asyncio.run(publisher.publish("s", make_records(count, **kw)))


def test_only_failed_records_are_retried() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        if call == 1:
            answers = ok(entries)
            for i in (1, 3):
                answers[i] = {"ErrorCode": "ProvisionedThroughputExceededException"}
            answers[4] = {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
            return {"FailedRecordCount": 3, "Records": answers}
        return {"FailedRecordCount": 0, "Records": ok(entries, 100)}

    fake = FakeKinesis(script)
    records = make_records(6)
    results = asyncio.run(KinesisPublisher(settings(), client=fake).publish("s", records))
    assert [r.status for r in results] == ["ok"] * 6
    assert len(fake.calls) == 2
    assert [e["Data"] for e in fake.calls[1]] == [records[i].value for i in (1, 3, 4)]
    assert [r.attempts for r in results] == [1, 2, 1, 2, 2, 1]


def test_non_retryable_errors_fail_at_once() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        answers = ok(entries)
        answers[0] = {"ErrorCode": "KMSAccessDeniedException", "ErrorMessage": "no"}
        return {"Records": answers}

    fake = FakeKinesis(script)
    results = publish(KinesisPublisher(settings(), client=fake), 3)
    assert len(fake.calls) == 1
    assert results[0].status == "failed"
    assert results[0].error_code == "KMSAccessDeniedException"
    assert results[0].retryable is False
    assert [r.status for r in results[1:]] == ["ok", "ok"]


def test_records_still_throttled_after_max_attempts_are_reported_not_dropped() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        answers = ok(entries)
        answers[-1] = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "s"}
        return {"Records": answers}

    fake = FakeKinesis(script)
    publisher = KinesisPublisher(settings(kinesis_max_attempts=3), client=fake)
    results = publish(publisher, 4)
    assert len(fake.calls) == 3
    assert [r.status for r in results] == ["ok", "ok", "ok", "failed"]
    assert results[3].retryable is True
    assert results[3].error_code == "ProvisionedThroughputExceededException"
    assert results[3].attempts == 3


def test_retries_stop_at_the_time_budget() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [{"ErrorCode": "InternalFailure"} for _ in entries]}

    fake = FakeKinesis(script)
    publisher = KinesisPublisher(
        settings(
            kinesis_max_attempts=1000,
            kinesis_retry_budget_s=0.2,
            kinesis_backoff_base_s=0.05,
            kinesis_backoff_max_s=0.05,
        ),
        client=fake,
        rng=random.Random(1),
    )
    results = publish(publisher, 2)
    assert {r.status for r in results} == {"failed"}
    assert 2 <= len(fake.calls) < 40


def test_whole_call_throttling_is_retried() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        if call == 1:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "m"}},
                "PutRecords",
            )
        return {"Records": ok(entries)}

    fake = FakeKinesis(script)
    results = publish(KinesisPublisher(settings(), client=fake), 3)
    assert [r.status for r in results] == ["ok"] * 3
    assert len(fake.calls) == 2


def test_missing_stream_fails_every_record_without_retry() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "no stream"}}, "PutRecords"
        )

    fake = FakeKinesis(script)
    results = publish(KinesisPublisher(settings(), client=fake), 3)
    assert len(fake.calls) == 1
    assert {(r.status, r.error_code, r.retryable) for r in results} == {
        ("failed", "ResourceNotFoundException", False)
    }


def test_unreachable_endpoint_gives_retryable_failures() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    fake = FakeKinesis(script)
    results = publish(KinesisPublisher(settings(kinesis_max_attempts=2), client=fake), 2)
    assert {(r.status, r.error_code, r.retryable) for r in results} == {
        ("failed", "EndpointConnectionError", True)
    }


def test_aggregate_result_maps_to_every_user_record() -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        answers = ok(entries)
        if call == 1:
            answers[0] = {"ErrorCode": "ProvisionedThroughputExceededException"}
        return {"Records": answers}

    fake = FakeKinesis(script)
    records = make_records(20, keys=4)
    publisher = KinesisPublisher(settings(kinesis_aggregation=True), client=fake)
    results = asyncio.run(publisher.publish("s", records))
    assert [r.status for r in results] == ["ok"] * 20
    first_call = fake.calls[0]
    assert len(first_call) < 20  # aggregated
    # The failed aggregate went out again whole, and its user records got 2 attempts.
    retried = deaggregate([{**fake.calls[1][0], "SequenceNumber": "1"}])
    retried_values = {value for _, value in retried}
    assert all(
        (r.attempts == 2) == (rec.value in retried_values)
        for r, rec in zip(results, records, strict=True)
    )
    sent = deaggregate([{**e, "SequenceNumber": "1"} for e in first_call])
    assert sorted(sent) == sorted((r.partition_key, r.value) for r in records)


def test_oversized_record_is_failed_and_never_sent() -> None:
    fake = FakeKinesis(lambda call, entries: {"Records": ok(entries)})
    records = make_records(2)
    from producers.models import OutgoingRecord

    big = OutgoingRecord("big", "financial-transaction", "k", b"z" * (1024 * 1024))
    results = asyncio.run(
        KinesisPublisher(settings(), client=fake).publish("s", [records[0], big, records[1]])
    )
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert results[1].error_code == "RecordTooLarge"
    assert sum(len(c) for c in fake.calls) == 2


def test_batches_split_at_500_records() -> None:
    fake = FakeKinesis(lambda call, entries: {"Records": ok(entries)})
    results = publish(KinesisPublisher(settings(), client=fake), 1100, keys=1100)
    assert [len(c) for c in fake.calls] == [500, 500, 100]
    assert all(r.ok for r in results)
