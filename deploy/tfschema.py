"""Check every ``aws_*`` resource and data block against the AWS provider's schema.

No provider can be downloaded where the tests run, so the schema comes from the npm
package ``@cdktf/provider-aws``, whose jsii assembly (``package/.jsii``) is generated
from the provider's own schema: one ``<Type>Config`` interface per resource and data
source, with every argument (optional or required) and one struct per nested block, and
a link to the registry page naming the provider version and the argument's HCL name.

``python -m deploy.tfschema extract --jsii package/.jsii`` keeps only the types the
``.tf`` files use and writes a compact JSON fixture (``FIXTURE``) that the unit tests
read, so CI needs no npm; ``python -m deploy.tfschema check`` reports unknown arguments
and missing required ones. Regenerate after adding a resource type::

    npm pack @cdktf/provider-aws@19.65.1 && tar xzf cdktf-provider-aws-19.65.1.tgz package/.jsii
    python -m deploy.tfschema extract --jsii package/.jsii
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deploy import tfmodules
from sluice.errors import FatalError

FIXTURE = Path(__file__).resolve().parent / "terraform_provider_schema" / "aws.json"
# The npm release the fixture was extracted from; its provider version is read from it.
NPM_PACKAGE = "@cdktf/provider-aws"
NPM_VERSION = "19.65.1"

# Arguments every resource/data block accepts (Terraform's meta-arguments).
META_ARGUMENTS = frozenset(
    {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}
)
_META_INTERFACE = "cdktf.TerraformMetaArguments"
_DOC_LINK = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/aws/(?P<version>[0-9.]+)/docs/"
    r"(?P<kind>resources|data-sources)/(?P<type>[a-z0-9_]+)#(?P<arg>[A-Za-z0-9_]+) "
)

Kind = Literal["resource", "data"]


class SchemaError(FatalError):
    """The jsii assembly or the fixture does not have the expected shape."""


@dataclass(frozen=True)
class Finding:
    """One argument problem in a ``.tf`` file."""

    path: str
    kind: Kind
    type: str
    name: str
    problem: Literal["unknown_type", "unknown_argument", "missing_required"]
    argument: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} {self.type}.{self.name}: {self.problem} {self.argument}"


# --- Extraction from the jsii assembly -------------------------------------------------


def _link(prop: Mapping[str, Any]) -> re.Match[str] | None:
    docs = prop.get("docs", {})
    return _DOC_LINK.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")


def _struct_fqn(type_ref: Mapping[str, Any]) -> str | None:
    """The struct a property's type names (a single block or a list/set of blocks)."""
    if "fqn" in type_ref:
        return str(type_ref["fqn"])
    if "collection" in type_ref:
        return _struct_fqn(type_ref["collection"]["elementtype"])
    if "union" in type_ref:
        for member in type_ref["union"]["types"]:
            found = _struct_fqn(member)
            if found and not found.startswith("cdktf."):
                return found
    return None


def _block_schema(types: Mapping[str, Any], fqn: str) -> dict[str, Any]:
    """``{"arguments": {name: required}, "blocks": {name: {required, ...}}}`` of a struct."""
    arguments: dict[str, bool] = {}
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        match = _link(prop)
        if match is None:
            raise SchemaError(f"{fqn}.{prop['name']}: no registry link naming the argument")
        name = match.group("arg")
        required = not prop.get("optional", False)
        nested = _struct_fqn(prop["type"])
        if nested is not None and nested in types and types[nested].get("datatype"):
            blocks[name] = {"required": required, **_block_schema(types, nested)}
        else:
            arguments[name] = required
    return {"arguments": dict(sorted(arguments.items())), "blocks": dict(sorted(blocks.items()))}


def extract(assembly: Mapping[str, Any], wanted: Mapping[Kind, set[str]]) -> dict[str, Any]:
    """The compact schema of the ``wanted`` resource and data source types."""
    types: Mapping[str, Any] = assembly["types"]
    found: dict[Kind, dict[str, Any]] = {"resource": {}, "data": {}}
    versions: set[str] = set()
    for fqn, entry in types.items():
        if entry.get("kind") != "interface" or _META_INTERFACE not in entry.get("interfaces", []):
            continue
        match = next((m for p in entry.get("properties", []) if (m := _link(p))), None)
        if match is None:
            continue
        kind: Kind = "resource" if match.group("kind") == "resources" else "data"
        type_name = f"aws_{match.group('type')}"
        if type_name in wanted.get(kind, set()):
            found[kind][type_name] = _block_schema(types, fqn)
            versions.add(match.group("version"))
    missing = {f"{kind} {name}" for kind, names in wanted.items() for name in names} - {
        f"{kind} {name}" for kind, names in found.items() for name in names
    }
    if missing:
        raise SchemaError(f"not in the assembly: {sorted(missing)}")
    if len(versions) > 1:
        raise SchemaError(f"more than one provider version in the assembly: {sorted(versions)}")
    return {
        "source": f"npm {assembly['name']} {assembly['version']} (package/.jsii)",
        "provider": "hashicorp/aws",
        "provider_version": versions.pop() if versions else None,
        "resource": dict(sorted(found["resource"].items())),
        "data": dict(sorted(found["data"].items())),
    }


# --- The .tf side ----------------------------------------------------------------------


def tf_blocks(root: Path = tfmodules.TERRAFORM_ROOT) -> Iterator[tuple[Path, Kind, str, str, Any]]:
    """Every ``aws_*`` resource and data block: (file, kind, type, name, body)."""
    for path in sorted(root.rglob("*.tf")):
        document = tfmodules.load_tf(path)
        for kind in ("resource", "data"):
            for entry in document.get(kind, []):
                for type_name, named in entry.items():
                    if not type_name.startswith("aws_"):
                        continue
                    for name, body in named.items():
                        yield path, kind, type_name, name, body


def used_types(root: Path = tfmodules.TERRAFORM_ROOT) -> dict[Kind, set[str]]:
    """The ``aws_*`` resource and data source types the tree uses."""
    used: dict[Kind, set[str]] = {"resource": set(), "data": set()}
    for _path, kind, type_name, _name, _body in tf_blocks(root):
        used[kind].add(type_name)
    return used


def _bodies(value: Any) -> list[Mapping[str, Any]]:
    """python-hcl2 gives a block as a list of bodies (one per occurrence) or one body."""
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return [value] if isinstance(value, Mapping) else []


def _hcl_keys(body: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Argument/block name -> the bodies given for it (dynamic blocks count as blocks)."""
    keys: dict[str, list[Mapping[str, Any]]] = {}
    for key, value in body.items():
        if key.startswith("__"):
            continue  # python-hcl2's position markers
        if key == "dynamic":
            for dynamic in _bodies(value):
                for block_name, spec in dynamic.items():
                    content = [c for s in _bodies(spec) for c in _bodies(s.get("content"))]
                    keys.setdefault(block_name, []).extend(content)
            continue
        keys.setdefault(key, []).extend(_bodies(value))
    return keys


def check_body(
    body: Mapping[str, Any], schema: Mapping[str, Any], *, top: bool = True
) -> Iterator[tuple[Literal["unknown_argument", "missing_required"], str]]:
    """Problems of one block body against its schema; nested names are dotted."""
    arguments: Mapping[str, bool] = schema["arguments"]
    blocks: Mapping[str, Any] = schema["blocks"]
    given = _hcl_keys(body)
    for key, nested in sorted(given.items()):
        if top and key in META_ARGUMENTS:
            continue
        if key in arguments:
            continue
        if key in blocks:
            for item in nested:
                for problem, where in check_body(item, blocks[key], top=False):
                    yield problem, f"{key}.{where}"
            continue
        yield "unknown_argument", key
    for name, required in sorted(arguments.items()):
        if required and name not in given:
            yield "missing_required", name
    for name, block in sorted(blocks.items()):
        if block["required"] and name not in given:
            yield "missing_required", name


def load_fixture(path: Path = FIXTURE) -> dict[str, Any]:
    """The extracted schema (``python -m deploy.tfschema extract`` writes it)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read the provider schema {path}: {exc}") from exc
    return data


def check_tree(
    schema: Mapping[str, Any], root: Path = tfmodules.TERRAFORM_ROOT
) -> tuple[int, list[Finding]]:
    """(blocks checked, findings) for every ``aws_*`` block under ``root``."""
    findings: list[Finding] = []
    checked = 0
    for path, kind, type_name, name, body in tf_blocks(root):
        where = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        type_schema = schema[kind].get(type_name)
        if type_schema is None:
            findings.append(Finding(where, kind, type_name, name, "unknown_type", type_name))
            continue
        checked += 1
        for problem, argument in check_body(body, type_schema):
            findings.append(Finding(where, kind, type_name, name, problem, argument))
    return checked, findings


# --- Command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``extract`` the fixture from a jsii assembly, or ``check`` the tree against it."""
    parser = argparse.ArgumentParser(prog="python -m deploy.tfschema", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    extract_cmd = sub.add_parser("extract", help="write the fixture from package/.jsii")
    extract_cmd.add_argument("--jsii", type=Path, required=True, help="path of package/.jsii")
    extract_cmd.add_argument("--out", type=Path, default=FIXTURE)
    extract_cmd.add_argument(
        "--also-root",
        type=Path,
        action="append",
        default=[],
        help="another Terraform tree whose types to include (a branch about to be merged)",
    )
    check_cmd = sub.add_parser("check", help="check the .tf files against the fixture")
    check_cmd.add_argument("root", nargs="?", type=Path, default=tfmodules.TERRAFORM_ROOT)
    args = parser.parse_args(argv)
    if args.command == "extract":
        assembly = json.loads(args.jsii.read_text(encoding="utf-8"))
        if assembly.get("name") != NPM_PACKAGE:
            raise SchemaError(f"{args.jsii} is not the {NPM_PACKAGE} assembly")
        wanted = used_types()
        for root in args.also_root:
            for kind, names in used_types(root).items():
                wanted[kind] |= names
        schema = extract(assembly, wanted)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        counts = {kind: len(schema[kind]) for kind in ("resource", "data")}
        print(f"{args.out}: {schema['source']}, provider {schema['provider_version']}, {counts}")
        return 0
    checked, findings = check_tree(load_fixture(), args.root)
    for finding in findings:
        print(finding)
    print(f"{checked} blocks checked, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
