"""Settings of the event contract: the key for hashing national ids."""

from __future__ import annotations

from pydantic import Field, SecretStr

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
