"""Settings of the transform (``SLUICE_TRANSFORM_*``, ``SLUICE_PII_HMAC_KEY``) and of the
local delivery (``SLUICE_FIREHOSE_*``).

Both derive from :class:`sluice.config.SluiceSettings`: frozen, ``SLUICE_`` prefix,
``.sluice/stack.env`` as fallback. Bucket and prefixes come from
:class:`sluice.config.ZoneSettings`; stream names from :class:`sluice.config.StreamSettings`.
"""

from __future__ import annotations

from pydantic import Field

from sluice.config import EventType, SluiceSettings
from sluice.streams.config import ReaderOptions

# Firehose's own limits and defaults (Amazon Data Firehose developer guide).
MIN_BUFFER_MIB = 1
MAX_BUFFER_MIB = 128
MIN_BUFFER_SECONDS = 0
MAX_BUFFER_SECONDS = 900
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""Synchronous Lambda invocations: 6 MB for the request and 6 MB for the response."""

DEFAULT_LAMBDA_ARN = "arn:aws:lambda:us-east-1:000000000000:function:sluice-firehose-transform"


class TransformSettings(SluiceSettings):
    """How the transform cleans and what it drops.

    The key of the national-id HMAC comes from :class:`schemas.config.PiiSettings`
    (``SLUICE_PII_HMAC_KEY``, the key the ingest API uses). Without it a claim carrying
    a clear national id fails with ``pii_key_missing`` rather than reaching the
    warehouse unmasked.

    Attributes:
        transform_test_sources: comma-separated ``source`` prefixes that mark test
            events (dropped). ``metadata.test`` = ``true``/``1``/``yes`` marks one too.
        transform_max_response_bytes: the response budget (the Lambda 6 MB limit less
            a margin for the envelope).
        transform_validate_json: also run JSON events through the full schema
            validation of the codec (``schemas.codec.parse_event``). Off by default: JSON
            on the stream was validated by the ingest API, and the cleaning rules check
            every field the warehouse row carries; on, any schema violation (unknown
            field, over-long identifier...) fails the record as ``invalid_event``.
    """

    transform_test_sources: str = Field(
        default="test-,test:,synthetic-test",
        description="Comma-separated `source` prefixes marking test events (dropped).",
    )
    transform_max_response_bytes: int = Field(
        default=LAMBDA_PAYLOAD_LIMIT - 16 * 1024,
        gt=1024,
        le=LAMBDA_PAYLOAD_LIMIT,
        description="Transform response budget (Lambda 6 MB limit less a margin).",
    )

    transform_validate_json: bool = Field(
        default=False, description="Also run JSON events through the codec's schema validation."
    )

    def test_source_prefixes(self) -> tuple[str, ...]:
        """The configured test-source prefixes, lower-cased, blanks removed."""
        return tuple(p.strip().lower() for p in self.transform_test_sources.split(",") if p.strip())


class DeliverySettings(SluiceSettings):
    """Defaults of ``sluice firehose run`` (each one can be overridden on the command line).

    Attributes:
        firehose_buffer_mib: size buffering hint, 1-128 MiB (Firehose default 5).
        firehose_buffer_seconds: interval buffering hint, 0-900 s (Firehose default 300).
        firehose_lambda_buffer_mib: at most this much record data goes into one
            invocation (Firehose's processor buffer; the request stays under 6 MB).
        firehose_invoke_retries: retries of a failed invocation (Firehose default 3).
        firehose_lambda_arn: written into error records as ``lambdaArn``.
        firehose_checkpoint_table: DynamoDB lease table of the Kinesis reader (one per
            stream, ``<name>.<stream>``; created on first use).
        firehose_group_prefix: Kafka consumer group = prefix + ``-`` + event type.
        firehose_metrics_port: serve Prometheus metrics on this port when set.
        firehose_kafka_session_timeout_ms: consumer group session timeout.
        firehose_kafka_max_poll_interval_ms: longest pause between two polls (a batch's
            transform and S3 writes happen in that pause).
        firehose_raw_backup: also back up every source record, untransformed, under
            ``SLUICE_S3_RAW_PREFIX`` (Firehose's source record backup,
            ``S3BackupMode=Enabled``); off by default, as in Firehose.
        firehose_assignment_timeout_s: how long a runner may hold no partition or
            shard before it says so (``--once`` then fails).
    """

    firehose_buffer_mib: int = Field(
        default=5,
        ge=MIN_BUFFER_MIB,
        le=MAX_BUFFER_MIB,
        description="Size buffering hint, 1-128 MiB.",
    )
    firehose_buffer_seconds: int = Field(
        default=300,
        ge=MIN_BUFFER_SECONDS,
        le=MAX_BUFFER_SECONDS,
        description="Interval buffering hint, 0-900 s.",
    )
    firehose_lambda_buffer_mib: float = Field(
        default=1.0, gt=0, le=5.0, description="Record data per transform invocation (MiB)."
    )
    firehose_invoke_retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a failed transform invocation."
    )
    firehose_lambda_arn: str = Field(
        default=DEFAULT_LAMBDA_ARN, description="`lambdaArn` written into error records."
    )
    firehose_checkpoint_table: str = Field(
        default="sluice-firehose-checkpoints",
        description=(
            "DynamoDB lease/checkpoint table of the delivery's Kinesis reader, one per "
            "stream as `<name>.<stream>` (created if missing)."
        ),
    )
    firehose_group_prefix: str = Field(
        default="sluice-firehose", description="Kafka consumer group prefix (+ `-<event type>`)."
    )
    firehose_metrics_port: int | None = Field(
        default=None, description="Serve the delivery's Prometheus metrics on this port."
    )
    firehose_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the delivery's metrics listen on (0.0.0.0 in a container).",
    )
    firehose_kafka_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Kafka consumer group session timeout (ms)."
    )
    firehose_kafka_max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1_000,
        description="Longest pause between polls, batch work included (ms).",
    )
    firehose_raw_backup: bool = Field(
        default=False,
        description="Back up every source record, untransformed, under the raw prefix.",
    )
    firehose_assignment_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A runner holding no partition/shard this long says so (group, stream, state); "
            "`--once` then exits non-zero."
        ),
    )

    def group_for(self, event_type: EventType) -> str:
        """The delivery's consumer group of ``event_type``."""
        return f"{self.firehose_group_prefix}-{event_type.value}"

    def reader_options(self, group: str) -> ReaderOptions:
        """How a runner of ``group`` joins it (Kafka member / Kinesis lease worker)."""
        return ReaderOptions(
            group=group,
            session_timeout_ms=self.firehose_kafka_session_timeout_ms,
            max_poll_interval_ms=self.firehose_kafka_max_poll_interval_ms,
            lease_table=self.firehose_checkpoint_table,
            assignment_timeout_s=self.firehose_assignment_timeout_s,
        )
