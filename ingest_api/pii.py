"""PII masking at the edge: ``schemas.pii.mask_record`` with the key from settings.

Applied to every validated event before it is encoded and published, walking the
event's Avro schema: ``sluice.format: pan`` fields to a masked PAN, ``national-id``
fields to a keyed HMAC, and every other string field and every map key (at any depth)
scanned for card numbers, masked in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from schemas import catalogue
from schemas.config import PiiSettings
from schemas.pii import mask_record


class EdgeMasker:
    """Callable ``(event_type, record) -> masked record`` with a fixed HMAC key.

    Without a key, events that carry a national id cannot be masked and
    ``schemas.exceptions.PiiError`` (code ``pii_key_missing``) is raised for them.
    """

    def __init__(self, hmac_key: SecretStr | bytes | None) -> None:
        self._key = hmac_key
        self._schemas: dict[tuple[str, Any], Mapping[str, Any] | None] = {}

    @classmethod
    def from_settings(cls, settings: PiiSettings | None = None) -> EdgeMasker:
        """The key from ``SLUICE_PII_HMAC_KEY`` (may be unset)."""
        return cls((settings or PiiSettings()).pii_hmac_key)

    def __call__(self, event_type: str, record: dict[str, Any]) -> dict[str, Any]:
        """A masked copy of ``record`` (validated: its version is in the catalogue)."""
        version = record.get("schema_version")
        try:
            schema = self._schemas[(event_type, version)]
        except (KeyError, TypeError):
            cat = catalogue()
            schema = (
                cat.get(event_type, version).schema
                if type(version) is int and cat.has(event_type, version)
                else None
            )
            if type(version) is int:
                self._schemas[(event_type, version)] = schema
        return mask_record(record, hmac_key=self._key, schema=schema)
