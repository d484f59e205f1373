"""Wire framings of an Avro body: Confluent's and AWS Glue Schema Registry's.

Both put a small header in front of a schemaless Avro body; the header names the
writer schema by an id the registry assigned.

Confluent (``confluent-kafka``'s ``AvroSerializer``)::

    byte 0       magic byte 0x00
    bytes 1-4    schema id, unsigned 32-bit big-endian
    bytes 5-     Avro body

AWS Glue Schema Registry (``awslabs/aws-glue-schema-registry``, constants in
``AWSSchemaRegistryConstants``: ``HEADER_VERSION_BYTE = 3``,
``COMPRESSION_DEFAULT_BYTE = 0``, ``COMPRESSION_BYTE = 5``,
``SCHEMA_VERSION_ID_SIZE = 16``)::

    byte 0       header version 0x03
    byte 1       compression: 0x00 none, 0x05 zlib (the whole body, zlib stream format)
    bytes 2-17   schema version id, a UUID (most significant 64 bits first)
    bytes 18-    Avro body, zlib-compressed when byte 1 is 0x05

The first byte tells them apart (0 versus 3); JSON values start with ``{``. Everything
here is pure.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from enum import StrEnum
from typing import Final

from schemas.exceptions import CodecError, FramingError


class Framing(StrEnum):
    """Which header a framed value carries (and which kind of id it names)."""

    CONFLUENT = "confluent"
    GLUE = "glue"


WireId = int | uuid.UUID
"""What a header names: a Confluent schema id or a Glue schema version id."""

CONFLUENT_MAGIC: Final = 0
CONFLUENT_HEADER_SIZE: Final = 5
GLUE_HEADER_VERSION: Final = 3
GLUE_COMPRESSION_NONE: Final = 0
GLUE_COMPRESSION_ZLIB: Final = 5
GLUE_HEADER_SIZE: Final = 18
#: Largest body a zlib-compressed Glue value may inflate to (no record comes near it;
#: a bound keeps a hostile value from exhausting memory).
MAX_INFLATED_SIZE: Final = 16 * 1024 * 1024

_CONFLUENT = struct.Struct(">bI")


def framing_of(data: bytes | bytearray | memoryview) -> Framing:
    """The framing of a value, from its first byte.

    Raises:
        FramingError: ``truncated`` (empty) or ``bad_magic_byte`` (neither 0 nor 3).
    """
    view = memoryview(data)
    if len(view) == 0:
        raise FramingError("truncated: empty value", code="truncated")
    if view[0] == CONFLUENT_MAGIC:
        return Framing.CONFLUENT
    if view[0] == GLUE_HEADER_VERSION:
        return Framing.GLUE
    raise FramingError(
        f"bad magic byte {view[0]:#04x}: neither the Confluent wire format (0x00) nor "
        f"the Glue Schema Registry format (0x03)",
        code="bad_magic_byte",
    )


def confluent_header(schema_id: int) -> bytes:
    """The 5-byte Confluent header naming ``schema_id``."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise CodecError(f"schema id {schema_id} does not fit 32 bits", code="bad_schema_id")
    return _CONFLUENT.pack(CONFLUENT_MAGIC, schema_id)


def glue_header(version_id: uuid.UUID, *, compressed: bool = False) -> bytes:
    """The 18-byte Glue header naming ``version_id``."""
    compression = GLUE_COMPRESSION_ZLIB if compressed else GLUE_COMPRESSION_NONE
    return bytes((GLUE_HEADER_VERSION, compression)) + version_id.bytes


def frame(wire_id: WireId, body: bytes, *, compress: bool = False) -> bytes:
    """A framed value: the header for ``wire_id`` and ``body`` (zlib with ``compress``,
    which only the Glue framing has)."""
    if isinstance(wire_id, uuid.UUID):
        if compress:
            return glue_header(wire_id, compressed=True) + zlib.compress(body)
        return glue_header(wire_id) + body
    if compress:
        raise CodecError("the Confluent wire format has no compression", code="bad_framing")
    return confluent_header(wire_id) + body


def wire_id_of(data: bytes | bytearray | memoryview) -> WireId:
    """The id a framed value's header names (the body is not looked at).

    Raises:
        FramingError: ``truncated``, ``bad_magic_byte`` or ``bad_compression``.
    """
    return _header(memoryview(data))[0]


def split(data: bytes | bytearray | memoryview) -> tuple[WireId, bytes]:
    """The id a framed value names and its Avro body (inflated when compressed).

    Raises:
        FramingError: ``truncated`` (shorter than its header), ``bad_magic_byte``,
            ``bad_compression`` (a Glue compression byte other than 0 or 5).
        CodecError: ``decode_failed`` when a zlib body does not inflate.
    """
    view = memoryview(data)
    wire_id, size, compressed = _header(view)
    body = bytes(view[size:])
    return wire_id, _inflate(body) if compressed else body


def _header(view: memoryview) -> tuple[WireId, int, bool]:
    """(id, header size, zlib-compressed body) of a framed value."""
    if framing_of(view) is Framing.CONFLUENT:
        if len(view) < CONFLUENT_HEADER_SIZE:
            raise FramingError(
                f"truncated: {len(view)} byte(s), a Confluent-framed value has at least a "
                f"{CONFLUENT_HEADER_SIZE}-byte header",
                code="truncated",
            )
        schema_id: int = _CONFLUENT.unpack_from(view)[1]
        return schema_id, CONFLUENT_HEADER_SIZE, False
    if len(view) < GLUE_HEADER_SIZE:
        raise FramingError(
            f"truncated: {len(view)} byte(s), a Glue-framed value has at least an "
            f"{GLUE_HEADER_SIZE}-byte header",
            code="truncated",
        )
    compression = view[1]
    if compression not in (GLUE_COMPRESSION_NONE, GLUE_COMPRESSION_ZLIB):
        raise FramingError(
            f"unknown Glue compression byte {compression:#04x} (0x00 none, 0x05 zlib)",
            code="bad_compression",
        )
    version_id = uuid.UUID(bytes=bytes(view[2:GLUE_HEADER_SIZE]))
    return version_id, GLUE_HEADER_SIZE, compression == GLUE_COMPRESSION_ZLIB


def _inflate(body: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(body, MAX_INFLATED_SIZE)
    except zlib.error as exc:
        raise CodecError(f"zlib body does not inflate: {exc}", code="decode_failed") from exc
    if inflater.unconsumed_tail:
        raise CodecError(f"zlib body inflates past {MAX_INFLATED_SIZE} bytes", code="decode_failed")
    if not inflater.eof:
        raise FramingError("truncated zlib body", code="truncated")
    if inflater.unused_data:
        raise CodecError(
            f"{len(inflater.unused_data)} trailing byte(s) after the zlib body",
            code="trailing_bytes",
        )
    return out
