"""The in-memory S3 zone of the delivery (unit tests, demos).

In-memory sources and checkpoint stores are the streams layer's (:mod:`sluice.streams.memory`).
"""

from __future__ import annotations

import threading


class MemoryObjectStore:
    """An S3 bucket in a dict."""

    def __init__(self, bucket: str = "sluice-zone") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.puts: list[str] = []
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write ``body`` under ``key`` (overwrite)."""
        with self._lock:
            self.objects[key] = bytes(body)
            self.content_types[key] = content_type
            self.puts.append(key)

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when there is none."""
        with self._lock:
            return self.objects[key]

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))
