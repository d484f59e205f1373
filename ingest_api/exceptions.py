"""Errors of the ingest API.

Each :class:`ApiError` knows its HTTP status and stable ``code``; the app turns it into
the error model ``{"status", "code", "message", "errors": [{"code", "message", "field"}]}``.
No other exception type reaches a client: every known failure is mapped to one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from sluice.errors import FatalError, RetryableError, SluiceError


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field (``field`` is a dotted path, or ``None`` for the body)."""

    code: str
    message: str
    field: str | None = None


class ApiError(SluiceError):
    """An answer other than success, with its HTTP status and error code."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        errors: Sequence[FieldIssue] = (),
        retry_after: int | None = None,
        errors_omitted: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.errors: tuple[FieldIssue, ...] = tuple(errors)
        self.retry_after = retry_after
        self.errors_omitted = errors_omitted
        self.headers = headers


class MalformedBody(ApiError, FatalError):
    """The body is not JSON (or not UTF-8): 400."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "malformed_json"


class Unauthenticated(ApiError, FatalError):
    """No API key, or one that is not known: 401."""

    status: ClassVar[int] = 401
    default_code: ClassVar[str] = "unauthenticated"


class Forbidden(ApiError, FatalError):
    """A known key sending another tenant's events or a type it may not send: 403."""

    status: ClassVar[int] = 403
    default_code: ClassVar[str] = "forbidden"


class NotFound(ApiError, FatalError):
    """Unknown event type or route: 404."""

    status: ClassVar[int] = 404
    default_code: ClassVar[str] = "not_found"


class MethodNotAllowed(ApiError, FatalError):
    """A known route called with a method it does not serve: 405."""

    status: ClassVar[int] = 405
    default_code: ClassVar[str] = "method_not_allowed"


class RequestTimeout(ApiError, RetryableError):
    """The body did not arrive within the read bound: 408."""

    status: ClassVar[int] = 408
    default_code: ClassVar[str] = "body_timeout"


class ClientClosedRequest(ApiError, FatalError):
    """The client closed the connection before its body arrived (499; counted, not logged)."""

    status: ClassVar[int] = 499
    default_code: ClassVar[str] = "client_closed_request"


class IdempotencyConflict(ApiError, FatalError):
    """The same idempotency key was sent with a different event: 409."""

    status: ClassVar[int] = 409
    default_code: ClassVar[str] = "idempotency_conflict"


class IdempotencyInProgress(ApiError, RetryableError):
    """The same event is being published by another request right now: 409, retry later."""

    status: ClassVar[int] = 409
    default_code: ClassVar[str] = "idempotency_in_progress"


class PayloadTooLarge(ApiError, FatalError):
    """The body exceeds the limit (checked before parsing) or the batch has too many events."""

    status: ClassVar[int] = 413
    default_code: ClassVar[str] = "payload_too_large"


class UnsupportedMediaType(ApiError, FatalError):
    """The content type is not JSON: 415."""

    status: ClassVar[int] = 415
    default_code: ClassVar[str] = "unsupported_media_type"


class Unprocessable(ApiError, FatalError):
    """The JSON does not satisfy the event schema: 422 with every field error."""

    status: ClassVar[int] = 422
    default_code: ClassVar[str] = "validation_failed"


class RateLimited(ApiError, RetryableError):
    """The key's token bucket is empty: 429 with Retry-After."""

    status: ClassVar[int] = 429
    default_code: ClassVar[str] = "rate_limited"


class BrokerUnavailable(ApiError, RetryableError):
    """The broker failed or did not acknowledge in time: 503 with Retry-After."""

    status: ClassVar[int] = 503
    default_code: ClassVar[str] = "broker_unavailable"


class KeyStoreError(FatalError):
    """The key records (file or JSON) cannot be read or are invalid."""

    default_code: ClassVar[str] = "key_store_error"


class AcceptedLogError(RetryableError):
    """The accepted-events log could not be written (the events stay accepted).

    ``code`` is the errno name of the failing system call (``ENOSPC``, ``EACCES``, ...)
    when there is one.
    """

    default_code: ClassVar[str] = "accepted_log_error"


class StoreUnavailable(RetryableError):
    """A shared store (idempotency records, token buckets) could not be used."""

    default_code: ClassVar[str] = "store_unavailable"
