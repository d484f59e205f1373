"""The ``sluice`` command: one entry point for operators.

Each package contributes its subcommands through a ``register(subparsers)`` function
in its own ``cli`` module; this module only wires them together, turns
:class:`~sluice.errors.SluiceError` into a one-line message and an exit code, and
never prints a stack trace for an expected failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import pydantic

from sluice.errors import SluiceError

# Modules that contribute subcommands, in the order they appear in `sluice --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "deploy.local.cli",
    "schemas.cli",
    "ingest_api.cli",
    "producers.cli",
    "firehose_transforms.cli",
    "warehouse.cli",
    "consumers.cli",
    "deploy.cli",
    "sluice.demo",
    "sluice.dashboard.cli",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="sluice",
        description=(
            "Sluice: validated financial and insurance events from an HTTP API through "
            "Kafka (MSK) or Kinesis, Firehose transforms and S3 into the warehouse."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sluice``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(verbose=args.verbose)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return handler(args) or EXIT_OK
    except SluiceError as exc:
        print(f"sluice {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except pydantic.ValidationError as exc:
        for line in describe_invalid_settings(exc):
            print(f"sluice {args.command}: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sluice {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def describe_invalid_settings(exc: pydantic.ValidationError) -> list[str]:
    """One line per invalid setting, naming its ``SLUICE_*`` variable.

    The values are never shown: a rejected value may be a secret.
    """
    settings = exc.title.endswith("Settings")
    reasons: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "(value)"
        reasons.setdefault(field, []).append(error["msg"])
    return [
        f"invalid setting {'SLUICE_' + field.upper() if settings else field} "
        f"({exc.title}): {'; or '.join(msgs)}"
        for field, msgs in reasons.items()
    ]


def _configure_logging(*, verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    raise SystemExit(main())
