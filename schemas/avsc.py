"""Structural validation of ``.avsc`` documents, with the file and field path in every error.

fastavro accepts (or rejects with a terse message) what the Avro specification allows;
this module checks the same rules and the Sluice-specific ones first, so that a broken
schema file fails with ``<file>: field 'merchant.mcc': <what is wrong>``:

* JSON syntax (line and column), names, duplicate field names, unknown type names;
* enums: symbols valid and unique, a ``default`` among the symbols;
* logical types on the right underlying type; ``decimal`` with an integer
  ``precision`` > 0 and ``0 <= scale <= precision``;
* unions: no nested unions, no duplicate branches;
* field defaults valid for the field's type (for a union: its first branch);
* ``sluice.*`` annotations (see :data:`SLUICE_ATTRIBUTES`) known and well formed.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.exceptions import SchemaError

PRIMITIVES: frozenset[str] = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_NAMESPACE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_LOGICAL_BASE: dict[str, frozenset[str]] = {
    "decimal": frozenset({"bytes", "fixed"}),
    "uuid": frozenset({"string"}),
    "date": frozenset({"int"}),
    "time-millis": frozenset({"int"}),
    "time-micros": frozenset({"long"}),
    "timestamp-millis": frozenset({"long"}),
    "timestamp-micros": frozenset({"long"}),
    "local-timestamp-millis": frozenset({"long"}),
    "local-timestamp-micros": frozenset({"long"}),
}
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

#: Formats the codec knows for ``"sluice.format"`` on a string field.
FORMATS: frozenset[str] = frozenset(
    {"text", "identifier", "iso4217", "iso3166-alpha2", "mcc", "pan", "national-id"}
)
#: Field attributes the codec reads; any other ``sluice.*`` attribute is a typo.
SLUICE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "sluice.format",
        "sluice.max_length",
        "sluice.minimum",
        "sluice.maximum",
        "sluice.currency_field",
        "sluice.server_owned",
    }
)


def load_json(text: str, *, file: str) -> Any:
    """Parse ``text`` as JSON; a syntax error names the file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=file
        ) from exc


def validate_schema(schema: Any, *, file: str) -> None:
    """Check one top-level schema document; raises :class:`SchemaError` on the first problem.

    The top level must be a named record (an event, or the envelope).
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError('the top level must be a JSON object with "type": "record"', file=file)
    _Walker(file).walk(schema, path="", namespace=None)


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.named: dict[str, Any] = {}

    def fail(self, message: str, path: str) -> SchemaError:
        return SchemaError(message, file=self.file, field=path or None)

    # -- types ---------------------------------------------------------------------

    def walk(self, schema: Any, *, path: str, namespace: str | None) -> None:
        if isinstance(schema, str):
            self.resolve(schema, path=path, namespace=namespace)
        elif isinstance(schema, list):
            self.walk_union(schema, path=path, namespace=namespace)
        elif isinstance(schema, dict):
            self.walk_complex(schema, path=path, namespace=namespace)
        else:
            raise self.fail(f"a type must be a name, an object or a union, not {schema!r}", path)

    def resolve(self, name: str, *, path: str, namespace: str | None) -> Any:
        if name in PRIMITIVES:
            return name
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        for candidate in (full, name):
            if candidate in self.named:
                return self.named[candidate]
        raise self.fail(f"unknown type {name!r}", path)

    def walk_union(self, branches: list[Any], *, path: str, namespace: str | None) -> None:
        if not branches:
            raise self.fail("a union needs at least one branch", path)
        seen: set[str] = set()
        for branch in branches:
            if isinstance(branch, list):
                raise self.fail("a union may not directly contain another union", path)
            self.walk(branch, path=path, namespace=namespace)
            key = self.branch_key(branch, namespace)
            if key in seen:
                raise self.fail(f"the union has two branches of type {key!r}", path)
            seen.add(key)

    def branch_key(self, branch: Any, namespace: str | None) -> str:
        if isinstance(branch, str):
            if branch in PRIMITIVES:
                return branch
            return branch if "." in branch or not namespace else f"{namespace}.{branch}"
        kind = str(branch.get("type"))
        if kind in {"record", "enum", "fixed"}:
            return self.fullname(branch, namespace)
        return kind

    def fullname(self, schema: dict[str, Any], namespace: str | None) -> str:
        name = str(schema.get("name"))
        if "." in name:
            return name
        ns = schema.get("namespace", namespace)
        return f"{ns}.{name}" if ns else name

    def define(self, schema: dict[str, Any], *, path: str, namespace: str | None) -> str:
        name = schema.get("name")
        if not isinstance(name, str) or not all(_NAME.match(p) for p in name.split(".")):
            raise self.fail(f'{schema.get("type")} needs a valid "name", got {name!r}', path)
        ns = schema.get("namespace")
        if ns is not None and (not isinstance(ns, str) or (ns and not _NAMESPACE.match(ns))):
            raise self.fail(f"invalid namespace {ns!r}", path)
        full = self.fullname(schema, namespace)
        if full in self.named:
            raise self.fail(f"the name {full!r} is defined twice", path)
        self.named[full] = schema
        return full

    def walk_complex(self, schema: dict[str, Any], *, path: str, namespace: str | None) -> None:
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind == "record" or kind == "error":
            full = self.define(schema, path=path, namespace=namespace)
            self.walk_record(schema, path=path, namespace=full.rpartition(".")[0] or None)
        elif kind == "enum":
            self.define(schema, path=path, namespace=namespace)
            self.walk_enum(schema, path=path)
        elif kind == "fixed":
            self.define(schema, path=path, namespace=namespace)
            size = schema.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise self.fail(f'fixed needs a non-negative integer "size", got {size!r}', path)
        elif kind == "array":
            if "items" not in schema:
                raise self.fail('array needs "items"', path)
            self.walk(schema["items"], path=path, namespace=namespace)
        elif kind == "map":
            if "values" not in schema:
                raise self.fail('map needs "values"', path)
            self.walk(schema["values"], path=path, namespace=namespace)
        elif isinstance(kind, str) and kind in PRIMITIVES:
            pass
        elif isinstance(kind, (dict, list)):
            raise self.fail('"type" of a type object must be a type name', path)
        else:
            raise self.fail(f"unknown type {kind!r}", path)
        if logical is not None:
            self.check_logical(schema, str(kind), logical, path=path)

    def check_logical(self, schema: dict[str, Any], kind: str, logical: Any, *, path: str) -> None:
        bases = _LOGICAL_BASE.get(logical) if isinstance(logical, str) else None
        if bases is None:
            raise self.fail(f"unknown logicalType {logical!r}", path)
        if kind not in bases:
            raise self.fail(
                f"logicalType {logical!r} needs type {' or '.join(sorted(bases))}, not {kind!r}",
                path,
            )
        if logical != "decimal":
            return
        precision, scale = schema.get("precision"), schema.get("scale", 0)
        if "precision" not in schema:
            raise self.fail('decimal needs "precision"', path)
        if not isinstance(precision, int) or isinstance(precision, bool) or precision < 1:
            raise self.fail(
                f"decimal precision must be a positive integer, got {precision!r}", path
            )
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= precision:
            raise self.fail(
                f"decimal scale must be an integer between 0 and the precision, got {scale!r}",
                path,
            )

    def walk_enum(self, schema: dict[str, Any], *, path: str) -> None:
        symbols = schema.get("symbols")
        if not isinstance(symbols, list) or not symbols:
            raise self.fail('enum needs a non-empty "symbols" list', path)
        for symbol in symbols:
            if not isinstance(symbol, str) or not _NAME.match(symbol):
                raise self.fail(f"invalid enum symbol {symbol!r}", path)
        if len(set(symbols)) != len(symbols):
            raise self.fail("enum symbols must be unique", path)
        if "default" in schema and schema["default"] not in symbols:
            raise self.fail(f"enum default {schema['default']!r} is not one of its symbols", path)

    def walk_record(self, schema: dict[str, Any], *, path: str, namespace: str | None) -> None:
        fields = schema.get("fields")
        if not isinstance(fields, list):
            raise self.fail('record needs a "fields" list', path)
        names: set[str] = set()
        for index, field in enumerate(fields):
            if not isinstance(field, dict):
                raise self.fail(f"field #{index} must be an object", path)
            name = field.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(f'field #{index} needs a valid "name", got {name!r}', path)
            fpath = f"{path}.{name}" if path else name
            if name in names:
                raise self.fail("duplicate field name", fpath)
            names.add(name)
            if "type" not in field:
                raise self.fail('field needs a "type"', fpath)
            self.walk(field["type"], path=fpath, namespace=namespace)
            if "default" in field:
                self.check_default(field["type"], field["default"], path=fpath, namespace=namespace)
            self.check_sluice_attributes(field, names=fields, path=fpath)

    # -- defaults ------------------------------------------------------------------

    def check_default(self, schema: Any, value: Any, *, path: str, namespace: str | None) -> None:
        problem = self.default_problem(schema, value, namespace)
        if problem:
            raise self.fail(f"invalid default {value!r}: {problem}", path)

    def default_problem(self, schema: Any, value: Any, namespace: str | None) -> str | None:
        if isinstance(schema, list):
            # A union's default must be valid for its first branch.
            first_problem = self.default_problem(schema[0], value, namespace)
            return (
                f"a union's default must match its first branch ({first_problem})"
                if (first_problem)
                else None
            )
        if isinstance(schema, str):
            schema = self.resolve(schema, path="", namespace=namespace)
            if isinstance(schema, str):
                return _primitive_default_problem(schema, value)
        kind = schema.get("type")
        if isinstance(kind, str) and kind in PRIMITIVES:
            return _primitive_default_problem(kind, value)
        if kind == "enum":
            return None if value in schema["symbols"] else "not one of the enum's symbols"
        if kind == "fixed":
            ok = isinstance(value, str) and len(value) == schema["size"]
            return None if ok else f"needs a string of {schema['size']} characters"
        if kind == "array":
            if not isinstance(value, list):
                return "needs a JSON array"
            for item in value:
                problem = self.default_problem(schema["items"], item, namespace)
                if problem:
                    return problem
            return None
        if kind == "map":
            if not isinstance(value, dict):
                return "needs a JSON object"
            for item in value.values():
                problem = self.default_problem(schema["values"], item, namespace)
                if problem:
                    return problem
            return None
        if kind in ("record", "error"):
            if not isinstance(value, dict):
                return "needs a JSON object"
            for field in schema["fields"]:
                if field["name"] in value:
                    problem = self.default_problem(field["type"], value[field["name"]], namespace)
                elif "default" not in field:
                    problem = f"field {field['name']!r} has no value and no default"
                else:
                    problem = None
                if problem:
                    return problem
            return None
        return f"cannot check a default for type {kind!r}"

    # -- sluice annotations --------------------------------------------------------

    def check_sluice_attributes(
        self, field: dict[str, Any], *, names: list[Any], path: str
    ) -> None:
        for key, value in field.items():
            if not key.startswith("sluice."):
                continue
            if key not in SLUICE_ATTRIBUTES:
                raise self.fail(f"unknown attribute {key!r}", path)
            if key == "sluice.format" and value not in FORMATS:
                raise self.fail(f"unknown sluice.format {value!r}", path)
            if key == "sluice.max_length" and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise self.fail("sluice.max_length must be a positive integer", path)
            if key in ("sluice.minimum", "sluice.maximum"):
                try:
                    Decimal(str(value))
                except InvalidOperation as exc:
                    raise self.fail(f"{key} must be a number, got {value!r}", path) from exc
            if key == "sluice.server_owned" and not isinstance(value, bool):
                raise self.fail("sluice.server_owned must be true or false", path)
            if key == "sluice.currency_field" and value not in {
                f.get("name") for f in names if isinstance(f, dict)
            }:
                raise self.fail(
                    f"sluice.currency_field names no field of the record: {value!r}", path
                )


def _primitive_default_problem(kind: str, value: Any) -> str | None:
    if kind == "null":
        return None if value is None else "needs null"
    if kind == "boolean":
        return None if isinstance(value, bool) else "needs true or false"
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"needs an integer in the {kind} range"
    if kind in ("float", "double"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "needs a number"
    return None if isinstance(value, str) else "needs a string"
