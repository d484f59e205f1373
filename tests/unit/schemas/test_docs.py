"""docs/schemas.md stays in step with the schemas."""

from __future__ import annotations

from pathlib import Path

import schemas
from schemas.catalogue import SCHEMA_IDS
from schemas.exceptions import FIELD_ERROR_CODES

DOC = Path(__file__).resolve().parents[3] / "docs" / "schemas.md"


def _names(fields: list[dict[str, object]], prefix: str = "") -> list[str]:
    out: list[str] = []
    for field in fields:
        name = f"{prefix}{field['name']}"
        out.append(name)
        kind = field["type"]
        branches = kind if isinstance(kind, list) else [kind]
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") == "record":
                out += _names(branch["fields"], f"{name}.")  # type: ignore[arg-type]
    return out


def test_every_field_code_and_id_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for sv in schemas.catalogue():
        for name in _names(sv.schema["fields"]):
            assert f"`{name}`" in text, f"{sv.event_type} v{sv.version}: {name} not documented"
    for code in FIELD_ERROR_CODES:
        assert f"`{code}`" in text, code
    for (event_type, version), schema_id in SCHEMA_IDS.items():
        assert f"| {event_type} | {version} | {schema_id} |" in text
