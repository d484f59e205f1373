"""The rules an event must pass beyond its schema: one set for the edge and the transform.

The codec (:mod:`schemas.codec`) checks shapes, types and formats; these rules check
what the schema cannot say. The ingest API applies them after ``parse_event`` (a broken
rule is a ``422`` with the field error below); the transform applies the same function
to every record (a broken rule is ``ProcessingFailed`` with the matching reason), so an
event the edge accepted never fails there for a rule the edge skipped.

- ``card_number_in_identifier``: no ``sluice.format: identifier`` field (at any depth)
  holds a Luhn-valid run of 12-19 digits (any separators, any script);
- ``implausible_timestamp``: ``occurred_at`` lies within :class:`PlausibilityWindow`
  (default: from 2000-01-01 to one day ahead of the server's clock);
- ``loss_date_after_report_date``: ``loss_date`` is not after the UTC date of
  ``reported_at``.

Pure: the clock is passed in. Messages never quote the submitted value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from schemas import catalogue
from schemas.config import RuleSettings
from schemas.exceptions import FieldError
from schemas.pii import PAN_MIN_DIGITS, mask_luhn_in_text, may_hold_card_number

CARD_NUMBER_IN_IDENTIFIER: Final = "card_number_in_identifier"
IMPLAUSIBLE_TIMESTAMP: Final = "implausible_timestamp"
LOSS_DATE_AFTER_REPORT_DATE: Final = "loss_date_after_report_date"


@dataclass(frozen=True, slots=True)
class PlausibilityWindow:
    """``occurred_at`` must be at or after ``not_before`` and at most ``max_ahead`` past now."""

    not_before: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_ahead: timedelta = timedelta(days=1)

    @classmethod
    def from_settings(cls, settings: RuleSettings | None = None) -> PlausibilityWindow:
        """The window of ``SLUICE_RULES_OCCURRED_AT_*``."""
        s = settings or RuleSettings()
        return cls(
            s.rules_occurred_at_not_before, timedelta(seconds=s.rules_occurred_at_max_ahead_s)
        )


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp of the Avro-ready form (aware datetime) or the JSON form (ISO string)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().upper().replace(" ", "T"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _identifier_paths(
    schema: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Paths of every ``sluice.format: identifier`` field of a record schema, at any depth."""
    for field in schema.get("fields", ()):
        path = (*prefix, field["name"])
        if field.get("sluice.format") == "identifier":
            yield path
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for kind in kinds:
            if isinstance(kind, Mapping) and kind.get("type") == "record":
                yield from _identifier_paths(kind, path)


_PATHS: dict[tuple[str, int], tuple[tuple[str, ...], ...]] = {}


def identifier_paths(event_type: str, version: int | None) -> tuple[tuple[str, ...], ...]:
    """The identifier fields of every version of ``event_type`` (``version``'s when known)."""
    key = (event_type, version or 0)
    paths = _PATHS.get(key)
    if paths is None:
        cat = catalogue()
        versions = (
            [cat.get(event_type, version)]
            if version and cat.has(event_type, version)
            else list(cat.versions(event_type))
        )
        found: dict[tuple[str, ...], None] = {}
        for sv in versions:
            for path in _identifier_paths(sv.schema):
                found[path] = None
        paths = _PATHS[key] = tuple(found)
    return paths


def _get(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def check_event(
    event_type: str,
    record: Mapping[str, Any],
    *,
    window: PlausibilityWindow,
    now: Callable[[], datetime],
) -> list[FieldError]:
    """Every rule ``record`` breaks (empty when it passes), as field errors with stable codes.

    ``record`` is the codec's Avro-ready dict or its JSON form; a value of the wrong
    shape is left to the codec (it is not a rule error).
    """
    errors: list[FieldError] = []
    version = record.get("schema_version")
    for path in identifier_paths(event_type, version if type(version) is int else None):
        value = record.get(path[0]) if len(path) == 1 else _get(record, path)
        if (
            type(value) is str
            and len(value) >= PAN_MIN_DIGITS
            and may_hold_card_number(value)
            and mask_luhn_in_text(value) != value
        ):
            errors.append(
                FieldError(
                    CARD_NUMBER_IN_IDENTIFIER,
                    "holds a card number (a Luhn-valid run of 12-19 digits); "
                    "identifiers must not carry card numbers",
                    ".".join(path),
                )
            )
    occurred = _as_datetime(record.get("occurred_at"))
    if occurred is not None:
        latest = now() + window.max_ahead
        if not window.not_before <= occurred <= latest:
            errors.append(
                FieldError(
                    IMPLAUSIBLE_TIMESTAMP,
                    f"must be between {window.not_before.isoformat()} and "
                    f"{window.max_ahead.total_seconds():g} s after the server's clock",
                    "occurred_at",
                )
            )
    if "loss_date" in record:
        loss = _as_date(record.get("loss_date"))
        reported = _as_datetime(record.get("reported_at"))
        if loss is not None and reported is not None and loss > reported.astimezone(UTC).date():
            errors.append(
                FieldError(
                    LOSS_DATE_AFTER_REPORT_DATE,
                    "loss_date is after the date of reported_at (UTC)",
                    "loss_date",
                )
            )
    return errors
