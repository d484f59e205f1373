"""Settings of the ingest API (``SLUICE_API_*``).

Connection settings (Kafka bootstrap servers, AWS endpoint), stream names and the
publisher's tuning live in :mod:`sluice.config` and :mod:`producers.config`; this class
holds what governs the HTTP edge: limits, time bounds, keys, rate limits, idempotency,
and the accepted-events log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from sluice.config import SluiceSettings


class ApiSettings(SluiceSettings):
    """The HTTP edge: limits, time bounds, API keys, rate limits, idempotency, accepted log.

    ``api_key`` is the *local* key written by ``sluice stack up`` as ``SLUICE_API_KEY``:
    it may send every tenant and every event type and is not rate limited unless
    ``api_local_key_rate_limit`` is set. Production keys come from ``api_keys_file``
    (a JSON file) and/or ``api_keys_json`` (the same JSON in a variable); only their
    SHA-256 hashes are stored (see ``docs/api.md``).
    """

    api_host: str = Field(default="127.0.0.1", description="Address `sluice api serve` binds.")
    api_port: int = Field(
        default=8000, ge=1, le=65535, description="Port `sluice api serve` binds."
    )
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")

    api_max_body_bytes: int = Field(
        default=1_048_576, gt=0, le=10_000_000, description="Largest request body (413 above)."
    )
    api_max_batch_events: int = Field(
        default=500, ge=1, le=10_000, description="Most events in one batch request."
    )
    api_publish_timeout_s: float = Field(
        default=5.0, gt=0, description="Bound on waiting for the broker before answering 503."
    )
    api_retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After seconds sent with 503 answers."
    )
    api_body_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Bound on receiving the whole request body (408 body_timeout after it).",
    )
    api_max_decompressed_bytes: int = Field(
        default=4_194_304,
        gt=0,
        le=50_000_000,
        description="Largest body after gzip decompression (413 above).",
    )
    api_max_gzip_ratio: float = Field(
        default=50.0,
        ge=1,
        description="Largest decompressed/compressed size ratio of a gzip body (413 above).",
    )
    api_max_field_errors: int = Field(
        default=20,
        ge=1,
        le=200,
        description="Field errors listed per event in a 422 (the rest are counted).",
    )
    api_ready_timeout_s: float = Field(
        default=2.0, gt=0, description="Bound on the broker check of /readyz."
    )

    api_key: SecretStr | None = Field(
        default=None, description="The local key: every tenant, every type (SLUICE_API_KEY)."
    )
    api_keys_file: Path | None = Field(default=None, description="JSON file of hashed key records.")
    api_keys_json: SecretStr | None = Field(
        default=None, description="JSON of hashed key records, inline."
    )
    api_default_rate_limit: float | None = Field(
        default=100.0, gt=0, description="Requests/s for a key record without its own rate_limit."
    )
    api_local_key_rate_limit: float | None = Field(
        default=None, gt=0, description="Requests/s for the local key (unlimited when unset)."
    )
    api_rate_limit_burst_s: float = Field(
        default=2.0, gt=0, description="Bucket size, in seconds' worth of the key's rate."
    )

    api_idempotency_ttl_s: float = Field(
        default=24 * 3600.0, gt=0, description="How long an accepted event's answer is replayed."
    )
    api_idempotency_max_entries: int = Field(
        default=100_000, ge=1, description="Most remembered answers per process (LRU beyond)."
    )

    api_idempotency_store: Literal["memory", "dynamodb"] = Field(
        default="memory",
        description=(
            "Where accepted answers are remembered: memory (this process) or dynamodb "
            "(SLUICE_API_IDEMPOTENCY_TABLE, shared by every process and Lambda container)."
        ),
    )
    api_idempotency_table: str = Field(
        default="sluice-api-idempotency",
        min_length=3,
        max_length=255,
        description="DynamoDB table of the idempotency store (key `id`, TTL `expiration`).",
    )
    api_idempotency_in_progress_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds an in-progress claim blocks other processes before it may be taken.",
    )
    api_rate_limit_store: Literal["memory", "dynamodb"] = Field(
        default="memory",
        description=(
            "Where the per-key token buckets live: memory (per process) or dynamodb "
            "(SLUICE_API_RATE_LIMIT_TABLE, shared; tokens leased in blocks)."
        ),
    )
    api_rate_limit_table: str = Field(
        default="sluice-api-rate-limits",
        min_length=3,
        max_length=255,
        description="DynamoDB table of the shared token buckets (key `key_id`).",
    )
    api_rate_limit_lease_s: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="Seconds' worth of a key's rate a process leases from the shared bucket.",
    )

    api_accepted_log: Literal["none", "file", "log"] = Field(
        default="none",
        description=(
            "Where accepted events are recorded for `sluice reconcile --accepted-log`: "
            "none, file (NDJSON at SLUICE_API_ACCEPTED_LOG_PATH) or log (logger sluice.accepted)."
        ),
    )
    api_accepted_log_path: Path | None = Field(
        default=None,
        description="NDJSON file the `file` accepted log appends to, one line per accepted event.",
    )
