"""In-memory implementations of the delivery's boundaries (unit tests, demos)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from firehose_transforms.exceptions import DeliveryConfigurationError
from firehose_transforms.models import SourceRecord


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


class MemoryCheckpointStore:
    """Checkpoints in a dict; a position behind the stored one raises."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], str] = {}

    def load(self, stream: str, shard: str) -> str | None:
        """The stored position of ``(stream, shard)``."""
        return self.positions.get((stream, shard))

    def save(self, stream: str, shard: str, sequence: str) -> None:
        """Store ``sequence`` unless it goes backwards."""
        current = self.positions.get((stream, shard))
        if current is not None and _key(sequence) < _key(current):
            raise DeliveryConfigurationError(
                f"checkpoint of {stream}/{shard} would go backwards ({current} -> {sequence})",
                code="checkpoint_regression",
            )
        self.positions[(stream, shard)] = sequence


def _key(position: str) -> tuple[int, str]:
    return (len(position), position)


class MemorySource:
    """A stream in a list, read from the committed positions on.

    Pass the same ``records`` list and ``committed`` dict to several sources to model
    one stream read by successive processes: each starts after what was committed.
    :meth:`crash` forgets what was read but not committed (a restarted process).
    """

    def __init__(
        self,
        records: Sequence[SourceRecord] = (),
        *,
        kind: str = "kinesis",
        name: str = "memory-stream",
        committed: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.records: list[SourceRecord] = records if isinstance(records, list) else list(records)
        self.committed: dict[str, str] = committed if committed is not None else {}
        self.commits: list[dict[str, str]] = []
        self._next = 0
        self.closed = False

    def append(self, records: Sequence[SourceRecord]) -> None:
        """New records arrive on the stream."""
        self.records.extend(records)

    def _done(self, record: SourceRecord) -> bool:
        last = self.committed.get(record.partition)
        return last is not None and _key(record.position) <= _key(last)

    def poll(self, max_records: int, timeout: float) -> list[SourceRecord]:
        """Up to ``max_records`` records not yet returned nor committed (never waits)."""
        batch: list[SourceRecord] = []
        while self._next < len(self.records) and len(batch) < max_records:
            record = self.records[self._next]
            self._next += 1
            if not self._done(record):
                batch.append(record)
        return batch

    def drained(self) -> bool:
        """True when every record was returned."""
        return self._next >= len(self.records)

    def commit(self, positions: Mapping[str, str]) -> None:
        """Remember the committed positions."""
        self.committed.update(positions)
        self.commits.append(dict(positions))

    def crash(self) -> None:
        """Forget uncommitted progress: the next poll restarts after the commits."""
        self._next = 0
        self.closed = False

    def close(self) -> None:
        """Mark closed."""
        self.closed = True
