"""Published schema versions never change: pinned digests and golden wire vectors.

A version, once data has been written with it, is immutable: its bytes on the wire
and the meaning of its fields (logical types, defaults, formats) must stay as they
are. Changing a published ``.avsc`` (other than its ``doc`` strings) fails here; add
a new version instead (docs/schemas.md, "Adding a version").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import schemas

from .conftest import ALL_VERSIONS

GOLDEN = Path(__file__).parent / "golden"

# (Avro Parsing Canonical Form SHA-256, SHA-256 of the full schema without docs)
PUBLISHED: dict[tuple[str, int], tuple[str, str]] = {
    ("financial-transaction", 1): (
        "3731a63f1b0b18fe5b4766d85543f958d1ec44fbb46dc2602d53b3cb110b1f59",
        "2e38942ccdba3967e60dbbfabc1558fef67f1285e33eeb23afe9f1818439ff09",
    ),
    ("financial-transaction", 2): (
        "ca13a8db7f9ed2e4d745c8edef92103e86594168d1a02735d24c028cdfe99ca3",
        "a11f897446cda9722bee660f1d2a436991a7e266923f88d1402632f2d984875c",
    ),
    ("insurance-claim", 1): (
        "42f78aaa3c050613670a590a5bfe4a641717120a1a0311155584f3c21b18e68e",
        "a119051d4268a102c9ab30fcd850e5a920e31ba5fe0ce9acd25ffe65ce14ff08",
    ),
    ("insurance-claim", 2): (
        "9a22ef8554eb9c8e2483e708da9738e99b14b327a685b2fd09007649e6b24f75",
        "8de017106702e25396d474b96197fdd978239fdc655113dedc2084fa73b717e2",
    ),
}


def _without_docs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_docs(v) for k, v in value.items() if k != "doc"}
    if isinstance(value, list):
        return [_without_docs(v) for v in value]
    return value


def _contract_digest(schema: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_without_docs(schema), sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(("event_type", "version"), ALL_VERSIONS)
def test_published_versions_are_unchanged(event_type: str, version: int) -> None:
    sv = schemas.catalogue().get(event_type, version)
    assert (event_type, version) in PUBLISHED, "pin the digests of a new version here"
    canonical, contract = PUBLISHED[(event_type, version)]
    assert sv.fingerprint == canonical, "the wire format of a published version changed"
    assert _contract_digest(sv.schema) == contract, "a published version's contract changed"


@pytest.mark.parametrize(("event_type", "version"), ALL_VERSIONS)
def test_golden_wire_vectors(event_type: str, version: int) -> None:
    data = bytes.fromhex((GOLDEN / f"{event_type}.v{version}.avro.hex").read_text().strip())
    expected = json.loads((GOLDEN / f"{event_type}.v{version}.json").read_text())
    decoded = schemas.decode(data)
    assert (decoded.event_type, decoded.version) == (event_type, version)
    assert schemas.to_json(decoded.record) == expected
    record = schemas.parse_event(event_type, expected, allow_server_fields=True)
    assert schemas.encode(event_type, record) == data


def test_no_published_version_is_missing() -> None:
    # Data written with any id in the table must stay readable: its file may not go.
    from schemas.catalogue import SCHEMA_IDS
    from sluice.config import EventType

    loaded = {(sv.event_type, sv.version) for sv in schemas.catalogue()}
    assert loaded == set(SCHEMA_IDS) == set(PUBLISHED)
    assert set(schemas.catalogue().event_types()) == {e.value for e in EventType}
