"""PII masking at the edge: ``schemas.pii.mask_record`` with the key from settings.

Applied to every validated event before it is encoded and published: ``card_number``
to first six / last four, ``claimant_national_id`` to a keyed HMAC, and Luhn-valid
card numbers in free text (merchant name, metadata values, ...) masked in place.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from schemas.config import PiiSettings
from schemas.pii import mask_record


class EdgeMasker:
    """Callable ``(event_type, record) -> masked record`` with a fixed HMAC key.

    Without a key, events that carry a national id cannot be masked and
    ``schemas.exceptions.PiiError`` (code ``pii_key_missing``) is raised for them.
    """

    def __init__(self, hmac_key: SecretStr | bytes | None) -> None:
        self._key = hmac_key

    @classmethod
    def from_settings(cls, settings: PiiSettings | None = None) -> EdgeMasker:
        """The key from ``SLUICE_PII_HMAC_KEY`` (may be unset)."""
        return cls((settings or PiiSettings()).pii_hmac_key)

    def __call__(self, event_type: str, record: dict[str, Any]) -> dict[str, Any]:
        """A masked copy of ``record``."""
        return mask_record(record, hmac_key=self._key)
