"""Errors of the schema registry boundary, each of the retryable or the fatal kind.

- :class:`RegistryUnavailableError` (retryable): the registry could not be asked
  (connection refused, timeout, throttling, a 5xx). The record is fine; retry it later.
- :class:`~schemas.exceptions.UnknownSchemaIdError` (fatal, from ``schemas.exceptions``):
  the registry answered that the id or version UUID does not exist. Retrying cannot
  help: the record belongs in the DLQ or the error prefix.
- :class:`SchemaNotRegisteredError` (fatal): a catalogue version the registry does not
  hold (run ``sluice schemas register``).
- :class:`RegistrationRefusedError` (fatal): the registry refused a new version, with
  its own reason (typically an incompatible change).
"""

from __future__ import annotations

from typing import ClassVar

from schemas.exceptions import SchemaError
from sluice.errors import RetryableError


class RegistryUnavailableError(RetryableError):
    """The schema registry could not be reached or did not answer in time."""

    default_code: ClassVar[str] = "registry_unavailable"


class SchemaNotRegisteredError(SchemaError):
    """A schema version of the catalogue is not in the registry."""

    default_code: ClassVar[str] = "schema_not_registered"


class RegistrationRefusedError(SchemaError):
    """The registry refused to register a schema version; the message is its reason."""

    default_code: ClassVar[str] = "registration_refused"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        event_type: str | None = None,
        version: int | None = None,
        registry: str | None = None,
    ) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.version = version
        self.registry = registry
        self.reason = reason
