"""Pure publisher logic: batching limits, retry planning, response sorting, records."""

from __future__ import annotations

import random

import pytest

from producers.base import (
    MAX_BYTES_PER_CALL,
    MAX_BYTES_PER_RECORD,
    MAX_RECORDS_PER_CALL,
    RetryPolicy,
    aggregate_entries,
    backoff_delay,
    build_outgoing_record,
    classify_put_records,
    is_retryable_kafka_code,
    kinesis_hash_key,
    next_retry_delay,
    partition_key_for,
    plain_entries,
    plan_batches,
    results_in_order,
    shard_index,
)
from producers.config import PublisherSettings
from producers.exceptions import RecordBuildError
from producers.models import AVRO_CONTENT_TYPE, OutgoingRecord, PublishResult
from tests.unit.producers.contract import deaggregate, make_records

# ----------------------------------------------------------------------------- batching


def test_batches_hold_at_most_500_records_in_order() -> None:
    plan = plan_batches([10] * 1201)
    assert [len(b) for b in plan.batches] == [500, 500, 201]
    assert [i for b in plan.batches for i in b] == list(range(1201))
    assert plan.oversized == []


def test_batches_hold_at_most_5_mib() -> None:
    size = 1024 * 1024  # exactly the per-record limit: allowed
    plan = plan_batches([size] * 11)
    assert [len(b) for b in plan.batches] == [5, 5, 1]
    assert all(sum(size for _ in b) <= MAX_BYTES_PER_CALL for b in plan.batches)


def test_oversized_records_are_set_aside_not_batched() -> None:
    plan = plan_batches([100, MAX_BYTES_PER_RECORD + 1, 100])
    assert plan.batches == [[0, 2]]
    assert plan.oversized == [1]


def test_batch_byte_limit_mixes_sizes() -> None:
    sizes = [1024 * 1024] * 4 + [1024 * 1024 - 10, 10, 1]
    plan = plan_batches(sizes)
    assert plan.batches == [[0, 1, 2, 3, 4, 5], [6]]


def test_empty_input_gives_no_batches() -> None:
    assert plan_batches([]).batches == []


def test_custom_limits() -> None:
    assert plan_batches([1] * 5, max_records=2).batches == [[0, 1], [2, 3], [4]]
    assert MAX_RECORDS_PER_CALL == 500


# ----------------------------------------------------------------------------- retries


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    rng = random.Random(7)
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [backoff_delay(attempt, policy, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spread over the whole range
        assert min(delays) < cap * 0.2


def test_no_retry_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, budget=100)
    assert next_retry_delay(2, 0.0, policy, random.Random(1)) is not None
    assert next_retry_delay(3, 0.0, policy, random.Random(1)) is None


def test_no_retry_past_the_budget() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=1.0, budget=2.0, max_attempts=10)
    assert next_retry_delay(1, 2.5, policy) is None
    # A wait that would reach the end of the budget is not planned.
    always_max = random.Random(3)
    always_max.uniform = lambda a, b: b  # type: ignore[method-assign]
    assert next_retry_delay(1, 1.2, policy, always_max) is None
    assert next_retry_delay(1, 0.5, policy, always_max) == 1.0


def test_kafka_codes_classified() -> None:
    assert is_retryable_kafka_code("_MSG_TIMED_OUT")
    assert is_retryable_kafka_code("_TRANSPORT")
    assert not is_retryable_kafka_code("MSG_SIZE_TOO_LARGE")
    assert is_retryable_kafka_code("SOMETHING", retriable_flag=True)


# ----------------------------------------------------------------------------- responses


def test_classify_put_records_retries_only_throughput_and_internal_failures() -> None:
    response = {
        "FailedRecordCount": 3,
        "Records": [
            {"ShardId": "shardId-000000000000", "SequenceNumber": "1"},
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
            {"ErrorCode": "KMSAccessDeniedException", "ErrorMessage": "denied"},
            {"ShardId": "shardId-000000000001", "SequenceNumber": "2"},
        ],
    }
    outcome = classify_put_records(response, 5)
    assert outcome.succeeded == {
        0: ("shardId-000000000000", "1"),
        4: ("shardId-000000000001", "2"),
    }
    assert outcome.retry == [1, 2]
    assert outcome.retry_errors[1][0] == "ProvisionedThroughputExceededException"
    assert outcome.failed == {3: ("KMSAccessDeniedException", "denied")}


def test_classify_short_response_retries_the_missing_entries() -> None:
    outcome = classify_put_records({"Records": [{"ShardId": "s", "SequenceNumber": "1"}]}, 3)
    assert outcome.retry == [1, 2]


def test_results_in_order_never_drops_a_record() -> None:
    records = make_records(3)
    ok = PublishResult(records[1].event_id, "ok", "s", partition=0, offset=1)
    results = results_in_order(records, {1: ok}, "s")
    assert [r.event_id for r in results] == [r.event_id for r in records]
    assert [r.status for r in results] == ["failed", "ok", "failed"]
    assert results[0].retryable


# ----------------------------------------------------------------------------- aggregation


def _deaggregate(entry_data: bytes, key: str) -> list[tuple[str, bytes]]:
    return deaggregate([{"Data": entry_data, "PartitionKey": key, "SequenceNumber": "1"}])


def test_aggregation_by_partition_key_maps_every_user_record() -> None:
    records = make_records(30, keys=3)
    entries = aggregate_entries(records, range(30))
    assert len(entries) == 3
    members = sorted(m for e in entries for m in e.members)
    assert members == list(range(30))
    for entry in entries:
        assert {records[m].partition_key for m in entry.members} == {entry.partition_key}
        assert entry.explicit_hash_key is None
        unpacked = _deaggregate(entry.data, entry.partition_key)
        assert unpacked == [(records[m].partition_key, records[m].value) for m in entry.members]


def test_aggregation_by_shard_keeps_each_key_on_its_own_shard() -> None:
    half = 2**127
    ranges = [(0, half - 1), (half, 2**128 - 1)]
    records = make_records(40, keys=8)
    entries = aggregate_entries(records, range(40), ranges)
    assert sorted(m for e in entries for m in e.members) == list(range(40))
    for entry in entries:
        assert entry.explicit_hash_key is not None
        target = shard_index(int(entry.explicit_hash_key), ranges)
        for member in entry.members:
            assert shard_index(kinesis_hash_key(records[member].partition_key), ranges) == target
        if len(entry.members) > 1:
            unpacked = _deaggregate(entry.data, entry.partition_key)
            assert [v for _, v in unpacked] == [records[m].value for m in entry.members]


def test_aggregates_respect_the_record_size_limit() -> None:
    records = make_records(40, keys=1, size=100_000)
    entries = aggregate_entries(records, range(40))
    assert len(entries) >= 4
    assert all(e.size <= MAX_BYTES_PER_RECORD for e in entries)
    assert [m for e in entries for m in e.members] == list(range(40))


def test_single_record_groups_travel_plain() -> None:
    records = make_records(3, keys=3)
    entries = aggregate_entries(records, range(3))
    assert entries == plain_entries(records, range(3))


def test_kinesis_hash_key_is_md5_of_the_key() -> None:
    assert kinesis_hash_key("a") == int("0cc175b9c0f1b6a831c399e269772661", 16)
    assert shard_index(5, [(0, 4), (5, 9)]) == 1
    assert shard_index(50, [(0, 4), (5, 9)]) is None


# ----------------------------------------------------------------------------- records


def _transaction() -> dict[str, object]:
    return {
        "event_id": "7d1f6c1e-8a8e-4c1b-9a53-3c8d6f0b2a11",
        "event_type": "financial-transaction",
        "schema_version": 2,
        "account_id": "ACC-1",
    }


def test_build_outgoing_record_sets_key_and_headers() -> None:
    record = build_outgoing_record("financial-transaction", _transaction(), b"\x00payload")
    assert record.partition_key == "ACC-1"
    assert record.value == b"\x00payload"
    assert record.event_id == "7d1f6c1e-8a8e-4c1b-9a53-3c8d6f0b2a11"
    assert dict(record.headers) == {
        "event_type": "financial-transaction",
        "event_id": "7d1f6c1e-8a8e-4c1b-9a53-3c8d6f0b2a11",
        "schema_version": "2",
        "content-type": AVRO_CONTENT_TYPE,
    }
    assert ("schema_version", b"2") in record.header_list()


def test_claims_are_keyed_by_policy() -> None:
    assert partition_key_for("insurance-claim", {"policy_id": "POL-9"}) == "POL-9"


@pytest.mark.parametrize(
    ("event_type", "event"),
    [
        ("financial-transaction", {"event_id": "e"}),
        ("financial-transaction", {"event_id": "e", "account_id": ""}),
        ("insurance-claim", {"event_id": "e", "account_id": "A"}),
        ("financial-transaction", {"account_id": "A"}),
    ],
)
def test_build_outgoing_record_refuses_events_without_ids(
    event_type: str, event: dict[str, object]
) -> None:
    with pytest.raises(RecordBuildError):
        build_outgoing_record(event_type, event, b"v")


def test_outgoing_record_size_counts_key_and_value() -> None:
    assert OutgoingRecord("e", "t", "ké", b"1234").size == 3 + 4


# ----------------------------------------------------------------------------- settings


def test_kafka_config_without_idempotence_keeps_one_request_in_flight() -> None:
    conf = PublisherSettings(kafka_enable_idempotence=False).kafka_producer_config()
    assert conf["acks"] == "all"
    assert conf["enable.idempotence"] is False
    assert conf["max.in.flight.requests.per.connection"] == 1


def test_kafka_config_defaults() -> None:
    settings = PublisherSettings()
    conf = settings.kafka_producer_config()
    assert conf["enable.idempotence"] is True
    assert "max.in.flight.requests.per.connection" not in conf
    assert conf["message.timeout.ms"] == 5000
    assert conf["compression.type"] == "zstd"
    assert settings.kinesis_aggregation is True


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_KAFKA_ENABLE_IDEMPOTENCE", "false")
    monkeypatch.setenv("SLUICE_KINESIS_AGGREGATION", "false")
    monkeypatch.setenv("SLUICE_PUBLISH_DELIVERY_TIMEOUT_S", "2.5")
    settings = PublisherSettings()
    assert settings.kafka_enable_idempotence is False
    assert settings.kinesis_aggregation is False
    assert settings.kafka_producer_config()["message.timeout.ms"] == 2500
