"""Fixtures for the event contract tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas.catalogue import AVRO_DIR

EVENT_TYPES = ("financial-transaction", "insurance-claim")
ALL_VERSIONS = [(sv.event_type, sv.version) for sv in schemas.catalogue()]


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """A copy of the shipped schema files, free to break."""
    target = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, target)
    return target


@pytest.fixture
def ft_event() -> dict[str, Any]:
    """A valid financial-transaction v1 JSON body."""
    return schemas.example_event("financial-transaction", version=1)


@pytest.fixture
def ic_event() -> dict[str, Any]:
    """A valid insurance-claim v1 JSON body."""
    return schemas.example_event("insurance-claim", version=1)


def codes(exc: schemas.ValidationError) -> set[tuple[str, str]]:
    """(code, field) pairs of a validation error."""
    return {(e.code, e.field) for e in exc.errors}


Mutation = Callable[[dict[str, Any]], None]
