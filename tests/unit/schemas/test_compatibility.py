"""Compatibility checks (Schema Registry levels, Avro resolution rules) on deliberate breaks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import schemas
from schemas.compatibility import (
    CompatibilityLevel,
    can_read,
    check,
    check_catalogue,
    check_versions,
)
from schemas.models import SchemaVersion


def record(*fields: dict[str, Any], name: str = "Event") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "io.sluice.test", "fields": list(fields)}


ID = {"name": "id", "type": "string"}


def reasons(problems: list[Any]) -> list[tuple[str, str]]:
    return [(p.path, p.reason) for p in problems]


def test_shipped_versions_are_full_transitive_compatible() -> None:
    results = check_catalogue(schemas.catalogue(), CompatibilityLevel.FULL_TRANSITIVE)
    assert [(r.event_type, r.new_version, r.old_version) for r in results] == [
        ("financial-transaction", 2, 1),
        ("insurance-claim", 2, 1),
    ]
    assert all(r.compatible for r in results), [r.problems for r in results]


def test_adding_an_optional_field_is_full_compatible() -> None:
    old = record(ID)
    new = record(ID, {"name": "note", "type": ["null", "string"], "default": None})
    assert check(new, old, "FULL") == []


def test_adding_a_required_field_breaks_backward_only() -> None:
    old = record(ID)
    new = record(ID, {"name": "amount", "type": "long"})
    problems = check(new, old, "FULL")
    assert [(p.direction, p.path) for p in problems] == [("BACKWARD", "amount")]
    assert "no default" in problems[0].reason
    assert check(new, old, "FORWARD") == []


def test_removing_a_field_without_default_breaks_forward_only() -> None:
    old = record(ID, {"name": "amount", "type": "long"})
    new = record(ID)
    assert check(new, old, "BACKWARD") == []
    problems = check(new, old, "FULL")
    assert [(p.direction, p.path) for p in problems] == [("FORWARD", "amount")]


def test_removing_a_field_with_default_is_full_compatible() -> None:
    old = record(ID, {"name": "note", "type": ["null", "string"], "default": None})
    assert check(record(ID), old, "FULL") == []


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("int", "double", True),
        ("long", "float", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
        ("boolean", "string", False),
    ],
)
def test_primitive_promotions(writer: str, reader: str, ok: bool) -> None:
    problems = can_read(
        record({"name": "x", "type": reader}), record({"name": "x", "type": writer})
    )
    assert (problems == []) is ok
    if not ok:
        assert reasons(problems) == [("x", f"type changed from {writer} to {reader}")]


def test_type_change_is_reported_in_both_directions() -> None:
    old = record(ID, {"name": "amount", "type": "long"})
    new = record(ID, {"name": "amount", "type": "string"})
    problems = check(new, old, "FULL")
    assert {(p.direction, p.path) for p in problems} == {
        ("BACKWARD", "amount"),
        ("FORWARD", "amount"),
    }


def _enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "status",
        "type": {"type": "enum", "name": "Status", "symbols": list(symbols), **extra},
    }


def test_removed_enum_symbol_breaks_backward() -> None:
    old = record(_enum("A", "B", "C"))
    new = record(_enum("A", "B"))
    problems = check(new, old, "FULL")
    assert [(p.direction, p.path) for p in problems] == [("BACKWARD", "status")]
    assert "C" in problems[0].reason


def test_added_enum_symbol_breaks_forward_unless_reader_has_default() -> None:
    old = record(_enum("A", "B"))
    new = record(_enum("A", "B", "C"))
    assert [p.direction for p in check(new, old, "FULL")] == ["FORWARD"]
    old_with_default = record(_enum("A", "B", default="A"))
    new_with_default = record(_enum("A", "B", "C", default="A"))
    assert check(new_with_default, old_with_default, "FULL") == []


def test_nested_record_paths() -> None:
    merchant_old = {
        "type": "record",
        "name": "Merchant",
        "fields": [{"name": "mcc", "type": "string"}],
    }
    merchant_new = {
        "type": "record",
        "name": "Merchant",
        "fields": [{"name": "mcc", "type": "int"}],
    }
    old = record({"name": "merchant", "type": ["null", merchant_old], "default": None})
    new = record({"name": "merchant", "type": ["null", merchant_new], "default": None})
    assert reasons(check(new, old, "BACKWARD")) == [
        ("merchant.mcc", "type changed from string to int")
    ]
    other = record({"name": "merchant", "type": ["null", "string"], "default": None})
    assert reasons(check(other, old, "BACKWARD")) == [
        ("merchant", "the reader's union has no branch that can read record Merchant")
    ]


def test_record_rename_breaks_unless_aliased() -> None:
    old = record(ID, name="Old")
    assert "record name changed" in check(record(ID, name="New"), old, "BACKWARD")[0].reason
    aliased = record(ID, name="New")
    aliased["aliases"] = ["Old"]
    assert check(aliased, old, "BACKWARD") == []


def test_field_rename_with_alias_is_backward_compatible() -> None:
    old = record({"name": "acct", "type": "string"})
    new = record({"name": "account_id", "type": "string", "aliases": ["acct"]})
    assert check(new, old, "BACKWARD") == []
    assert [p.path for p in check(new, old, "FORWARD")] == ["acct"]


def test_optional_made_required_breaks_backward() -> None:
    old = record({"name": "x", "type": ["null", "string"], "default": None})
    new = record({"name": "x", "type": "string"})
    problems = check(new, old, "FULL")
    assert [(p.direction, p.path) for p in problems] == [("BACKWARD", "x")]
    assert problems[0].reason == "null may be written but the reader's string is not nullable"


def test_union_branch_removed() -> None:
    old = record({"name": "x", "type": ["null", "string", "long"], "default": None})
    new = record({"name": "x", "type": ["null", "string"], "default": None})
    assert [p.direction for p in check(new, old, "FULL")] == ["BACKWARD"]


def test_decimal_scale_change_is_flagged() -> None:
    dec = {"type": "bytes", "logicalType": "decimal", "precision": 18}
    old = record({"name": "amount", "type": {**dec, "scale": 4}})
    new = record({"name": "amount", "type": {**dec, "scale": 2}})
    assert reasons(check(new, old, "BACKWARD")) == [("amount", "decimal scale changed from 4 to 2")]
    wider = record({"name": "amount", "type": {**dec, "precision": 20, "scale": 4}})
    assert check(wider, old, "BACKWARD") == []
    assert "precision narrowed" in check(wider, old, "FORWARD")[0].reason


def test_logical_type_change_is_flagged() -> None:
    old = record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}})
    new = record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}})
    assert reasons(check(new, old, "BACKWARD")) == [
        ("t", "logical type changed from timestamp-millis to timestamp-micros")
    ]


def test_map_and_array_paths() -> None:
    old = record(
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "a", "type": {"type": "array", "items": "string"}},
    )
    new = record(
        {"name": "m", "type": {"type": "map", "values": "int"}},
        {"name": "a", "type": {"type": "array", "items": "int"}},
    )
    assert {p.path for p in check(new, old, "BACKWARD")} == {"m.<values>", "a[]"}


def test_recursive_types_terminate() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
    }
    assert can_read(node, copy.deepcopy(node)) == []


def _versions(*docs: dict[str, Any]) -> list[SchemaVersion]:
    return [SchemaVersion("t", i + 1, 9000 + i, d, parsed=None) for i, d in enumerate(docs)]


def test_transitive_levels_compare_with_every_earlier_version() -> None:
    v1 = record(ID, {"name": "x", "type": "string"})  # x required
    v2 = record(ID, {"name": "x", "type": "string", "default": ""})
    v3 = record(ID)  # x removed: fine against v2 (had a default), breaks v1 readers
    plain = check_versions(_versions(v1, v2, v3), "FORWARD")
    assert [(r.new_version, r.old_version, r.compatible) for r in plain] == [
        (2, 1, True),
        (3, 2, True),
    ]
    transitive = check_versions(_versions(v1, v2, v3), "FORWARD_TRANSITIVE")
    assert [(r.new_version, r.old_version, r.compatible) for r in transitive] == [
        (2, 1, True),
        (3, 1, False),
        (3, 2, True),
    ]
    broken = transitive[1].problems[0]
    assert (broken.direction, broken.path, broken.reader_version, broken.writer_version) == (
        "FORWARD",
        "x",
        1,
        3,
    )
    assert "FORWARD: x:" in str(broken)
    assert check_versions(_versions(v1, v3), "NONE") == []


def test_level_properties() -> None:
    assert CompatibilityLevel.FULL.backward and CompatibilityLevel.FULL.forward
    assert not CompatibilityLevel.FULL.transitive
    assert CompatibilityLevel.BACKWARD_TRANSITIVE.transitive
    assert not CompatibilityLevel.FORWARD.backward
    assert not CompatibilityLevel.NONE.backward and not CompatibilityLevel.NONE.forward
