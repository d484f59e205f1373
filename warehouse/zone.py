"""Reading the S3 intermediate zone: manifests and gzip NDJSON files.

:class:`Zone` is the narrow boundary (list, read, write); :class:`S3Zone` speaks to S3
(or the local moto server) through an injected or lazily created boto3 client;
:class:`MemoryZone` holds objects in a dict for unit tests. Manifest parsing and
building are pure functions.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlparse

from sluice.config import AwsSettings, EventType
from warehouse.exceptions import ManifestError, ZoneReadError
from warehouse.models import Manifest, ManifestEntry, TargetTable

MANIFEST_SUFFIX = ".manifest"


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` into ``(bucket, key)``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise ManifestError(f"not an s3:// object URL: {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


# --- manifests (pure) ---------------------------------------------------------------------


def parse_manifest(data: bytes, url: str | None = None) -> Manifest:
    """Parse Redshift manifest JSON (``{"entries": [{"url", "mandatory", "meta"}]}``)."""
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


def build_manifest(entries: Iterable[ManifestEntry]) -> bytes:
    """Redshift manifest JSON for ``entries`` (``mandatory`` kept; meta when known)."""
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
    return json.dumps({"entries": items}, indent=1).encode()


def table_for_key(key: str, manifest_prefix: str, clean_prefix: str) -> TargetTable | None:
    """The target table a zone key belongs to, from its path.

    ``manifests/<event_type>/...`` and ``clean/event_type=<event_type>/...``.
    """
    for prefix, strip in ((manifest_prefix, ""), (clean_prefix, "event_type=")):
        if key.startswith(prefix):
            head = key[len(prefix) :].split("/", 1)[0]
            if head.startswith(strip):
                head = head[len(strip) :]
            try:
                return TargetTable.for_event_type(EventType(head))
            except ValueError:
                return None
    return None


def table_for_manifest(
    manifest: Manifest, key: str, *, manifest_prefix: str, clean_prefix: str
) -> TargetTable:
    """The target of a manifest: from its key, else from its files' keys (all must agree)."""
    table = table_for_key(key, manifest_prefix, clean_prefix)
    if table is not None:
        return table
    found = {
        table_for_key(split_url(u)[1], manifest_prefix, clean_prefix) for u in manifest.file_urls
    }
    if len(found) == 1 and None not in found:
        return found.pop()  # type: ignore[return-value]
    raise ManifestError(f"cannot tell the event type of manifest {key}")


def gunzip(data: bytes, url: str) -> bytes:
    """Decompress a zone file (gzip; plain NDJSON passes through)."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ManifestError(f"{url} is not valid gzip: {exc}", code="zone_file_corrupt") from exc


# --- the boundary ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneObject:
    """One listed object."""

    url: str
    size: int
    last_modified: datetime | None = None


class Zone(Protocol):
    """The S3 zone as the loader needs it."""

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix``, in key order."""
        ...

    def read(self, url: str) -> bytes:
        """An object's bytes; :class:`ManifestError` when it does not exist."""
        ...

    def write(self, url: str, data: bytes) -> None:
        """Put an object."""
        ...


class MemoryZone:
    """Objects in a dict (for unit tests)."""

    # its objects live in this process: a worker process would hold a stale copy
    parallel_safe = False

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix``."""
        start = s3_url(bucket, prefix)
        return [
            ZoneObject(u, len(d)) for u, d in sorted(self.objects.items()) if u.startswith(start)
        ]

    def read(self, url: str) -> bytes:
        """The object's bytes."""
        try:
            return self.objects[url]
        except KeyError:
            raise ManifestError(f"{url} does not exist", code="NoSuchKey") from None

    def write(self, url: str, data: bytes) -> None:
        """Store the object."""
        self.objects[url] = data


class S3Zone:
    """The zone on S3 (or moto), through boto3; the client is created on first use."""

    def __init__(self, *, client: Any = None, aws: AwsSettings | None = None) -> None:
        self._client = client
        self._aws = aws
        self._owns_client = client is None

    @property
    def parallel_safe(self) -> bool:
        """True when a copy can be sent to another process (it builds its own client)."""
        return self._owns_client

    def __getstate__(self) -> dict[str, Any]:
        if not self._owns_client:
            raise TypeError("an S3Zone with an injected client cannot be sent to a process")
        return {"_client": None, "_aws": self._aws, "_owns_client": True}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def client(self) -> Any:
        """The boto3 S3 client."""
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("s3")
        return self._client

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix`` (every page)."""
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[ZoneObject] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for obj in page.get("Contents", []):
                    out.append(
                        ZoneObject(
                            s3_url(bucket, obj["Key"]), int(obj["Size"]), obj.get("LastModified")
                        )
                    )
        except ClientError as exc:
            raise _wrap(exc, f"s3://{bucket}/{prefix}") from exc
        except BotoCoreError as exc:
            raise ZoneReadError(f"listing s3://{bucket}/{prefix} failed: {exc}") from exc
        return out

    def read(self, url: str) -> bytes:
        """The object's bytes."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_url(url)
        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise _wrap(exc, url) from exc
        except BotoCoreError as exc:
            raise ZoneReadError(f"reading {url} failed: {exc}") from exc
        return body

    def write(self, url: str, data: bytes) -> None:
        """Put the object."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_url(url)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except ClientError as exc:
            raise _wrap(exc, url) from exc
        except BotoCoreError as exc:
            raise ZoneReadError(f"writing {url} failed: {exc}") from exc


def _wrap(exc: Any, url: str) -> ManifestError | ZoneReadError:
    code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
    if code in {"NoSuchKey", "NoSuchBucket", "404", "AccessDenied", "403"}:
        return ManifestError(f"{url}: {code}", code=code)
    return ZoneReadError(f"{url}: {code}", code=code)
