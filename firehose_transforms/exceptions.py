"""Errors of the transform and of the local delivery.

:class:`RecordRejected` is not raised out of the transform: it carries the reason a
single record becomes ``ProcessingFailed`` (or ``Dropped``) inside the pure core.
"""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import ConfigurationError, FatalError, RetryableError


class TransformError(FatalError):
    """A transformation event that breaks the Firehose contract (not a bad record)."""

    default_code: ClassVar[str] = "transform_error"


class RecordRejected(FatalError):
    """One event cannot be delivered as a warehouse row.

    Attributes:
        code: the stable reason code written into the error record
            (``undecodable``, ``unknown_currency``, ``negative_claim_amount``, ...).
    """

    default_code: ClassVar[str] = "rejected"


class DeliveryError(RetryableError):
    """A source or the object store failed in a way that may pass (network, throttling)."""

    default_code: ClassVar[str] = "delivery_error"


class DeliveryConfigurationError(ConfigurationError):
    """The delivery options are inconsistent (hints out of range, unknown source...)."""

    default_code: ClassVar[str] = "delivery_configuration_error"


class InvocationFailed(RetryableError):
    """The transform invocation raised or answered outside the contract.

    Attributes:
        code: the Firehose error code (``Lambda.FunctionError``, ``Lambda.InvalidOutput``,
            ``Lambda.MissingRecordId``, ``Lambda.DuplicatedRecordId``).
    """

    default_code: ClassVar[str] = "Lambda.FunctionError"
