"""``sluice topics apply`` on the local stack's Kafka broker (Tansu): idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from deploy.topics import TopicsError, apply_topics
from sluice.config import KafkaSettings

pytestmark = pytest.mark.integration


def _names() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"ft-{run}", f"ic-{run}", f"dlq-{run}"]


def test_apply_creates_the_missing_topics_once(stack: Any) -> None:
    kafka = KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap)
    names = _names()
    first = apply_topics(kafka, names[:1], partitions=2, replication_factor=1)
    assert first.created == (names[0],)
    second = apply_topics(kafka, names, partitions=3, replication_factor=1)
    assert set(second.created) == set(names[1:])
    assert dict(second.existing) == {names[0]: 2}
    assert second.mismatched == {names[0]: 2}  # reported, never changed
    third = apply_topics(kafka, names, partitions=3, replication_factor=1)
    assert third.created == ()
    assert dict(third.existing) == {names[0]: 2, names[1]: 3, names[2]: 3}


def test_zero_partitions_is_refused_before_any_call(stack: Any) -> None:
    kafka = KafkaSettings(kafka_bootstrap_servers=stack.kafka_bootstrap)
    with pytest.raises(TopicsError, match="at least 1"):
        apply_topics(kafka, _names(), partitions=0)


def test_unreachable_cluster_is_a_retryable_error() -> None:
    from deploy.topics import TopicsUnavailable

    kafka = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9")
    with pytest.raises(TopicsUnavailable) as caught:
        apply_topics(kafka, _names(), partitions=1, timeout_s=2)
    assert caught.value.retryable


def test_sluice_topics_apply_in_a_fresh_process_is_idempotent(stack: Any) -> None:
    ft, ic, dlq = _names()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")},
        "SLUICE_STACK_ENV": "/nonexistent/stack.env",
        "SLUICE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "SLUICE_STREAM_FINANCIAL_TRANSACTION": ft,
        "SLUICE_STREAM_INSURANCE_CLAIM": ic,
        "SLUICE_STREAM_DLQ": dlq,
    }
    command = [sys.executable, "-m", "sluice.cli", "topics", "apply", "--partitions", "4"]
    runs = [
        subprocess.run(
            [*command, "--replication-factor", "1", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(run.stdout) for run in runs)
    assert sorted(first["created"]) == sorted([ft, ic, dlq])
    assert second["created"] == []
    assert second["existing"] == {ft: 4, ic: 4, dlq: 4}
    assert second["mismatched"] == {}
