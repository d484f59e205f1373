"""The Kinesis worker (KinesisSource) over an in-memory lease table and a fake Kinesis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.config import ConsumerSettings
from consumers.exceptions import LeaseLostError
from sluice.streams.kinesis import KinesisSource
from sluice.streams.memory import MemoryLeaseTable
from sluice.streams.models import SHARD_END, PartitionKey

S0, S1, S2 = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeKinesis:
    """Shards as lists of (sequence, data); iterators are 'shard|index'."""

    def __init__(
        self,
        shards: dict[str, list[bytes]],
        *,
        parents: dict[str, str] | None = None,
        closed: set[str] | None = None,
    ) -> None:
        self.parents = parents or {}
        self.closed = closed or set()
        self.data: dict[str, list[tuple[int, bytes]]] = {}
        seq = 100
        for shard, values in shards.items():
            self.data[shard] = []
            for v in values:
                seq += 1
                self.data[shard].append((seq, v))
        self.faults: list[str] = []
        self.reads: list[str] = []

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        out = []
        for shard in self.data:
            item: dict[str, Any] = {
                "ShardId": shard,
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
            if shard in self.parents:
                item["ParentShardId"] = self.parents[shard]
            if shard in self.closed:
                item["SequenceNumberRange"]["EndingSequenceNumber"] = "999"
            out.append(item)
        return {"Shards": out}

    def get_shard_iterator(
        self, StreamName: str, ShardId: str, ShardIteratorType: str, **kw: Any
    ) -> dict[str, Any]:
        records = self.data[ShardId]
        if ShardIteratorType == "TRIM_HORIZON":
            index = 0
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            index = sum(1 for s, _ in records if s <= int(kw["StartingSequenceNumber"]))
        elif ShardIteratorType == "AT_SEQUENCE_NUMBER":
            index = sum(1 for s, _ in records if s < int(kw["StartingSequenceNumber"]))
        else:
            index = len(records)
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.faults:
            code = self.faults.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")
        shard, index = ShardIterator.split("|")
        start = int(index)
        self.reads.append(shard)
        chunk = self.data[shard][start : start + Limit]
        end = start + len(chunk)
        next_it = (
            None
            if shard in self.closed and end >= len(self.data[shard]) and not chunk
            else f"{shard}|{end}"
        )
        return {
            "Records": [
                {
                    "SequenceNumber": str(s),
                    "Data": d,
                    "PartitionKey": "k",
                    "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
                }
                for s, d in chunk
            ],
            "NextShardIterator": next_it,
            "MillisBehindLatest": 0,
        }


def worker(name: str, kinesis: FakeKinesis, table: MemoryLeaseTable, clock: Clock) -> KinesisSource:
    settings = ConsumerSettings(
        consumer_worker_id=name,
        consumer_lease_duration_s=10,
        consumer_lease_renew_interval_s=1,
        consumer_lease_take_interval_s=1,
        consumer_idle_read_interval_s=0,
    )
    return KinesisSource(
        "s", options=settings.reader_options(), kinesis_client=kinesis, leases=table, clock=clock
    )


def test_a_lone_worker_takes_every_shard_and_checkpoints() -> None:
    kinesis = FakeKinesis({S0: [b"a", b"b"], S1: [b"c"]})
    table, clock = MemoryLeaseTable(), Clock()
    w = worker("w1", kinesis, table, clock)
    records = w.poll(100, 0)
    assert sorted(r.value for r in records) == [b"a", b"b", b"c"]
    w.checkpoint({PartitionKey("s", S0): 102, PartitionKey("s", S1): 103})
    assert {le.lease_key: le.checkpoint for le in table.list()} == {S0: "102", S1: "103"}
    assert w.poll(100, 0) == []
    clock.now += 20  # a lease duration later: nobody else exists, so caught up
    w.maintain(force=True)
    assert w.caught_up()
    w.close()
    assert all(le.owner is None for le in table.list())


def test_a_second_worker_steals_one_shard_and_the_first_drops_it() -> None:
    kinesis = FakeKinesis({S0: [b"a"], S1: [b"b"]})
    table, clock = MemoryLeaseTable(), Clock()
    w1, w2 = worker("w1", kinesis, table, clock), worker("w2", kinesis, table, clock)
    w1.maintain(force=True)
    assert set(w1.held) == {S0, S1}
    revoked: list[list[PartitionKey]] = []
    w1.on_revoked = revoked.append
    w2.maintain(force=True)
    assert len(w2.held) == 1
    stolen = next(iter(w2.held))
    w1.maintain(force=True)  # its renewal of the stolen lease fails
    assert set(w1.held) == {S0, S1} - {stolen}
    assert revoked == [[PartitionKey("s", stolen)]]


def test_a_dead_workers_leases_are_taken_after_they_expire() -> None:
    kinesis = FakeKinesis({S0: [b"a"], S1: [b"b"]})
    table, clock = MemoryLeaseTable(), Clock()
    dead = worker("dead", kinesis, table, clock)
    dead.maintain(force=True)
    alive = worker("alive", kinesis, table, clock)
    alive.maintain(force=True)
    assert len(alive.held) == 1  # balance: one each while both look alive
    assert not alive.caught_up()
    clock.now += 5
    alive.maintain(force=True)
    assert len(alive.held) == 1  # not expired yet
    clock.now += 6  # the dead worker's counter has not moved for 11 s > 10 s
    alive.maintain(force=True)
    assert set(alive.held) == {S0, S1}
    with pytest.raises(LeaseLostError):
        dead.checkpoint({PartitionKey("s", S0): 101})


def test_throttling_and_expired_iterators_do_not_lose_records() -> None:
    kinesis = FakeKinesis({S0: [b"a", b"b", b"c"]})
    table, clock = MemoryLeaseTable(), Clock()
    w = worker("w1", kinesis, table, clock)
    kinesis.faults = ["ProvisionedThroughputExceededException"]
    assert w.poll(2, 0) == []
    assert w.poll(2, 0) == []  # a throttled shard rests before the next read
    clock.now += 0.5
    first = w.poll(2, 0)
    assert [r.value for r in first] == [b"a", b"b"]
    kinesis.faults = ["ExpiredIteratorException"]
    assert w.poll(10, 0) == []
    assert [r.value for r in w.poll(10, 0)] == [b"c"]  # resumed after the last record read
    kinesis.faults = ["InternalFailure"]
    with pytest.raises(Exception, match="get_records"):
        w.poll(10, 0)


def test_an_idle_shard_is_read_at_most_once_per_idle_interval() -> None:
    kinesis = FakeKinesis({S0: []})
    table, clock = MemoryLeaseTable(), Clock()
    settings = ConsumerSettings(consumer_worker_id="w1", consumer_idle_read_interval_s=1.0)
    w = KinesisSource(
        "s", options=settings.reader_options(), kinesis_client=kinesis, leases=table, clock=clock
    )
    w.poll(10, 0)
    w.poll(10, 0)
    assert kinesis.reads == [S0]
    clock.now += 1.5
    w.poll(10, 0)
    assert kinesis.reads == [S0, S0]


def test_rewind_reads_a_failed_batch_again() -> None:
    kinesis = FakeKinesis({S0: [b"a", b"b"]})
    table, clock = MemoryLeaseTable(), Clock()
    w = worker("w1", kinesis, table, clock)
    batch = w.poll(10, 0)
    w.rewind({PartitionKey("s", S0): batch[0].offset})
    assert [r.value for r in w.poll(10, 0)] == [b"a", b"b"]


def test_parent_is_finished_before_the_child_is_read() -> None:
    kinesis = FakeKinesis({S0: [b"p1", b"p2"], S1: [b"c1"]}, parents={S1: S0}, closed={S0})
    table, clock = MemoryLeaseTable(), Clock()
    w = worker("w1", kinesis, table, clock)
    first = w.poll(10, 0)
    assert [r.value for r in first] == [b"p1", b"p2"]
    assert S1 not in kinesis.reads  # the child waits for its parent
    w.checkpoint({PartitionKey("s", S0): first[-1].offset})
    assert w.poll(10, 0) == []  # the parent's end is seen: SHARD_END
    assert {le.lease_key: le.checkpoint for le in table.list()}[S0] == SHARD_END
    assert [r.value for r in w.poll(10, 0)] == [b"c1"]
