"""AWS Lambda entry point: ``ingest_api.lambda_function.lambda_handler``.

Mangum adapts API Gateway events (REST API v1 and HTTP API v2 payloads) to the ASGI
app. The app is built on the first invocation and reused while the execution
environment lives; lifespan is off, so the publisher is made on the first request and
kept across invocations (its connections survive between them). Every publish waits
for the broker's acknowledgement before answering, so nothing is left in flight when
the environment is frozen.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from mangum import Mangum

_handler: Mangum | None = None


def make_handler(app: FastAPI) -> Mangum:
    """A Mangum handler for ``app`` (lifespan off: nothing is started per invocation)."""
    return Mangum(app, lifespan="off", api_gateway_base_path="/")


def configure(app: FastAPI | None) -> None:
    """Use ``app`` for the following invocations (``None``: build from settings again)."""
    global _handler
    _handler = make_handler(app) if app is not None else None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one API Gateway event."""
    global _handler
    if _handler is None:
        from ingest_api.app import create_app

        _handler = make_handler(create_app())
    response: dict[str, Any] = _handler(event, context)
    return response
