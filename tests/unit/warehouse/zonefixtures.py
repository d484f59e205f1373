"""Helpers that write zone files and manifests (the transform's output shape)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluice.zone import manifest_body, s3_url, split_url
from sluice.zonestore import ZoneObject
from warehouse.exceptions import ManifestError
from warehouse.models import ManifestEntry


def ndjson_gz(rows: Sequence[dict[str, Any] | bytes]) -> bytes:
    """gzip NDJSON with a newline after every line (raw bytes written as they are)."""
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    return gzip.compress(b"".join(line + b"\n" for line in lines))


def put_batch(
    zone: Any,
    bucket: str,
    event_type: str,
    name: str,
    files: Sequence[Sequence[dict[str, Any] | bytes]],
) -> str:
    """Write clean files and their manifest; returns the manifest URL."""
    entries = []
    for i, rows in enumerate(files):
        url = f"s3://{bucket}/clean/event_type={event_type}/dt=2026-11-22/{name}-{i}.gz"
        data = ndjson_gz(rows)
        zone.write(url, data)
        entries.append(ManifestEntry(url, True, len(data), len(rows)))
    manifest_url = f"s3://{bucket}/manifests/{event_type}/{name}.manifest"
    zone.write(manifest_url, manifest_body(entries))
    return manifest_url


class DirectoryZone:
    """A zone kept in a folder: like S3, every process that holds a copy sees the
    same objects, so the loader may hand it to worker processes once."""

    parallel_safe = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, url: str) -> Path:
        bucket, key = split_url(url)
        return self.root / bucket / key

    def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
        """Objects under ``prefix``, in key order."""
        base = self.root / bucket
        found = sorted(
            (p.relative_to(base).as_posix(), p.stat().st_size)
            for p in base.rglob("*")
            if p.is_file()
        )
        return [
            ZoneObject(s3_url(bucket, key), size) for key, size in found if key.startswith(prefix)
        ]

    def read(self, url: str) -> bytes:
        """The object's bytes."""
        try:
            return self._path(url).read_bytes()
        except FileNotFoundError:
            raise ManifestError(f"{url} does not exist", code="NoSuchKey") from None

    def write(self, url: str, data: bytes, *, content_type: str | None = None) -> None:
        """Put the object."""
        path = self._path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
