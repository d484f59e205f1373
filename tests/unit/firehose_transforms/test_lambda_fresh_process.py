"""The transform Lambda handler as Lambda runs it: a new interpreter importing
``firehose_transforms.lambda_function`` with nothing imported first, invoked with
Firehose events whose records are KPL aggregates of several user records each (the
official aggregator's output and the real KPL's vectors), and with AWS's sample events."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.firehose_transforms import builders as b

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "tests" / "events"
VECTORS = ROOT / "tests" / "fixtures" / "kpl" / "awslabs-real-kpl-vectors.json"

HANDLER = """
import json, sys
import firehose_transforms.lambda_function as function
event = json.load(open(sys.argv[1]))
print(json.dumps(function.lambda_handler(event, None)))
"""


def invoke_fresh(event: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update({"SLUICE_STACK_ENV": os.devnull, "SLUICE_PII_HMAC_KEY": b.HMAC_KEY})
    done = subprocess.run(
        [sys.executable, "-c", HANDLER, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    response: dict[str, Any] = json.loads(done.stdout)
    return response


def _rows(entry: dict[str, Any], field: str = "data") -> list[dict[str, Any]]:
    return [json.loads(line) for line in base64.b64decode(entry[field]).splitlines()]


def _kinesis_event(datas: list[bytes]) -> dict[str, Any]:
    return {
        "invocationId": "inv-1",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/d",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"r{i}",
                "approximateArrivalTimestamp": 1_763_781_605_000,
                "data": base64.b64encode(data).decode(),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "outer",
                    "approximateArrivalTimestamp": 1_763_781_605_000,
                    "sequenceNumber": str(4954 + i),
                    "subsequenceNumber": 0,
                },
            }
            for i, data in enumerate(datas)
        ],
    }


def test_aggregates_of_several_events_each_in_a_fresh_process(tmp_path: Path) -> None:
    groups = [[b.transaction() for _ in range(n)] for n in (3, 2, 4)]
    datas = [
        b.kpl_aggregate([b.as_avro(e) for e in group], keys=[e["account_id"] for e in group])
        for group in groups
    ]
    response = invoke_fresh(_kinesis_event(datas), tmp_path)
    entries = response["records"]
    assert [e["recordId"] for e in entries] == ["r0", "r1", "r2"]
    assert [e["result"] for e in entries] == ["Ok"] * 3
    for entry, group in zip(entries, groups, strict=True):
        assert [row["event_id"] for row in _rows(entry)] == [e["event_id"] for e in group]


def test_an_aggregate_failing_its_digest_is_answered_whole_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    data = b.kpl_aggregate([b.as_avro(b.transaction()) for _ in range(2)])
    broken = data[:-1] + bytes([data[-1] ^ 1])
    (entry,) = invoke_fresh(_kinesis_event([broken]), tmp_path)["records"]
    assert entry["result"] == "ProcessingFailed"
    assert json.loads(base64.b64decode(entry["data"]))["errorCode"] == "undecodable"


def test_real_kpl_vectors_are_answered_once_per_record_in_a_fresh_process(tmp_path: Path) -> None:
    vectors = json.loads(VECTORS.read_text())["vectors"]
    datas = [base64.b64decode(v["data_b64"]) for v in vectors]
    entries = invoke_fresh(_kinesis_event(datas), tmp_path)["records"]
    # the payloads are text, not events: every record fails as undecodable, none is lost
    assert [e["recordId"] for e in entries] == [f"r{i}" for i in range(len(vectors))]
    assert {e["result"] for e in entries} == {"ProcessingFailed"}


@pytest.mark.parametrize(
    "name", ["firehose-kinesis-source.json", "firehose-msk-source.json", "firehose-direct-put.json"]
)
def test_sample_events_in_a_fresh_process(name: str, tmp_path: Path) -> None:
    event = json.loads((EVENTS / name).read_text())
    response = invoke_fresh(event, tmp_path)
    assert [e["recordId"] for e in response["records"]] == [r["recordId"] for r in event["records"]]
    assert all(e["result"] in ("Ok", "Dropped", "ProcessingFailed") for e in response["records"])
