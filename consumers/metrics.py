"""Prometheus metrics of a consumer process and CloudWatch EMF log lines (pure builder)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from consumers.models import BatchOutcome, PartitionLag

logger = logging.getLogger(__name__)
emf_logger = logging.getLogger("sluice.emf")

METRIC_PREFIX = "sluice_consumer"


def build_emf(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[float, str]],
    *,
    timestamp_ms: int,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One CloudWatch Embedded Metric Format document (pure).

    ``metrics`` maps a metric name to ``(value, unit)``; units are CloudWatch's
    (``Count``, ``Seconds``, ``Milliseconds``...).
    """
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [
                        {"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()
                    ],
                }
            ],
        }
    }
    doc.update(dict(properties or {}))
    doc.update(dimensions)
    doc.update({name: value for name, (value, _) in metrics.items()})
    return doc


def batch_emf(
    namespace: str, group: str, backend: str, outcome: BatchOutcome, timestamp_ms: int
) -> dict[str, Any]:
    """The EMF document of one committed batch."""
    return build_emf(
        namespace,
        {"ConsumerGroup": group, "Backend": backend},
        {
            "Records": (float(outcome.records), "Count"),
            "DeadLetters": (float(len(outcome.dead_letters)), "Count"),
            "Rollbacks": (float(outcome.rollbacks), "Count"),
            "BatchDuration": (outcome.duration_s * 1000.0, "Milliseconds"),
        },
        timestamp_ms=timestamp_ms,
        properties={"BatchId": outcome.batch_id},
    )


# The names the CloudWatch alarms in deploy/terraform read (variable custom_metrics).
LAG_RECORDS_METRIC = "ConsumerLagRecords"
LAG_SECONDS_METRIC = "ConsumerLagSeconds"


def lag_emf(
    namespace: str, group: str, backend: str, rows: Sequence[PartitionLag], timestamp_ms: int
) -> dict[str, Any]:
    """The EMF document of one lag sample: total records behind, oldest age in seconds."""
    return build_emf(
        namespace,
        {"ConsumerGroup": group, "Backend": backend},
        {
            LAG_RECORDS_METRIC: (float(sum(r.lag_records for r in rows)), "Count"),
            LAG_SECONDS_METRIC: (max((r.lag_seconds for r in rows), default=0.0), "Seconds"),
        },
        timestamp_ms=timestamp_ms,
        properties={"Partitions": len(rows)},
    )


class ConsumerMetrics:
    """Prometheus metrics of one consumer process; also a ``BatchObserver``.

    Metrics live in their own registry (``registry``) so several consumers in one
    process (tests, the demo) do not collide; :meth:`serve` exposes it over HTTP.
    """

    def __init__(
        self,
        group: str,
        backend: str,
        *,
        registry: Any = None,
        emf_namespace: str | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.group = group
        self.backend = backend
        self.registry = registry or CollectorRegistry()
        self.emf_namespace = emf_namespace
        labels = ["group", "backend"]
        p = METRIC_PREFIX
        r = self.registry
        self.records = Counter(f"{p}_records", "Records processed", labels, registry=r)
        self.batches = Counter(f"{p}_batches", "Batches committed", labels, registry=r)
        self.commits = Counter(f"{p}_commits", "Checkpoint commits", labels, registry=r)
        self.rollbacks = Counter(f"{p}_rollbacks", "Sink rollbacks", labels, registry=r)
        self.failed = Counter(f"{p}_batch_failures", "Batches rewound", labels, registry=r)
        self.dead_letters = Counter(f"{p}_dlq_records", "Records dead-lettered", labels, registry=r)
        self.dead_letter_reasons = Counter(
            f"{p}_dlq_reasons",
            "Records dead-lettered, by reason (the error class)",
            [*labels, "reason"],
            registry=r,
        )
        self.duration = Histogram(
            f"{p}_batch_duration_seconds",
            "Time to write, dead-letter and checkpoint one batch",
            labels,
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        part = [*labels, "stream", "partition"]
        self.lag_records = Gauge(f"{p}_lag_records", "Records not yet consumed", part, registry=r)
        self.lag_seconds = Gauge(
            f"{p}_lag_seconds", "Age of the oldest unconsumed record", part, registry=r
        )
        self.last_commit = Gauge(
            f"{p}_last_commit_timestamp_seconds", "Time of the last commit", labels, registry=r
        )

    def batch_done(self, outcome: BatchOutcome) -> None:
        lbl = (self.group, self.backend)
        self.records.labels(*lbl).inc(outcome.records)
        self.batches.labels(*lbl).inc()
        self.commits.labels(*lbl).inc()
        self.rollbacks.labels(*lbl).inc(outcome.rollbacks)
        self.dead_letters.labels(*lbl).inc(len(outcome.dead_letters))
        for letter in outcome.dead_letters:
            self.dead_letter_reasons.labels(*lbl, letter.error_class).inc()
        self.duration.labels(*lbl).observe(outcome.duration_s)
        self.last_commit.labels(*lbl).set(time.time())
        if self.emf_namespace:
            doc = batch_emf(
                self.emf_namespace, self.group, self.backend, outcome, int(time.time() * 1000)
            )
            emf_logger.info(json.dumps(doc, separators=(",", ":")))

    def batch_failed(self, error: BaseException) -> None:
        self.failed.labels(self.group, self.backend).inc()

    def record_lag(self, rows: Sequence[PartitionLag]) -> None:
        for row in rows:
            labels = (self.group, self.backend, row.stream, row.partition)
            self.lag_records.labels(*labels).set(row.lag_records)
            self.lag_seconds.labels(*labels).set(row.lag_seconds)
        if self.emf_namespace and rows:
            doc = lag_emf(
                self.emf_namespace, self.group, self.backend, rows, int(time.time() * 1000)
            )
            emf_logger.info(json.dumps(doc, separators=(",", ":")))

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (a daemon thread)."""
        from prometheus_client import start_http_server

        start_http_server(port, registry=self.registry)
        logger.info("metrics on :%d/metrics", port)
