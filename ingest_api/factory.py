"""Builds what the settings choose: the accepted-events log (``SLUICE_API_ACCEPTED_LOG``),
the idempotency store and the rate limiter (``SLUICE_API_*_STORE``).

Backends are imported only when chosen. Every misconfiguration is refused here, when
the app is built (at startup), never on a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingest_api.base import AcceptedLog, NoAcceptedLog
from ingest_api.config import ApiSettings
from ingest_api.exceptions import AcceptedLogError
from ingest_api.idempotency import IdempotencyStore, MemoryIdempotencyStore
from ingest_api.ratelimit import LeasedRateLimiter, RateLimiter
from sluice.errors import ConfigurationError


def create_accepted_log(settings: ApiSettings) -> AcceptedLog:
    """The accepted log of ``settings.api_accepted_log``: ``none``, ``file`` or ``log``.

    ``file`` opens (or creates) ``api_accepted_log_path`` now; ``log`` makes sure the
    ``sluice.accepted`` logger emits its lines.

    Raises:
        ConfigurationError: ``file`` without a path, or a path that cannot be opened
            for appending.
    """
    kind = settings.api_accepted_log
    if kind == "none":
        return NoAcceptedLog()
    if kind == "file":
        path = settings.api_accepted_log_path
        if path is None:
            raise ConfigurationError(
                "SLUICE_API_ACCEPTED_LOG=file needs SLUICE_API_ACCEPTED_LOG_PATH "
                "(the NDJSON file to append accepted events to)",
                code="accepted_log_path_missing",
            )
        from ingest_api.accepted_file import FileAcceptedLog

        file_log = FileAcceptedLog(path)
        try:
            file_log.open()
        except AcceptedLogError as exc:
            raise ConfigurationError(
                f"SLUICE_API_ACCEPTED_LOG_PATH: {exc.message}", code=exc.code
            ) from exc
        return file_log
    if kind == "log":
        from ingest_api.accepted_logger import LoggerAcceptedLog

        logger_log = LoggerAcceptedLog()
        logger_log.ensure_emitted()
        return logger_log
    raise ConfigurationError(  # pragma: no cover - the settings type allows nothing else
        f"unknown accepted log {kind!r}; use none, file or log", code="accepted_log_unknown"
    )


def create_idempotency_store(
    settings: ApiSettings, clock: Callable[[], float] = time.time
) -> IdempotencyStore:
    """The idempotency store of ``SLUICE_API_IDEMPOTENCY_STORE`` (no network call here).

    ``clock`` is the memory store's clock (the DynamoDB store uses epoch seconds).
    """
    if settings.api_idempotency_store == "dynamodb":
        from ingest_api.dynamodb import DynamoIdempotencyStore

        return DynamoIdempotencyStore(
            settings.api_idempotency_table,
            settings.api_idempotency_ttl_s,
            settings.api_idempotency_in_progress_s,
        )
    return MemoryIdempotencyStore(
        settings.api_idempotency_ttl_s,
        settings.api_idempotency_in_progress_s,
        clock,
        max_entries=settings.api_idempotency_max_entries,
    )


def create_rate_limiter(settings: ApiSettings) -> RateLimiter | LeasedRateLimiter:
    """The limiter of ``SLUICE_API_RATE_LIMIT_STORE`` (no network call here)."""
    if settings.api_rate_limit_store == "dynamodb":
        from ingest_api.dynamodb import DynamoTokenBuckets

        return LeasedRateLimiter(
            DynamoTokenBuckets(settings.api_rate_limit_table),
            burst_s=settings.api_rate_limit_burst_s,
            lease_s=settings.api_rate_limit_lease_s,
        )
    return RateLimiter(burst_s=settings.api_rate_limit_burst_s)
