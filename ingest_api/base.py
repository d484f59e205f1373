"""The API's boundaries (:class:`ReadinessProbe`, :class:`AcceptedLog`) and pure decisions.

Readiness backends: :mod:`ingest_api.kafka` (metadata request), :mod:`ingest_api.kinesis`
(DescribeStreamSummary), :mod:`ingest_api.memory` (always or never ready, for tests).

Accepted-log backends: :class:`NoAcceptedLog` (off), :mod:`ingest_api.accepted_file`
(NDJSON appended to a file), :mod:`ingest_api.accepted_logger` (the ``sluice.accepted``
logger), :mod:`ingest_api.memory` (tests); :mod:`ingest_api.factory` picks one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ingest_api.models import AcceptedEntry, BatchStatus, EventOutcome


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


# --------------------------------------------------------------------------- accepted log


@runtime_checkable
class AcceptedLog(Protocol):
    """Where the API records the events it answered ``accepted`` (``sluice reconcile``).

    ``record`` is called after the broker acknowledged the events and before the answer
    is sent, once per request, with that request's newly accepted events. It either
    records every entry or raises :class:`~ingest_api.exceptions.AcceptedLogError`; the
    caller counts and logs the failure, and the events stay accepted.

    ``enabled`` is False only for :class:`NoAcceptedLog`: the service then builds no
    entries and makes no call.
    """

    backend: str
    enabled: bool

    def record(self, entries: Sequence[AcceptedEntry]) -> None:
        """Record ``entries`` (one line each, in order); nothing to do for none."""
        ...

    def close(self) -> None:
        """Release what the log holds (idempotent)."""
        ...


class NoAcceptedLog:
    """The default: nothing is recorded, and the service does not even build entries."""

    backend = "none"
    enabled = False

    def record(self, entries: Sequence[AcceptedEntry]) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing to release."""


def accepted_entry(
    event_type: str, event: Mapping[str, Any], outcome: EventOutcome, accepted_at: datetime
) -> AcceptedEntry:
    """The log entry of an accepted event.

    Args:
        event_type: the route's event type.
        event: the validated (and masked) event; only envelope fields are read.
        outcome: its ``accepted`` outcome (stream and partition key).
        accepted_at: when the broker's acknowledgement was seen (timezone-aware).

    Raises:
        ValueError: ``outcome`` is not an accepted one.
    """
    if not outcome.accepted or outcome.stream is None or outcome.partition_key is None:
        raise ValueError("only accepted outcomes are recorded")
    return AcceptedEntry(
        event_id=str(event["event_id"]),
        event_type=event_type,
        schema_version=int(event["schema_version"]),
        occurred_at=event["occurred_at"],
        tenant_id=str(event["tenant_id"]),
        stream=outcome.stream,
        partition_key=outcome.partition_key,
        accepted_at=accepted_at,
    )


def entry_line(entry: AcceptedEntry) -> str:
    """One NDJSON line (no newline): compact JSON, ASCII only, fixed key order."""
    return json.dumps(entry.to_json(), separators=(",", ":"))


def ndjson(entries: Sequence[AcceptedEntry]) -> bytes:
    """The lines of ``entries``, each ending with a newline, as one block of bytes."""
    return "".join(entry_line(e) + "\n" for e in entries).encode("ascii")
