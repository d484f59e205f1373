"""Schema compatibility as Confluent Schema Registry defines it, by Avro schema resolution.

* ``BACKWARD``: the new schema can read data written with the previous one
  (consumers upgrade first). ``FORWARD``: the previous schema can read data written
  with the new one (producers upgrade first). ``FULL``: both.
* The ``_TRANSITIVE`` variants compare the new schema with *every* earlier version,
  not only the previous one. ``NONE`` checks nothing.

"Can read" follows the Avro specification's resolution rules
(https://avro.apache.org/docs/current/specification/#schema-resolution):

* same primitive, or a promotion: int -> long, float, double; long -> float, double;
  float -> double; string <-> bytes;
* records with the same name (or a reader alias): every reader field exists in the
  writer (by name or alias) with a readable type, or has a default; writer fields
  the reader lacks are skipped;
* enums with the same name: every writer symbol is a reader symbol, unless the
  reader declares an enum ``default``;
* fixed: same name and size; arrays / maps: items / values readable;
* unions: every branch the writer may have written must be readable by the reader
  (by the reader itself, or by one of the reader's branches).

One rule is stricter than Schema Registry: logical types must agree (a ``decimal``
read with another precision or scale, or ``timestamp-millis`` read as
``timestamp-micros``, would silently change values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schemas.avsc import PRIMITIVES
from schemas.models import SchemaVersion


class CompatibilityLevel(StrEnum):
    """Schema Registry's compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """True for the levels that compare with every earlier version."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """True when the new schema must read the old data."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """True when the old schema must read the new data."""
        return self.value.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason why a reader schema cannot read a writer schema's data.

    Attributes:
        path: dotted field path (``merchant.mcc``; ``metadata.<values>`` for map
            values, ``items[]`` for array items); empty for the record itself.
        reason: a sentence saying what breaks.
        direction: ``BACKWARD`` (new reads old) or ``FORWARD`` (old reads new); empty
            when the check was a bare reader/writer comparison.
        reader_version: the version reading, when known.
        writer_version: the version that wrote, when known.
    """

    path: str
    reason: str
    direction: str = ""
    reader_version: int | None = None
    writer_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for ``sluice schemas check --json``."""
        return {
            "path": self.path,
            "reason": self.reason,
            "direction": self.direction,
            "reader_version": self.reader_version,
            "writer_version": self.writer_version,
        }

    def __str__(self) -> str:
        where = self.path or "<record>"
        versions = (
            f" (v{self.reader_version} reading v{self.writer_version})"
            if self.reader_version is not None
            else ""
        )
        label = f"{self.direction}: " if self.direction else ""
        return f"{label}{where}: {self.reason}{versions}"


# -- resolution ------------------------------------------------------------------------


def _collect_names(schema: Any, namespace: str | None, names: dict[str, dict[str, Any]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        full = _fullname(schema, namespace)
        names[full] = schema
        names.setdefault(str(schema["name"]).rpartition(".")[2], schema)
        namespace = full.rpartition(".")[0] or None
    if kind in ("record", "error"):
        for f in schema.get("fields", []):
            _collect_names(f.get("type"), namespace, names)
    elif kind == "array":
        _collect_names(schema.get("items"), namespace, names)
    elif kind == "map":
        _collect_names(schema.get("values"), namespace, names)
    elif isinstance(kind, (dict, list)):
        _collect_names(kind, namespace, names)


def _fullname(schema: dict[str, Any], namespace: str | None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


class _Resolver:
    """Checks whether ``reader`` can read data written with ``writer``."""

    def __init__(self, reader: dict[str, Any], writer: dict[str, Any]) -> None:
        self.reader_names: dict[str, dict[str, Any]] = {}
        self.writer_names: dict[str, dict[str, Any]] = {}
        _collect_names(reader, None, self.reader_names)
        _collect_names(writer, None, self.writer_names)
        self.in_progress: set[tuple[int, int]] = set()

    def norm(self, schema: Any, names: dict[str, dict[str, Any]]) -> Any:
        """A union stays a list; anything else becomes a dict with a string ``type``."""
        if isinstance(schema, list):
            return schema
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return {"type": schema}
            found = names.get(schema) or names.get(schema.rpartition(".")[2])
            if found is None:
                return {"type": "<unknown>", "name": schema}
            return found
        kind = schema.get("type")
        if isinstance(kind, (dict, list)):
            return self.norm(kind, names)
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        r = self.norm(reader, self.reader_names)
        w = self.norm(writer, self.writer_names)
        if isinstance(w, list):
            problems: list[Incompatibility] = []
            for branch in w:
                problems.extend(self.check(r, branch, path))
            return problems
        if isinstance(r, list):
            closest: list[Incompatibility] | None = None
            for branch in r:
                found = self.check(branch, w, path)
                if not found:
                    return []
                nb = self.norm(branch, self.reader_names)
                if closest is None and _same_kind(nb, w):
                    closest = found
            if closest is not None:
                # The branch of the same type and name explains the break best.
                return closest
            return [
                Incompatibility(
                    path, f"the reader's union has no branch that can read {_describe(w)}"
                )
            ]
        return self.check_single(r, w, path)

    def check_single(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        rk, wk = r["type"], w["type"]
        problems = self.check_logical(r, w, path)
        if rk == wk and rk in PRIMITIVES:
            return problems
        if rk in PRIMITIVES and wk in PRIMITIVES:
            if rk in _PROMOTIONS.get(wk, ()):
                return problems
            if wk == "null":
                return [
                    *problems,
                    Incompatibility(
                        path, f"null may be written but the reader's {rk} is not nullable"
                    ),
                ]
            return [*problems, Incompatibility(path, f"type changed from {wk} to {rk}")]
        if rk != wk:
            return [Incompatibility(path, f"type changed from {_describe(w)} to {_describe(r)}")]
        if rk in ("record", "error", "enum", "fixed") and not _names_match(r, w):
            return [Incompatibility(path, f"{rk} name changed from {w['name']!r} to {r['name']!r}")]
        if rk in ("record", "error"):
            return problems + self.check_record(r, w, path)
        if rk == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                return [
                    *problems,
                    Incompatibility(
                        path,
                        f"enum symbol(s) {', '.join(missing)} written but unknown to the "
                        "reader, which has no enum default",
                    ),
                ]
            return problems
        if rk == "fixed":
            if r.get("size") != w.get("size"):
                return [
                    *problems,
                    Incompatibility(path, f"fixed size changed from {w['size']} to {r['size']}"),
                ]
            return problems
        if rk == "array":
            return problems + self.check(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return problems + self.check(r["values"], w["values"], _join(path, "<values>"))
        return [*problems, Incompatibility(path, f"unknown type {rk!r}")]

    def check_logical(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        rl, wl = r.get("logicalType"), w.get("logicalType")
        if rl is None and wl is None:
            return []
        if rl != wl:
            return [
                Incompatibility(path, f"logical type changed from {wl or 'none'} to {rl or 'none'}")
            ]
        if rl == "decimal":
            rp, rs = r.get("precision"), r.get("scale", 0)
            wp, ws = w.get("precision"), w.get("scale", 0)
            if rs != ws:
                return [Incompatibility(path, f"decimal scale changed from {ws} to {rs}")]
            if isinstance(rp, int) and isinstance(wp, int) and rp < wp:
                return [Incompatibility(path, f"decimal precision narrowed from {wp} to {rp}")]
        return []

    def check_record(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        key = (id(r), id(w))
        if key in self.in_progress:  # a recursive type already being compared
            return []
        self.in_progress.add(key)
        try:
            writer_fields = {f["name"]: f for f in w.get("fields", [])}
            problems: list[Incompatibility] = []
            for rf in r.get("fields", []):
                fpath = _join(path, rf["name"])
                wf = writer_fields.get(rf["name"])
                if wf is None:
                    for alias in rf.get("aliases", []):
                        wf = writer_fields.get(alias)
                        if wf is not None:
                            break
                if wf is None:
                    if "default" not in rf:
                        problems.append(
                            Incompatibility(
                                fpath,
                                "field is read but was not written, and the reader has no "
                                "default for it",
                            )
                        )
                    continue
                problems.extend(self.check(rf["type"], wf["type"], fpath))
            return problems
        finally:
            self.in_progress.discard(key)


_PROMOTIONS: dict[str, tuple[str, ...]] = {
    "int": ("long", "float", "double"),
    "long": ("float", "double"),
    "float": ("double",),
    "string": ("bytes",),
    "bytes": ("string",),
}


def _names_match(r: dict[str, Any], w: dict[str, Any]) -> bool:
    rn = str(r.get("name", "")).rpartition(".")[2]
    wn = str(w.get("name", "")).rpartition(".")[2]
    aliases = {str(a).rpartition(".")[2] for a in r.get("aliases", [])}
    return rn == wn or wn in aliases


def _same_kind(r: Any, w: Any) -> bool:
    if isinstance(r, list) or isinstance(w, list) or r.get("type") != w.get("type"):
        return False
    return r["type"] not in ("record", "error", "enum", "fixed") or _names_match(r, w)


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "a union"
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        return f"{kind} {schema.get('name')}"
    logical = schema.get("logicalType")
    return f"{kind} ({logical})" if logical else str(kind)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- public API ------------------------------------------------------------------------


def can_read(reader: dict[str, Any], writer: dict[str, Any]) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty list: it can)."""
    return _Resolver(reader, writer).check(reader, writer, "")


def check(
    new: dict[str, Any], old: dict[str, Any], level: CompatibilityLevel | str
) -> list[Incompatibility]:
    """Incompatibilities of schema ``new`` with schema ``old`` at ``level`` (one pair)."""
    lvl = CompatibilityLevel(level)
    problems: list[Incompatibility] = []
    if lvl.backward:
        problems += [_label(p, "BACKWARD") for p in can_read(new, old)]
    if lvl.forward:
        problems += [_label(p, "FORWARD") for p in can_read(old, new)]
    return problems


def _label(
    p: Incompatibility, direction: str, reader: int | None = None, writer: int | None = None
) -> Incompatibility:
    return Incompatibility(p.path, p.reason, direction, reader, writer)


@dataclass(frozen=True)
class PairResult:
    """The check of one new version against one earlier version."""

    event_type: str
    new_version: int
    old_version: int
    level: CompatibilityLevel
    problems: list[Incompatibility] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        """True when nothing breaks."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for ``sluice schemas check --json``."""
        return {
            "event_type": self.event_type,
            "new_version": self.new_version,
            "old_version": self.old_version,
            "level": self.level.value,
            "compatible": self.compatible,
            "problems": [p.as_dict() for p in self.problems],
        }


def check_versions(
    versions: Sequence[SchemaVersion], level: CompatibilityLevel | str
) -> list[PairResult]:
    """Check every version of one event type against its predecessor (or, for the
    transitive levels, against every earlier version)."""
    lvl = CompatibilityLevel(level)
    ordered = sorted(versions, key=lambda v: v.version)
    results: list[PairResult] = []
    if lvl is CompatibilityLevel.NONE:
        return results
    for index, new in enumerate(ordered):
        earlier = ordered[:index] if lvl.transitive else ordered[max(0, index - 1) : index]
        for old in earlier:
            problems: list[Incompatibility] = []
            if lvl.backward:
                problems += [
                    _label(p, "BACKWARD", new.version, old.version)
                    for p in can_read(new.schema, old.schema)
                ]
            if lvl.forward:
                problems += [
                    _label(p, "FORWARD", old.version, new.version)
                    for p in can_read(old.schema, new.schema)
                ]
            results.append(PairResult(new.event_type, new.version, old.version, lvl, problems))
    return results


def check_catalogue(
    versions: Iterable[SchemaVersion], level: CompatibilityLevel | str
) -> list[PairResult]:
    """:func:`check_versions` for every event type in ``versions`` (a catalogue)."""
    by_type: dict[str, list[SchemaVersion]] = {}
    for sv in versions:
        by_type.setdefault(sv.event_type, []).append(sv)
    results: list[PairResult] = []
    for event_type in sorted(by_type):
        results += check_versions(by_type[event_type], level)
    return results
