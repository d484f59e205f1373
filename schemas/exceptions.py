"""Errors raised by the event contract: invalid schemas, invalid events, bad wire data.

Every error here is a :class:`~sluice.errors.FatalError`: retrying the same input gives
the same answer. :class:`ValidationError` carries every problem found in one event, each
as a :class:`FieldError` with a stable ``code`` and a dotted ``field`` path, so the API
can answer a client with all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from sluice.errors import FatalError

# The stable codes a FieldError may carry (documented in docs/schemas.md).
MISSING = "missing"
UNKNOWN_FIELD = "unknown_field"
INVALID_TYPE = "invalid_type"
INVALID_ENUM = "invalid_enum"
INVALID_FORMAT = "invalid_format"
OUT_OF_RANGE = "out_of_range"
SERVER_OWNED = "server_owned"
MISMATCH = "mismatch"
UNSUPPORTED_VERSION = "unsupported_version"

FIELD_ERROR_CODES: frozenset[str] = frozenset(
    {
        MISSING,
        UNKNOWN_FIELD,
        INVALID_TYPE,
        INVALID_ENUM,
        INVALID_FORMAT,
        OUT_OF_RANGE,
        SERVER_OWNED,
        MISMATCH,
        UNSUPPORTED_VERSION,
    }
)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of an event.

    Attributes:
        code: one of :data:`FIELD_ERROR_CODES`; stable, for machines.
        message: a sentence for people; never echoes card numbers or national ids.
        field: dotted path (``amount``, ``merchant.country``, ``metadata.<key>``); the
            empty string names the event object itself.
    """

    code: str
    message: str
    field: str

    def as_dict(self) -> dict[str, str]:
        """The JSON shape the API returns for this error."""
        return {"code": self.code, "message": self.message, "field": self.field}


class SchemaError(FatalError):
    """An ``.avsc`` file (or the catalogue built from them) is invalid.

    The message names the file and, when one is at fault, the field path.
    """

    default_code: ClassVar[str] = "schema_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        parts = [p for p in (file, f"field {field!r}" if field else None) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message, code=code)
        self.file = file
        self.field = field


class UnknownSchemaError(SchemaError):
    """An event type, version or schema id that the catalogue does not know."""

    default_code: ClassVar[str] = "unknown_schema"


class ValidationError(FatalError):
    """An event does not satisfy the contract; :attr:`errors` lists every problem."""

    default_code: ClassVar[str] = "validation_error"

    def __init__(self, errors: Iterable[FieldError], *, event_type: str | None = None) -> None:
        self.errors: list[FieldError] = list(errors)
        self.event_type = event_type
        shown = "; ".join(f"{e.field or '<event>'}: {e.code}" for e in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        what = f"{event_type} event" if event_type else "event"
        super().__init__(f"invalid {what}, {len(self.errors)} error(s): {shown}{more}")

    def as_dicts(self) -> list[dict[str, str]]:
        """Every error in the JSON shape the API returns."""
        return [e.as_dict() for e in self.errors]


class CodecError(FatalError):
    """Bytes that cannot be decoded, or a record that cannot be encoded."""

    default_code: ClassVar[str] = "codec_error"


class FramingError(CodecError):
    """Framed data with a bad magic byte, or too short to hold a header and a body."""

    default_code: ClassVar[str] = "framing_error"


class PiiError(FatalError):
    """PII handling is misconfigured (for example no HMAC key)."""

    default_code: ClassVar[str] = "pii_error"


class UnknownSchemaIdError(UnknownSchemaError, CodecError):
    """Framed data names a schema id that the catalogue does not know."""

    default_code: ClassVar[str] = "unknown_schema_id"
