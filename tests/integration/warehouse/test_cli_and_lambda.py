"""``sluice warehouse init``, ``sluice load``, ``sluice reconcile`` and the Lambda handler
against the local stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.cli import main
from sluice.config import ZoneSettings
from sluice.zonestore import S3Zone
from tests.unit.warehouse.contract import ft_row, ic_row
from tests.unit.warehouse.zonefixtures import put_batch
from warehouse import init_warehouse
from warehouse.config import WarehouseSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def env(
    settings_env: dict[str, str],
    pg_schema_factory: Any,
    zone_settings: ZoneSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    schema = pg_schema_factory("cli")
    monkeypatch.setenv("SLUICE_WAREHOUSE_SCHEMA", schema)
    monkeypatch.setenv("SLUICE_S3_BUCKET", zone_settings.s3_bucket)
    monkeypatch.delenv("SLUICE_WAREHOUSE_LOAD_QUEUE_URL", raising=False)  # sweep only
    return {"schema": schema, "bucket": zone_settings.s3_bucket}


def test_init_is_idempotent(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["warehouse", "init", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["warehouse", "init", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["applied"], second["applied"], second["version"]) == ([1], [], 1)
    init_warehouse(WarehouseSettings())  # what `sluice stack up` calls


def test_load_then_reconcile(
    env: dict[str, str], s3_zone: S3Zone, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["warehouse", "init", "--json"]) == 0
    rows = [ft_row() for _ in range(6)]
    put_batch(
        s3_zone, env["bucket"], "financial-transaction", "b1", [rows[:4], [*rows[3:], b"{bad"]]
    )
    put_batch(s3_zone, env["bucket"], "insurance-claim", "b2", [[ic_row()]])
    capsys.readouterr()
    assert main(["load", "--json"]) == 0  # younger than the grace age: not yet
    assert json.loads(capsys.readouterr().out)["totals"]["loads"] == 0
    assert main(["load", "--json", "--grace", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"] == {
        "loads": 2,
        "files": 3,
        "staged": 8,
        "rejected": 1,
        "inserted": 7,
        "updated": 0,
        "tenant_conflicts": 0,
    }
    assert main(["load", "--json", "--grace", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["loads"] == 0
    assert main(["reconcile", "--no-stream", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["s3_clean"]["distinct"] == 7 and by_stage["s3_clean"]["duplicates"] == 1
    assert by_stage["warehouse"]["distinct"] == 7 and by_stage["warehouse"]["missing"] == 0
    # a window with nothing in it, and a window the wrong way round
    assert main(["reconcile", "--no-stream", "--json", "--from", "2030-01-01T00:00:00Z"]) == 0
    empty = json.loads(capsys.readouterr().out)
    # (an unreadable line has no time, so it shows in every window as unidentified)
    assert all(s["distinct"] == 0 for s in empty["stages"] if s["available"])
    assert main(["reconcile", "--no-stream", "--from", "2030-01-02", "--to", "2030-01-01"]) == 1
    assert "--from must be before --to" in capsys.readouterr().err
    # human output
    assert main(["reconcile", "--no-stream"]) == 0
    assert "OK: nothing missing" in capsys.readouterr().out


def test_reconcile_reports_what_is_missing(
    env: dict[str, str], s3_zone: S3Zone, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["warehouse", "init", "--json"]) == 0
    row = ft_row()
    put_batch(s3_zone, env["bucket"], "financial-transaction", "b1", [[row]])
    capsys.readouterr()
    assert main(["reconcile", "--no-stream", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    wh = next(s for s in report["stages"] if s["stage"] == "warehouse")
    assert wh["missing_ids"] == [row["event_id"]]


def test_one_pass_of_sluice_load_in_a_fresh_process(
    env: dict[str, str], s3_zone: S3Zone, stack: Any
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    assert main(["warehouse", "init", "--json"]) == 0
    put_batch(s3_zone, env["bucket"], "financial-transaction", "p1", [[ft_row(), ft_row()]])
    child_env = {k: v for k, v in os.environ.items() if k != "SLUICE_WAREHOUSE_LOAD_QUEUE_URL"}
    child_env["PYTHONPATH"] = str(root)

    def load(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "sluice.cli", "load", "--json", *args],
            env=child_env,
            capture_output=True,
            text=True,
            cwd=root,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out: dict[str, Any] = json.loads(done.stdout)
        return out

    assert load("--no-sweep")["totals"]["loads"] == 0  # no queue, no sweep: nothing
    assert load()["totals"]["loads"] == 0  # younger than the grace age
    assert load("--grace", "0")["totals"]["inserted"] == 2
    assert load("--grace", "0")["totals"]["loads"] == 0  # each file once
