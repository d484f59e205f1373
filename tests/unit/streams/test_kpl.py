"""KPL (de)aggregation of the streams layer against the official library and the real
KPL's vectors, in this process and in fresh processes (nothing imported first)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sluice.streams import kpl

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "tests" / "fixtures" / "kpl" / "awslabs-real-kpl-vectors.json"
"""Real-KPL aggregates and their expected user records, from awslabs/kinesis-aggregation
(python/test/test_deagg.py; the file names the commit)."""


def _vectors() -> list[dict[str, Any]]:
    return list(json.loads(VECTORS.read_text())["vectors"])


def _official_aggregate(users: list[tuple[str, bytes, str | None]]) -> bytes:
    """One aggregate from the official ``aws_kinesis_agg`` aggregator."""
    from aws_kinesis_agg.aggregator import RecordAggregator

    aggregator = RecordAggregator()
    for key, data, ehk in users:
        assert aggregator.add_user_record(key, data, ehk) is None
    record = aggregator.clear_and_get()
    assert record is not None
    return bytes(record.get_contents()[2])


USERS = [
    ("acc-1", b'{"n":1}', None),
    ("acc-2", b'{"n":2}', "123456789"),
    ("acc-1", b'{"n":3}', None),
    ("acc-3", b"\x00\x01binary", "340282366920938463463374607431768211455"),
]


def _run_fresh(code: str, *args: str) -> Any:
    """Run ``code`` in a new interpreter (nothing imported first) and parse its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_STACK_ENV"] = os.devnull
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- in process


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_real_kpl_vectors_deaggregate_to_their_user_records(vector: dict[str, Any]) -> None:
    data = base64.b64decode(vector["data_b64"])
    users = kpl.deaggregate(data)
    expected = vector["user_records"]
    if len(expected) == 1 and not kpl.is_aggregate(data):
        assert users is None  # a plain record is passed on as it is
        assert data.decode() == expected[0]["data"]
        return
    assert users is not None
    assert [(u.partition_key, u.explicit_hash_key, u.data.decode()) for u in users] == [
        (e["partition_key"], e["explicit_hash_key"], e["data"]) for e in expected
    ]
    assert [u.sub_sequence for u in users] == list(range(len(expected)))


def test_official_aggregator_output_deaggregates_with_each_records_own_keys() -> None:
    users = kpl.deaggregate(_official_aggregate(USERS))
    assert users is not None
    assert [(u.partition_key, u.data, u.explicit_hash_key) for u in users] == USERS


def test_our_aggregate_reads_back_through_the_official_deaggregator() -> None:
    from aws_kinesis_agg.deaggregator import deaggregate_records

    data = kpl.aggregate(USERS)
    entry = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "sequenceNumber": "1",
            "partitionKey": "outer",
            "approximateArrivalTimestamp": 1.0,
            "data": base64.b64encode(data).decode(),
        }
    }
    out = deaggregate_records([entry])
    assert [
        (r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in out
    ] == [(key, payload) for key, payload, _ in USERS]
    # (for a record without one, the official deaggregator reports the table's first
    # explicit hash key whatever the record says; records that carry one agree)
    assert [
        r["kinesis"]["explicitHashKey"] for r, (*_, ehk) in zip(out, USERS, strict=True) if ehk
    ] == [ehk for *_, ehk in USERS if ehk]


def test_an_aggregate_failing_its_digest_is_passed_on_whole() -> None:
    data = _official_aggregate(USERS)
    broken = data[:-1] + bytes([data[-1] ^ 1])
    assert kpl.deaggregate(broken) is None
    assert kpl.user_payloads(broken) == [broken]


def test_a_body_that_does_not_parse_or_points_outside_its_tables_is_passed_on_whole() -> None:
    garbage = b"\xff\xff\xff"
    not_protobuf = kpl.MAGIC + garbage + hashlib.md5(garbage).digest()
    assert kpl.deaggregate(not_protobuf) is None
    message = kpl.AggregatedRecord()
    message.partition_key_table.append("k")
    user = message.records.add()
    user.partition_key_index = 5  # no such key
    user.data = b"x"
    body = message.SerializeToString()
    assert kpl.deaggregate(kpl.MAGIC + body + hashlib.md5(body).digest()) is None


def test_plain_records_are_not_aggregates() -> None:
    assert kpl.deaggregate(b'{"event_type":"x"}') is None
    assert kpl.deaggregate(kpl.MAGIC + b"short") is None
    assert kpl.user_payloads(b"plain") == [b"plain"]
    with pytest.raises(ValueError):
        kpl.aggregate([])


# --------------------------------------------------------------------------- fresh processes

_READ_PATHS = """
    import base64, json, sys
    from sluice.streams.kinesis import to_stream_records
    from consumers.base import dead_letter_headers
    from consumers.models import DeadLetter
    from consumers.sinks import dead_letter_record
    from firehose_transforms.invocation import EventContext, firehose_event

    out = []
    for item in json.loads(sys.argv[1]):
        entry = {
            "SequenceNumber": item["sequence_number"],
            "PartitionKey": item["partition_key"],
            "Data": base64.b64decode(item["data_b64"]),
        }
        records = to_stream_records("s", "shardId-000000000000", entry)
        event = firehose_event(EventContext("kinesis", "s", "d"), records)
        letters = [
            dead_letter_record(DeadLetter(r, "DecodeError", "x", 1), "kinesis") for r in records
        ]
        out.append(
            {
                "consumer": [
                    [r.value.decode("latin-1"), r.key_text, r.explicit_hash_key, r.sub_sequence]
                    for r in records
                ],
                "dead_letter_keys": [letter.partition_key for letter in letters],
                "delivery": [
                    [
                        base64.b64decode(e["data"]).decode("latin-1"),
                        e["kinesisRecordMetadata"]["partitionKey"],
                        e["kinesisRecordMetadata"]["subsequenceNumber"],
                    ]
                    for e in event["records"]
                ],
                "modules": sorted(m for m in sys.modules if m.startswith("aws_kinesis_agg")),
            }
        )
    print(json.dumps(out))
"""


def test_real_kpl_vectors_on_the_consumer_and_delivery_paths_in_a_fresh_process() -> None:
    vectors = [v for v in _vectors() if v["name"] != "real-kpl-not-aggregated"]
    results = _run_fresh(_READ_PATHS, json.dumps(vectors))
    for vector, result in zip(vectors, results, strict=True):
        expected = vector["user_records"]
        assert result["consumer"] == [
            [e["data"], e["partition_key"], e["explicit_hash_key"], i]
            for i, e in enumerate(expected)
        ], vector["name"]
        # a dead letter goes to the DLQ under the user record's own key
        assert result["dead_letter_keys"] == [e["partition_key"] for e in expected]
        # Firehose's kinesisRecordMetadata carries each user record's own key
        assert result["delivery"] == [
            [e["data"], e["partition_key"], i] for i, e in enumerate(expected)
        ]
        assert result["modules"] == []  # the official library is not needed to read


def test_official_aggregator_output_on_both_paths_in_a_fresh_process() -> None:
    data = _official_aggregate(USERS)
    item = {
        "sequence_number": "42",
        "partition_key": "outer",
        "data_b64": base64.b64encode(data).decode(),
    }
    (result,) = _run_fresh(_READ_PATHS, json.dumps([item]))
    assert [row[1] for row in result["consumer"]] == [key for key, _, _ in USERS]
    assert [row[0].encode("latin-1") for row in result["consumer"]] == [p for _, p, _ in USERS]
    assert result["dead_letter_keys"] == [key for key, _, _ in USERS]
    assert [row[1] for row in result["delivery"]] == [key for key, _, _ in USERS]
