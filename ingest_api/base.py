"""The readiness boundary (:class:`ReadinessProbe`) and pure decisions of the API.

Backends: :mod:`ingest_api.kafka` (metadata request), :mod:`ingest_api.kinesis`
(DescribeStreamSummary), :mod:`ingest_api.memory` (always or never ready, for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ingest_api.models import BatchStatus, EventOutcome


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the broker answered, and a short reason when it did not."""

    ready: bool
    backend: str
    detail: str | None = None


@runtime_checkable
class ReadinessProbe(Protocol):
    """Asks the broker whether it answers and the event streams exist."""

    backend: str

    async def check(self, streams: Sequence[str], timeout: float) -> Readiness:
        """Answer within ``timeout`` seconds; never raises for an unreachable broker."""
        ...

    async def close(self) -> None:
        """Release the client, if one was made."""
        ...


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """The HTTP status and overall status of a batch answer, with the counts."""

    http_status: int
    status: BatchStatus
    accepted: int
    rejected: int
    failed: int

    @property
    def retry_after(self) -> bool:
        """True when the client should send the failed events again later."""
        return self.failed > 0


def batch_verdict(outcomes: Sequence[EventOutcome], *, forbidden_code: str) -> BatchVerdict:
    """Decide a batch answer from its per-event outcomes.

    - every event accepted: 202 ``accepted``;
    - some failed to publish: 207 ``retry_failed`` when some were accepted, else 503;
    - otherwise some accepted and some rejected: 207 ``partially_accepted``;
    - none accepted (all rejected): 422 ``rejected``, or 403 when every rejection is
      ``forbidden_code`` (another tenant's events).
    """
    accepted = sum(1 for o in outcomes if o.status == "accepted")
    failed = sum(1 for o in outcomes if o.status == "failed")
    rejected = len(outcomes) - accepted - failed
    if failed:
        return BatchVerdict(207 if accepted else 503, "retry_failed", accepted, rejected, failed)
    if rejected == 0:
        return BatchVerdict(202, "accepted", accepted, rejected, failed)
    if accepted:
        return BatchVerdict(207, "partially_accepted", accepted, rejected, failed)
    if all(o.code == forbidden_code for o in outcomes):
        return BatchVerdict(403, "rejected", accepted, rejected, failed)
    return BatchVerdict(422, "rejected", accepted, rejected, failed)
