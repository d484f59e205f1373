"""The consumer framework against the local Kafka broker (Tansu), PostgreSQL and moto.

Tansu deviations handled here (docs/local-stack.md): members are always closed, group ids
are fresh, session and poll timeouts are short; records are written one per request
where lag figures are checked (Tansu reports end offsets per record batch).
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.api import ConsumerContext, build_consumer, lag_snapshot
from consumers.base import Sink
from consumers.exceptions import ReplayRefusedError
from consumers.models import DecodedRecord
from consumers.replay import ReplayTarget, TargetKind, replay_kafka
from consumers.runner import BatchConsumer
from consumers.sinks import WarehouseSink, default_row_builder
from sluice.cli import main as sluice_main
from sluice.errors import FatalError
from sluice.streams.kafka_admin import KafkaGroupAdmin
from tests.integration.consumers.consumer_support import (
    Worker,
    kafka_values,
    make_events,
    produce_kafka,
    wait_for,
    warehouse_for,
    warehouse_ids,
    worker_env,
)
from warehouse.exceptions import WarehouseUnavailableError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {
    "consumer_session_timeout_ms": 6000,
    "consumer_max_poll_interval_ms": 10000,
    "consumer_batch_max_wait_s": 0.3,
    "consumer_retry_base_delay_s": 0.05,
}
FAST_ENV = {
    "SLUICE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    "SLUICE_CONSUMER_MAX_POLL_INTERVAL_MS": "10000",
    "SLUICE_CONSUMER_BATCH_MAX_WAIT_S": "0.3",
}


def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def consumer_for(
    topic: str, grp: str, sink: Sink, *, batch: int = 50, dlq: str | None = None
) -> BatchConsumer:
    ctx = ConsumerContext.from_env(consumer_group=grp, consumer_batch_max_records=batch, **FAST)
    if dlq is not None:
        ctx = ConsumerContext(
            ctx.consumer, ctx.streams.model_copy(update={"stream_dlq": dlq}), ctx.kafka, ctx.aws
        )
    return build_consumer(ctx=ctx, backend="kafka", streams=[topic], sink=sink)


@pytest.fixture
def wh(stack: Any, pg_schema_factory: Any, settings_env: Any) -> Iterator[Any]:
    warehouse = warehouse_for(stack, pg_schema_factory())
    yield warehouse
    warehouse.close()


class FailingSink:
    """Wraps the warehouse sink: fails the first commit (transiently) or chosen events."""

    def __init__(
        self, inner: WarehouseSink, *, fail_commits: int = 0, poison: Sequence[str] = ()
    ) -> None:
        self.inner = inner
        self.fail_commits = fail_commits
        self.poison = set(poison)
        self.rollbacks = 0

    def begin(self, batch_id: str) -> None:
        self.inner.begin(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self.inner.write(records)
        if self.poison & {str(d.event["event_id"]) for d in records}:
            raise FatalError("row refused by the warehouse", code="22P02")

    def commit(self) -> None:
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise WarehouseUnavailableError("connection lost during COMMIT")
        self.inner.commit()

    def rollback(self) -> None:
        self.rollbacks += 1
        self.inner.rollback()


def total_committed(stack: Any, grp: str, topic: str) -> int:
    from sluice.config import KafkaSettings

    admin = KafkaGroupAdmin(grp, kafka=KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap))
    try:
        committed = admin.committed(admin.partitions(topic))
        return sum(c.offset or 0 for c in committed.values())
    finally:
        admin.close()


def test_sink_failing_once_rolls_back_and_retries_without_loss(
    stack: Any, topic_factory: Any, wh: Any
) -> None:
    topic = topic_factory(partitions=2)
    events = make_events(30)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(events))
    grp = group()
    sink = FailingSink(WarehouseSink(wh, row_builder=default_row_builder()), fail_commits=1)
    summary = consumer_for(topic, grp, sink).run(until_caught_up=True, timeout_s=60)
    assert sink.rollbacks == 1
    assert summary.rollbacks == 1
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in events)
    assert total_committed(stack, grp, topic) == 30


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[Any]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group(),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(m for m in c.consume(10, timeout=0.5) if m.error() is None)
    finally:
        c.close()
    return out


def test_poison_records_land_in_the_dlq_and_the_partition_moves_on(
    stack: Any, topic_factory: Any, wh: Any
) -> None:
    topic = topic_factory(partitions=1)
    dlq = topic_factory(partitions=1, prefix="dlq")
    good = make_events(10)
    refused = good[7]["event_id"]
    values = kafka_values(good[:5])
    values.append(
        (
            b"k",
            b"\x00\x00\x00\x00\x63not avro at all",
            [("content-type", b"application/vnd.sluice.avro")],
        )
    )
    values += kafka_values(good[5:])
    produce_kafka(stack.kafka_bootstrap, topic, values)
    grp = group()
    sink = FailingSink(WarehouseSink(wh, row_builder=default_row_builder()), poison=[refused])
    summary = consumer_for(topic, grp, sink, dlq=dlq).run(until_caught_up=True, timeout_s=60)
    assert summary.dead_letters == 2
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in good if e["event_id"] != refused)
    assert total_committed(stack, grp, topic) == 11  # the partition moved past both
    letters = read_topic(stack.kafka_bootstrap, dlq, 2)
    headers = [{k: v.decode() for k, v in m.headers()} for m in letters]
    by_class = {h["dlq-error-class"]: h for h in headers}
    assert set(by_class) == {"DecodeError", "FatalError"}
    decode = by_class["DecodeError"]
    assert decode["dlq-source-stream"] == topic
    assert decode["dlq-source-partition"] == "0"
    assert decode["dlq-source-offset"] == "5"
    assert decode["dlq-attempts"] == "1"
    sink_failure = by_class["FatalError"]
    assert sink_failure["event_id"] == refused
    assert sink_failure["dlq-source-offset"] == "8"
    assert "refused" in sink_failure["dlq-error-message"]
    assert int(sink_failure["dlq-attempts"]) >= 3


def test_kill_9_mid_batch_and_restart_every_event_reaches_the_warehouse_once(
    stack: Any, topic_factory: Any, pg_schema_factory: Any, tmp_path: Path, settings_env: Any
) -> None:
    topic = topic_factory(partitions=2)
    schema = pg_schema_factory()
    wh = warehouse_for(stack, schema)
    events = make_events(60)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(events))
    grp = group()
    env = worker_env(stack, schema, SLUICE_CONSUMER_BATCH_MAX_RECORDS="10", **FAST_ENV)
    args = ["--backend", "kafka", "--group", grp, "--stream", topic]
    first = Worker(env, tmp_path / "m1", [*args, "--slow", "1.0"], tmp_path / "w1.log")
    try:
        wait_for(lambda: first.commits() >= 1 and first.writing(), 60, "a batch in flight")
    finally:
        first.kill9()
    landed = len(warehouse_ids(wh))
    assert 0 < landed < 60
    second = Worker(
        env, tmp_path / "m2", [*args, "--until-caught-up", "--timeout", "90"], tmp_path / "w2.log"
    )
    assert second.wait(120) == 0, second.output()
    ids = warehouse_ids(wh)
    assert ids == sorted(e["event_id"] for e in events)
    assert len(ids) == len(set(ids))
    assert total_committed(stack, grp, topic) == 60
    wh.close()


def test_three_workers_one_killed_its_partitions_are_taken_over(
    stack: Any, topic_factory: Any, pg_schema_factory: Any, tmp_path: Path, settings_env: Any
) -> None:
    topic = topic_factory(partitions=6)
    schema = pg_schema_factory()
    wh = warehouse_for(stack, schema)
    events = make_events(150)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(events))
    grp = group()
    env = worker_env(stack, schema, SLUICE_CONSUMER_BATCH_MAX_RECORDS="5", **FAST_ENV)
    args = [
        "--backend",
        "kafka",
        "--group",
        grp,
        "--stream",
        topic,
        "--slow",
        "0.3",
        "--timeout",
        "150",
    ]
    workers = [Worker(env, tmp_path / f"m{i}", args, tmp_path / f"w{i}.log") for i in range(3)]
    try:
        wait_for(lambda: all(w.commits() >= 1 for w in workers), 90, "all three workers committing")
        workers[0].kill9()
        wait_for(lambda: len(warehouse_ids(wh)) == 150, 120, "every event in the warehouse")
    finally:
        codes = [w.stop() for w in workers[1:]]
        if workers[0].proc.poll() is None:
            workers[0].kill9()
    assert codes == [0, 0]
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in events)
    assert total_committed(stack, grp, topic) == 150
    wh.close()


def run_cli(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = sluice_main(list(argv))
    return code, buffer.getvalue()


def test_replay_to_a_timestamp_leaves_the_warehouse_unchanged(
    stack: Any, topic_factory: Any, wh: Any
) -> None:
    topic = topic_factory(partitions=2)
    before, after = make_events(20), make_events(10)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(before))
    time.sleep(0.2)
    cut = datetime.now(UTC)
    time.sleep(0.2)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(after))
    grp = group()
    sink = WarehouseSink(wh, row_builder=default_row_builder())
    consumer_for(topic, grp, sink).run(until_caught_up=True, timeout_s=60)
    ids = warehouse_ids(wh)
    assert len(ids) == 30
    common = [
        "replay",
        "--group",
        grp,
        "--backend",
        "kafka",
        "--stream",
        topic,
        "--to-timestamp",
        cut.isoformat(),
        "--json",
    ]
    code, out = run_cli(*common, "--dry-run")
    assert code == 0
    plan = json.loads(out)
    assert plan["total_records_to_reread"] == 10
    assert total_committed(stack, grp, topic) == 30  # dry run changed nothing
    code, out = run_cli(*common)
    assert code == 0
    assert total_committed(stack, grp, topic) == 20
    again = consumer_for(topic, grp, WarehouseSink(wh, row_builder=default_row_builder()))
    summary = again.run(until_caught_up=True, timeout_s=60)
    assert summary.records == 10
    assert warehouse_ids(wh) == ids
    assert total_committed(stack, grp, topic) == 30


def test_replay_refuses_while_the_group_has_live_members(
    stack: Any, topic_factory: Any, wh: Any
) -> None:
    from sluice.config import KafkaSettings

    topic = topic_factory(partitions=1)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(make_events(3)))
    grp = group()
    consumer = consumer_for(topic, grp, WarehouseSink(wh, row_builder=default_row_builder()))
    thread = threading.Thread(target=consumer.run, kwargs={"timeout_s": 60})
    thread.start()
    admin = KafkaGroupAdmin(grp, kafka=KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap))
    try:
        wait_for(lambda: total_committed(stack, grp, topic) == 3, 40, "the first commit")
        with pytest.raises(ReplayRefusedError):
            replay_kafka(
                admin, [topic], ReplayTarget(TargetKind.EARLIEST), dry_run=False, force=False
            )
        rows = replay_kafka(
            admin, [topic], ReplayTarget(TargetKind.EARLIEST), dry_run=True, force=False
        )
        assert rows[0].records_to_reread == 3
    finally:
        consumer.stop()
        thread.join(30)
        admin.close()
    assert not thread.is_alive()


def test_lag_in_records_and_seconds_then_zero_when_caught_up(
    stack: Any, topic_factory: Any, wh: Any
) -> None:
    topic = topic_factory(partitions=2)
    produce_kafka(stack.kafka_bootstrap, topic, kafka_values(make_events(20)))
    grp = group()
    time.sleep(1.0)
    first = consumer_for(topic, grp, WarehouseSink(wh, row_builder=default_row_builder()), batch=4)
    first.run(max_batches=1, timeout_s=60)
    report = lag_snapshot(grp, backends=["kafka"], streams=[topic])
    assert report.problems == ()
    assert report.total_records == 16
    assert all(r.lag_seconds >= 1.0 for r in report.rows if r.lag_records > 0)
    assert {r.partition for r in report.rows} == {"0", "1"}
    consumer_for(topic, grp, WarehouseSink(wh, row_builder=default_row_builder())).run(
        until_caught_up=True, timeout_s=60
    )
    code, out = run_cli("lag", "--group", grp, "--backend", "kafka", "--stream", topic, "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["total_lag_records"] == 0
    assert doc["max_lag_seconds"] == 0
    assert doc["status"] == "OK"


class SlowSink:
    def __init__(self, inner: Sink, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def begin(self, batch_id: str) -> None:
        self.inner.begin(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        time.sleep(self.delay)
        self.inner.write(records)

    def commit(self) -> None:
        self.inner.commit()

    def rollback(self) -> None:
        self.inner.rollback()


def test_a_broker_that_stops_answering_mid_run_loses_nothing(
    private_kafka_broker: Any, wh: Any
) -> None:
    import os
    import signal

    from confluent_kafka.admin import AdminClient, NewTopic

    from sluice.config import KafkaSettings

    broker = private_kafka_broker()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker["bootstrap"]})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    events = make_events(40)
    produce_kafka(broker["bootstrap"], topic, kafka_values(events))
    base = ConsumerContext.from_env(consumer_group=group(), consumer_batch_max_records=5, **FAST)
    ctx = ConsumerContext(
        base.consumer,
        base.streams,
        KafkaSettings(kafka_bootstrap_servers=broker["bootstrap"]),
        base.aws,
    )
    consumer = build_consumer(
        ctx=ctx,
        backend="kafka",
        streams=[topic],
        sink=SlowSink(WarehouseSink(wh, row_builder=default_row_builder()), 0.2),
    )
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(s=consumer.run(until_caught_up=True, timeout_s=90))
    )
    thread.start()
    try:
        wait_for(lambda: 0 < len(warehouse_ids(wh)) < 40, 40, "the first batches", interval=0.1)
        os.kill(broker["pid"], signal.SIGSTOP)  # accepts connections, never answers
        time.sleep(4)
    finally:
        os.kill(broker["pid"], signal.SIGCONT)
        thread.join(100)
    assert not thread.is_alive()
    assert warehouse_ids(wh) == sorted(e["event_id"] for e in events)
    assert result["s"].records >= 40
