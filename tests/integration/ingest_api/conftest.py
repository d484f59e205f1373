"""Helpers for the ingest API integration tests: the app on the real local stack."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ingest_api.app import create_app
from ingest_api.auth import KeyStore
from ingest_api.config import ApiSettings
from ingest_api.examples import example_event
from sluice.config import StreamSettings

KEY = "integration-local-key"
FT = "financial-transaction"
IC = "insurance-claim"


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def event(event_type: str = FT, **changes: Any) -> dict[str, Any]:
    body = example_event(event_type)
    body["event_id"] = str(uuid.uuid4())
    body.update(changes)
    return body


def build_app(backend: str, ft_stream: str, ic_stream: str, **api: Any) -> FastAPI:
    """The real app (publisher made by the factory from the environment)."""
    streams = StreamSettings(
        stream_backend=backend,
        stream_financial_transaction=ft_stream,
        stream_insurance_claim=ic_stream,
    )
    return create_app(
        ApiSettings(**api), stream_settings=streams, key_store=KeyStore(local_key=KEY)
    )


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[Any]:
    """Every message of ``topic`` from offset 0 (assigned partitions, no group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_until = 0.0
        while time.monotonic() < deadline:
            message = consumer.poll(0.3)
            if message is not None and not message.error():
                messages.append(message)
                continue
            if len(messages) >= expected:
                if not quiet_until:
                    quiet_until = time.monotonic() + 1.0
                elif time.monotonic() > quiet_until:
                    break
        return messages
    finally:
        consumer.close()


def read_stream(client: Any, stream: str) -> list[tuple[str, bytes]]:
    """Every user record ``(partition key, data)`` of ``stream``, KPL aggregates opened."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    out: list[tuple[str, bytes]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                boto_record = {"ApproximateArrivalTimestamp": None, **record}
                for user in iter_deaggregate_records([boto_record], data_format="Boto3"):
                    body = user["kinesis"]
                    data = (
                        base64.b64decode(body["data"]) if body.get("aggregated") else body["data"]
                    )
                    out.append((body["partitionKey"], data))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


@pytest.fixture
def fresh_topics(topic_factory: Callable[..., str]) -> tuple[str, str]:
    return topic_factory(partitions=2, prefix="api-ft"), topic_factory(
        partitions=2, prefix="api-ic"
    )


@pytest.fixture
def fresh_streams(stream_factory: Callable[..., str]) -> tuple[str, str]:
    return stream_factory(shards=1, prefix="api-ft"), stream_factory(shards=1, prefix="api-ic")


@contextlib.contextmanager
def served_api(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """``sluice api serve`` in a fresh process on a free port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "sluice.cli", "api", "serve", "--port", str(port), *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the API exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the API did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
