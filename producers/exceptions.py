"""Errors raised by publishers.

Per-record failures are never raised: they come back as failed
:class:`~producers.models.PublishResult` entries. Exceptions are for calls that cannot
be made at all (a closed publisher, a record that can never be built).
"""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import FatalError, RetryableError


class PublisherClosedError(FatalError):
    """``publish`` was called after ``close``."""

    default_code: ClassVar[str] = "publisher_closed"


class RecordBuildError(FatalError):
    """An event cannot be turned into an :class:`~producers.models.OutgoingRecord`."""

    default_code: ClassVar[str] = "record_build_error"


class PublishTimeoutError(RetryableError):
    """A synchronous publish did not finish within its timeout."""

    default_code: ClassVar[str] = "publish_timeout"
