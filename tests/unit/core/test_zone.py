"""The S3 zone contract (``sluice.zone``, docs/s3-zone.md): names as Firehose names its
objects, bodies, manifests, S3 notifications."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.config import ZoneSettings
from sluice.errors import ManifestError
from sluice.zone import (
    COLUMNS,
    GroupName,
    ManifestEntry,
    clean_key,
    error_key,
    error_record,
    event_type_of_key,
    format_position,
    frame_raw,
    group_by_event_type,
    gzip_bytes,
    kafka_partition_label,
    loader_manifest_key,
    manifest_body,
    parse_manifest,
    parse_object_name,
    raw_key,
    s3_event_from_message,
    s3_event_records,
    unframe_raw,
)
from tests.unit.firehose_transforms import builders as b

ZONE = ZoneSettings(s3_bucket="zone")
ARRIVAL = 1_763_781_605_123  # 2025-11-22T03:20:05.123Z
# Firehose's documented suffix: <stream>-<version>-<YYYY>-<MM>-<DD>-<HH>-<MM>-<SS>-<uuid><ext>
FIREHOSE_NAME = re.compile(
    r"^[A-Za-z0-9_.-]+-\d+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.gz$"
)


def _kafka_name(first: str = "120", last: str = "250") -> GroupName:
    return GroupName(
        "kafka", "sluice-insurance-claim", kafka_partition_label(1), first, last, ARRIVAL
    )


def test_clean_key_is_the_partition_prefix_and_a_firehose_object_name() -> None:
    key = clean_key(ZONE, "insurance-claim", "2025-11-22", _kafka_name())
    prefix, name = key.rsplit("/", 1)
    assert prefix == "clean/event_type=insurance-claim/dt=2025-11-22"
    assert FIREHOSE_NAME.match(name), name
    assert name.startswith("sluice-insurance-claim-1-2025-11-22-03-20-05-")
    parsed = parse_object_name(key)
    assert parsed is not None
    assert (parsed.stream, parsed.version, parsed.extension) == ("sluice-insurance-claim", 1, ".gz")
    assert parsed.written_at.isoformat() == "2025-11-22T03:20:05+00:00"


def test_kinesis_names_are_firehose_names_too() -> None:
    seq1, seq2 = (
        "49546986683135544286507457936321625675700192471156785154",
        "49546986683135544286507457936321625675700192471156785999",
    )
    name = GroupName(
        "kinesis", "sluice-financial-transaction", "shardId-000000000001", seq1, seq2, ARRIVAL
    )
    key = clean_key(ZONE, "financial-transaction", "2025-11-22", name)
    assert FIREHOSE_NAME.match(key.rsplit("/", 1)[1])


def test_same_content_same_key_different_range_different_key() -> None:
    assert clean_key(ZONE, "t", "d", _kafka_name()) == clean_key(ZONE, "t", "d", _kafka_name())
    assert clean_key(ZONE, "t", "d", _kafka_name()) != clean_key(
        ZONE, "t", "d", _kafka_name(last="251")
    )


def test_error_key_is_the_error_output_prefix_at_the_arrival_hour() -> None:
    key = error_key(ZONE, _kafka_name())
    prefix, name = key.rsplit("/", 1)
    assert prefix == "errors/processing-failed/2025/11/22/03"
    assert FIREHOSE_NAME.match(name)


def test_prefixes_come_from_settings() -> None:
    zone = ZoneSettings(
        s3_bucket="z", s3_clean_prefix="c/", s3_error_prefix="e/", s3_manifest_prefix="m/"
    )
    assert clean_key(zone, "t", "d", _kafka_name()).startswith("c/event_type=t/dt=d/")
    assert error_key(zone, _kafka_name()).startswith("e/processing-failed/")
    assert loader_manifest_key(zone, "t", ["s3://z/c/a.gz"]).startswith("m/t/loader-")


def test_names_that_are_not_firehose_names_are_refused() -> None:
    assert parse_object_name("clean/x/y.gz") is None
    assert parse_object_name("s-1-2025-11-22-03-20-05-kafka-p0001-1-2.gz") is None


def test_loader_manifest_key_depends_only_on_the_set_of_files() -> None:
    a = loader_manifest_key(ZONE, "insurance-claim", ["s3://zone/b.gz", "s3://zone/a.gz"])
    b_ = loader_manifest_key(ZONE, "insurance-claim", ["s3://zone/a.gz", "s3://zone/b.gz"])
    assert a == b_
    assert re.fullmatch(r"manifests/insurance-claim/loader-[0-9a-f]{20}\.manifest", a)
    assert a != loader_manifest_key(ZONE, "insurance-claim", ["s3://zone/a.gz"])


def test_manifest_body_is_redshift_manifest_json_and_reads_back() -> None:
    entry = ManifestEntry("s3://zone/clean/a.gz", True, 10, 3)
    body = json.loads(manifest_body([entry]))
    assert body == {
        "entries": [
            {
                "url": "s3://zone/clean/a.gz",
                "mandatory": True,
                "meta": {"content_length": 10, "record_count": 3},
            }
        ]
    }
    assert parse_manifest(manifest_body([entry])).entries == (entry,)


@pytest.mark.parametrize(
    "data", [b"not json", b"[]", b'{"entries": {}}', b'{"entries": [{"url": "http://x/y"}]}']
)
def test_a_manifest_that_is_none_is_refused(data: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(data, "s3://zone/m.manifest")


def test_event_type_of_a_key() -> None:
    assert event_type_of_key(ZONE, "clean/event_type=insurance-claim/dt=d/x.gz") == (
        "insurance-claim"
    )
    assert event_type_of_key(ZONE, "manifests/financial-transaction/loader-1.manifest") == (
        "financial-transaction"
    )
    assert event_type_of_key(ZONE, "clean/event_type=other/dt=d/x.gz") is None
    assert event_type_of_key(ZONE, "errors/processing-failed/2025/x.gz") is None
    grouped = group_by_event_type(
        ZONE,
        [
            "s3://zone/clean/event_type=insurance-claim/dt=d/a.gz",
            "s3://zone/errors/processing-failed/x.gz",
            "s3://zone/clean/event_type=insurance-claim/dt=d/a.gz",
        ],
    )
    assert grouped == {"insurance-claim": ["s3://zone/clean/event_type=insurance-claim/dt=d/a.gz"]}


def test_the_column_lists_are_the_warehouse_tables() -> None:
    from warehouse.tables import TABLE_SPECS

    for spec in TABLE_SPECS.values():
        assert spec.column_names == COLUMNS[spec.table.event_type.value]


def test_s3_events_decode_keys_and_skip_the_test_event() -> None:
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "zone"},
                    "object": {"key": "clean/a+b%3D1.gz", "size": 3},
                },
            }
        ]
    }
    (record,) = s3_event_records(body)
    assert record.url == "s3://zone/clean/a b=1.gz" and record.created and record.size == 3
    assert s3_event_from_message(json.dumps({"Event": "s3:TestEvent", "Bucket": "zone"})) == []
    with pytest.raises(ManifestError):
        s3_event_from_message("[1]")
    with pytest.raises(ManifestError):
        s3_event_records({"Records": [{"s3": {"bucket": {}, "object": {}}}]})


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
    # docs/s3-zone.md shows this key; it must be the one the code writes
    from datetime import UTC, datetime
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "s3-zone.md").read_text()
    arrival = int(datetime(2026, 11, 22, 3, 20, 5, tzinfo=UTC).timestamp() * 1000)
    name = GroupName("kafka", "sluice-insurance-claim", "p0001", "120", "250", arrival)
    key = clean_key(ZoneSettings(), "insurance-claim", "2026-11-22", name)
    assert f"`{key}`" in doc


# --------------------------------------------------------------------------- raw backup


def test_raw_key_uses_the_arrival_hour_and_the_clean_name() -> None:
    key = raw_key(ZONE, _kafka_name())
    prefix, name = key.rsplit("/", 1)
    assert prefix == "raw/2025/11/22/03" and FIREHOSE_NAME.match(name)
    clean = clean_key(ZONE, "insurance-claim", "2025-11-22", _kafka_name())
    assert name == clean.rsplit("/", 1)[1]
    assert raw_key(ZONE, _kafka_name()) != raw_key(ZONE, _kafka_name(first="121"))


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
