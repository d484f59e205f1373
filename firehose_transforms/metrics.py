"""Prometheus metrics of the local delivery (``--metrics-port``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class DeliveryMetrics:
    """The delivery's counters, on a private registry (several runners in one process
    do not collide); :meth:`serve` exposes it over HTTP."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.source_records = Counter(
            "sluice_firehose_source_records",
            "Records read from the source stream.",
            ["source", "event_type"],
            registry=self.registry,
        )
        self.records = Counter(
            "sluice_firehose_records",
            "Records by transform result (Ok, Dropped, ProcessingFailed).",
            ["event_type", "result"],
            registry=self.registry,
        )
        self.invocations = Counter(
            "sluice_firehose_invocations",
            "Transform invocations by outcome (ok, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.objects = Counter(
            "sluice_firehose_objects_written",
            "S3 objects written by kind (raw, clean, error).",
            ["kind"],
            registry=self.registry,
        )
        self.bytes_written = Counter(
            "sluice_firehose_bytes_written",
            "Bytes written to S3 by kind (compressed).",
            ["kind"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "sluice_firehose_batch_seconds",
            "Time to transform, write and checkpoint one delivery batch.",
            registry=self.registry,
        )
        self.buffered = Gauge(
            "sluice_firehose_buffered_records",
            "Records waiting in the buffer.",
            registry=self.registry,
        )
        self.last_flush = Gauge(
            "sluice_firehose_last_flush_timestamp_seconds",
            "Unix time of the last completed batch.",
            registry=self.registry,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
