"""``sluice dashboard``: serve the live page locally."""

from __future__ import annotations

import argparse
import logging
import threading
import webbrowser
from typing import Any

from sluice.config import StreamBackend

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``sluice dashboard``."""
    parser = subparsers.add_parser(
        "dashboard", help="a live local page: lag, throughput, errors, last reconcile"
    )
    parser.add_argument("--port", type=int, help="port (default SLUICE_DASHBOARD_PORT)")
    parser.add_argument("--host", help="address (default SLUICE_DASHBOARD_HOST)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument(
        "--group",
        action="append",
        help="consumer group (repeatable; default SLUICE_CONSUMER_GROUP)",
    )
    parser.add_argument(
        "--backend", action="append", choices=[b.value for b in StreamBackend], help="repeatable"
    )
    parser.add_argument("--stream", action="append", help="topic / stream (repeatable)")
    parser.add_argument("--metrics", action="append", help="a Prometheus /metrics URL (repeatable)")
    parser.add_argument("--refresh", type=float, help="seconds between samples")
    parser.add_argument(
        "--reconcile-stream", action="store_true", help="reconcile reads the stream too (slower)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from consumers.config import ConsumerSettings
    from sluice.dashboard.app import create_app
    from sluice.dashboard.collector import Collector
    from sluice.dashboard.config import DashboardSettings
    from sluice.dashboard.sources import LagSource, default_reconcile, default_zone

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["dashboard_port"] = args.port
    if args.host:
        overrides["dashboard_host"] = args.host
    if args.refresh is not None:
        overrides["dashboard_refresh_s"] = args.refresh
    if args.metrics:
        overrides["dashboard_metrics_urls"] = ",".join(args.metrics)
    settings = DashboardSettings(**overrides)
    groups = args.group or [ConsumerSettings().consumer_group]
    sources = [LagSource(g, backends=args.backend, streams=args.stream) for g in groups]
    collector = Collector(
        settings,
        sources,
        reconcile=default_reconcile(read_stream=args.reconcile_stream),
        zone=default_zone,
    )
    app = create_app(collector)
    config = uvicorn.Config(
        app, host=settings.dashboard_host, port=settings.dashboard_port, log_level="warning"
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        port = settings.dashboard_port
        if server.servers and server.servers[0].sockets:
            port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{settings.dashboard_host}:{port}/"
        print(f"dashboard on {url} (Ctrl-C to stop)", flush=True)
        if args.open:
            webbrowser.open(url)

    threading.Thread(target=announce, name="dashboard-announce", daemon=True).start()
    server.run()
    return 0
