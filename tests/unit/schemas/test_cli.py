"""``sluice schemas list | show | check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cli import main


def test_check_passes_on_the_shipped_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check"]) == 0
    out = capsys.readouterr().out
    assert "all compatible" in out
    assert "financial-transaction" in out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check", "--level", "full_transitive", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["level"] == "FULL_TRANSITIVE"
    assert report["compatible"] is True
    assert {(p["event_type"], p["new_version"], p["old_version"]) for p in report["pairs"]} == {
        ("financial-transaction", 2, 1),
        ("insurance-claim", 2, 1),
    }


def _break_v2(schema_dir: Path) -> None:
    path = schema_dir / "insurance-claim.v2.avsc"
    document = json.loads(path.read_text())
    for field in document["fields"]:
        if field["name"] == "status":
            field["type"]["symbols"].remove("CLOSED")
        if field["name"] == "adjuster_id":
            field["type"] = "string"
            del field["default"]
    path.write_text(json.dumps(document))


def test_check_fails_on_a_break(schema_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _break_v2(schema_dir)
    assert main(["schemas", "check", "--dir", str(schema_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["compatible"] is False
    claim = next(p for p in report["pairs"] if p["event_type"] == "insurance-claim")
    found = {(p["direction"], p["path"]) for p in claim["problems"]}
    assert found == {("BACKWARD", "status"), ("BACKWARD", "adjuster_id")}
    assert main(["schemas", "check", "--dir", str(schema_dir), "--level", "FORWARD"]) == 0
    assert main(["schemas", "check", "--dir", str(schema_dir)]) == 1
    out = capsys.readouterr().out
    assert "incompatible schema versions" in out
    assert "adjuster_id" in out


def test_check_reports_an_invalid_schema_file(
    schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (schema_dir / "insurance-claim.v1.avsc").write_text("{")
    assert main(["schemas", "check", "--dir", str(schema_dir)]) == 1
    assert "insurance-claim.v1.avsc: invalid JSON" in capsys.readouterr().err


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "show", "financial-transaction", "--version", "1"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["name"] == "FinancialTransaction"
    assert "fraud_score" not in {f["name"] for f in schema["fields"]}
    assert main(["schemas", "show", "insurance-claim"]) == 0
    assert "reserve_amount" in capsys.readouterr().out
    assert main(["schemas", "show", "insurance-claim", "--version", "9"]) == 1
    assert "no version 9" in capsys.readouterr().err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["event_type"], r["version"], r["schema_id"], r["latest"]) for r in rows] == [
        ("financial-transaction", 1, 1001, False),
        ("financial-transaction", 2, 1002, True),
        ("insurance-claim", 1, 2001, False),
        ("insurance-claim", 2, 2002, True),
    ]
    assert main(["schemas", "list"]) == 0
    assert "2002" in capsys.readouterr().out


def test_example_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "example", "insurance-claim", "--version", "1"]) == 0
    good = json.loads(capsys.readouterr().out)
    bad = {**good, "currency": "EURO"}
    del bad["claim_id"]
    single = tmp_path / "one.json"
    single.write_text(json.dumps(good))
    assert main(["schemas", "validate", "insurance-claim", str(single)]) == 0
    assert "1 of 1 event(s) valid" in capsys.readouterr().out
    ndjson = tmp_path / "many.ndjson"
    ndjson.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert main(["schemas", "validate", "insurance-claim", str(ndjson), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["events"], report["invalid"]) == (2, 1)
    assert {(e["code"], e["field"]) for e in report["results"][1]["errors"]} == {
        ("invalid_format", "currency"),
        ("missing", "claim_id"),
    }
    array = tmp_path / "array.json"
    array.write_text(json.dumps([good, bad]))
    assert main(["schemas", "validate", "insurance-claim", str(array)]) == 1
    out = capsys.readouterr().out
    assert "event 1: claim_id: missing: required" in out
    broken = tmp_path / "broken.json"
    broken.write_text("{nope\n")
    assert main(["schemas", "validate", "insurance-claim", str(broken)]) == 1
    assert "neither JSON nor NDJSON" in capsys.readouterr().err
