"""``sluice package``: build the Lambda zips the Terraform environments deploy;
``sluice topics apply``: create the Kafka topics the pipeline needs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deploy import package, topics
from sluice.config import KafkaSettings, StreamSettings

FUNCTION_CHOICES = ["all", *(function.value for function in package.FunctionName)]


def register(sub: Any) -> None:
    """Add ``sluice package`` and ``sluice topics apply``."""
    _register_topics(sub)
    parser = sub.add_parser(
        "package",
        help="build the Lambda artifacts (api, transform, loader) as zips",
        description=(
            "Build dist/sluice-<function>.zip for AWS Lambda: the project's packages the "
            "handler imports plus their dependencies, installed by pip as "
            f"{package.MANYLINUX} wheels for the Lambda runtime (Amazon Linux 2023), each "
            "pinned to the version installed here (the one the tests run). Fails when a "
            "version would differ or an artifact is over Lambda's 250 MB unzipped limit."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("dist"), help="output directory (default dist/)"
    )
    parser.add_argument(
        "--function",
        choices=FUNCTION_CHOICES,
        default="all",
        help="which function to build (default all)",
    )
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="only the project's own packages, no third-party dependencies (for tests)",
    )
    parser.add_argument(
        "--python-version",
        choices=package.LAMBDA_PYTHON_VERSIONS,
        default=package.LAMBDA_PYTHON_VERSION,
        help="Python of the Lambda runtime (Terraform lambda_runtime; default "
        f"{package.LAMBDA_PYTHON_VERSION})",
    )
    parser.add_argument(
        "--arch",
        choices=[arch.value for arch in package.Architecture],
        default=package.Architecture.X86_64.value,
        help="architecture of the functions (Terraform lambda_architecture; default x86_64)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=_package)


def _package(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    functions = package.selected_functions(args.function)
    package.clean_out_dir(args.out)
    results: list[package.PackageResult] = []
    for function in functions:
        with console.status(f"building {function.value}..."):
            results.append(
                package.build(
                    function,
                    args.out,
                    no_deps=args.no_deps,
                    python_version=args.python_version,
                    architecture=package.Architecture(args.arch),
                )
            )
    if args.json:
        print(json.dumps([result.as_json() for result in results], indent=2))
    else:
        table = Table(title="Lambda artifacts")
        for column in ("function", "artifact", "files", "unzipped", "zipped", "packages"):
            table.add_column(column)
        for result in results:
            table.add_row(
                result.function.value,
                str(result.path),
                str(result.files),
                package.human_size(result.unzipped_bytes),
                package.human_size(result.zipped_bytes),
                ", ".join(result.packages),
            )
        Console().print(table)
    for result in results:
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
    return 0


def _register_topics(sub: Any) -> None:
    parser = sub.add_parser("topics", help="the Kafka topics of the pipeline")
    topics_sub = parser.add_subparsers(dest="topics_command", metavar="SUBCOMMAND", required=True)
    apply = topics_sub.add_parser(
        "apply",
        help="create the missing event and dead-letter topics (idempotent)",
        description=(
            "Create the topics named by SLUICE_STREAM_FINANCIAL_TRANSACTION, "
            "SLUICE_STREAM_INSURANCE_CLAIM and SLUICE_STREAM_DLQ on the cluster of "
            "SLUICE_KAFKA_* (MSK with IAM on AWS). Existing topics are left unchanged; "
            "one with another partition count is reported."
        ),
    )
    apply.add_argument(
        "--partitions", type=int, default=12, help="partitions of a new topic (default 12)"
    )
    apply.add_argument(
        "--replication-factor",
        type=int,
        default=topics.BROKER_DEFAULT_REPLICATION,
        help="replicas of a new topic (default: the broker's default.replication.factor)",
    )
    apply.add_argument("--json", action="store_true", help="print the result as JSON")
    apply.set_defaults(handler=_topics_apply)


def _topics_apply(args: argparse.Namespace) -> int:
    report = topics.apply_topics(
        KafkaSettings(),
        StreamSettings().all_names(),
        partitions=args.partitions,
        replication_factor=args.replication_factor,
    )
    if args.json:
        print(json.dumps(report.as_json()))
        return 0
    for name in report.created:
        print(f"created {name} ({report.wanted_partitions} partitions)")
    for name, count in report.existing.items():
        note = "" if count == report.wanted_partitions else f", not {report.wanted_partitions}"
        print(f"exists  {name} ({count} partitions{note})")
    return 0
