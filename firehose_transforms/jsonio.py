"""JSON in and out of the transform's hot path.

orjson when it is installed (several times faster than the standard library on both
sides), the standard library otherwise; :func:`use_stdlib` switches to the standard
library (tests compare the two, the benchmark measures both). Both produce the same
bytes for warehouse rows: compact separators, UTF-8, non-ASCII characters unescaped.
The one difference in what they accept: orjson refuses ``NaN``/``Infinity`` literals,
integers beyond 64 bits and lone surrogates, which the standard library parses; such
payloads fail either way (``undecodable`` here, a cleaning rule there).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

_ORJSON: Any
try:  # an optional accelerator
    import orjson

    _ORJSON = orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _ORJSON = None

_STD_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_STD_DECODE = json.JSONDecoder().decode


def _std_loads(data: bytes) -> Any:
    return _STD_DECODE(data.decode("utf-8"))


def _std_line(obj: Mapping[str, Any]) -> bytes:
    return (_STD_ENCODE(obj) + "\n").encode("utf-8")


def _orjson_line(obj: Mapping[str, Any]) -> bytes:
    try:
        line: bytes = _ORJSON.dumps(obj, option=_ORJSON.OPT_APPEND_NEWLINE)
    except TypeError:  # e.g. a lone surrogate: let the standard library escape it
        return _std_line(obj)
    return line


loads: Callable[[bytes], Any] = _ORJSON.loads if _ORJSON is not None else _std_loads
"""Parse a UTF-8 JSON document (raises ``ValueError`` / ``UnicodeDecodeError``)."""

dumps_line: Callable[[Mapping[str, Any]], bytes] = (
    _orjson_line if _ORJSON is not None else _std_line
)
"""One compact JSON line, UTF-8, ending with ``\\n``."""


def use_stdlib(enabled: bool = True) -> None:
    """Use the standard library (``True``) or orjson when installed (``False``)."""
    global loads, dumps_line
    if enabled or _ORJSON is None:
        loads, dumps_line = _std_loads, _std_line
    else:
        loads, dumps_line = _ORJSON.loads, _orjson_line


def backend() -> str:
    """``orjson`` or ``json``: what the hot path uses now."""
    return "orjson" if loads is not _std_loads else "json"
