"""A readiness probe without a broker, for tests and the in-memory publisher."""

from __future__ import annotations

from collections.abc import Sequence

from ingest_api.base import Readiness


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
