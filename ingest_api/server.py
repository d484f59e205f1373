"""uvicorn's HTTP protocols with the API's error model on requests the parser refuses.

A request whose head cannot be parsed (a ``Content-Length`` that is not a number, a
malformed header line...) never reaches the app: uvicorn answers it itself, in plain
text. These subclasses answer the same ``400`` with the JSON error model
(``bad_request_head``; ``bad_content_length`` when the ``Content-Length`` is at fault),
without echoing anything the client sent. ``sluice api serve`` uses them; behind API
Gateway, API Gateway refuses such requests before Lambda.
"""

from __future__ import annotations

import re
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ingest_api.body import dump_json

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$")


def bad_content_length(data: bytes) -> bool:
    """True when the request head in ``data`` declares a ``Content-Length`` that is not one
    non-negative decimal number (several different values included)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    values = set(_CONTENT_LENGTH.findall(head))
    return bool(values) and (len(values) > 1 or not all(v.isdigit() for v in values))


def error_head_body(data: bytes) -> bytes:
    """The JSON error body for a request head the HTTP parser refused (``data``: the bytes
    that were being parsed; only inspected, never quoted)."""
    if bad_content_length(data):
        code, message = "bad_content_length", "Content-Length is not a non-negative number"
    else:
        code, message = "bad_request_head", "the request line or headers cannot be parsed"
    return dump_json(
        {
            "status": 400,
            "code": code,
            "message": message,
            "field": None,
            "errors": [],
            "errors_omitted": 0,
            "retryable": False,
        }
    )


def _response(body: bytes) -> bytes:
    return b"".join(
        [
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class JsonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a refused request head gets the JSON error model."""

    _last_data: bytes = b""

    def data_received(self, data: bytes) -> None:
        self._last_data = data  # a reference, no copy: read only when a head is refused
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_response(error_head_body(self._last_data)))
        self.transport.close()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: h11 then serves
    JsonHttpToolsProtocol: Any = None
else:

    class _JsonHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol; a refused request head gets the JSON error model."""

        _last_data: bytes = b""

        def data_received(self, data: bytes) -> None:
            self._last_data = data
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_response(error_head_body(self._last_data)))
            self.transport.close()

    JsonHttpToolsProtocol = _JsonHttpToolsProtocol


def http_protocol() -> type:
    """The protocol class ``sluice api serve`` runs: httptools when installed, else h11."""
    return JsonHttpToolsProtocol if JsonHttpToolsProtocol is not None else JsonH11Protocol
