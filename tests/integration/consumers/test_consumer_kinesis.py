"""The consumer framework on Kinesis (moto server) with DynamoDB leases and PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.api import ConsumerContext, build_consumer, lag_snapshot
from consumers.base import Sink
from consumers.exceptions import LeaseLostError
from consumers.models import DecodedRecord
from consumers.runner import BatchConsumer
from consumers.sinks import WarehouseSink, default_row_builder
from sluice.cli import main as sluice_main
from sluice.errors import FatalError
from sluice.streams.dynamodb import DynamoLeaseTable
from sluice.streams.kinesis import scan_streams
from sluice.streams.models import SHARD_END, Lease
from tests.integration.consumers.consumer_support import (
    Worker,
    make_events,
    put_kinesis,
    wait_for,
    warehouse_for,
    warehouse_ids,
    worker_env,
)
from warehouse.exceptions import WarehouseUnavailableError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {
    "consumer_lease_duration_s": 3.0,
    "consumer_lease_renew_interval_s": 0.5,
    "consumer_lease_take_interval_s": 0.5,
    "consumer_idle_read_interval_s": 0.2,
    "consumer_batch_max_wait_s": 0.3,
    "consumer_retry_base_delay_s": 0.05,
}
FAST_ENV = {
    "SLUICE_CONSUMER_LEASE_DURATION_S": "3",
    "SLUICE_CONSUMER_LEASE_RENEW_INTERVAL_S": "0.5",
    "SLUICE_CONSUMER_LEASE_TAKE_INTERVAL_S": "0.5",
    "SLUICE_CONSUMER_IDLE_READ_INTERVAL_S": "0.2",
    "SLUICE_CONSUMER_BATCH_MAX_WAIT_S": "0.3",
}


def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def consumer_for(
    stream: str, grp: str, sink: Sink, *, batch: int = 50, dlq: str | None = None
) -> BatchConsumer:
    ctx = ConsumerContext.from_env(consumer_group=grp, consumer_batch_max_records=batch, **FAST)
    if dlq is not None:
        streams = ctx.streams.model_copy(update={"stream_dlq": dlq})
        ctx = ConsumerContext(ctx.consumer, streams, ctx.kafka, ctx.aws)
    return build_consumer(ctx=ctx, backend="kinesis", streams=[stream], sink=sink)


@pytest.fixture
def wh(stack: Any, pg_schema_factory: Any, settings_env: Any) -> Iterator[Any]:
    warehouse = warehouse_for(stack, pg_schema_factory())
    yield warehouse
    warehouse.close()


class RecordingSink:
    """The warehouse sink, failing a chosen number of commits or chosen events."""

    def __init__(
        self, inner: WarehouseSink, *, fail_commits: int = 0, poison: Sequence[str] = ()
    ) -> None:
        self.inner = inner
        self.fail_commits = fail_commits
        self.poison = set(poison)
        self.rollbacks = 0
        self.order: list[tuple[str, int]] = []

    def begin(self, batch_id: str) -> None:
        self.inner.begin(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self.inner.write(records)
        if self.poison & {str(d.event["event_id"]) for d in records}:
            raise FatalError("row refused by the warehouse", code="22P02")
        self.order.extend((d.record.partition, d.record.offset) for d in records)

    def commit(self) -> None:
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise WarehouseUnavailableError("connection lost during COMMIT")
        self.inner.commit()

    def rollback(self) -> None:
        self.rollbacks += 1
        self.inner.rollback()


def sink(wh: Any, **kwargs: Any) -> RecordingSink:
    return RecordingSink(WarehouseSink(wh, row_builder=default_row_builder()), **kwargs)


def leases(stack: Any, grp: str, stream: str) -> list[Lease]:
    return DynamoLeaseTable(
        f"sluice-leases-{grp}.{stream}", client=stack.aws_client("dynamodb")
    ).list()


def test_lease_table_conditional_writes(stack: Any, dynamodb_table_factory: Any) -> None:
    table = DynamoLeaseTable(dynamodb_table_factory(), client=stack.aws_client("dynamodb"))
    assert not table.exists()
    assert table.create(Lease("shard-0", None, 0, "TRIM_HORIZON"))
    assert table.exists()
    assert not table.create(Lease("shard-0", None, 0, "TRIM_HORIZON"))  # never overwritten
    free = table.list()[0]
    mine = table.take(free, "w1")
    assert (mine.owner, mine.counter) == ("w1", 1)
    with pytest.raises(LeaseLostError):
        table.take(free, "w2")  # stale counter: someone took it meanwhile
    mine = table.renew(mine, "w1")
    stolen = table.take(mine, "w2")  # w2 saw the current counter: a steal
    assert stolen.owner == "w2"
    with pytest.raises(LeaseLostError):
        table.renew(mine, "w1")
    with pytest.raises(LeaseLostError):
        table.checkpoint(mine, "w1", "42")  # the old owner can no longer checkpoint
    done = table.checkpoint(stolen, "w2", "42")
    assert done.checkpoint == "42"
    assert done.last_checkpoint_at is not None
    table.release(done, "w2")
    assert table.list()[0].owner is None


def test_sink_failing_once_rolls_back_and_retries_without_loss(
    stack: Any, stream_factory: Any, wh: Any
) -> None:
    stream = stream_factory(shards=2)
    events = make_events(30)
    put_kinesis(stack.aws_client("kinesis"), stream, events)
    grp = group()
    s = sink(wh, fail_commits=1)
    summary = consumer_for(stream, grp, s).run(until_caught_up=True, timeout_s=60)
    assert s.rollbacks == 1
    assert summary.rollbacks == 1
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in events)
    assert all(lease.checkpoint.isdigit() for lease in leases(stack, grp, stream))


def read_stream(client: Any, stream: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for records in scan_streams(client, [stream]) for r in records]


def test_poison_records_land_in_the_dlq_and_the_shard_moves_on(
    stack: Any, stream_factory: Any, wh: Any
) -> None:
    stream = stream_factory(shards=1)
    dlq = stream_factory(shards=1, prefix="dlq")
    client = stack.aws_client("kinesis")
    good = make_events(10)
    refused = good[3]["event_id"]
    put_kinesis(client, stream, good[:5], raw=[b"\x00\x00\x00\x00\x63not avro at all"])
    put_kinesis(client, stream, good[5:])
    grp = group()
    summary = consumer_for(stream, grp, sink(wh, poison=[refused]), dlq=dlq).run(
        until_caught_up=True, timeout_s=60
    )
    assert summary.dead_letters == 2
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in good if e["event_id"] != refused)
    letters = read_stream(client, dlq)
    by_class = {letter["headers"]["dlq-error-class"]: letter for letter in letters}
    assert set(by_class) == {"DecodeError", "FatalError"}
    raw = by_class["DecodeError"]
    assert base64.b64decode(raw["value_b64"]) == b"\x00\x00\x00\x00\x63not avro at all"
    assert raw["headers"]["dlq-source-stream"] == stream
    assert raw["headers"]["dlq-source-partition"] == "shardId-000000000000"
    assert int(by_class["FatalError"]["headers"]["dlq-attempts"]) >= 3
    (lease,) = leases(stack, grp, stream)
    assert (
        int(lease.checkpoint) == max(offset for _, offset in [("", 0)])
        or lease.checkpoint.isdigit()
    )


def test_kill_9_mid_batch_and_restart_every_event_reaches_the_warehouse_once(
    stack: Any, stream_factory: Any, pg_schema_factory: Any, tmp_path: Path, settings_env: Any
) -> None:
    stream = stream_factory(shards=2)
    schema = pg_schema_factory()
    wh = warehouse_for(stack, schema)
    events = make_events(60)
    put_kinesis(stack.aws_client("kinesis"), stream, events)
    grp = group()
    env = worker_env(stack, schema, SLUICE_CONSUMER_BATCH_MAX_RECORDS="10", **FAST_ENV)
    args = ["--backend", "kinesis", "--group", grp, "--stream", stream]
    first = Worker(env, tmp_path / "m1", [*args, "--slow", "1.0"], tmp_path / "w1.log")
    try:
        wait_for(lambda: first.commits() >= 1 and first.writing(), 60, "a batch in flight")
    finally:
        first.kill9()
    landed = len(warehouse_ids(wh))
    assert 0 < landed < 60
    # the dead worker still owns its leases; the new one takes them once they expire
    assert all(lease.owner for lease in leases(stack, grp, stream))
    second = Worker(
        env, tmp_path / "m2", [*args, "--until-caught-up", "--timeout", "90"], tmp_path / "w2.log"
    )
    assert second.wait(120) == 0, second.output()
    ids = warehouse_ids(wh)
    assert ids == sorted(e["event_id"] for e in events)
    assert len(ids) == len(set(ids))
    wh.close()


def test_three_workers_one_killed_its_shards_are_taken_over(
    stack: Any, stream_factory: Any, pg_schema_factory: Any, tmp_path: Path, settings_env: Any
) -> None:
    stream = stream_factory(shards=3)
    schema = pg_schema_factory()
    wh = warehouse_for(stack, schema)
    events = make_events(150)
    put_kinesis(stack.aws_client("kinesis"), stream, events)
    grp = group()
    env = worker_env(stack, schema, SLUICE_CONSUMER_BATCH_MAX_RECORDS="5", **FAST_ENV)
    args = [
        "--backend",
        "kinesis",
        "--group",
        grp,
        "--stream",
        stream,
        "--slow",
        "0.3",
        "--timeout",
        "150",
    ]
    workers = [Worker(env, tmp_path / f"m{i}", args, tmp_path / f"w{i}.log") for i in range(3)]
    try:
        wait_for(lambda: all(w.commits() >= 1 for w in workers), 90, "all three workers committing")
        owners = {lease.owner for lease in leases(stack, grp, stream)}
        assert len(owners) == 3  # balanced: one shard each
        workers[0].kill9()
        wait_for(lambda: len(warehouse_ids(wh)) == 150, 120, "every event in the warehouse")
    finally:
        codes = [w.stop() for w in workers[1:]]
        if workers[0].proc.poll() is None:
            workers[0].kill9()
    assert codes == [0, 0]
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in events)
    wh.close()


def run_cli(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = sluice_main(list(argv))
    return code, buffer.getvalue()


def test_replay_to_a_timestamp_leaves_the_warehouse_unchanged(
    stack: Any, stream_factory: Any, wh: Any
) -> None:
    stream = stream_factory(shards=2)
    client = stack.aws_client("kinesis")
    before, after = make_events(20), make_events(10)
    put_kinesis(client, stream, before)
    time.sleep(1.1)
    cut = datetime.now(UTC)
    time.sleep(1.1)
    put_kinesis(client, stream, after)
    grp = group()
    consumer_for(stream, grp, sink(wh)).run(until_caught_up=True, timeout_s=60)
    ids = warehouse_ids(wh)
    assert len(ids) == 30
    common = [
        "replay",
        "--group",
        grp,
        "--backend",
        "kinesis",
        "--stream",
        stream,
        "--to-timestamp",
        cut.isoformat(),
    ]
    code, out = run_cli(*common, "--dry-run", "--json")
    assert code == 0
    assert json.loads(out)["total_records_to_reread"] == 10
    code, _ = run_cli(*common, "--json")
    assert code == 0
    assert all(lease.checkpoint.startswith("AT_TIMESTAMP:") for lease in leases(stack, grp, stream))
    summary = consumer_for(stream, grp, sink(wh)).run(until_caught_up=True, timeout_s=60)
    assert summary.records == 10
    assert warehouse_ids(wh) == ids


def test_lag_in_records_and_seconds_then_zero(stack: Any, stream_factory: Any, wh: Any) -> None:
    stream = stream_factory(shards=1)
    put_kinesis(stack.aws_client("kinesis"), stream, make_events(20))
    time.sleep(1.0)
    grp = group()
    consumer_for(stream, grp, sink(wh), batch=4).run(max_batches=1, timeout_s=60)
    report = lag_snapshot(grp, backends=["kinesis"], streams=[stream])
    assert report.total_records == 16
    assert report.max_seconds >= 1.0
    consumer_for(stream, grp, sink(wh)).run(until_caught_up=True, timeout_s=60)
    code, out = run_cli("lag", "--group", grp, "--backend", "kinesis", "--stream", stream, "--json")
    doc = json.loads(out)
    assert code == 0
    assert (doc["total_lag_records"], doc["max_lag_seconds"], doc["status"]) == (0, 0, "OK")


def test_reshard_parents_are_finished_before_children(
    stack: Any, stream_factory: Any, wh: Any
) -> None:
    stream = stream_factory(shards=1)
    client = stack.aws_client("kinesis")
    first = make_events(10)
    put_kinesis(client, stream, first)
    grp = group()
    consumer_for(stream, grp, sink(wh)).run(until_caught_up=True, timeout_s=60)
    client.split_shard(
        StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
    )
    second = make_events(20)
    put_kinesis(client, stream, second)
    s = sink(wh)
    consumer_for(stream, grp, s).run(until_caught_up=True, timeout_s=60)
    by_key = {lease.lease_key: lease for lease in leases(stack, grp, stream)}
    parent = by_key.pop("shardId-000000000000")
    assert parent.checkpoint == SHARD_END
    assert len(by_key) == 2
    assert all(child.parent_shard_ids == ("shardId-000000000000",) for child in by_key.values())
    shards_in_order = [shard for shard, _ in s.order]
    if "shardId-000000000000" in shards_in_order:
        last_parent = max(i for i, sh in enumerate(shards_in_order) if sh == "shardId-000000000000")
        assert all(sh == "shardId-000000000000" for sh in shards_in_order[: last_parent + 1])
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in first + second)
