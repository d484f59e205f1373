"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's ``.sluice/stack.env`` or stray ``SLUICE_*`` values.

    Tests that need the local stack's settings get them from the ``stack`` fixture
    (``stack.settings_env``), which sets them explicitly.
    """
    for key in list(os.environ):
        if key.startswith("SLUICE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SLUICE_STACK_ENV", str(tmp_path_factory.getbasetemp() / "no-stack.env"))
