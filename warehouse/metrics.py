"""Prometheus metrics of ``sluice load`` (``--metrics-port``), on a private registry.

- ``sluice_loader_loads_total{state}``: manifests loaded or failed
- ``sluice_loader_files_total``: clean files loaded
- ``sluice_loader_rows_total{outcome}``: rows staged, rejected (quarantined), inserted
  and updated by the MERGE
- ``sluice_loader_last_load_timestamp_seconds``: time of the last completed pass
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

ROW_OUTCOMES = ("staged", "rejected", "inserted", "updated", "tenant_conflicts")


class LoaderMetrics:
    """Counters of the loader, fed from each pass's totals."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.loads = Counter(
            "sluice_loader_loads",
            "Manifest loads by final state (completed, failed).",
            ["state"],
            registry=self.registry,
        )
        self.files = Counter(
            "sluice_loader_files", "Clean files loaded into the warehouse.", registry=self.registry
        )
        self.rows = Counter(
            "sluice_loader_rows",
            "Rows by outcome: staged, rejected (quarantined), inserted and updated by MERGE.",
            ["outcome"],
            registry=self.registry,
        )
        self.last_load = Gauge(
            "sluice_loader_last_load_timestamp_seconds",
            "Unix time of the last pass that loaded something.",
            registry=self.registry,
        )

    def record(self, totals: Mapping[str, int], failed: int) -> None:
        """Count one pass (``RunSummary.totals()`` and its number of failed loads)."""
        self.loads.labels("completed").inc(totals.get("loads", 0))
        self.loads.labels("failed").inc(failed)
        self.files.inc(totals.get("files", 0))
        for outcome in ROW_OUTCOMES:
            self.rows.labels(outcome).inc(totals.get(outcome, 0))
        if totals.get("loads", 0) or failed:
            self.last_load.set(time.time())

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
