"""deploy/docker-compose.yml against a real Docker engine (Apache Kafka in KRaft mode).

Marked ``docker``: skipped, with the reason, wherever no Docker engine answers (as on
the project's own machines). Where one does, it brings up the compose file's Kafka
(with the topics of kafka-init) and PostgreSQL, then checks what the no-Docker stack
cannot: an idempotent producer against Apache Kafka, whose end offsets must be exact
(the Tansu deviation in docs/local-stack.md), and the warehouse tables on PostgreSQL.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.slow]

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
KAFKA = "127.0.0.1:29092"
TOPIC = "sluice-financial-transaction"


def _docker_unavailable() -> str | None:
    """Why Docker cannot be used here, or None when an engine answers."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return "the docker Python package is not installed"
    try:
        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except DockerException as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    return None


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[Any]:
    reason = _docker_unavailable()
    if reason:
        pytest.skip(f"Docker is needed for the compose stack: {reason}")
    from testcontainers.compose import DockerCompose

    stack = DockerCompose(
        context=str(DEPLOY),
        compose_file_name="docker-compose.yml",
        services=["kafka", "kafka-init", "postgres"],
        wait=True,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _end_offsets(topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": KAFKA, "group.id": f"probe-{time.time_ns()}"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def test_idempotent_writes_leave_exact_end_offsets(compose_stack: Any) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": KAFKA}).list_topics(timeout=10)
    assert TOPIC in metadata.topics
    partitions = len(metadata.topics[TOPIC].partitions)
    assert partitions == 4
    before = _end_offsets(TOPIC, partitions)
    producer = Producer({"bootstrap.servers": KAFKA, "enable.idempotence": True, "acks": "all"})
    for index in range(40):
        producer.produce(TOPIC, key=f"account-{index % 8}", value=b"{}", partition=index % 4)
    assert producer.flush(30) == 0
    after = _end_offsets(TOPIC, partitions)
    assert [a - b for a, b in zip(after, before, strict=True)] == [10, 10, 10, 10]


def test_warehouse_tables_on_compose_postgres(
    compose_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_WAREHOUSE_BACKEND", "postgres")
    monkeypatch.setenv("SLUICE_WAREHOUSE_DSN", "postgresql://sluice:sluice@127.0.0.1:5432/sluice")
    import psycopg

    import warehouse

    warehouse.init_warehouse()
    warehouse.init_warehouse()  # idempotent
    with psycopg.connect("postgresql://sluice:sluice@127.0.0.1:5432/sluice") as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'sluice'"
            )
        }
    assert {"financial_transactions", "insurance_claims"} <= tables


def test_app_image_builds_and_runs_the_sluice_command() -> None:
    reason = _docker_unavailable()
    if reason:
        pytest.skip(f"Docker is needed to build the image: {reason}")
    import docker

    client = docker.from_env()
    try:
        image, _ = client.images.build(
            path=str(DEPLOY.parent), dockerfile="deploy/Dockerfile", tag="sluice:test", rm=True
        )
        output = client.containers.run(image.id, ["package", "--help"], remove=True)
        assert b"sluice package" in output
        user = client.containers.run(image.id, entrypoint=["id", "-un"], remove=True)
        assert user.strip() == b"sluice"
    finally:
        client.close()
