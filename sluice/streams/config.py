"""How a reader joins its group: pure options, built from each component's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """Group membership of one reader (Kafka group member / Kinesis lease worker).

    Components build it from their own settings (``ConsumerSettings.reader_options``,
    ``DeliverySettings.reader_options``); the streams layer reads no environment.
    """

    group: str
    start_position: Literal["earliest", "latest"] = "earliest"
    # Kafka group membership.
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    # Kinesis leases (the KCL's names in the settings' descriptions).
    lease_table: str | None = None
    lease_duration_s: float = 10.0
    lease_renew_interval_s: float = 3.0
    lease_take_interval_s: float = 2.0
    max_leases_to_steal: int = 1
    idle_read_interval_s: float = 1.0
    worker_id: str | None = None
    # A reader holding no partition for this long says so (and ``--once`` fails).
    assignment_timeout_s: float = 60.0
    # Kafka: a partition counts as read to its end once it reported its end and no
    # record came for this long (brokers whose high watermarks run behind, such as the
    # local Tansu, report ends early; see docs/local-stack.md).
    end_settle_s: float = 2.0

    def lease_table_for(self, stream: str) -> str:
        """The lease table of this group on ``stream`` (shard ids repeat across streams)."""
        base = self.lease_table or f"sluice-leases-{self.group}"
        return f"{base}.{stream}"
