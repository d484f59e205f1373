"""``sluice package``: build the Lambda zips the Terraform environments deploy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deploy import package

FUNCTION_CHOICES = ["all", *(function.value for function in package.FunctionName)]


def register(sub: Any) -> None:
    """Add ``sluice package``."""
    parser = sub.add_parser(
        "package",
        help="build the Lambda artifacts (api, transform, loader) as zips",
        description=(
            "Build dist/sluice-<function>.zip for AWS Lambda: the project's packages the "
            "handler imports plus their dependencies, installed by pip as "
            f"{package.LAMBDA_PLATFORM} wheels for Python {package.LAMBDA_PYTHON_VERSION}. "
            "Fails when an artifact is over Lambda's 250 MB unzipped limit."
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
        default=package.LAMBDA_PYTHON_VERSION,
        help="Python version of the Lambda runtime the wheels are chosen for",
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
