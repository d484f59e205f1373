"""Every ``sluice`` subcommand that reads a stream, run as a fresh process (``python -m
sluice.cli``, nothing imported first), on Kafka (Tansu) and on Kinesis (moto) with KPL
aggregates holding several user records each; and one-shot ``sluice lag`` judging a
group with no live member STOPPED with a non-zero exit."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producers.base import build_outgoing_record
from sluice.streams import kpl
from sluice.streams.dynamodb import DynamoLeaseTable
from sluice.streams.models import TRIM_HORIZON, Lease
from tests.integration.firehose_transforms.helpers import list_keys, publish
from tests.unit.firehose_transforms import builders as b

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FT = "financial-transaction"


def sluice(env: dict[str, str], *argv: str, timeout: float = 240) -> tuple[int, str, str]:
    """Run ``sluice ARGV`` in a new interpreter; (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "sluice.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


class Pipeline:
    """Fresh streams, bucket, tables, warehouse schema and group for one backend."""

    def __init__(
        self,
        kind: str,
        stack: Any,
        topic_factory: Callable[..., str],
        stream_factory: Callable[..., str],
        bucket_factory: Callable[..., str],
        dynamodb_table_factory: Callable[..., str],
        pg_schema_factory: Callable[..., str],
    ) -> None:
        make = (
            (lambda: topic_factory(partitions=2))
            if kind == "kafka"
            else (lambda: stream_factory(shards=1))
        )
        self.kind = kind
        self.stream, self.other, self.dlq = make(), make(), make()
        self.bucket = bucket_factory()
        self.group = f"g-{uuid.uuid4().hex[:8]}"
        self.lease_table = dynamodb_table_factory()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        self.env.update(stack.env)
        self.env.update(
            {
                "SLUICE_STACK_ENV": os.devnull,
                "SLUICE_STREAM_BACKEND": kind,
                "SLUICE_STREAM_FINANCIAL_TRANSACTION": self.stream,
                "SLUICE_STREAM_INSURANCE_CLAIM": self.other,
                "SLUICE_STREAM_DLQ": self.dlq,
                "SLUICE_S3_BUCKET": self.bucket,
                "SLUICE_PII_HMAC_KEY": b.HMAC_KEY,
                "SLUICE_WAREHOUSE_SCHEMA": pg_schema_factory(),
                "SLUICE_FIREHOSE_CHECKPOINT_TABLE": dynamodb_table_factory(),
                "SLUICE_CONSUMER_GROUP": self.group,
                "SLUICE_CONSUMER_LEASE_TABLE": self.lease_table,
                "SLUICE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
                "SLUICE_FIREHOSE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            }
        )

    def publish(self, events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
        with monkeypatch.context() as mp:
            for key, value in self.env.items():
                if key.startswith("SLUICE_"):
                    mp.setenv(key, value)
            publish(
                self.kind, self.stream, [build_outgoing_record(FT, e, b.as_avro(e)) for e in events]
            )


@pytest.fixture
def pipeline_factory(
    stack: Any,
    topic_factory: Callable[..., str],
    stream_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
    pg_schema_factory: Callable[..., str],
) -> Callable[[str], Pipeline]:
    def make(kind: str) -> Pipeline:
        return Pipeline(
            kind,
            stack,
            topic_factory,
            stream_factory,
            bucket_factory,
            dynamodb_table_factory,
            pg_schema_factory,
        )

    return make


def _kinesis_entries(stack: Any, stream: str) -> list[dict[str, Any]]:
    client = stack.aws_client("kinesis")
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        out.extend(client.get_records(ShardIterator=iterator, Limit=1000)["Records"])
    return out


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_a_two_event_batch_through_every_stream_reading_command(
    kind: str,
    stack: Any,
    pipeline_factory: Callable[[str], Pipeline],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pipeline_factory(kind)
    events = [b.transaction(account_id="acc-1001"), b.transaction(account_id="acc-2002")]
    assert events[0]["account_id"] != events[1]["account_id"]
    p.publish(events, monkeypatch)
    ids = sorted(e["event_id"] for e in events)
    if kind == "kinesis":
        # the publisher packed both events into one KPL aggregate, each under its own key
        (entry,) = _kinesis_entries(stack, p.stream)
        users = kpl.deaggregate(bytes(entry["Data"]))
        assert users is not None and len(users) == 2
        assert sorted(u.partition_key for u in users) == sorted(e["account_id"] for e in events)

    code, _, err = sluice(p.env, "warehouse", "init")
    assert code == 0, err

    code, out, err = sluice(
        p.env,
        "firehose", "run", "--source", kind, "--event-type", FT,
        "--buffer-seconds", "1", "--once", "--max-seconds", "120", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    delivered = json.loads(out)
    assert (delivered["records"], delivered["ok"], delivered["failed"]) == (2, 2, 0)

    code, out, err = sluice(
        p.env, "consume", "--backend", kind, "--stream", p.stream, "--until-caught-up",
        "--timeout", "120", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["records"] == 2

    code, out, err = sluice(
        p.env, "lag", "--group", p.group, "--backend", kind, "--stream", p.stream, "--json"
    )
    assert code == 0, (out, err)
    lag = json.loads(out)
    assert (lag["status"], lag["total_lag_records"]) == ("OK", 0)
    assert lag["partitions"]

    code, out, err = sluice(p.env, "reconcile", "--json")
    report = json.loads(out)
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["stream"]["distinct"] == 2, err
    assert stages["s3_clean"]["distinct"] == 2
    assert stages["warehouse"]["distinct"] == 2
    assert report["ok"] and code == 0, report

    code, out, err = sluice(
        p.env, "replay", "--group", p.group, "--backend", kind, "--stream", p.stream,
        "--to-earliest", "--dry-run", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["total_records_to_reread"] == 2
    assert ids == sorted(e["event_id"] for e in events)


def test_lag_of_a_kafka_group_with_no_live_member_is_stopped_in_one_shot(
    stack: Any, pipeline_factory: Callable[[str], Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    p = pipeline_factory("kafka")
    p.publish([b.transaction() for _ in range(6)], monkeypatch)
    # A group that committed (without metadata of ours, as another client would) and
    # left: nobody can move its commits any more.
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": p.group,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(p.stream, 0, 0), TopicPartition(p.stream, 1, 0)],
            asynchronous=False,
        )
    finally:
        consumer.close()
    code, out, err = sluice(
        p.env, "lag", "--group", p.group, "--backend", "kafka", "--stream", p.stream, "--json"
    )
    report = json.loads(out)
    assert report["status"] == "STOPPED", (report, err)
    # lag above zero (the local broker may under-report end offsets after batched
    # writes, see docs/local-stack.md, so the figure itself is not checked here)
    assert report["total_lag_records"] > 0
    assert {row["status"] for row in report["partitions"] if row["lag_records"]} == {"STOPPED"}
    assert code != 0
    # the same report as data, for dashboards
    from consumers.api import lag_report_json

    with monkeypatch.context() as mp:
        for key, value in p.env.items():
            if key.startswith("SLUICE_"):
                mp.setenv(key, value)
        data = lag_report_json(p.group, backends=["kafka"], streams=[p.stream])
    assert set(data) == set(report)
    assert data["status"] == "STOPPED"
    assert [r["status"] for r in data["partitions"]] == [r["status"] for r in report["partitions"]]


def test_lag_of_a_kinesis_group_with_no_live_worker_is_stopped_in_one_shot(
    stack: Any, pipeline_factory: Callable[[str], Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline_factory("kinesis")
    p.publish([b.transaction() for _ in range(3)], monkeypatch)
    (shard,) = stack.aws_client("kinesis").list_shards(StreamName=p.stream)["Shards"]
    table = DynamoLeaseTable(f"{p.lease_table}.{p.stream}", client=stack.aws_client("dynamodb"))
    table.create(Lease(shard["ShardId"], None, 0, TRIM_HORIZON))  # a worker that released it
    code, out, err = sluice(
        p.env, "lag", "--group", p.group, "--backend", "kinesis", "--stream", p.stream, "--json"
    )
    report = json.loads(out)
    assert report["status"] == "STOPPED", (report, err)
    assert report["total_lag_records"] == 3  # user records of the aggregate, not entries
    assert code != 0


VECTORS = ROOT / "tests" / "fixtures" / "kpl" / "awslabs-real-kpl-vectors.json"
"""Real-KPL aggregates from awslabs/kinesis-aggregation (the file names its source)."""


def test_real_kpl_vectors_through_the_consume_and_firehose_run_processes(
    stack: Any, pipeline_factory: Callable[[str], Pipeline]
) -> None:
    from sluice.streams.kinesis import scan_streams

    p = pipeline_factory("kinesis")
    vectors = [v for v in json.loads(VECTORS.read_text())["vectors"] if len(v["user_records"]) > 1]
    client = stack.aws_client("kinesis")
    answer = client.put_records(
        StreamName=p.stream,
        Records=[
            {"Data": base64.b64decode(v["data_b64"]), "PartitionKey": v["partition_key"]}
            for v in vectors
        ],
    )
    assert answer["FailedRecordCount"] == 0
    expected = sorted((u["partition_key"], u["data"]) for v in vectors for u in v["user_records"])

    # consumer path: the payloads are text, not events, so each user record is
    # dead-lettered on its own, under its own partition key
    code, out, err = sluice(
        p.env, "consume", "--backend", "kinesis", "--stream", p.stream, "--sink", "noop",
        "--until-caught-up", "--timeout", "120", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["dead_letters"] == len(expected)
    letters = [r for records in scan_streams(client, [p.dlq]) for r in records]
    got = []
    for letter in letters:
        envelope = json.loads(letter.value)
        got.append((letter.key_text, base64.b64decode(envelope["value_b64"]).decode()))
        assert envelope["headers"]["dlq-source-sub-sequence"].isdigit()
    assert sorted(got) == expected

    # delivery path: one error record per user record, with its raw payload
    code, out, err = sluice(
        p.env, "firehose", "run", "--source", "kinesis", "--event-type", FT,
        "--buffer-seconds", "1", "--once", "--max-seconds", "120", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["records"], summary["failed"]) == (len(expected), len(expected))
    s3 = stack.aws_client("s3")
    raw = [
        base64.b64decode(json.loads(line)["rawData"]).decode()
        for key in list_keys(s3, p.bucket, "errors/")
        for line in gzip.decompress(
            s3.get_object(Bucket=p.bucket, Key=key)["Body"].read()
        ).splitlines()
    ]
    assert sorted(raw) == sorted(data for _, data in expected)


def test_once_without_any_shard_says_so_and_exits_non_zero(
    stack: Any, pipeline_factory: Callable[[str], Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline_factory("kinesis")
    p.publish([b.transaction()], monkeypatch)
    (shard,) = stack.aws_client("kinesis").list_shards(StreamName=p.stream)["Shards"]
    group = "sluice-firehose-financial-transaction"
    table_name = f"{p.env['SLUICE_FIREHOSE_CHECKPOINT_TABLE']}.{p.stream}"
    table = DynamoLeaseTable(table_name, client=stack.aws_client("dynamodb"))
    table.create(Lease(shard["ShardId"], None, 0, TRIM_HORIZON))
    held = table.take(table.list()[0], "other-runner")
    stop = threading.Event()

    def renew() -> None:  # another runner, alive, keeps its lease
        lease = held
        while not stop.wait(0.5):
            lease = table.renew(lease, "other-runner")

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        env = {**p.env, "SLUICE_FIREHOSE_ASSIGNMENT_TIMEOUT_S": "4"}
        started = time.monotonic()
        code, out, err = sluice(
            env, "firehose", "run", "--source", "kinesis", "--event-type", FT,
            "--once", "--max-seconds", "120", "--json", "--quiet",
        )  # fmt: skip
        waited = time.monotonic() - started
    finally:
        stop.set()
        renewer.join(5)
    assert code != 0 and out == ""
    assert f"group {group}" in err and f"stream {p.stream}" in err
    assert "holds no shard" in err and "held by other-runner" in err
    assert waited < 60  # bounded: the assignment timeout, not the run's limit
