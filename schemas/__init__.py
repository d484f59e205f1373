"""The Sluice event contract: Avro schemas, the schema catalogue, the codec, PII masking.

Public API::

    import schemas

    record = schemas.parse_event("financial-transaction", body)   # validate + normalise
    data = schemas.encode("financial-transaction", record)        # Confluent-framed Avro
    event_type, version, record = schemas.decode(data)            # DecodedEvent
    row = schemas.to_json(record)                                 # JSON-safe dict
    schemas.catalogue().latest("insurance-claim").schema_id

See ``docs/schemas.md`` for the contract itself.
"""

from __future__ import annotations

from functools import cache

from schemas.catalogue import SCHEMA_IDS, SchemaCatalogue
from schemas.codec import (
    CONTENT_TYPE_AVRO,
    CONTENT_TYPE_JSON,
    decode,
    decode_unframed,
    decode_value,
    encode,
    example_event,
    parse_event,
    schema_id_of,
    to_json,
    validate_record,
)
from schemas.exceptions import (
    CodecError,
    FieldError,
    FramingError,
    PiiError,
    SchemaError,
    UnknownSchemaError,
    UnknownSchemaIdError,
    ValidationError,
)
from schemas.models import DecodedEvent, SchemaVersion

__all__ = [
    "CONTENT_TYPE_AVRO",
    "CONTENT_TYPE_JSON",
    "SCHEMA_IDS",
    "CodecError",
    "DecodedEvent",
    "FieldError",
    "FramingError",
    "PiiError",
    "SchemaCatalogue",
    "SchemaError",
    "SchemaVersion",
    "UnknownSchemaError",
    "UnknownSchemaIdError",
    "ValidationError",
    "catalogue",
    "decode",
    "decode_unframed",
    "decode_value",
    "encode",
    "example_event",
    "parse_event",
    "schema_id_of",
    "to_json",
    "validate_record",
]


@cache
def catalogue() -> SchemaCatalogue:
    """The catalogue of the shipped schemas (``schemas/avro``), loaded once per process."""
    return SchemaCatalogue.load()
