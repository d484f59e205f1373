"""``sluice stack up | status | down``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from deploy.local import stack
from deploy.local.config import StackSettings
from deploy.local.models import ServiceHealth, ServiceStatus


def register(sub: Any) -> None:
    """Add ``sluice stack`` and its subcommands."""
    parser = sub.add_parser("stack", help="the local stack: Kafka, AWS (moto), PostgreSQL")
    actions = parser.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    up = actions.add_parser(
        "up", help="start the local stack (idempotent) and write .sluice/stack.env"
    )
    up.add_argument(
        "--no-warehouse", action="store_true", help="do not create the warehouse tables"
    )
    up.add_argument("--json", action="store_true", help="print the result as JSON")
    up.set_defaults(handler=_up)

    st = actions.add_parser("status", help="show what runs where")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.set_defaults(handler=_status)

    down = actions.add_parser("down", help="stop the processes the stack started")
    down.set_defaults(handler=_down)


def _up(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    settings = StackSettings()
    with console.status("starting the local stack...") as spinner:
        result = stack.up(
            settings,
            provision_warehouse=not args.no_warehouse,
            progress=lambda msg: spinner.update(msg),
        )
    if args.json:
        print(
            json.dumps(
                {
                    "env_file": str(result.env_file),
                    "seconds": round(result.seconds, 2),
                    "started": [s.value for s in result.started],
                    "created": result.created,
                    "services": [_health_json(h) for h in result.health],
                },
                indent=2,
            )
        )
    else:
        _print_table(result.health)
        for item in result.created:
            console.print(f"  created {item}")
        console.print(
            f"ready in {result.seconds:.1f} s; settings written to {result.env_file} "
            "(every sluice command in this folder reads it)"
        )
    return 0 if all(h.status is ServiceStatus.RUNNING for h in result.health) else 1


def _status(args: argparse.Namespace) -> int:
    health = stack.status(StackSettings())
    if args.json:
        print(json.dumps({"services": [_health_json(h) for h in health]}, indent=2))
    elif not health:
        print("the local stack is not running here (start it with: sluice stack up)")
    else:
        _print_table(health)
    return 0 if health and all(h.status is ServiceStatus.RUNNING for h in health) else 1


def _down(_args: argparse.Namespace) -> int:
    stopped = stack.down(StackSettings())
    if not stopped:
        print("nothing to stop: no process started by the stack is running")
    for record in stopped:
        print(f"stopped {record.name.value} (pid {record.pid})")
    return 0


def _health_json(h: ServiceHealth) -> dict[str, Any]:
    return {
        "service": h.record.name.value,
        "status": h.status.value,
        "pid": h.record.pid,
        "endpoint": h.record.endpoint,
        "stands_for": h.record.stands_for,
        "log": h.record.log_file,
        "detail": h.detail,
    }


def _print_table(health: list[ServiceHealth]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Sluice local stack")
    for column in ("service", "status", "pid", "endpoint", "stands for"):
        table.add_column(column)
    colours = {ServiceStatus.RUNNING: "green", ServiceStatus.NOT_ANSWERING: "yellow"}
    for h in health:
        colour = colours.get(h.status, "red")
        table.add_row(
            h.record.name.value,
            f"[{colour}]{h.status.value}[/{colour}]",
            str(h.record.pid),
            h.record.endpoint,
            h.record.stands_for,
        )
    Console().print(table)
