"""The schema catalogue: every version of every event schema, with stable wire ids.

Files are named ``<event-type>.v<N>.avsc`` and live in ``schemas/avro/``, next to
``envelope.avsc`` (the fields every event schema repeats first, in order; the
catalogue checks that they are identical).

Schema ids (the 4-byte id of the Confluent wire format) come from the fixed table
:data:`SCHEMA_IDS`: ``1000 * n + version`` where ``n`` is the event type's number
(financial-transaction 1, insurance-claim 2). Ids are never reused and never moved:
adding a version appends one line to the table. A schema file with no line in the
table fails to load, so an id cannot be assigned by accident (for example by file
order).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from schemas.avsc import load_json, validate_schema
from schemas.exceptions import SchemaError, UnknownSchemaError
from schemas.models import SchemaVersion

logger = logging.getLogger(__name__)

AVRO_DIR = Path(__file__).parent / "avro"
ENVELOPE_FILE = "envelope.avsc"
_FILE_NAME = re.compile(
    r"^(?P<type>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)\.v(?P<version>[1-9][0-9]*)\.avsc\Z"
)

#: (event type, version) -> schema id. Append only: never change or reuse an id.
SCHEMA_IDS: Mapping[tuple[str, int], int] = MappingProxyType(
    {
        ("financial-transaction", 1): 1001,
        ("financial-transaction", 2): 1002,
        ("insurance-claim", 1): 2001,
        ("insurance-claim", 2): 2002,
    }
)


class SchemaCatalogue:
    """Every version of every event schema, by (type, version) and by schema id.

    Build it with :meth:`load` (or use :func:`schemas.catalogue` for the shipped
    schemas, loaded once). Lookups are dict reads.
    """

    def __init__(
        self, versions: list[SchemaVersion], envelope: dict[str, Any] | None = None
    ) -> None:
        self._by_key: dict[tuple[str, int], SchemaVersion] = {}
        self._by_id: dict[int, SchemaVersion] = {}
        self._latest: dict[str, SchemaVersion] = {}
        self.envelope = envelope
        for sv in sorted(versions, key=lambda v: (v.event_type, v.version)):
            key = (sv.event_type, sv.version)
            if key in self._by_key:
                raise SchemaError(f"{sv.event_type} version {sv.version} is defined twice")
            if sv.schema_id in self._by_id:
                other = self._by_id[sv.schema_id]
                raise SchemaError(
                    f"schema id {sv.schema_id} is used by {other.event_type} v{other.version} "
                    f"and {sv.event_type} v{sv.version}"
                )
            self._by_key[key] = sv
            self._by_id[sv.schema_id] = sv
            self._latest[sv.event_type] = sv
        for event_type, latest in self._latest.items():
            missing = [v for v in range(1, latest.version) if (event_type, v) not in self._by_key]
            if missing:
                raise SchemaError(
                    f"{event_type}: versions must be contiguous from 1; missing {missing}"
                )

    @classmethod
    def load(
        cls,
        directory: Path | str = AVRO_DIR,
        *,
        schema_ids: Mapping[tuple[str, int], int] = SCHEMA_IDS,
    ) -> SchemaCatalogue:
        """Load and check every ``.avsc`` in ``directory``.

        Raises:
            SchemaError: a file is invalid (the message names the file and the field),
                is misnamed, has no schema id, or repeats the envelope incorrectly.
        """
        directory = Path(directory)
        files = sorted(directory.glob("*.avsc"))
        envelope: dict[str, Any] | None = None
        env_path = directory / ENVELOPE_FILE
        if env_path.is_file():
            envelope = _load_document(env_path)
            _fastavro_parse(envelope, file=ENVELOPE_FILE)
        versions: list[SchemaVersion] = []
        for path in files:
            if path.name == ENVELOPE_FILE:
                continue
            match = _FILE_NAME.match(path.name)
            if not match:
                raise SchemaError(
                    "schema files must be named <event-type>.v<N>.avsc "
                    "(for example financial-transaction.v1.avsc)",
                    file=path.name,
                )
            event_type, version = match["type"], int(match["version"])
            schema = _load_document(path)
            if envelope is not None:
                _check_envelope(schema, envelope, file=path.name)
            schema_id = schema_ids.get((event_type, version))
            if schema_id is None:
                raise SchemaError(
                    f"no schema id assigned to ({event_type!r}, {version}); "
                    "add one to schemas.catalogue.SCHEMA_IDS",
                    file=path.name,
                )
            parsed = _fastavro_parse(schema, file=path.name)
            versions.append(
                SchemaVersion(
                    event_type=event_type,
                    version=version,
                    schema_id=schema_id,
                    schema=schema,
                    parsed=parsed,
                    path=path,
                    codec_parsed=_fastavro_parse(_without_uuid(schema), file=path.name),
                )
            )
        if not versions:
            raise SchemaError(f"no <event-type>.v<N>.avsc files in {directory}")
        catalogue = cls(versions, envelope)
        from schemas.codec import compile_validator  # the codec imports this module

        for sv in versions:
            compile_validator(sv)
        logger.debug("loaded %d schema versions from %s", len(versions), directory)
        return catalogue

    # -- lookups -------------------------------------------------------------------

    def event_types(self) -> list[str]:
        """Every event type, sorted."""
        return sorted(self._latest)

    def versions(self, event_type: str) -> list[SchemaVersion]:
        """Every version of ``event_type``, oldest first."""
        latest = self.latest(event_type)
        return [self._by_key[(event_type, v)] for v in range(1, latest.version + 1)]

    def latest(self, event_type: str) -> SchemaVersion:
        """The newest version of ``event_type``."""
        try:
            return self._latest[str(event_type)]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown event type {str(event_type)!r}; known: {', '.join(self.event_types())}",
                code="unknown_event_type",
            ) from None

    def get(self, event_type: str, version: int | None = None) -> SchemaVersion:
        """Version ``version`` of ``event_type`` (the latest when ``version`` is None)."""
        if version is None:
            return self.latest(event_type)
        try:
            return self._by_key[(str(event_type), version)]
        except KeyError:
            latest = self.latest(event_type)
            raise UnknownSchemaError(
                f"{event_type} has no version {version!r} (versions 1..{latest.version})",
                code="unknown_version",
            ) from None

    def has(self, event_type: str, version: int) -> bool:
        """True when the catalogue holds that version."""
        return (str(event_type), version) in self._by_key

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The schema version with wire id ``schema_id``."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema id {schema_id}", code="unknown_schema_id"
            ) from None

    def __iter__(self) -> Iterator[SchemaVersion]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


def _load_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"cannot read: {exc}", file=path.name) from exc
    document = load_json(text, file=path.name)
    validate_schema(document, file=path.name)
    return dict(document)


def _without_uuid(value: Any) -> Any:
    """A copy of a schema with ``uuid`` logical types dropped (same wire format)."""
    if isinstance(value, dict):
        if value.get("logicalType") == "uuid":
            return {k: _without_uuid(v) for k, v in value.items() if k != "logicalType"}
        return {k: _without_uuid(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_uuid(v) for v in value]
    return value


def _fastavro_parse(schema: dict[str, Any], *, file: str) -> Any:
    try:
        return fastavro.parse_schema(schema)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"rejected by the Avro parser: {exc}", file=file) from exc


def _check_envelope(schema: dict[str, Any], envelope: dict[str, Any], *, file: str) -> None:
    expected = envelope["fields"]
    actual = schema["fields"][: len(expected)]
    for index, want in enumerate(expected):
        if index >= len(actual):
            raise SchemaError("envelope field missing", file=file, field=want["name"])
        if actual[index] != want:
            got = actual[index].get("name")
            if got != want["name"]:
                raise SchemaError(
                    f"envelope field #{index + 1} must be {want['name']!r} "
                    f"(as in {ENVELOPE_FILE}), found {got!r}",
                    file=file,
                    field=want["name"],
                )
            raise SchemaError(
                f"differs from its definition in {ENVELOPE_FILE}", file=file, field=want["name"]
            )
