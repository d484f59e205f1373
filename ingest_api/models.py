"""What the API answers: per-event outcomes (plain data) and the response models.

The pydantic models describe the JSON in the OpenAPI document; the hot path builds the
same JSON directly from :class:`EventOutcome` (``to_json``) without re-validating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ingest_api.exceptions import FieldIssue

OutcomeStatus = Literal["accepted", "rejected", "failed"]
BatchStatus = Literal["accepted", "partially_accepted", "rejected", "retry_failed"]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """The answer for one event.

    ``accepted``: the broker acknowledged it. ``rejected``: it will never be accepted as
    sent (``errors`` say why). ``failed``: it was not published this time; when
    ``retryable`` the client sends it again (same ``event_id``).
    """

    status: OutcomeStatus
    event_id: str | None = None
    stream: str | None = None
    partition_key: str | None = None
    code: str | None = None
    message: str | None = None
    errors: tuple[FieldIssue, ...] = ()
    retryable: bool = False
    errors_omitted: int = 0

    @property
    def accepted(self) -> bool:
        """True when the broker acknowledged the event."""
        return self.status == "accepted"

    def to_json(self) -> dict[str, Any]:
        """The event's JSON answer (the single route's 202 body, a batch result item)."""
        if self.status == "accepted":
            return {
                "event_id": self.event_id,
                "status": "accepted",
                "stream": self.stream,
                "partition_key": self.partition_key,
            }
        return {
            "event_id": self.event_id,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "errors": [issue_json(e) for e in self.errors],
            "errors_omitted": self.errors_omitted,
            "retryable": self.retryable,
        }


def issue_json(issue: FieldIssue) -> dict[str, Any]:
    """A field issue as JSON."""
    return {"code": issue.code, "message": issue.message, "field": issue.field}


@dataclass(frozen=True, slots=True)
class AcceptedEntry:
    """One line of the accepted-events log: an event the API answered ``accepted``.

    Only envelope fields, identifiers and times: never a business field, so never PII.
    ``occurred_at`` is the event's own time, ``accepted_at`` the server's time once the
    broker acknowledged the event (both timezone-aware).
    """

    event_id: str
    event_type: str
    schema_version: int
    occurred_at: datetime
    tenant_id: str
    stream: str
    partition_key: str
    accepted_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the line (times as ISO-8601 UTC with microseconds and ``Z``)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": iso_utc(self.occurred_at),
            "tenant_id": self.tenant_id,
            "stream": self.stream,
            "partition_key": self.partition_key,
            "accepted_at": iso_utc(self.accepted_at),
        }


def iso_utc(value: datetime) -> str:
    """``2026-01-31T09:30:00.000000Z``: the same form as ``schemas.codec.to_json``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- OpenAPI


class FieldErrorModel(BaseModel):
    """One problem with one field."""

    code: str = Field(description="Stable machine-readable code, e.g. `invalid_enum`.")
    message: str = Field(description="A sentence for people (never echoes PII).")
    field: str | None = Field(
        description="Dotted path of the field (`merchant.country`); null for the whole body."
    )


class ErrorModel(BaseModel):
    """Every error answer has this shape."""

    status: int = Field(description="The HTTP status, repeated.")
    code: str = Field(description="Stable machine-readable code of the error.")
    message: str = Field(description="A sentence for people.")
    field: str | None = Field(default=None, description="The field at fault, when one is.")
    errors: list[FieldErrorModel] = Field(
        default_factory=list,
        description="The field problems found (422), at most `SLUICE_API_MAX_FIELD_ERRORS`.",
    )
    errors_omitted: int = Field(
        default=0, description="Field problems found beyond those listed in `errors`."
    )
    retryable: bool = Field(description="True when the same request may succeed later.")


class AcceptedModel(BaseModel):
    """A single event was acknowledged by the broker."""

    event_id: str
    status: Literal["accepted"]
    stream: str = Field(description="Topic / stream the event was written to.")
    partition_key: str = Field(description="`account_id` or `policy_id`.")


class BatchItemModel(BaseModel):
    """The answer for one event of a batch, at the same position as the event."""

    index: int
    event_id: str | None
    status: Literal["accepted", "rejected", "failed"]
    stream: str | None = None
    partition_key: str | None = None
    code: str | None = None
    message: str | None = None
    errors: list[FieldErrorModel] = Field(default_factory=list)
    errors_omitted: int = 0
    retryable: bool = False


class BatchModel(BaseModel):
    """Per-event results of a batch, in the order the events were sent.

    ``status``: `accepted` (all), `partially_accepted` (some rejected, none failed),
    `rejected` (none valid), `retry_failed` (some were not published: send those whose
    result is `failed` again, with the same `event_id`).
    """

    status: BatchStatus
    accepted: int
    rejected: int
    failed: int
    results: list[BatchItemModel]


class SchemaModel(BaseModel):
    """The current schema of an event type."""

    event_type: str
    version: int
    schema_id: int
    schema_: dict[str, Any] = Field(alias="schema", description="The Avro schema document.")
    example: dict[str, Any] = Field(description="A valid event of this type.")


class HealthModel(BaseModel):
    """Liveness / readiness."""

    status: Literal["ok", "ready", "not_ready"]
    backend: str | None = None
    detail: str | None = None
