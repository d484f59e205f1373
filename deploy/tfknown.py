"""``for_each`` and ``count`` must be known at plan time, on an empty state.

Terraform refuses to plan (``Invalid for_each argument``) when the keys of a
``for_each`` or the number of a ``count`` depend on values known only after apply:
resource attributes (ids, ARNs) of the same configuration, or module outputs and
variables fed with them. This module follows those values through locals, module
outputs and module inputs of the whole tree (environments and modules) and reports
every resource, data source and module call whose ``for_each``/``count`` depends on them.

Each value gets a level:

* ``KNOWN``: literals, variables with their defaults, data fed by them;
* ``VALUES``: the shape is known, the elements are not (``[module.net.sg_id]``, a map
  literal with static keys and apply-time values, a whole resource with ``for_each``);
* ``SHAPE``: the value itself is unknown (``aws_security_group.x.id``, a list attribute).

A ``for_each`` over a set (``toset(...)``, a list) needs ``KNOWN`` elements; over a map
only its keys must be known, so ``VALUES`` passes. ``count`` needs ``KNOWN``, except that
``length(x)`` and ``keys(x)`` only need the shape. A variable whose description says its
value is "known only after apply" is at least ``VALUES``. The analysis reads the
expressions as text: it is a guard for the cases Terraform rejects, not an evaluator.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from deploy import tfmodules


class Known(IntEnum):
    """How much of a value is known at plan time (higher: less known)."""

    KNOWN = 0
    VALUES = 1
    SHAPE = 2


APPLY_TIME_DOC = re.compile(r"known only after apply", re.IGNORECASE)
_VAR = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")
_LOCAL = re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)")
_MODULE = re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)")
# A managed resource: `aws_x.name` optionally indexed, then an attribute or not.
_RESOURCE = re.compile(
    r"(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)(\[[^\]]*\]|\.\*)?(\.[A-Za-z_][\w]*)?"
)
_SHAPE_ONLY = re.compile(
    r"\b(?:length|keys)\(\s*((?:var|local)\.[A-Za-z_][\w-]*|module\.[\w-]+\.[\w-]+"
    r"|aws_[a-z0-9_]+\.[A-Za-z_][\w-]*)\s*\)"
)
_MAP_FOR = re.compile(r"^\{\s*for\s+\w+(?:\s*,\s*\w+)?\s+in\s+(?P<src>.+?)\s*:\s*(?P<key>.+?)\s*=>")


@dataclass
class Directory:
    """What the rule needs from one directory of ``.tf`` files."""

    path: Path
    variables: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, tuple[Path, Mapping[str, Any]]] = field(default_factory=dict)
    # (kind, address, meta-argument, expression) of every for_each/count.
    iterations: list[tuple[str, str, str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """One ``for_each``/``count`` that cannot be planned on an empty state."""

    path: Path
    address: str
    argument: str
    expression: str
    level: Known

    def __str__(self) -> str:
        what = "keys" if self.argument == "for_each" else "number"
        return (
            f"{self.path}: {self.address}: {self.argument} = {self.expression}: its {what} "
            f"depend on values known only after apply ({self.level.name.lower()})"
        )


def read_directory(path: Path) -> Directory:
    """Variables, locals, outputs, module calls and iterations of one directory."""
    directory = Directory(path=path)
    for tf in sorted(path.glob("*.tf")):
        document = tfmodules.load_tf(tf)
        for entry in document.get("variable", []):
            directory.variables.update(entry)
        for entry in document.get("locals", []):
            directory.locals.update(entry)
        for entry in document.get("output", []):
            for name, body in entry.items():
                directory.outputs[name] = body.get("value")
        for entry in document.get("module", []):
            for name, body in entry.items():
                source = (path / str(body.get("source", ""))).resolve()
                directory.calls[name] = (source, body)
                for meta in ("for_each", "count"):
                    if meta in body:
                        directory.iterations.append(("module", f"module.{name}", meta, body[meta]))
        for kind in ("resource", "data"):
            for entry in document.get(kind, []):
                for type_name, named in entry.items():
                    for name, body in named.items():
                        prefix = "data." if kind == "data" else ""
                        for meta in ("for_each", "count"):
                            if meta in body:
                                directory.iterations.append(
                                    (kind, f"{prefix}{type_name}.{name}", meta, body[meta])
                                )
    return directory


def _object_value(text: str, start: int) -> bool:
    """Whether the reference at ``start`` is an attribute value of an object literal.

    A lone ``=`` inside an expression only ever builds an object (``{ k = v }``), whose
    keys are written out: such a value leaves the object's shape known.
    """
    before = text[:start].rstrip()
    return before.endswith("=") and not before.endswith(("==", "!=", "<=", ">="))


def _cap(level: Known, text: str, start: int) -> Known:
    return min(level, Known.VALUES) if _object_value(text, start) else level


def _text(value: Any) -> str:
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text


class Analysis:
    """Plan-time knowledge of every variable, local and output of a tree."""

    def __init__(self, directories: Mapping[Path, Directory]) -> None:
        self.directories = directories
        self.variables: dict[tuple[Path, str], Known] = {}
        for path, directory in directories.items():
            for name, body in directory.variables.items():
                documented = APPLY_TIME_DOC.search(str(body.get("description", "")))
                self.variables[(path, name)] = Known.VALUES if documented else Known.KNOWN
        self._solve()

    def _solve(self) -> None:
        # Inputs only ever rise, so passing over the calls until nothing changes ends.
        changed = True
        while changed:
            changed = False
            for path, directory in self.directories.items():
                for target, body in directory.calls.values():
                    for name, value in body.items():
                        key = (target, name)
                        if key not in self.variables:
                            continue
                        level = self.value(path, value)
                        if level > self.variables[key]:
                            self.variables[key] = level
                            changed = True

    def value(self, path: Path, value: Any, seen: frozenset[str] = frozenset()) -> Known:
        """How known ``value`` (an HCL value as python-hcl2 gives it) is in ``path``."""
        if isinstance(value, list):
            inner = max((self.value(path, item, seen) for item in value), default=Known.KNOWN)
            return Known.VALUES if inner else Known.KNOWN
        if isinstance(value, Mapping):
            inner = max(
                (self.value(path, item, seen) for item in value.values()), default=Known.KNOWN
            )
            return Known.VALUES if inner else Known.KNOWN
        if not isinstance(value, str):
            return Known.KNOWN
        return self.expression(path, _text(value), seen)

    def expression(self, path: Path, text: str, seen: frozenset[str] = frozenset()) -> Known:
        """How known an expression is: the least known of its references."""
        level = Known.KNOWN
        for match in _SHAPE_ONLY.finditer(text):
            inner = self.expression(path, match.group(1), seen)
            level = max(level, Known.SHAPE if inner is Known.SHAPE else Known.KNOWN)
        text = _SHAPE_ONLY.sub("0", text)
        for match in _RESOURCE.finditer(text):
            has_attribute = bool(match.group(4)) or (
                bool(match.group(3)) and match.group(3) != ".*"
            )
            found = Known.SHAPE if has_attribute else Known.VALUES
            level = max(level, _cap(found, text, match.start()))
        for match in _VAR.finditer(text):
            found = self.variables.get((path, match.group(1)), Known.KNOWN)
            level = max(level, _cap(found, text, match.start()))
        directory = self.directories[path]
        for match in _LOCAL.finditer(text):
            name = match.group(1)
            marker = f"{path}:local.{name}"
            if name in directory.locals and marker not in seen:
                found = self.value(path, directory.locals[name], seen | {marker})
                level = max(level, _cap(found, text, match.start()))
        for match in _MODULE.finditer(text):
            module, output = match.group(1), match.group(2)
            call = directory.calls.get(module)
            found = Known.SHAPE
            if call is not None and call[0] in self.directories:
                target = self.directories[call[0]]
                marker = f"{call[0]}:output.{output}"
                if output not in target.outputs or marker in seen:
                    continue
                found = self.value(call[0], target.outputs[output], seen | {marker})
            level = max(level, _cap(found, text, match.start()))
        return level

    def iteration_level(self, path: Path, argument: str, value: Any) -> Known:
        """How known the part of a ``for_each``/``count`` that Terraform needs is.

        ``KNOWN`` passes; anything else cannot be planned on an empty state.
        """
        level = self.value(path, value)
        if argument == "count" or isinstance(value, list):
            return level
        if isinstance(value, Mapping):
            return Known.KNOWN  # an object literal: its keys are written out
        text = _text(value)
        match = _MAP_FOR.match(text)
        if match:
            source = self.expression(path, match.group("src"))
            key = self.expression(path, match.group("key"))
            return max(Known.SHAPE if source is Known.SHAPE else Known.KNOWN, key)
        if "toset(" in text or text.lstrip().startswith("["):
            return level  # set elements are the keys
        return Known.SHAPE if level is Known.SHAPE else Known.KNOWN


def check_tree(root: Path = tfmodules.TERRAFORM_ROOT) -> list[Finding]:
    """Every ``for_each``/``count`` under ``root`` that depends on apply-time values."""
    paths = [*tfmodules.module_directories(root), *tfmodules.environment_directories(root)]
    directories = {path.resolve(): read_directory(path.resolve()) for path in paths}
    analysis = Analysis(directories)
    findings: list[Finding] = []
    for path, directory in directories.items():
        for _kind, address, argument, value in directory.iterations:
            level = analysis.iteration_level(path, argument, value)
            if level is not Known.KNOWN:
                findings.append(Finding(path, address, argument, _text(value), level))
    return findings


def iter_findings(root: Path = tfmodules.TERRAFORM_ROOT) -> Iterator[str]:
    """The findings as lines (``python -m deploy.tfknown``)."""
    for finding in check_tree(root):
        yield str(finding)


if __name__ == "__main__":
    lines = list(
        iter_findings(Path(sys.argv[1]) if len(sys.argv) > 1 else tfmodules.TERRAFORM_ROOT)
    )
    print("\n".join(lines) or "every for_each/count is known at plan time")
    sys.exit(1 if lines else 0)
