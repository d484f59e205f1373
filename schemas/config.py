"""Settings of the event contract: the key for hashing national ids, the plausibility rules."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, SecretStr, field_validator

from sluice.config import SluiceSettings
from sluice.errors import ConfigurationError


class PiiSettings(SluiceSettings):
    """PII handling.

    ``SLUICE_PII_HMAC_KEY``: the secret key of the keyed HMAC-SHA256 applied to
    national ids (``sluice stack up`` writes a random one). The same key must be used
    everywhere, or the hashes of one person stop matching.
    """

    pii_hmac_key: SecretStr | None = Field(
        default=None,
        description=(
            "Secret key of the HMAC-SHA256 applied to national ids; the same everywhere "
            "(required wherever national ids are masked)."
        ),
    )

    def hmac_key(self) -> bytes:
        """The key as bytes; :class:`ConfigurationError` when it is not set."""
        if self.pii_hmac_key is None or not self.pii_hmac_key.get_secret_value():
            raise ConfigurationError(
                "SLUICE_PII_HMAC_KEY is not set; national ids cannot be hashed",
                code="pii_key_missing",
            )
        return self.pii_hmac_key.get_secret_value().encode("utf-8")


class RuleSettings(SluiceSettings):
    """The plausibility rules every event passes at the edge and in the transform.

    ``SLUICE_RULES_OCCURRED_AT_NOT_BEFORE``: the earliest ``occurred_at`` taken (UTC);
    ``SLUICE_RULES_OCCURRED_AT_MAX_AHEAD_S``: how far ahead of now ``occurred_at`` may be.
    """

    rules_occurred_at_not_before: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC),
        description="Earliest occurred_at accepted, ISO-8601 (UTC when no offset is given).",
    )
    rules_occurred_at_max_ahead_s: float = Field(
        default=86_400.0,
        ge=0,
        description="How many seconds ahead of the server's clock occurred_at may be.",
    )

    @field_validator("rules_occurred_at_not_before")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
