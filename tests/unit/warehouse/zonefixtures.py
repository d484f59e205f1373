"""Helpers that write zone files and manifests (the transform's output shape)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

from warehouse.models import ManifestEntry
from warehouse.zone import build_manifest


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
    zone.write(manifest_url, build_manifest(entries))
    return manifest_url
