"""``sluice simulate``: realistic events at a given rate to the API or a publisher."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from producers.simulate import (
    ALL_TYPES,
    SimulationOptions,
    run_simulation,
    summary_table,
)
from sluice.errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILED = 1


def register(sub: Any) -> None:
    """Add ``sluice simulate``."""
    parser = sub.add_parser(
        "simulate",
        help="send realistic financial and insurance events to the API or a stream",
        description=(
            "Generate realistic financial transactions and insurance claims (seeded) and "
            "send them to the HTTP API (--url) or straight to the configured stream "
            "(--direct, SLUICE_STREAM_BACKEND). Prints a progress bar and a summary."
        ),
    )
    parser.add_argument(
        "--type",
        choices=[*ALL_TYPES, "all"],
        default="all",
        help="event type to send (default: all)",
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="events per second in total (0: unthrottled)"
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--count", type=int, help="number of events to send (default: 100)")
    limit.add_argument("--duration", type=float, help="seconds to run")
    parser.add_argument(
        "--invalid-ratio",
        type=float,
        default=0.0,
        help="share of deliberately invalid events, 0..1 (default: 0)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="events per request; above 1 the API's /batch route is used (default: 1)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (default: 4)"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of the ingest API, e.g. http://127.0.0.1:8000")
    target.add_argument(
        "--direct",
        action="store_true",
        help="validate with the schemas codec and publish without HTTP",
    )
    parser.add_argument("--seed", type=int, help="random seed (same seed, same events)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="HTTP request timeout in seconds"
    )
    parser.add_argument(
        "--accepted-ids",
        type=Path,
        metavar="FILE",
        help="write the event id of every accepted event to FILE, one per line",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_simulate)


def options_from_args(args: argparse.Namespace) -> SimulationOptions:
    """The :class:`SimulationOptions` of parsed command-line arguments."""
    from producers.config import SimulateSettings

    api_key = None
    if args.url:
        secret = SimulateSettings().api_key
        api_key = secret.get_secret_value() if secret else None
    count = args.count if args.count is not None or args.duration is not None else 100
    return SimulationOptions(
        event_types=ALL_TYPES if args.type == "all" else (args.type,),
        rate=args.rate if args.rate and args.rate > 0 else None,
        duration=args.duration,
        count=count,
        invalid_ratio=args.invalid_ratio,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        url=args.url,
        direct=args.direct,
        seed=args.seed,
        api_key=api_key,
        timeout=args.timeout,
        progress=not (args.json or args.no_progress),
    )


def _simulate(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if args.accepted_ids is not None and not args.accepted_ids.resolve().parent.is_dir():
        # Checked before the run, not after sending what may be millions of events.
        raise ConfigurationError(
            f"--accepted-ids: the folder {args.accepted_ids.resolve().parent} does not exist",
            code="bad_accepted_ids",
        )
    if args.accepted_ids is None:
        summary = run_simulation(options)
    else:
        # Written as the answers arrive: a long run keeps no list of ids in memory.
        with args.accepted_ids.open("w", encoding="ascii") as ids:
            summary = run_simulation(options, on_accepted=lambda i: ids.write(f"{i}\n"))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        from rich.console import Console

        Console().print(summary_table(summary))
    # Rejections of deliberately invalid events are expected; failures are not.
    return EXIT_OK if summary.failed == 0 else EXIT_FAILED
