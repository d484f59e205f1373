"""The schema catalogue: loading, ids, lookups, and clear errors for broken .avsc files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas import SchemaCatalogue, SchemaError, UnknownSchemaError
from schemas.catalogue import SCHEMA_IDS


def test_shipped_catalogue_has_two_versions_of_each_type() -> None:
    cat = schemas.catalogue()
    assert cat.event_types() == ["financial-transaction", "insurance-claim"]
    assert [v.version for v in cat.versions("financial-transaction")] == [1, 2]
    assert [v.version for v in cat.versions("insurance-claim")] == [1, 2]
    assert len(cat) == 4


def test_catalogue_is_loaded_once() -> None:
    assert schemas.catalogue() is schemas.catalogue()


def test_schema_ids_are_the_fixed_table() -> None:
    # Ids are on the wire: they must never move.
    assert dict(SCHEMA_IDS) == {
        ("financial-transaction", 1): 1001,
        ("financial-transaction", 2): 1002,
        ("insurance-claim", 1): 2001,
        ("insurance-claim", 2): 2002,
    }
    cat = schemas.catalogue()
    for sv in cat:
        assert sv.schema_id == SCHEMA_IDS[(sv.event_type, sv.version)]
        assert cat.by_id(sv.schema_id) is sv


def test_latest_get_by_id() -> None:
    cat = schemas.catalogue()
    assert cat.latest("insurance-claim").version == 2
    assert cat.get("insurance-claim") is cat.latest("insurance-claim")
    assert cat.get("financial-transaction", 1).schema_id == 1001
    assert cat.get("financial-transaction", 1).name == "io.sluice.events.FinancialTransaction"
    with pytest.raises(UnknownSchemaError, match="no version 7"):
        cat.get("financial-transaction", 7)
    with pytest.raises(UnknownSchemaError, match="unknown event type 'nope'"):
        cat.latest("nope")
    with pytest.raises(UnknownSchemaError, match="unknown schema id 99"):
        cat.by_id(99)


def test_event_schemas_repeat_the_envelope_first() -> None:
    cat = schemas.catalogue()
    assert cat.envelope is not None
    envelope_names = [f["name"] for f in cat.envelope["fields"]]
    assert envelope_names == [
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "source",
        "tenant_id",
        "ingested_at",
    ]
    for sv in cat:
        assert sv.field_names[: len(envelope_names)] == envelope_names


def test_contract_fields_and_enums() -> None:
    cat = schemas.catalogue()
    ft = {f["name"]: f for f in cat.get("financial-transaction", 1).schema["fields"]}
    assert ft["amount"]["type"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 18,
        "scale": 4,
    }
    assert ft["transaction_type"]["type"]["symbols"] == [
        "PURCHASE",
        "REFUND",
        "TRANSFER",
        "WITHDRAWAL",
        "DEPOSIT",
        "FEE",
    ]
    assert ft["channel"]["type"]["symbols"] == ["CARD", "ACH", "WIRE", "SEPA", "MOBILE", "BRANCH"]
    assert ft["status"]["type"]["symbols"] == ["PENDING", "SETTLED", "DECLINED", "REVERSED"]
    assert ft["card_number"]["type"] == ["null", "string"]
    assert ft["card_number"]["default"] is None
    ic = {f["name"]: f for f in cat.get("insurance-claim", 1).schema["fields"]}
    assert ic["line_of_business"]["type"]["symbols"] == [
        "AUTO",
        "HOME",
        "HEALTH",
        "LIFE",
        "TRAVEL",
        "COMMERCIAL",
    ]
    assert ic["status"]["type"]["symbols"] == [
        "OPENED",
        "UNDER_REVIEW",
        "APPROVED",
        "DENIED",
        "PAID",
        "CLOSED",
    ]
    assert ic["loss_date"]["type"] == {"type": "int", "logicalType": "date"}
    v2 = cat.get("insurance-claim", 2).field_names
    assert v2[-2:] == ["adjuster_id", "reserve_amount"]
    assert cat.get("financial-transaction", 2).field_names[-2:] == [
        "authorization_code",
        "fraud_score",
    ]


def _edit(directory: Path, name: str, change: Any) -> None:
    path = directory / name
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _field(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in document["fields"] if f["name"] == name)


def _merchant_field(document: dict[str, Any], name: str) -> dict[str, Any]:
    merchant = _field(document, "merchant")["type"][1]
    return next(f for f in merchant["fields"] if f["name"] == name)


FT1 = "financial-transaction.v1.avsc"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda d: _field(d, "currency").__setitem__("type", "strng"),
            "currency",
            "unknown type 'strng'",
        ),
        (
            lambda d: _field(d, "channel")["type"].__setitem__("default", "POST"),
            "channel",
            "enum default 'POST' is not one of its symbols",
        ),
        (
            lambda d: _field(d, "amount")["type"].pop("precision"),
            "amount",
            'decimal needs "precision"',
        ),
        (
            lambda d: _field(d, "amount")["type"].__setitem__("scale", 20),
            "amount",
            "decimal scale must be an integer between 0 and the precision",
        ),
        (
            lambda d: _field(d, "amount")["type"].__setitem__("type", "string"),
            "amount",
            "logicalType 'decimal' needs type bytes or fixed",
        ),
        (
            lambda d: _merchant_field(d, "mcc").__setitem__("type", "varchar"),
            "merchant.mcc",
            "unknown type 'varchar'",
        ),
        (
            lambda d: _field(d, "card_number").__setitem__("default", "x"),
            "card_number",
            "invalid default 'x'",
        ),
        (
            lambda d: _field(d, "card_number").__setitem__("type", ["string", "null"]),
            "card_number",
            "invalid default None",
        ),
        (
            lambda d: _field(d, "metadata").__setitem__("default", []),
            "metadata",
            "invalid default",
        ),
        (
            lambda d: _field(d, "status")["type"].__setitem__("symbols", ["OK", "OK"]),
            "status",
            "enum symbols must be unique",
        ),
        (
            lambda d: _field(d, "card_number").__setitem__("type", ["null", ["null", "string"]]),
            "card_number",
            "may not directly contain another union",
        ),
        (
            lambda d: _field(d, "card_number").__setitem__("type", ["null", "string", "string"]),
            "card_number",
            "two branches of type 'string'",
        ),
        (
            lambda d: d["fields"].append({"name": "amount", "type": "string"}),
            "amount",
            "duplicate field name",
        ),
        (
            lambda d: d["fields"].append({"name": "no_type"}),
            "no_type",
            'field needs a "type"',
        ),
        (
            lambda d: _field(d, "currency").__setitem__("sluice.format", "iso9999"),
            "currency",
            "unknown sluice.format 'iso9999'",
        ),
        (
            lambda d: _field(d, "currency").__setitem__("sluice.fromat", "iso4217"),
            "currency",
            "unknown attribute 'sluice.fromat'",
        ),
        (
            lambda d: _field(d, "amount").__setitem__("sluice.currency_field", "ccy"),
            "amount",
            "sluice.currency_field names no field",
        ),
        (
            lambda d: _field(d, "occurred_at")["type"].__setitem__(
                "logicalType", "timestamp-nanos"
            ),
            "occurred_at",
            "unknown logicalType 'timestamp-nanos'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_broken_schema_names_the_file_and_field(
    schema_dir: Path, change: Any, field: str, message: str
) -> None:
    _edit(schema_dir, FT1, change)
    with pytest.raises(SchemaError) as info:
        SchemaCatalogue.load(schema_dir)
    text = str(info.value)
    assert text.startswith(f"{FT1}: field {field!r}: ") or (
        # envelope fields are reported against the envelope definition
        FT1 in text and field in text
    ), text
    assert message in text
    assert info.value.file == FT1
    assert info.value.field == field


def test_invalid_json_names_file_line_and_column(schema_dir: Path) -> None:
    (schema_dir / FT1).write_text('{"type": "record",\n "name": }')
    with pytest.raises(SchemaError, match=rf"{FT1}: invalid JSON at line 2 column"):
        SchemaCatalogue.load(schema_dir)


def test_top_level_must_be_a_record(schema_dir: Path) -> None:
    (schema_dir / FT1).write_text('"string"')
    with pytest.raises(SchemaError, match=f"{FT1}: the top level must be"):
        SchemaCatalogue.load(schema_dir)


def test_envelope_must_be_repeated_exactly(schema_dir: Path) -> None:
    _edit(schema_dir, FT1, lambda d: _field(d, "tenant_id").__setitem__("type", "int"))
    with pytest.raises(SchemaError, match=f"{FT1}: field 'tenant_id': differs from its definition"):
        SchemaCatalogue.load(schema_dir)
    _edit(schema_dir, FT1, lambda d: d["fields"].pop(0))
    with pytest.raises(SchemaError, match="envelope field #1 must be 'event_id'"):
        SchemaCatalogue.load(schema_dir)


def test_file_without_schema_id_is_refused(schema_dir: Path) -> None:
    (schema_dir / "financial-transaction.v3.avsc").write_text(
        (schema_dir / "financial-transaction.v2.avsc").read_text()
    )
    with pytest.raises(SchemaError, match="no schema id assigned to"):
        SchemaCatalogue.load(schema_dir)
    ids = {**SCHEMA_IDS, ("financial-transaction", 3): 1003}
    cat = SchemaCatalogue.load(schema_dir, schema_ids=ids)
    assert cat.latest("financial-transaction").schema_id == 1003


def test_misnamed_file_is_refused(schema_dir: Path) -> None:
    (schema_dir / "FinancialTransaction-2.avsc").write_text((schema_dir / FT1).read_text())
    with pytest.raises(
        SchemaError, match=r"FinancialTransaction-2\.avsc: schema files must be named"
    ):
        SchemaCatalogue.load(schema_dir)


def test_versions_must_be_contiguous(schema_dir: Path) -> None:
    (schema_dir / "financial-transaction.v2.avsc").rename(
        schema_dir / "financial-transaction.v3.avsc"
    )
    ids = {**SCHEMA_IDS, ("financial-transaction", 3): 1003}
    with pytest.raises(SchemaError, match=r"contiguous from 1; missing \[2\]"):
        SchemaCatalogue.load(schema_dir, schema_ids=ids)


def test_duplicate_schema_ids_are_refused(schema_dir: Path) -> None:
    ids = {**SCHEMA_IDS, ("insurance-claim", 2): 1001}
    with pytest.raises(SchemaError, match="schema id 1001 is used by"):
        SchemaCatalogue.load(schema_dir, schema_ids=ids)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"no <event-type>\.v<N>\.avsc files"):
        SchemaCatalogue.load(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["fields"].append(
                {"name": "either", "type": ["null", "string", "long"], "default": None}
            ),
            "field 'either': the codec supports unions of null and one other type only",
        ),
        (
            lambda d: d["fields"].append(
                {
                    "name": "fee",
                    "type": {
                        "type": "fixed",
                        "name": "Fee",
                        "size": 8,
                        "logicalType": "decimal",
                        "precision": 18,
                        "scale": 4,
                    },
                }
            ),
            "field 'fee': the codec cannot validate type 'fixed'",
        ),
    ],
)
def test_constructs_the_codec_cannot_validate_fail_at_load(
    schema_dir: Path, change: Any, message: str
) -> None:
    _edit(schema_dir, FT1, change)
    with pytest.raises(SchemaError) as info:
        SchemaCatalogue.load(schema_dir)
    assert str(info.value).startswith(f"{FT1}: ")
    assert message in str(info.value)
