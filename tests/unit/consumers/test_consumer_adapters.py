"""Pure parts of the Kafka and Kinesis adapters (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.config import ConsumerSettings
from sluice.config import KafkaSettings
from sluice.streams.dynamodb import lease_from_item
from sluice.streams.kafka import consumer_config
from sluice.streams.kafka_admin import GroupMembership, commit_metadata, parse_commit_metadata
from sluice.streams.kinesis import to_stream_records
from sluice.streams.models import PartitionKey


def test_group_consumer_config_turns_auto_commit_and_offset_store_off() -> None:
    conf = consumer_config(
        KafkaSettings(kafka_bootstrap_servers="b:9"),
        ConsumerSettings(consumer_group="g1").reader_options(),
    )
    assert conf["group.id"] == "g1"
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["bootstrap.servers"] == "b:9"
    assert conf["auto.offset.reset"] == "earliest"


def test_commit_metadata_round_trip() -> None:
    assert parse_commit_metadata(commit_metadata(1_700_000_000_500)) == 1_700_000_000.5
    assert parse_commit_metadata(None) is None
    assert parse_commit_metadata("not json") is None
    assert parse_commit_metadata("[1]") is None


def test_group_liveness_with_and_without_member_details() -> None:
    tp = PartitionKey("t", "0")
    assert not GroupMembership("EMPTY", 0, {}).live
    # a broker answering STABLE without members (the local Tansu) is still live
    stable = GroupMembership("STABLE", 0, {})
    assert stable.live
    assert stable.partition_live(tp)
    detailed = GroupMembership("STABLE", 1, {PartitionKey("t", "1"): "m"})
    assert not detailed.partition_live(tp)


def aggregate(payloads: list[bytes]) -> bytes:
    from aws_kinesis_agg.aggregator import RecordAggregator

    agg = RecordAggregator()
    for i, p in enumerate(payloads):
        agg.add_user_record(f"k{i}", p)
    _, _, data = agg.clear_and_get().get_contents()
    return bytes(data)


def test_kpl_aggregates_become_user_records_sharing_the_sequence_number() -> None:
    raw = {
        "SequenceNumber": "4960",
        "Data": aggregate([b"one", b"two", b"three"]),
        "PartitionKey": "k0",
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    records = to_stream_records("s", "shardId-1", raw)
    assert [r.value for r in records] == [b"one", b"two", b"three"]
    assert {r.offset for r in records} == {4960}
    assert [r.sub_sequence for r in records] == [0, 1, 2]
    # each user record keeps its own partition key from the aggregate's table
    assert [r.key for r in records] == [b"k0", b"k1", b"k2"]
    assert records[0].timestamp_ms == 1_767_225_600_000
    plain = to_stream_records("s", "shardId-1", {"SequenceNumber": "5", "Data": b"x"})
    assert (plain[0].value, plain[0].sub_sequence) == (b"x", None)


def test_an_aggregate_failing_its_digest_passes_on_whole_with_its_outer_key() -> None:
    broken = aggregate([b"a", b"b"])[:-3] + b"xyz"
    raw = {"SequenceNumber": "7", "Data": broken, "PartitionKey": "outer"}
    [record] = to_stream_records("s", "shardId-1", raw)
    assert (record.value, record.key, record.sub_sequence) == (broken, b"outer", None)


def test_lease_from_item() -> None:
    lease = lease_from_item(
        {
            "leaseKey": "s1",
            "leaseOwner": "w",
            "leaseCounter": 3,
            "checkpoint": "9",
            "parentShardIds": {"p2", "p1"},
        }
    )
    assert (lease.owner, lease.counter, lease.checkpoint, lease.parent_shard_ids) == (
        "w",
        3,
        "9",
        ("p1", "p2"),
    )
    assert lease_from_item({"leaseKey": "s2"}).checkpoint == "TRIM_HORIZON"
