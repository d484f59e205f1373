"""Shared code of the consumer integration tests: events, producing, the warehouse, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import schemas
from warehouse.config import WarehouseSettings
from warehouse.models import TargetTable

WORKER = Path(__file__).with_name("consumer_worker.py")
FT = "financial-transaction"


def make_events(count: int, event_type: str = FT) -> list[dict[str, Any]]:
    """Valid, distinct events (the codec's Avro-ready dicts)."""
    out = []
    for i in range(count):
        body = schemas.example_event(event_type)
        body["event_id"] = str(uuid.uuid4())
        body["account_id" if event_type == FT else "policy_id"] = f"key-{i % 7}"
        out.append(schemas.parse_event(event_type, body))
    return out


def headers_of(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [
        ("event_type", str(event["event_type"]).encode()),
        ("event_id", str(event["event_id"]).encode()),
        ("schema_version", str(event["schema_version"]).encode()),
        ("content-type", b"application/vnd.sluice.avro"),
    ]


def produce_kafka(
    bootstrap: str, topic: str, values: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Write records one request at a time.

    Tansu reports a partition's end offset as the base offset of its last record
    batch plus one; writing each record as its own batch keeps the end offsets (and so
    the lag figures) right on the local broker, as Apache Kafka always reports them.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all", "linger.ms": 0}
    )
    for key, value, headers in values:
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.flush(10)
    assert producer.flush(10) == 0


def kafka_values(
    events: Sequence[dict[str, Any]],
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [
        (
            str(e.get("account_id") or e.get("policy_id")).encode(),
            schemas.encode(e["event_type"], e),
            headers_of(e),
        )
        for e in events
    ]


def put_kinesis(
    client: Any, stream: str, events: Sequence[dict[str, Any]], raw: Sequence[bytes] = ()
) -> None:
    entries = [
        {
            "Data": schemas.encode(e["event_type"], e),
            "PartitionKey": str(e.get("account_id") or e.get("policy_id")),
        }
        for e in events
    ] + [{"Data": r, "PartitionKey": f"raw-{i}"} for i, r in enumerate(raw)]
    for start in range(0, len(entries), 500):
        answer = client.put_records(StreamName=stream, Records=entries[start : start + 500])
        assert answer.get("FailedRecordCount", 0) == 0


def warehouse_for(stack: Any, schema: str) -> Any:
    from warehouse import create_warehouse

    wh = create_warehouse(
        WarehouseSettings(
            warehouse_backend="postgres", warehouse_dsn=stack.warehouse_dsn, warehouse_schema=schema
        )
    )
    wh.migrate()
    return wh


def warehouse_ids(wh: Any) -> list[str]:
    return sorted(wh.event_ids(TargetTable.FINANCIAL_TRANSACTIONS))


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Worker:
    """A consumer process (``consumer_worker.py``) the test may SIGTERM or kill -9."""

    def __init__(self, env: dict[str, str], marker: Path, args: list[str], log: Path) -> None:
        self.marker = marker
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--marker", str(marker), *args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[3]),
        )

    def lines(self) -> list[str]:
        return self.marker.read_text().splitlines() if self.marker.exists() else []

    def commits(self) -> int:
        return sum(1 for line in self.lines() if line.startswith("commit"))

    def writing(self) -> bool:
        lines = self.lines()
        return bool(lines) and lines[-1].startswith("write")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log_file.close()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log_file.close()
        return code

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._log_file.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def worker_env(stack: Any, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(stack.env)
    env["SLUICE_STACK_ENV"] = str(stack.env_file.parent / "unused-by-tests.env")
    env["SLUICE_WAREHOUSE_SCHEMA"] = schema
    env.update(extra)
    return env
