"""Value types of the event contract: one schema version, one decoded event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from sluice.config import EventType

__all__ = ["DecodedEvent", "EventType", "SchemaVersion"]


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One version of one event schema, as loaded from ``<event-type>.v<N>.avsc``.

    Attributes:
        event_type: ``financial-transaction`` or ``insurance-claim``.
        version: 1, 2, ... (contiguous per event type).
        schema_id: the stable wire id (Confluent framing); never reused, never moved.
        schema: the schema document as JSON (with ``doc`` and ``sluice.*`` annotations).
        parsed: the same schema parsed by fastavro once, for the codec's hot path.
        path: the file it came from.
        codec_parsed: the parsed schema the codec reads and writes with: the same
            wire format, with ``uuid`` values handled as plain strings (no ``UUID``
            object made and turned back into a string per record). ``None``: use
            ``parsed``.
    """

    event_type: str
    version: int
    schema_id: int
    schema: dict[str, Any]
    parsed: Any = field(repr=False)
    path: Path | None = None
    codec_parsed: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The Avro full name of the record (``io.sluice.events.FinancialTransaction``)."""
        ns = self.schema.get("namespace")
        return f"{ns}.{self.schema['name']}" if ns else str(self.schema["name"])

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the schema's Avro Parsing Canonical Form.

        The identity Schema Registry and other Avro tools use; it ignores docs,
        defaults and logical types.
        """
        from fastavro.schema import fingerprint, to_parsing_canonical_form

        return str(fingerprint(to_parsing_canonical_form(self.schema), "SHA-256"))

    @property
    def field_names(self) -> list[str]:
        """Top-level field names, in order."""
        return [f["name"] for f in self.schema["fields"]]


@dataclass(slots=True)
class DecodedEvent:
    """What :func:`schemas.codec.decode` returns.

    Attributes:
        event_type: the event type of the schema the data was written with.
        version: the version ``record`` is presented in (the reader version when one
            was asked for, the writer version otherwise).
        schema_id: the catalogue's fixed id of the writer version (1001, ...), whatever
            registry framed the value.
        record: the Avro-ready dict (the same shape :func:`schemas.codec.parse_event`
            returns).
        wire_id: the id the frame header carried (a registry's schema id or Glue
            schema version UUID); None for JSON values.

    For the contract's ``event_type, version, record = decode(data)`` it also unpacks
    as that triple.
    """

    event_type: str
    version: int
    schema_id: int
    record: dict[str, Any]
    wire_id: int | UUID | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.event_type, self.version, self.record))
