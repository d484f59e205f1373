"""``sluice schemas list | show | example | validate | check``: the event contract."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from schemas.catalogue import SchemaCatalogue
from schemas.compatibility import CompatibilityLevel, PairResult, check_catalogue

EXIT_OK = 0
EXIT_INCOMPATIBLE = 1


def register(sub: Any) -> None:
    """Add ``sluice schemas`` and its subcommands."""
    parser = sub.add_parser("schemas", help="the event contract: list, show, check schemas")
    actions = parser.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="every event type, version and schema id")
    ls.add_argument("--dir", help="load .avsc files from this directory instead")
    ls.add_argument("--json", action="store_true", help="print as JSON")
    ls.set_defaults(handler=_list)

    show = actions.add_parser("show", help="print one schema (.avsc JSON)")
    show.add_argument("event_type", metavar="TYPE", help="financial-transaction | insurance-claim")
    show.add_argument("--version", type=int, help="version to show (default: the latest)")
    show.add_argument("--dir", help="load .avsc files from this directory instead")
    show.set_defaults(handler=_show)

    example = actions.add_parser("example", help="print a valid JSON event")
    example.add_argument(
        "event_type", metavar="TYPE", help="financial-transaction | insurance-claim"
    )
    example.add_argument("--version", type=int, help="schema version (default: the latest)")
    example.set_defaults(handler=_example)

    validate = actions.add_parser(
        "validate",
        help="validate JSON events (one object, an array, or NDJSON); exit 1 if any fails",
    )
    validate.add_argument(
        "event_type", metavar="TYPE", help="financial-transaction | insurance-claim"
    )
    validate.add_argument("file", metavar="FILE", help="path to the JSON file, or - for stdin")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.set_defaults(handler=_validate)

    check = actions.add_parser(
        "check",
        help="check every version against the previous one; exit 1 on a break",
    )
    check.add_argument(
        "--level",
        type=str.upper,
        choices=[level.value for level in CompatibilityLevel],
        default=CompatibilityLevel.FULL.value,
        help="Schema Registry compatibility level (default: FULL)",
    )
    check.add_argument("--dir", help="load .avsc files from this directory instead")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_check)

    reg = actions.add_parser(
        "register",
        help="register every .avsc version, in order, in the schema registry (idempotent)",
    )
    reg.add_argument(
        "--registry",
        choices=["glue", "confluent", "catalogue"],
        help="which registry (default: SLUICE_SCHEMA_REGISTRY)",
    )
    reg.add_argument(
        "--dry-run", action="store_true", help="show what would be registered; change nothing"
    )
    reg.add_argument(
        "--level",
        type=str.upper,
        choices=[level.value for level in CompatibilityLevel],
        default=None,
        help="compatibility level checked and set on each schema (default: FULL_TRANSITIVE, "
        "the level the build checks with `sluice schemas check`)",
    )
    reg.add_argument("--dir", help="load .avsc files from this directory instead")
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    reg.set_defaults(handler=_register)


def _load(args: argparse.Namespace) -> SchemaCatalogue:
    if getattr(args, "dir", None):
        return SchemaCatalogue.load(args.dir)
    from schemas import catalogue

    return catalogue()


def _list(args: argparse.Namespace) -> int:
    cat = _load(args)
    rows = [
        {
            "event_type": sv.event_type,
            "version": sv.version,
            "schema_id": sv.schema_id,
            "name": sv.name,
            "latest": sv is cat.latest(sv.event_type),
        }
        for sv in cat
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Event schemas")
    for column in ("event type", "version", "schema id", "record", "latest"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["event_type"]),
            str(row["version"]),
            str(row["schema_id"]),
            str(row["name"]),
            "yes" if row["latest"] else "",
        )
    Console().print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    sv = _load(args).get(args.event_type, args.version)
    print(json.dumps(sv.schema, indent=2))
    return EXIT_OK


def _example(args: argparse.Namespace) -> int:
    from schemas.codec import example_event

    print(json.dumps(example_event(args.event_type, version=args.version), indent=2))
    return EXIT_OK


def _read_events(path: str) -> list[Any]:
    import sys

    from schemas.exceptions import CodecError

    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise CodecError(
                f"{path}: neither JSON nor NDJSON (line {exc.lineno}: {exc.msg})",
                code="invalid_json",
            ) from exc
    return document if isinstance(document, list) else [document]


def _validate(args: argparse.Namespace) -> int:
    from schemas.codec import parse_event
    from schemas.exceptions import ValidationError

    results: list[dict[str, Any]] = []
    for index, event in enumerate(_read_events(args.file)):
        try:
            parse_event(args.event_type, event)
        except ValidationError as exc:
            results.append({"index": index, "valid": False, "errors": exc.as_dicts()})
        else:
            results.append({"index": index, "valid": True, "errors": []})
    invalid = [r for r in results if not r["valid"]]
    if args.json:
        print(json.dumps({"events": len(results), "invalid": len(invalid), "results": results}))
    else:
        for r in invalid:
            for error in r["errors"]:
                print(
                    f"event {r['index']}: {error['field'] or '<event>'}: {error['code']}: "
                    f"{error['message']}"
                )
        print(f"{len(results) - len(invalid)} of {len(results)} event(s) valid")
    return EXIT_OK if not invalid else EXIT_INCOMPATIBLE


def _check(args: argparse.Namespace) -> int:
    cat = _load(args)
    level = CompatibilityLevel(args.level)
    results = check_catalogue(cat, level)
    ok = all(r.compatible for r in results)
    if args.json:
        print(
            json.dumps(
                {
                    "level": level.value,
                    "compatible": ok,
                    "pairs": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    else:
        _print_results(results, level, ok)
    return EXIT_OK if ok else EXIT_INCOMPATIBLE


def _print_results(results: list[PairResult], level: CompatibilityLevel, ok: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Schema compatibility ({level.value})")
    for column in ("event type", "new", "old", "result"):
        table.add_column(column)
    for r in results:
        verdict = "[green]compatible[/]" if r.compatible else f"[red]{len(r.problems)} break(s)[/]"
        table.add_row(r.event_type, f"v{r.new_version}", f"v{r.old_version}", verdict)
    console.print(table)
    for r in results:
        for problem in r.problems:
            console.print(
                f"[red]x[/] {r.event_type} v{r.new_version} vs v{r.old_version}: {problem}"
            )
    if not results:
        console.print("nothing to compare (a single version per type, or level NONE)")
    console.print("[green]all compatible[/]" if ok else "[red]incompatible schema versions[/]")


def _register(args: argparse.Namespace) -> int:
    from schemas.registry import (
        ENFORCED_LEVEL,
        RegistrationRefusedError,
        RegistryKind,
        RegistrySettings,
        naming_for,
        register_catalogue,
        registry_from_settings,
    )

    cat = _load(args)
    settings = RegistrySettings()
    if args.registry:
        settings = settings.model_copy(update={"schema_registry": RegistryKind(args.registry)})
    registry = registry_from_settings(settings)
    level = CompatibilityLevel(args.level) if args.level else ENFORCED_LEVEL
    try:
        results = register_catalogue(
            registry, cat, naming_for(registry.kind), level=level, dry_run=args.dry_run
        )
    except RegistrationRefusedError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "registry": registry.kind.value,
                        "refused": {
                            "event_type": exc.event_type,
                            "version": exc.version,
                            "reason": exc.reason,
                        },
                    }
                )
            )
        else:
            print(f"refused: {exc}")
        return EXIT_INCOMPATIBLE
    rows = [
        {
            "event_type": r.event_type,
            "version": r.version,
            "name": r.name,
            "status": r.status.value,
            "id": None if r.wire_id is None else str(r.wire_id),
        }
        for r in results
    ]
    if args.json:
        print(json.dumps({"registry": registry.kind.value, "level": level.value, "results": rows}))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    title = f"{registry.kind.value} registry ({level.value}){' - dry run' if args.dry_run else ''}"
    table = Table(title=title)
    for column in ("event type", "version", "schema / subject", "status", "id"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["event_type"]),
            str(row["version"]),
            str(row["name"]),
            str(row["status"]),
            str(row["id"] or ""),
        )
    Console().print(table)
    return EXIT_OK
