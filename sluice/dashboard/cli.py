"""``sluice dashboard``: serve the live page locally."""

from __future__ import annotations

import argparse
import logging
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path
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
    parser.add_argument(
        "--background", action="store_true", help="run detached (pid in the stack folder)"
    )
    parser.add_argument("--stop", action="store_true", help="stop the background dashboard")
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
    if args.stop or args.background:
        return _background(args, settings)
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
            open_in_browser(url)

    threading.Thread(target=announce, name="dashboard-announce", daemon=True).start()
    server.run()
    return 0


def _background(args: argparse.Namespace, settings: Any) -> int:
    from deploy.local.config import StackSettings
    from sluice.dashboard import background

    stack_dir = StackSettings().stack_dir
    if args.stop:
        stopped = background.stop(stack_dir)
        print("dashboard stopped" if stopped else "no background dashboard running")
        return 0
    url = main_background(
        stack_dir,
        groups=args.group or (),
        backends=args.backend or (),
        streams=args.stream or (),
        metrics=args.metrics or (),
        refresh=args.refresh,
        open_browser=args.open,
        settings=settings,
    )
    print(f"dashboard on {url} (stop: sluice dashboard --stop)", flush=True)
    return 0


def main_background(
    stack_dir: Path,
    *,
    groups: Sequence[str] = (),
    backends: Sequence[str] = (),
    streams: Sequence[str] = (),
    metrics: Sequence[str] = (),
    refresh: float | None = None,
    open_browser: bool = False,
    settings: Any = None,
) -> str:
    """Start (or find) the background dashboard; its URL. The demo calls this."""
    from sluice.dashboard import background
    from sluice.dashboard.config import DashboardSettings

    settings = settings or DashboardSettings()
    argv: list[str] = []
    for flag, values in (
        ("--group", groups),
        ("--backend", backends),
        ("--stream", streams),
        ("--metrics", metrics),
    ):
        for value in values:
            argv += [flag, value]
    if refresh is not None:
        argv += ["--refresh", str(refresh)]
    port = settings.dashboard_port
    if background.running(stack_dir) is None and not _port_free(settings.dashboard_host, port):
        from deploy.local.base import free_port

        port = free_port()
    url = background.start(stack_dir, argv, settings.dashboard_host, port)
    if open_browser:
        open_in_browser(url)
    return url


def open_in_browser(url: str) -> bool:
    """Open ``url`` where a graphical browser can exist; never a terminal browser,
    which would wait for keys in a non-interactive run."""
    import os
    import sys

    if sys.platform != "darwin" and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"
    ):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _port_free(host: str, port: int) -> bool:
    import socket

    if port == 0:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
