"""Names and bodies of the S3 zone (docs/s3-zone.md)."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firehose_transforms.zone import (
    GroupName,
    ManifestEntry,
    batch_digest,
    clean_key,
    error_key,
    error_record,
    format_position,
    frame_raw,
    gzip_bytes,
    kafka_partition_label,
    manifest_body,
    manifest_key,
    raw_key,
    unframe_raw,
)
from sluice.config import ZoneSettings
from tests.unit.firehose_transforms import builders as b

ZONE = ZoneSettings(s3_bucket="zone")
ARRIVAL = 1_763_781_605_123  # 2025-11-22T03:20:05.123Z


def _kafka_name(first: str = "120", last: str = "250") -> GroupName:
    return GroupName(
        "kafka", "sluice-insurance-claim", kafka_partition_label(1), first, last, ARRIVAL
    )


def test_kafka_clean_key() -> None:
    key = clean_key(ZONE, "insurance-claim", "2025-11-22", _kafka_name())
    assert key == (
        "clean/event_type=insurance-claim/dt=2025-11-22/sluice-insurance-claim-1-2025-11-22-03-20-05-"
        "kafka-p0001-00000000000000000120-00000000000000000250.gz"
    )


def test_kinesis_clean_key_keeps_sequence_numbers() -> None:
    seq1, seq2 = (
        "49546986683135544286507457936321625675700192471156785154",
        "49546986683135544286507457936321625675700192471156785999",
    )
    name = GroupName(
        "kinesis", "sluice-financial-transaction", "shardId-000000000001", seq1, seq2, ARRIVAL
    )
    key = clean_key(ZONE, "financial-transaction", "2025-11-22", name)
    assert key.endswith(f"-kinesis-shardId-000000000001-{seq1}-{seq2}.gz")
    assert key.startswith(
        "clean/event_type=financial-transaction/dt=2025-11-22/sluice-financial-transaction-1-"
    )


def test_same_content_same_key_different_range_different_key() -> None:
    assert clean_key(ZONE, "t", "d", _kafka_name()) == clean_key(ZONE, "t", "d", _kafka_name())
    assert clean_key(ZONE, "t", "d", _kafka_name()) != clean_key(
        ZONE, "t", "d", _kafka_name(last="251")
    )


def test_error_key_uses_the_arrival_hour() -> None:
    key = error_key(ZONE, _kafka_name())
    assert key.startswith("errors/processing-failed/2025/11/22/03/sluice-insurance-claim-1-")
    assert key.endswith(".gz")


def test_prefixes_come_from_settings() -> None:
    zone = ZoneSettings(
        s3_bucket="z", s3_clean_prefix="c/", s3_error_prefix="e/", s3_manifest_prefix="m/"
    )
    assert clean_key(zone, "t", "d", _kafka_name()).startswith("c/event_type=t/dt=d/")
    assert error_key(zone, _kafka_name()).startswith("e/processing-failed/")
    assert manifest_key(
        zone, "t", kind="kafka", source="s", first_arrival_ms=ARRIVAL, ranges=[]
    ).startswith("m/t/")


def test_manifest_key_is_stable_under_range_order() -> None:
    ranges = [("p0001", "1", "9"), ("p0000", "3", "4")]
    a = manifest_key(
        ZONE, "insurance-claim", kind="kafka", source="s", first_arrival_ms=ARRIVAL, ranges=ranges
    )
    b = manifest_key(
        ZONE,
        "insurance-claim",
        kind="kafka",
        source="s",
        first_arrival_ms=ARRIVAL,
        ranges=ranges[::-1],
    )
    assert a == b
    digest = batch_digest(ranges)
    assert a == f"manifests/insurance-claim/s-1-2025-11-22-03-20-05-kafka-{digest}.manifest"
    assert len(batch_digest(ranges)) == 16


def test_manifest_body_is_redshift_manifest_json() -> None:
    body = json.loads(manifest_body([ManifestEntry("s3://zone/clean/a.gz", 10, 3)]))
    assert body == {
        "entries": [
            {
                "url": "s3://zone/clean/a.gz",
                "mandatory": True,
                "meta": {"content_length": 10, "record_count": 3},
            }
        ]
    }


def test_error_record_has_the_firehose_fields() -> None:
    record = error_record(
        raw=b"\x00raw",
        arrival_ms=1,
        error_code="Lambda.ProcessingFailedStatus",
        error_message="undecodable: x",
        attempts=1,
        attempt_ending_ms=2,
        lambda_arn="arn",
    )
    assert record == {
        "attemptsMade": 1,
        "arrivalTimestamp": 1,
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "undecodable: x",
        "attemptEndingTimestamp": 2,
        "rawData": "AHJhdw==",
        "lambdaArn": "arn",
    }


def test_gzip_is_deterministic() -> None:
    assert gzip_bytes(b"abc\n") == gzip_bytes(b"abc\n")
    assert gzip.decompress(gzip_bytes(b"abc\n")) == b"abc\n"


def test_positions_are_formatted_per_kind() -> None:
    assert format_position("kafka", "7") == "00000000000000000007"
    assert format_position("kinesis", "495") == "495"


def test_the_documented_example_key_is_what_the_code_writes() -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "s3-zone.md").read_text()
    arrival = int(datetime(2026, 11, 22, 3, 20, 5, tzinfo=UTC).timestamp() * 1000)
    name = GroupName("kafka", "sluice-insurance-claim", "p0001", "120", "250", arrival)
    key = clean_key(ZoneSettings(), "insurance-claim", "2026-11-22", name)
    assert f"`{key}`" in doc


# --------------------------------------------------------------------------- raw backup


def test_raw_key_uses_the_arrival_hour_and_the_clean_stem() -> None:
    key = raw_key(ZONE, _kafka_name())
    assert key == (
        "raw/2025/11/22/03/sluice-insurance-claim-1-2025-11-22-03-20-05-"
        "kafka-p0001-00000000000000000120-00000000000000000250.gz"
    )
    clean = clean_key(ZONE, "insurance-claim", "2025-11-22", _kafka_name())
    assert key.rsplit("/", 1)[1] == clean.rsplit("/", 1)[1]


def test_raw_key_is_stable_and_names_the_range() -> None:
    assert raw_key(ZONE, _kafka_name()) == raw_key(ZONE, _kafka_name())
    assert raw_key(ZONE, _kafka_name()) != raw_key(ZONE, _kafka_name(first="121"))
    seq = "49546986683135544286507457936321625675700192471156785154"
    name = GroupName("kinesis", "s", "shardId-000000000001", seq, seq, ARRIVAL)
    assert raw_key(ZONE, name) == (
        f"raw/2025/11/22/03/s-1-2025-11-22-03-20-05-kinesis-shardId-000000000001-{seq}-{seq}.gz"
    )


def test_raw_prefix_comes_from_settings() -> None:
    zone = ZoneSettings(s3_bucket="z", s3_raw_prefix="backup/source/")
    assert raw_key(zone, _kafka_name()).startswith("backup/source/2025/11/22/03/")


def test_raw_framing_is_one_base64_line_per_record() -> None:
    assert frame_raw([b"\x00\x01", b"", b"a\nb"]) == b"AAE=\n\nYQpi\n"
    assert frame_raw([]) == b""


def test_raw_framing_keeps_binary_avro_and_odd_bytes_exactly() -> None:
    values = [
        b.as_avro(b.claim()),
        b.as_json(b.transaction()),
        b"",
        b"\n",
        b"\n\n\r\n",
        b"not an event",
        bytes(range(256)),
        b.kpl_aggregate([b.as_avro(b.transaction())]),
    ]
    assert unframe_raw(frame_raw(values)) == values
    assert unframe_raw(gzip.decompress(gzip_bytes(frame_raw(values)))) == values


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_raw_framing_round_trips_any_bytes(values: list[bytes]) -> None:
    body = frame_raw(values)
    assert unframe_raw(body) == values
    assert body.count(b"\n") == len(values)


@pytest.mark.parametrize("body", [b"AAE=", b"AAE=\nnot base64!\n", b"AAE\n", b"\x00\n"])
def test_unframe_refuses_a_malformed_body(body: bytes) -> None:
    with pytest.raises(ValueError):
        unframe_raw(body)
