"""In-memory boundaries for tests: a readiness probe and an accepted-events log."""

from __future__ import annotations

from collections.abc import Sequence

from ingest_api.base import Readiness
from ingest_api.models import AcceptedEntry


class MemoryProbe:
    """Ready unless told otherwise (:attr:`ready`, :attr:`detail`)."""

    backend = "memory"

    def __init__(self, *, ready: bool = True, detail: str | None = None) -> None:
        self.ready = ready
        self.detail = detail
        self.calls = 0

    async def check(self, streams: Sequence[str], timeout: float) -> Readiness:
        """The configured answer."""
        self.calls += 1
        return Readiness(self.ready, self.backend, None if self.ready else self.detail)

    async def close(self) -> None:
        """Nothing to release."""


class MemoryAcceptedLog:
    """Keeps recorded entries in :attr:`entries`; :attr:`fail` makes ``record`` raise it.

    :attr:`calls` counts ``record`` calls (one per request that accepted something).
    """

    backend = "memory"
    enabled = True

    def __init__(self) -> None:
        self.entries: list[AcceptedEntry] = []
        self.fail: Exception | None = None
        self.calls = 0
        self.closed = False

    def record(self, entries: Sequence[AcceptedEntry]) -> None:
        """Keep ``entries``, or raise :attr:`fail` (keeping none of them)."""
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        self.entries.extend(entries)

    def close(self) -> None:
        """Mark closed; the entries stay readable."""
        self.closed = True

    @property
    def event_ids(self) -> list[str]:
        """The recorded event ids, in order."""
        return [e.event_id for e in self.entries]
