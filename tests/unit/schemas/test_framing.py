"""The two framings, byte by byte, and their failure codes.

The Glue layout follows ``awslabs/aws-glue-schema-registry``
(``common/.../utils/AWSSchemaRegistryConstants.java``: ``HEADER_VERSION_BYTE = 3``,
``COMPRESSION_DEFAULT_BYTE = 0``, ``COMPRESSION_BYTE = 5``, ``SCHEMA_VERSION_ID_SIZE =
16``); the vector below is built from that layout by hand, independently of
``schemas.framing``.
"""

from __future__ import annotations

import uuid
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.exceptions import CodecError, FramingError
from schemas.framing import (
    Framing,
    confluent_header,
    frame,
    framing_of,
    glue_header,
    split,
)

VERSION_ID = uuid.UUID("b7b4a7f0-0c1a-4b5b-9a3e-1f2d3c4b5a69")


def test_glue_header_layout() -> None:
    expected = bytes([3, 0]) + bytes.fromhex("b7b4a7f00c1a4b5b9a3e1f2d3c4b5a69")
    assert glue_header(VERSION_ID) == expected
    assert glue_header(VERSION_ID, compressed=True)[:2] == b"\x03\x05"


def test_confluent_header_layout() -> None:
    assert confluent_header(1) == b"\x00\x00\x00\x00\x01"
    assert confluent_header(1002) == b"\x00\x00\x00\x03\xea"
    with pytest.raises(CodecError):
        confluent_header(2**32)


@pytest.mark.parametrize("compress", [False, True])
def test_glue_round_trip(compress: bool) -> None:
    body = b"avro body " * 20
    value = frame(VERSION_ID, body, compress=compress)
    assert framing_of(value) is Framing.GLUE
    assert split(value) == (VERSION_ID, body)
    if compress:
        assert value[18:] == zlib.compress(body)


def test_confluent_round_trip_and_no_compression() -> None:
    assert split(frame(7, b"xyz")) == (7, b"xyz")
    with pytest.raises(CodecError):
        frame(7, b"xyz", compress=True)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"", "truncated"),
        (b"\x00\x00\x01", "truncated"),
        (b"\x03\x00" + b"\x01" * 10, "truncated"),
        (b"\x01abc", "bad_magic_byte"),
        (b"{}", "bad_magic_byte"),
        (glue_header(VERSION_ID)[:1] + b"\x07" + VERSION_ID.bytes + b"x", "bad_compression"),
        (glue_header(VERSION_ID, compressed=True) + zlib.compress(b"abc")[:-3], "truncated"),
    ],
)
def test_framing_errors(value: bytes, code: str) -> None:
    with pytest.raises(FramingError) as caught:
        split(value)
    assert caught.value.code == code


def test_bad_zlib_bodies() -> None:
    header = glue_header(VERSION_ID, compressed=True)
    with pytest.raises(CodecError) as caught:
        split(header + b"not zlib at all")
    assert caught.value.code == "decode_failed"
    with pytest.raises(CodecError) as caught:
        split(header + zlib.compress(b"abc") + b"extra")
    assert caught.value.code == "trailing_bytes"
    bomb = zlib.compress(b"\x00" * (17 * 1024 * 1024))
    with pytest.raises(CodecError, match="inflates past"):
        split(header + bomb)


@given(st.binary(max_size=64))
def test_any_bytes_split_or_fail_with_a_codec_error(data: bytes) -> None:
    try:
        wire_id, body = split(data)
    except CodecError:
        return
    assert isinstance(wire_id, (int, uuid.UUID))
    assert isinstance(body, bytes)


def test_wire_id_of_reads_the_header_only() -> None:
    import schemas
    from schemas.framing import wire_id_of

    not_zlib = glue_header(VERSION_ID, compressed=True) + b"never inflated"
    assert wire_id_of(not_zlib) == VERSION_ID
    assert schemas.schema_id_of(frame(2002, b"x")) == 2002
    assert schemas.schema_id_of(frame(VERSION_ID, b"x")) == VERSION_ID
