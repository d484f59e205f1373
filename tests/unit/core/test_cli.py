"""The ``sluice`` entry point turns an invalid setting into a one-line error."""

from __future__ import annotations

import pytest

from sluice.cli import EXIT_USAGE, main


def test_invalid_setting_names_the_variable_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_WAREHOUSE_LOAD_WORKERS", "hunter2")
    assert main(["load"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("sluice load: error: invalid setting SLUICE_WAREHOUSE_LOAD_WORKERS")
    assert "'auto'" in err
    assert "hunter2" not in err
    assert "Traceback" not in err


def test_every_invalid_setting_gets_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_WAREHOUSE_LOAD_WORKERS", "0")
    monkeypatch.setenv("SLUICE_WAREHOUSE_SCHEMA", "Not-An-Identifier")
    assert main(["load"]) == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert any(
        "SLUICE_WAREHOUSE_LOAD_WORKERS" in ln and "greater than or equal to 1" in ln for ln in lines
    )
    assert any("SLUICE_WAREHOUSE_SCHEMA" in ln and "SQL identifier" in ln for ln in lines)
