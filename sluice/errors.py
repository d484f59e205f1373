"""The one root of every exception Sluice raises.

Every error has a *kind*: ``retryable`` (a transient condition: throttling, a broker
that is not reachable right now, a lost connection) or ``fatal`` (bad input, bad
configuration, a record that will never succeed). Retry decisions are made in one
place, by looking at :attr:`SluiceError.retryable`, never by matching messages.

Errors that wrap a client error (botocore, librdkafka, psycopg) keep the client's
code in :attr:`SluiceError.code` and the original exception as ``__cause__``.
"""

from __future__ import annotations

from typing import ClassVar


class SluiceError(Exception):
    """Root of all Sluice errors.

    Args:
        message: a sentence for people; never contains secrets or PII.
        code: a stable machine-readable code (the client's own code when wrapping).
    """

    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "sluice_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code != self.default_code else self.message


class RetryableError(SluiceError):
    """A transient failure: the same call may succeed later."""

    retryable: ClassVar[bool] = True
    default_code: ClassVar[str] = "retryable"


class FatalError(SluiceError):
    """A failure that will not go away by retrying (bad input, bad configuration)."""

    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "fatal"


class ConfigurationError(FatalError):
    """Settings are missing, inconsistent or point at something that does not exist."""

    default_code: ClassVar[str] = "configuration_error"


class ManifestError(FatalError):
    """A manifest or zone object is not what the S3 zone contract says, or is missing."""

    default_code: ClassVar[str] = "manifest_invalid"


class ZoneReadError(RetryableError):
    """Reading or writing the S3 zone failed for a transient reason."""

    default_code: ClassVar[str] = "zone_read_failed"


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` is a Sluice error of the retryable kind."""
    return isinstance(exc, SluiceError) and exc.retryable
