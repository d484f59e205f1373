"""The S3 intermediate zone: the one contract between its writers and the loader.

Everything about the zone is defined here and nowhere else (``docs/s3-zone.md``
describes this module):

- key layout and object names, exactly as Amazon Data Firehose names its objects:
  ``<prefix><DeliveryStreamName>-<DeliveryStreamVersion>-YYYY-MM-DD-HH-MM-SS-<uuid>.gz``,
  with the error output prefix ``errors/processing-failed/YYYY/MM/DD/HH/``;
- gzip NDJSON bodies, Firehose's error-record format, the raw backup framing;
- the loader's own Redshift manifests (Firehose writes none): build and parse;
- the warehouse column list of each event type;
- S3 event notifications (direct, or wrapped in SQS messages): which objects they name.

The I/O boundary that reads and writes the zone is :mod:`sluice.zonestore`.

Names are functions of the content only (the uuid is derived from the source, the
partition and the position range), so a delivery that writes the same batch again
writes the same keys; the format is still Firehose's, so the loader cannot tell the
local delivery's objects from Firehose's.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, urlparse

from sluice.config import ZoneSettings
from sluice.errors import ManifestError

STREAM_VERSION = 1
"""The delivery stream version in object names (Firehose starts at 1)."""

PROCESSING_FAILED = "processing-failed"
"""Firehose's ``!{firehose:error-output-type}`` for records the transform failed."""

GZIP_SUFFIX = ".gz"
MANIFEST_SUFFIX = ".manifest"
LOADER_MANIFEST_PREFIX = "loader-"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
MANIFEST_CONTENT_TYPE = "application/json"
RAW_CONTENT_TYPE = "text/plain; charset=us-ascii"
"""Raw backup objects: one base64 line per source record (see :func:`frame_raw`)."""

_NAMESPACE = uuid.UUID("5c1e0b7e-6d1f-4a53-9a51-51ce0ba7c0de")

# --- the column list of each event type (the warehouse row shape) --------------------------

FINANCIAL_TRANSACTION = "financial-transaction"
INSURANCE_CLAIM = "insurance-claim"

COMMON_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "ingested_at",
    "source",
    "tenant_id",
    "metadata",
)
FINANCIAL_TRANSACTION_COLUMNS: tuple[str, ...] = (
    *COMMON_COLUMNS,
    "transaction_id",
    "account_id",
    "amount",
    "currency",
    "transaction_type",
    "channel",
    "status",
    "card_number",
    "merchant_name",
    "merchant_mcc",
    "merchant_country",
)
INSURANCE_CLAIM_COLUMNS: tuple[str, ...] = (
    *COMMON_COLUMNS,
    "claim_id",
    "policy_id",
    "policyholder_id",
    "line_of_business",
    "loss_date",
    "reported_at",
    "claim_amount",
    "currency",
    "status",
    "cause_of_loss",
    "claimant_national_id",
    "loss_location_country",
    "loss_location_region",
    "loss_location_postal_code",
)
COLUMNS: Mapping[str, tuple[str, ...]] = {
    FINANCIAL_TRANSACTION: FINANCIAL_TRANSACTION_COLUMNS,
    INSURANCE_CLAIM: INSURANCE_CLAIM_COLUMNS,
}
"""Keys of a clean NDJSON line, in warehouse column order, per ``event_type``."""


# --- object names ---------------------------------------------------------------------------

_OBJECT_NAME = re.compile(
    r"^(?P<stream>[A-Za-z0-9_.-]+?)-(?P<version>\d+)-"
    r"(?P<stamp>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-"
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(?P<ext>\.[A-Za-z0-9.]+)?$"
)


@dataclass(frozen=True, slots=True)
class GroupName:
    """What identifies one object's content: source, partition, position range.

    ``source`` is the delivery stream's name as it appears in object names (locally
    the topic or stream name the delivery plays Firehose for).
    """

    kind: str
    source: str
    partition: str
    first: str
    last: str
    first_arrival_ms: int

    def object_uuid(self) -> str:
        """A UUID derived from the content's identity (stable across a rewrite)."""
        text = f"{self.kind}|{self.source}|{self.partition}|{self.first}|{self.last}"
        return str(uuid.uuid5(_NAMESPACE, text))

    def stem(self) -> str:
        """``<source>-1-<YYYY-MM-DD-HH-MM-SS>-<uuid>``: Firehose's object name."""
        return object_name(self.source, self.first_arrival_ms, self.object_uuid())


@dataclass(frozen=True, slots=True)
class ObjectName:
    """The parts of a Firehose object name."""

    stream: str
    version: int
    written_at: datetime
    uuid: str
    extension: str


def object_name(stream: str, arrival_ms: int, object_uuid: str, *, version: int = 1) -> str:
    """``<DeliveryStreamName>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>`` (no extension)."""
    return f"{stream}-{version}-{_stamp(arrival_ms)}-{object_uuid}"


def parse_object_name(name: str) -> ObjectName | None:
    """The parts of a Firehose object name (the last path segment), ``None`` if it is not
    one."""
    match = _OBJECT_NAME.match(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    stamp = datetime.strptime(match["stamp"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    return ObjectName(
        match["stream"], int(match["version"]), stamp, match["uuid"], match["ext"] or ""
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


def _hour(ms: int) -> str:
    return _moment(ms).strftime("%Y/%m/%d/%H")


def clean_prefix_for(zone: ZoneSettings, event_type: str, dt: str) -> str:
    """``clean/event_type=<type>/dt=<YYYY-MM-DD>/``: the evaluated dynamic-partitioning
    prefix ``clean/event_type=!{partitionKeyFromLambda:event_type}/dt=!{...:dt}/``."""
    return f"{zone.s3_clean_prefix}event_type={event_type}/dt={dt}/"


def clean_key(zone: ZoneSettings, event_type: str, dt: str, name: GroupName) -> str:
    """``clean/event_type=<type>/dt=<YYYY-MM-DD>/<stream>-1-<stamp>-<uuid>.gz``."""
    return f"{clean_prefix_for(zone, event_type, dt)}{name.stem()}{GZIP_SUFFIX}"


def error_key(zone: ZoneSettings, name: GroupName) -> str:
    """``errors/processing-failed/YYYY/MM/DD/HH/<name>.gz``: the error output prefix
    ``errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/`` evaluated at the
    first record's arrival hour."""
    return (
        f"{zone.s3_error_prefix}{PROCESSING_FAILED}/{_hour(name.first_arrival_ms)}/"
        f"{name.stem()}{GZIP_SUFFIX}"
    )


def raw_key(zone: ZoneSettings, name: GroupName) -> str:
    """``raw/YYYY/MM/DD/HH/<name>.gz``: the backup under Firehose's default time prefix,
    with the same name as the clean and error objects of that partition in the batch."""
    return f"{zone.s3_raw_prefix}{_hour(name.first_arrival_ms)}/{name.stem()}{GZIP_SUFFIX}"


def event_type_of_key(zone: ZoneSettings, key: str) -> str | None:
    """The event type of a clean object key (``clean/event_type=<type>/...``) or of a
    loader manifest key (``manifests/<type>/...``); ``None`` for any other key."""
    for prefix, strip in ((zone.s3_clean_prefix, "event_type="), (zone.s3_manifest_prefix, "")):
        if key.startswith(prefix):
            head = key[len(prefix) :].split("/", 1)[0]
            if not head.startswith(strip):
                return None
            head = head[len(strip) :]
            return head if head in COLUMNS else None
    return None


def is_clean_object(zone: ZoneSettings, key: str) -> bool:
    """True for a data object under the clean prefix of a known event type."""
    return (
        key.startswith(zone.s3_clean_prefix)
        and not key.endswith("/")
        and event_type_of_key(zone, key) is not None
    )


# --- bodies ---------------------------------------------------------------------------------


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (``mtime=0``): the same content gives the same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def gunzip(data: bytes, url: str) -> bytes:
    """Decompress a zone object (gzip; plain NDJSON passes through)."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ManifestError(f"{url} is not valid gzip: {exc}", code="zone_file_corrupt") from exc


def ndjson(objects: Iterable[Mapping[str, Any]]) -> bytes:
    """Compact NDJSON bytes, ``\\n`` after every line."""
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode("utf-8")


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


def frame_raw(values: Iterable[bytes]) -> bytes:
    """The raw backup body (before gzip): the standard base64 (RFC 4648, padded) of every
    source record's bytes and ``\\n``, in order. An empty record is an empty line."""
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


# --- URLs -----------------------------------------------------------------------------------


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` into ``(bucket, key)``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise ManifestError(f"not an s3:// object URL: {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


# --- the loader's manifests -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One ``entries[]`` item of a Redshift manifest."""

    url: str
    mandatory: bool = True
    content_length: int | None = None
    record_count: int | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A Redshift manifest: the files one load job stages together."""

    entries: tuple[ManifestEntry, ...]
    url: str | None = None

    @property
    def file_urls(self) -> tuple[str, ...]:
        """The ``s3://`` URLs of the entries, in manifest order."""
        return tuple(e.url for e in self.entries)


def manifest_body(entries: Iterable[ManifestEntry]) -> bytes:
    """Redshift manifest JSON ``{"entries": [{url, mandatory, meta}]}`` (meta when known)."""
    items: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"url": e.url, "mandatory": e.mandatory}
        meta: dict[str, int] = {}
        if e.content_length is not None:
            meta["content_length"] = e.content_length
        if e.record_count is not None:
            meta["record_count"] = e.record_count
        if meta:
            item["meta"] = meta
        items.append(item)
    return json.dumps({"entries": items}, indent=1).encode("utf-8")


def parse_manifest(data: bytes, url: str | None = None) -> Manifest:
    """Parse Redshift manifest JSON; :class:`ManifestError` when it is not one."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"manifest {url} is not JSON: {exc}") from exc
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ManifestError(f"manifest {url} has no 'entries' list")
    out: list[ManifestEntry] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ManifestError(f"manifest {url}: entry {i} has no url")
        split_url(entry["url"])
        raw_meta = entry.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        length = meta.get("content_length")
        count = meta.get("record_count")
        out.append(
            ManifestEntry(
                url=entry["url"],
                mandatory=bool(entry.get("mandatory", False)),
                content_length=int(length) if isinstance(length, int) else None,
                record_count=int(count) if isinstance(count, int) else None,
            )
        )
    return Manifest(tuple(out), url)


def loader_manifest_key(zone: ZoneSettings, event_type: str, urls: Iterable[str]) -> str:
    """``manifests/<type>/loader-<digest>.manifest``; ``digest`` is 20 hex digits of
    SHA-256 over the sorted file URLs, so one set of files always has one manifest (and so
    one load job)."""
    digest = hashlib.sha256("\n".join(sorted(set(urls))).encode("utf-8")).hexdigest()[:20]
    return (
        f"{zone.s3_manifest_prefix}{event_type}/{LOADER_MANIFEST_PREFIX}{digest}{MANIFEST_SUFFIX}"
    )


# --- S3 event notifications -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One record of an S3 event notification."""

    event_name: str
    bucket: str
    key: str
    size: int | None = None

    @property
    def url(self) -> str:
        """``s3://bucket/key`` (the key URL-decoded)."""
        return s3_url(self.bucket, self.key)

    @property
    def created(self) -> bool:
        """True for ``ObjectCreated:*`` events."""
        return self.event_name.startswith("ObjectCreated")


def s3_event_records(event: Mapping[str, Any]) -> list[ObjectEvent]:
    """The object records of an S3 event notification (a ``{"Records": [...]}`` body).

    Keys arrive URL-encoded (a space as ``+``); they are decoded here. The
    ``s3:TestEvent`` S3 sends when a notification is configured names no object and gives
    an empty list. Raises :class:`ManifestError` for a body that is neither.
    """
    if event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise ManifestError("not an S3 event notification: no 'Records' list", code="bad_event")
    out: list[ObjectEvent] = []
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict):
            raise ManifestError("S3 event record without 's3'", code="bad_event")
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        key = obj.get("key")
        if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
            raise ManifestError("S3 event record without bucket or key", code="bad_event")
        size = obj.get("size")
        out.append(
            ObjectEvent(
                str(record.get("eventName", "")),
                bucket,
                unquote_plus(key),
                int(size) if isinstance(size, int) else None,
            )
        )
    return out


def s3_event_from_message(body: str) -> list[ObjectEvent]:
    """The object records of one SQS message body carrying an S3 notification."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ManifestError(f"SQS message body is not JSON: {exc}", code="bad_event") from exc
    if not isinstance(doc, dict):
        raise ManifestError("SQS message body is not a JSON object", code="bad_event")
    return s3_event_records(doc)


def group_by_event_type(zone: ZoneSettings, urls: Sequence[str]) -> dict[str, list[str]]:
    """Clean object URLs grouped by event type (URLs of other keys are left out)."""
    out: dict[str, list[str]] = {}
    for url in dict.fromkeys(urls):
        _, key = split_url(url)
        if is_clean_object(zone, key):
            event_type = event_type_of_key(zone, key)
            assert event_type is not None
            out.setdefault(event_type, []).append(url)
    return out
