"""Settings of the consumer framework (``SLUICE_CONSUMER_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config import SluiceSettings
from sluice.streams.config import ReaderOptions


class ConsumerSettings(SluiceSettings):
    """How a consumer group assembles batches, retries, checkpoints and reports.

    Stream names, backend and connection settings come from the shared
    :class:`~sluice.config.StreamSettings`, :class:`~sluice.config.KafkaSettings` and
    :class:`~sluice.config.AwsSettings`; this class holds only what is the consumers' own.
    """

    consumer_group: str = Field(
        default="sluice-warehouse",
        description="Consumer group (Kafka) / application name (Kinesis leases).",
    )
    consumer_sink: Literal["warehouse", "s3", "noop"] = Field(
        default="warehouse",
        description="Where `sluice consume` writes: warehouse, s3 (the zone) or noop.",
    )
    consumer_batch_max_records: int = Field(
        default=500, ge=1, le=100_000, description="Records that make a batch full."
    )
    consumer_batch_max_wait_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds after which a non-empty batch is handed to the sink.",
    )
    consumer_retry_attempts: int = Field(
        default=3, ge=1, description="Writes of one batch before it is split to isolate records."
    )
    consumer_record_attempts: int = Field(
        default=2, ge=1, description="Writes of one isolated record before it is dead-lettered."
    )
    consumer_retry_base_delay_s: float = Field(
        default=0.2,
        ge=0,
        description="First backoff after a failed batch, in seconds (doubles, jittered).",
    )
    consumer_retry_max_delay_s: float = Field(
        default=10.0, ge=0, description="Longest backoff between batch attempts, in seconds."
    )
    consumer_start_position: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a group with no checkpoint starts."
    )
    # Kafka group membership; short values suit tests and the local broker.
    consumer_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Kafka session.timeout.ms of group members."
    )
    consumer_max_poll_interval_ms: int = Field(
        default=300_000, ge=1_000, description="Kafka max.poll.interval.ms of group members."
    )
    # Kinesis leases (the KCL's names in parentheses).
    consumer_lease_table: str | None = Field(
        default=None, description="DynamoDB lease table; defaults to the group name."
    )
    consumer_lease_duration_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds without renewal after which a lease may be taken (KCL failoverTime).",
    )
    consumer_lease_renew_interval_s: float = Field(
        default=3.0, gt=0, description="Seconds between renewals of the leases a worker holds."
    )
    consumer_lease_take_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between rounds of taking free, expired or stolen leases.",
    )
    consumer_max_leases_to_steal: int = Field(
        default=1, ge=0, description="Leases a worker may steal per round when balancing."
    )
    consumer_idle_read_interval_s: float = Field(
        default=1.0, ge=0, description="Wait before reading a shard again after an empty read."
    )
    consumer_stall_after_s: float = Field(
        default=60.0, gt=0, description="Lag above zero without a commit for this long: STALLED."
    )
    consumer_worker_id: str | None = Field(default=None, description="Defaults to host:pid.")
    consumer_assignment_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A member holding no partition/shard this long says so (group, stream, state); "
            "`--until-caught-up` then exits non-zero."
        ),
    )
    # Reporting.
    consumer_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus metrics on this port when set."
    )
    consumer_emf: bool = Field(
        default=False, description="Also log CloudWatch Embedded Metric Format lines per batch."
    )
    consumer_emf_namespace: str = Field(
        default="Sluice/Consumers", description="CloudWatch namespace of the EMF metrics."
    )

    def reader_options(self, group: str | None = None) -> ReaderOptions:
        """How this group's members join their group (the streams layer's options)."""
        return ReaderOptions(
            group=group or self.consumer_group,
            start_position=self.consumer_start_position,
            session_timeout_ms=self.consumer_session_timeout_ms,
            max_poll_interval_ms=self.consumer_max_poll_interval_ms,
            lease_table=self.consumer_lease_table,
            lease_duration_s=self.consumer_lease_duration_s,
            lease_renew_interval_s=self.consumer_lease_renew_interval_s,
            lease_take_interval_s=self.consumer_lease_take_interval_s,
            max_leases_to_steal=self.consumer_max_leases_to_steal,
            idle_read_interval_s=self.consumer_idle_read_interval_s,
            worker_id=self.consumer_worker_id,
            assignment_timeout_s=self.consumer_assignment_timeout_s,
        )

    def lease_table(self, stream: str) -> str:
        """The lease table of this group on ``stream`` (shard ids repeat across streams)."""
        return self.reader_options().lease_table_for(stream)
