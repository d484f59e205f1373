"""The dashboard's sampler: reads every source on a period and keeps bounded history.

:meth:`Collector.sample` takes one sample of lag and throughput;
:meth:`Collector.reconcile` runs the (slower) reconcile and error-prefix count;
:meth:`Collector.snapshot` is what the page's data endpoint answers. Two daemon threads
(:meth:`Collector.start`) call them on their periods; a lock keeps the snapshot whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from consumers.lag import LagReport
from consumers.lag_view import status_reason
from sluice.dashboard.config import DashboardSettings
from sluice.dashboard.history import History, counter_rates
from sluice.dashboard.sources import (
    REASON_COUNTERS,
    STAGE_COUNTERS,
    LagSource,
    ReconcileFn,
    as_json,
    describe_failure,
    error_prefix_counts,
    scrape,
)
from sluice.errors import SluiceError
from sluice.zonestore import Zone
from warehouse.reconcile import ReconcileReport

log = logging.getLogger(__name__)

REASON_NAMES = {
    "sluice_consumer_dlq_reasons_total": "dead_lettered",
    "sluice_api_events_rejected_total": "api_rejected",
}
ZoneRef = tuple[Zone, Any]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


class Collector:
    """Samples lag, throughput, errors and reconcile into bounded history."""

    def __init__(
        self,
        settings: DashboardSettings,
        lag_sources: Sequence[LagSource],
        *,
        reconcile: ReconcileFn | None = None,
        zone: Callable[[], ZoneRef] | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.lag_sources = list(lag_sources)
        self.reconcile_fn = reconcile
        self.zone_fn = zone
        self.http = http or httpx.Client(timeout=min(5.0, settings.dashboard_refresh_s * 2))
        self.clock = clock
        self.history = History(settings.points())
        self.samples = 0
        self._lock = threading.Lock()
        self._reports: dict[str, LagReport] = {}
        self._lag_problems: dict[str, str] = {}
        self._counters: dict[str, float] | None = None
        self._counters_at = 0.0
        self._rates: dict[str, float] = {}
        self._reasons: dict[str, dict[str, float]] = {}
        self._metric_problems: list[str] = []
        self._reconcile: dict[str, Any] | None = None
        self._errors: dict[str, int] | None = None
        self._reconcile_problems: list[str] = []
        self._loop_problems: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------------- sampling

    def sample(self) -> None:
        """One sample of every group's lag and of the stage counters."""
        for source in self.lag_sources:
            self._sample_lag(source)
        self._sample_counters()
        with self._lock:
            self.samples += 1

    def _sample_lag(self, source: LagSource) -> None:
        try:
            report = source.read()
        except SluiceError as exc:
            log.warning("lag of %s: %s", source.group, exc)
            with self._lock:
                self._lag_problems[source.group] = f"lag of {source.group}: {describe_failure(exc)}"
            return
        with self._lock:
            self._reports[source.group] = report
            self._lag_problems.pop(source.group, None)
            for row in report.rows:
                key = ("lag", report.group, row.backend, row.stream, row.partition)
                self.history.add(key, report.at, (row.lag_records, row.lag_seconds))

    def _sample_counters(self) -> None:
        urls = self.settings.metrics_urls()
        if not urls:
            return
        totals, reasons, problems = scrape(urls, self.http)
        now = self.clock()
        rates = counter_rates(self._counters, totals, now - self._counters_at)
        with self._lock:
            self._metric_problems = problems
            self._reasons = reasons
            if rates:
                self._rates = rates
                for stage in STAGE_COUNTERS:
                    if stage in rates:
                        self.history.add(("rate", stage), now, (rates[stage],))
            self._counters, self._counters_at = totals, now

    def reconcile(self) -> None:
        """Run reconcile and count the error prefix (slow: minutes apart).

        Each is tried on its own, so one failing still leaves the other on the page.
        """
        problems: list[str] = []
        report: ReconcileReport | None = None
        errors: dict[str, int] | None = None
        if self.reconcile_fn is not None:
            try:
                report = self.reconcile_fn()
            except SluiceError as exc:
                log.warning("reconcile: %s", exc)
                problems.append(f"reconcile: {describe_failure(exc)}")
        if self.zone_fn is not None:
            try:
                zone, zone_settings = self.zone_fn()
                errors = error_prefix_counts(zone, zone_settings)
            except SluiceError as exc:
                log.warning("error prefix: %s", exc)
                problems.append(f"error prefix: {describe_failure(exc)}")
        with self._lock:
            if report is not None:
                self._reconcile = {"at": _iso(self.clock()), **report.as_dict()}
            if errors is not None:
                self._errors = errors
            self._reconcile_problems = problems

    # -------------------------------------------------------------------- reading

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, JSON-ready.

        ``groups[].lag`` is exactly what ``sluice lag --json`` prints for the group.
        """
        now = self.clock()
        since = now - self.settings.dashboard_history_s
        with self._lock:
            groups = [self._group(src.group, since) for src in self.lag_sources]
            stages = {
                stage: {
                    "rate": as_json(self._rates.get(stage)),
                    "points": self._points(("rate", stage), since),
                }
                for stage in STAGE_COUNTERS
            }
            reasons = {
                REASON_NAMES[name]: dict(self._reasons.get(name, {})) for name in REASON_COUNTERS
            }
            problems = [
                *self._lag_problems.values(),
                *self._metric_problems,
                *self._reconcile_problems,
                *self._loop_problems.values(),
            ]
            return {
                "at": _iso(now),
                "samples": self.samples,
                "refresh_s": self.settings.dashboard_refresh_s,
                "history_s": self.settings.dashboard_history_s,
                "groups": groups,
                "throughput": {"metrics": self.settings.metrics_urls(), "stages": stages},
                "reasons": {**reasons, "error_prefix": self._errors},
                "reconcile": self._reconcile,
                "problems": problems,
            }

    def _points(self, key: tuple[str, ...], since: float) -> list[list[Any]]:
        series = self.history.get(key)
        if series is None:
            return []
        return [[as_json(v) for v in p] for p in series.points(since)]

    def _group(self, group: str, since: float) -> dict[str, Any]:
        report = self._reports.get(group)
        if report is None:
            return {"group": group, "lag": None, "partitions": [], "streams": []}
        partitions = []
        for row in report.rows:
            key = ("lag", group, row.backend, row.stream, row.partition)
            partitions.append(
                {
                    "backend": row.backend,
                    "stream": row.stream,
                    "partition": row.partition,
                    "status": row.status.value,
                    "reason": status_reason(row),
                    "points": self._points(key, since),
                }
            )
        streams = sorted({(r.backend, r.stream) for r in report.rows})
        return {
            "group": group,
            "lag": report.to_json(),
            "partitions": partitions,
            "streams": [{"backend": b, "stream": s} for b, s in streams],
        }

    # -------------------------------------------------------------------- threads

    def start(self) -> None:
        """Sample on the refresh period and reconcile on its own, in daemon threads."""
        self._threads = [
            threading.Thread(
                target=self._loop,
                args=(self.sample, self.settings.dashboard_refresh_s),
                name="dashboard-sample",
                daemon=True,
            )
        ]
        every = self.settings.dashboard_reconcile_every_s
        if every > 0 and (self.reconcile_fn is not None or self.zone_fn is not None):
            self._threads.append(
                threading.Thread(
                    target=self._loop,
                    args=(self.reconcile, every),
                    name="dashboard-reconcile",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def _loop(self, step: Callable[[], None], period: float) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                step()
                problem = None
            except Exception as exc:  # a source failing unexpectedly must not freeze the page
                log.exception("dashboard: %s failed; trying again next period", step.__name__)
                problem = f"{step.__name__}: {type(exc).__name__}: {exc}"
            with self._lock:
                if problem is None:
                    self._loop_problems.pop(step.__name__, None)
                else:
                    self._loop_problems[step.__name__] = problem
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def stop(self) -> None:
        """Stop the threads and close the HTTP client."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.http.close()
