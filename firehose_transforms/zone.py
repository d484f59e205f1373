"""Names and bodies of the S3 zone (pure): see ``docs/s3-zone.md``.

Every name is a function of the batch's content only (source, partition, first and
last position, arrival times), so writing a batch again writes the same keys.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sluice.config import ZoneSettings

STREAM_VERSION = 1
"""The delivery stream version in object names (Firehose puts it there too)."""

PROCESSING_FAILED = "processing-failed"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
MANIFEST_CONTENT_TYPE = "application/json"
RAW_CONTENT_TYPE = "text/plain; charset=us-ascii"
"""Raw backup objects: one base64 line per source record (see :func:`frame_raw`)."""


@dataclass(frozen=True, slots=True)
class GroupName:
    """What identifies one object's content: source, partition, position range."""

    kind: str
    source: str
    partition: str
    first: str
    last: str
    first_arrival_ms: int

    def stem(self) -> str:
        """``<source>-1-<YYYY-MM-DD-HH-MM-SS>-<kind>-<part>-<first>-<last>``."""
        return (
            f"{self.source}-{STREAM_VERSION}-{_stamp(self.first_arrival_ms)}-{self.kind}-"
            f"{self.partition}-{format_position(self.kind, self.first)}-"
            f"{format_position(self.kind, self.last)}"
        )


def kafka_partition_label(partition: int) -> str:
    """``p0003`` for Kafka partition 3."""
    return f"p{partition:04d}"


def format_position(kind: str, position: str) -> str:
    """Kafka offsets zero-padded to 20 digits; Kinesis sequence numbers as they are."""
    return position.zfill(20) if kind == "kafka" else position


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _stamp(ms: int) -> str:
    return _moment(ms).strftime("%Y-%m-%d-%H-%M-%S")


def clean_key(zone: ZoneSettings, event_type: str, dt: str, name: GroupName) -> str:
    """``clean/event_type=<type>/dt=<YYYY-MM-DD>/<stem>.gz``."""
    return f"{zone.s3_clean_prefix}event_type={event_type}/dt={dt}/{name.stem()}.gz"


def error_key(zone: ZoneSettings, name: GroupName) -> str:
    """``errors/processing-failed/YYYY/MM/DD/HH/<stem>.gz`` (first record's arrival hour)."""
    hour = _moment(name.first_arrival_ms).strftime("%Y/%m/%d/%H")
    return f"{zone.s3_error_prefix}{PROCESSING_FAILED}/{hour}/{name.stem()}.gz"


def raw_key(zone: ZoneSettings, name: GroupName) -> str:
    """``raw/YYYY/MM/DD/HH/<stem>.gz``: Firehose's default time prefix (the first
    record's arrival hour) under the raw prefix, and the same stem as the clean and error
    objects of that partition in the batch."""
    hour = _moment(name.first_arrival_ms).strftime("%Y/%m/%d/%H")
    return f"{zone.s3_raw_prefix}{hour}/{name.stem()}.gz"


def frame_raw(values: Iterable[bytes]) -> bytes:
    """The raw backup body (before gzip): for every source record, in order, the
    standard base64 (RFC 4648, padded) of its bytes and ``\\n``.

    The base64 alphabet holds no ``\\n``, so a record's bytes, whatever they are
    (binary Avro, JSON, an empty value, bytes that are no event), come back exactly
    and the boundaries between records are kept. An empty record is an empty line.
    """
    return b"".join(base64.b64encode(value) + b"\n" for value in values)


def unframe_raw(body: bytes) -> list[bytes]:
    """The source records of a raw backup body (after gunzip): inverse of
    :func:`frame_raw`.

    Raises:
        ValueError: the body does not end with ``\\n`` or a line is not padded base64.
    """
    if not body:
        return []
    if not body.endswith(b"\n"):
        raise ValueError("raw backup body does not end with a newline")
    try:
        return [base64.b64decode(line, validate=True) for line in body[:-1].split(b"\n")]
    except binascii.Error as exc:
        raise ValueError(f"raw backup line is not base64: {exc}") from exc


def batch_digest(ranges: Iterable[tuple[str, str, str]]) -> str:
    """16 hex digits of SHA-256 over sorted ``part:first-last`` ranges."""
    text = "\n".join(sorted(f"{p}:{first}-{last}" for p, first, last in ranges))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def manifest_key(
    zone: ZoneSettings,
    event_type: str,
    *,
    kind: str,
    source: str,
    first_arrival_ms: int,
    ranges: Iterable[tuple[str, str, str]],
) -> str:
    """``manifests/<type>/<source>-1-<YYYY-MM-DD-HH-MM-SS>-<kind>-<digest>.manifest``."""
    return (
        f"{zone.s3_manifest_prefix}{event_type}/{source}-{STREAM_VERSION}-"
        f"{_stamp(first_arrival_ms)}-{kind}-{batch_digest(ranges)}.manifest"
    )


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One object listed in a manifest."""

    url: str
    content_length: int
    record_count: int


def manifest_body(entries: Sequence[ManifestEntry]) -> bytes:
    """Redshift manifest JSON: ``{"entries": [{url, mandatory, meta}]}``."""
    doc = {
        "entries": [
            {
                "url": e.url,
                "mandatory": True,
                "meta": {"content_length": e.content_length, "record_count": e.record_count},
            }
            for e in entries
        ]
    }
    return json.dumps(doc, indent=1, sort_keys=False).encode("utf-8")


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (``mtime=0``): the same content gives the same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def error_record(
    *,
    raw: bytes,
    arrival_ms: int,
    error_code: str,
    error_message: str,
    attempts: int,
    attempt_ending_ms: int,
    lambda_arn: str,
) -> dict[str, Any]:
    """One error record in Firehose's ``processing-failed`` format."""
    return {
        "attemptsMade": attempts,
        "arrivalTimestamp": arrival_ms,
        "errorCode": error_code,
        "errorMessage": error_message,
        "attemptEndingTimestamp": attempt_ending_ms,
        "rawData": base64.b64encode(raw).decode("ascii"),
        "lambdaArn": lambda_arn,
    }


def ndjson(objects: Iterable[Mapping[str, Any]]) -> bytes:
    """Compact NDJSON bytes, ``\\n`` after every line."""
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode("utf-8")
