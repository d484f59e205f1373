"""``sluice api``: serve the ingest API, make API keys, print the OpenAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingest_api.config import ApiSettings
from sluice.config import EventType


def register(subparsers: Any) -> None:
    """Add ``sluice api serve``, ``sluice api keys create`` and ``sluice api openapi``."""
    api = subparsers.add_parser("api", help="the ingest API (serve, keys, openapi)")
    api_sub = api.add_subparsers(dest="api_command", metavar="SUBCOMMAND", required=True)

    serve = api_sub.add_parser("serve", help="serve the ingest API with uvicorn")
    serve.add_argument("--host", help="address to bind (default SLUICE_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SLUICE_API_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default SLUICE_API_WORKERS)")
    serve.add_argument("--log-level", default="warning", help="uvicorn log level")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=run_serve)

    keys = api_sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    create = keys_sub.add_parser(
        "create", help="make a new key: prints the key once and the record to store"
    )
    create.add_argument("--tenant", required=True, help="tenant the key may send ('*': any)")
    create.add_argument(
        "--types",
        nargs="+",
        default=["*"],
        metavar="TYPE",
        help=f"event types the key may send: {', '.join(e.value for e in EventType)} or '*'",
    )
    create.add_argument("--key-id", help="key id (default: random)")
    create.add_argument("--rate-limit", type=float, help="requests per second for this key")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    create.set_defaults(handler=run_keys_create)

    spec = api_sub.add_parser("openapi", help="print the OpenAPI document (JSON)")
    spec.set_defaults(handler=run_openapi)


def run_serve(args: argparse.Namespace) -> int:
    """Serve the app with uvicorn (the app is built in each worker, from settings)."""
    import uvicorn

    from ingest_api.server import http_protocol

    settings = ApiSettings()
    uvicorn.run(
        "ingest_api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=args.workers or settings.api_workers,
        log_level=args.log_level,
        access_log=args.access_log,
        http=http_protocol(),
    )
    return 0


def run_keys_create(args: argparse.Namespace) -> int:
    """Make a key; the secret is printed here only (it is not stored anywhere)."""
    from ingest_api.auth import generate_key

    new = generate_key(args.tenant, args.types, key_id=args.key_id, rate_limit=args.rate_limit)
    record = new.record.model_dump(mode="json")
    if args.json:
        print(json.dumps({"key": new.key, "record": record}))
        return 0
    print(f"API key (shown once, give it to the client): {new.key}")
    print("Record to add to SLUICE_API_KEYS_FILE / SLUICE_API_KEYS_JSON:")
    print(json.dumps(record, indent=2))
    return 0


def run_openapi(args: argparse.Namespace) -> int:
    """Print the OpenAPI document."""
    from ingest_api.app import create_app
    from ingest_api.auth import KeyStore
    from ingest_api.base import NoAcceptedLog
    from ingest_api.memory import MemoryProbe
    from producers.memory import MemoryPublisher

    app = create_app(
        ApiSettings(),
        MemoryPublisher(),
        key_store=KeyStore(),
        readiness_probe=MemoryProbe(),
        masker=lambda _type, record: record,
        accepted_log=NoAcceptedLog(),
    )
    json.dump(app.openapi(), sys.stdout, indent=2)
    print()
    return 0
