"""Reading request bodies at the edge: content type, size limit, JSON (pure + thin I/O).

The size limit is enforced before any parsing: a ``Content-Length`` over the limit is
refused without reading, and a body without one (chunked) is counted while it streams
in and refused as soon as it passes the limit.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from ingest_api.exceptions import MalformedBody, PayloadTooLarge, UnsupportedMediaType

_orjson: Any
try:  # orjson is optional: faster parsing and rendering on the hot path.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is not installed
    _orjson = None

JSON_MEDIA_TYPE = "application/json"


def check_content_type(value: str | None) -> None:
    """Accept ``application/json`` and ``application/*+json`` (charset utf-8 or none).

    Raises:
        UnsupportedMediaType: any other type, or none.
    """
    if not value:
        raise UnsupportedMediaType(
            "Content-Type must be application/json", code="unsupported_media_type"
        )
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media != JSON_MEDIA_TYPE and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not supported; send application/json",
            code="unsupported_media_type",
        )
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(
                f"charset {charset.strip()!r} is not supported; send UTF-8",
                code="unsupported_charset",
            )


Encoding = Literal["identity", "gzip"]
_GZIP_MAGIC = b"\x1f\x8b"


def check_content_encoding(value: str | None) -> Encoding:
    """``identity`` (no header) or ``gzip``; anything else is refused before reading.

    Raises:
        UnsupportedMediaType: ``unsupported_content_encoding`` (``br``, ``deflate``,
            several encodings, ...).
    """
    if value is None:
        return "identity"
    coding = value.strip().lower()
    if coding in ("", "identity"):
        return "identity"
    if coding in ("gzip", "x-gzip"):
        return "gzip"
    raise UnsupportedMediaType(
        "Content-Encoding must be gzip or identity (or absent)",
        code="unsupported_content_encoding",
    )


def gunzip_limited(body: bytes, max_bytes: int, max_ratio: float) -> bytes:
    """The decompressed gzip ``body``, refused past ``max_bytes`` or ``max_ratio``.

    Decompression stops as soon as either bound is passed (a gzip bomb is never
    expanded in memory beyond the bound).

    Raises:
        MalformedBody: ``bad_gzip``: the body is labelled gzip but is not a complete
            gzip stream (a plain body sent with ``Content-Encoding: gzip`` included).
        PayloadTooLarge: ``decompressed_too_large``: over either bound.
    """
    if not body.startswith(_GZIP_MAGIC):
        raise MalformedBody(
            "the body is labelled Content-Encoding: gzip but is not gzip data", code="bad_gzip"
        )
    limit = min(max_bytes, int(max(len(body), 1) * max_ratio))
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error:
        raise MalformedBody("the gzip body is corrupt", code="bad_gzip") from None
    if len(data) > limit:
        raise PayloadTooLarge(
            f"the gzip body decompresses to more than {limit} bytes "
            f"(at most {max_bytes} bytes and {max_ratio:g} times its size)",
            code="decompressed_too_large",
        )
    if not decompressor.eof:
        raise MalformedBody("the gzip body is truncated", code="bad_gzip")
    if decompressor.unused_data:
        raise MalformedBody(
            "the gzip body has data after its end (several members are not accepted)",
            code="bad_gzip",
        )
    return data


def check_content_length(value: str | None, limit: int) -> None:
    """Refuse a declared length over ``limit`` before reading anything.

    Raises:
        PayloadTooLarge: the declared length is over the limit.
        MalformedBody: the header is not a non-negative integer.
    """
    if value is None:
        return
    try:
        length = int(value)
    except ValueError:
        raise MalformedBody("Content-Length is not a number", code="bad_content_length") from None
    if length < 0:
        raise MalformedBody("Content-Length is negative", code="bad_content_length")
    if length > limit:
        raise PayloadTooLarge(
            f"body of {length} bytes is over the limit of {limit} bytes", code="body_too_large"
        )


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, counted as it streams; stops reading past ``limit``.

    Raises:
        PayloadTooLarge: more than ``limit`` bytes arrived.
    """
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes", code="body_too_large")
        parts.append(chunk)
    return b"".join(parts)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON document (NaN and Infinity are refused).

    Raises:
        MalformedBody: empty body, bad UTF-8 or invalid JSON (message says where).
    """
    if not body.strip():
        raise MalformedBody("the body is empty; send a JSON document", code="empty_body")
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError as exc:
            raise MalformedBody(f"malformed JSON: {exc}", code="malformed_json") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"the body is not UTF-8 (byte {exc.start})", code="malformed_json"
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MalformedBody(f"malformed JSON: {exc}", code="malformed_json") from None


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data (dicts, lists, str, int, float, bool, None)."""
    if _orjson is not None:
        data: bytes = _orjson.dumps(value)
        return data
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: equal data gives equal bytes."""
    if _orjson is not None:
        data: bytes = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        return data
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
