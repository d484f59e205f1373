"""A ``kill -9`` of the delivery process in the middle of its work, then a restart:
no event is lost (duplicates are allowed; the loader merges on event_id)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producers.base import build_outgoing_record
from tests.integration.firehose_transforms.helpers import list_keys, publish, read_gz_lines
from tests.unit.firehose_transforms import builders as b

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _command(kind: str, stream: str, group: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sluice.cli",
        "firehose",
        "run",
        "--source",
        kind,
        "--event-type",
        "insurance-claim",
        "--stream",
        stream,
        "--group-id",
        group,
        "--buffer-mib",
        "1",
        "--buffer-seconds",
        "1",
        # the source backup is written first in every batch: its first object marks a
        # runner in the middle of a batch (before the transform and the checkpoint)
        "--raw-backup",
        "--quiet",
        *extra,
    ]


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_kill_9_mid_batch_and_restart_loses_no_event(
    kind: str,
    stack: Any,
    topic_factory: Callable[..., str],
    stream_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    stream = topic_factory(partitions=4) if kind == "kafka" else stream_factory(shards=2)
    bucket = bucket_factory()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")},
        **stack.env,
        "SLUICE_STACK_ENV": str(tmp_path / "none.env"),
        "SLUICE_S3_BUCKET": bucket,
        "SLUICE_PII_HMAC_KEY": b.HMAC_KEY,
        "SLUICE_FIREHOSE_CHECKPOINT_TABLE": dynamodb_table_factory(),
        "SLUICE_FIREHOSE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SLUICE_FIREHOSE_KAFKA_MAX_POLL_INTERVAL_MS": "10000",
    }
    # about 3.4 MB of claims: several batches at the 1 MiB size hint, so the kill lands
    # before the last batch is checkpointed
    events = [b.claim() for _ in range(20_000)]
    records = [build_outgoing_record("insurance-claim", e, b.as_avro(e)) for e in events]
    publish_env = {k: v for k, v in env.items() if k.startswith("SLUICE_")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in publish_env.items():
            mp.setenv(key, value)
        # in chunks, so that Kinesis carries many KPL aggregates of ~100 user records
        # (one publish call aggregates its records) and the runner makes several batches
        for start in range(0, len(records), 500):
            publish(kind, stream, records[start : start + 500])

    group = f"g-{uuid.uuid4().hex[:8]}"
    s3 = stack.aws_client("s3")
    runner = subprocess.Popen(_command(kind, stream, group), cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 90
        while not list_keys(s3, bucket, "raw/"):
            assert runner.poll() is None, "the delivery exited early"
            assert time.monotonic() < deadline, "no raw backup object appeared"
            time.sleep(0.02)
        os.kill(runner.pid, signal.SIGKILL)  # kill -9, in the middle of a batch
    finally:
        runner.wait(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    before = len(list_keys(s3, bucket, "clean/"))

    restart = subprocess.run(
        _command(kind, stream, group, "--once", "--max-seconds", "150", "--json"),
        cwd=ROOT,
        env=env,
        timeout=200,
        check=False,
        capture_output=True,
        text=True,
    )
    assert restart.returncode == 0, restart.stderr
    summary = json.loads(restart.stdout)
    assert summary["records"] > 0 and summary["failed"] == 0
    assert summary["objects"] and all(
        m.startswith("clean/event_type=insurance-claim/") for m in summary["objects"]
    )
    assert list_keys(s3, bucket, "manifests/") == []  # Firehose writes none

    rows = [r for key in list_keys(s3, bucket, "clean/") for r in read_gz_lines(s3, bucket, key)]
    delivered = {r["event_id"] for r in rows}
    missing = {e["event_id"] for e in events} - delivered
    assert not missing, f"{len(missing)} events lost"
    assert len(list_keys(s3, bucket, "clean/")) >= before
    assert not list_keys(s3, bucket, "errors/")
