"""The S3 zone as an I/O boundary: list, read, write (one Protocol, two backends).

:class:`S3Zone` speaks to S3 (or the local moto server) through an injected or lazily
created boto3 client; :class:`MemoryZone` holds objects in a dict for unit tests. What
the objects are called and hold is :mod:`sluice.zone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sluice.config import AwsSettings
from sluice.errors import ManifestError, ZoneReadError
from sluice.zone import s3_url, split_url


@dataclass(frozen=True, slots=True)
class ZoneObject:
    """One listed object."""

    url: str
    size: int
    last_modified: datetime | None = None


class Zone(Protocol):
    """The S3 zone as writers and the loader need it."""

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix``, in key order."""
        ...

    def read(self, url: str) -> bytes:
        """An object's bytes; :class:`ManifestError` when it does not exist."""
        ...

    def write(self, url: str, data: bytes, *, content_type: str | None = None) -> None:
        """Put an object."""
        ...


class MemoryZone:
    """Objects in a dict (for unit tests); a write stamps ``last_modified``."""

    # its objects live in this process: a worker process would hold a stale copy
    parallel_safe = False

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix``."""
        start = s3_url(bucket, prefix)
        return [
            ZoneObject(u, len(d), self.modified.get(u))
            for u, d in sorted(self.objects.items())
            if u.startswith(start)
        ]

    def read(self, url: str) -> bytes:
        """The object's bytes."""
        try:
            return self.objects[url]
        except KeyError:
            raise ManifestError(f"{url} does not exist", code="NoSuchKey") from None

    def write(self, url: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store the object."""
        self.objects[url] = data
        self.modified[url] = datetime.now(UTC)


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

    def write(self, url: str, data: bytes, *, content_type: str | None = None) -> None:
        """Put the object."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_url(url)
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except ClientError as exc:
            raise _wrap(exc, url) from exc
        except BotoCoreError as exc:
            raise ZoneReadError(f"writing {url} failed: {exc}") from exc


def _wrap(exc: Any, url: str) -> ManifestError | ZoneReadError:
    code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
    if code in {"NoSuchKey", "NoSuchBucket", "404", "AccessDenied", "403"}:
        return ManifestError(f"{url}: {code}", code=code)
    return ZoneReadError(f"{url}: {code}", code=code)
