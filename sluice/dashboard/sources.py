"""Where the dashboard's figures come from (the I/O edges).

Lag is :func:`consumers.api.lag_snapshot` (what ``sluice lag`` prints) and reconcile is
:func:`warehouse.reconcile.reconcile_pipeline` (what ``sluice reconcile`` prints);
throughput is read from the components' Prometheus endpoints, and the error prefix
from the zone. Nothing here computes a status or a count of its own.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from consumers.api import ConsumerContext, lag_snapshot
from consumers.lag import LagReport, LagWindow
from sluice.config import AwsSettings, StreamBackend, ZoneSettings
from sluice.errors import RetryableError
from sluice.zone import gunzip
from sluice.zonestore import S3Zone, Zone
from warehouse.reconcile import ReconcileReport, reconcile_pipeline

log = logging.getLogger(__name__)

# Stage -> the counter (sample name, as exposed) whose rate is that stage's throughput,
# and the label values it is restricted to (none: every sample of the counter).
STAGE_COUNTERS: dict[str, tuple[str, dict[str, frozenset[str]]]] = {
    "api_accepted": ("sluice_api_events_accepted_total", {}),
    "api_rejected": ("sluice_api_events_rejected_total", {}),
    "stream_in": ("sluice_firehose_source_records_total", {}),
    "objects_written": ("sluice_firehose_objects_written_total", {}),
    "rows_loaded": (
        "sluice_loader_rows_total",
        {"outcome": frozenset({"inserted", "updated"})},
    ),
    "records_consumed": ("sluice_consumer_records_total", {}),
    "dead_lettered": ("sluice_consumer_dlq_records_total", {}),
}
# Counters broken down by a label on the page: sample name -> label.
REASON_COUNTERS: dict[str, str] = {
    "sluice_consumer_dlq_reasons_total": "reason",
    "sluice_api_events_rejected_total": "reason",
}


class LagSource:
    """One group's lag through ``sluice lag``'s data function, with a sliding window.

    The window is the same :class:`~consumers.lag.LagWindow` ``sluice lag --watch``
    keeps, so the statuses follow Burrow's rules over the dashboard's samples.
    """

    def __init__(
        self,
        group: str,
        *,
        backends: Sequence[StreamBackend | str] | None = None,
        streams: Sequence[str] | None = None,
    ) -> None:
        self.group = group
        self.backends = list(backends) if backends else None
        self.streams = list(streams) if streams else None
        self._ctx: ConsumerContext | None = None
        self._window: LagWindow | None = None

    def read(self) -> LagReport:
        """One sample of the group's lag."""
        if self._ctx is None:
            self._ctx = ConsumerContext.from_env(consumer_group=self.group)
            self._window = LagWindow(stall_after_s=self._ctx.consumer.consumer_stall_after_s)
        return lag_snapshot(
            self.group,
            backends=self.backends,
            streams=self.streams,
            window=self._window,
            ctx=self._ctx,
        )


def parse_counters(text: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Stage totals (by stage name) and by-reason breakdowns from exposition text."""
    totals: dict[str, float] = {}
    reasons: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for stage, (name, only) in STAGE_COUNTERS.items():
                if sample.name != name:
                    continue
                if all(sample.labels.get(k) in values for k, values in only.items()):
                    totals[stage] = totals.get(stage, 0.0) + sample.value
            label = REASON_COUNTERS.get(sample.name)
            if label and label in sample.labels:
                by = reasons.setdefault(sample.name, {})
                key = sample.labels[label]
                by[key] = by.get(key, 0.0) + sample.value
    return totals, reasons


def scrape(
    urls: Sequence[str], client: httpx.Client
) -> tuple[dict[str, float], dict[str, dict[str, float]], list[str]]:
    """Read every endpoint; the sums over them, and one problem line per failed one."""
    totals: dict[str, float] = {}
    reasons: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    for url in urls:
        try:
            response = client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            problems.append(f"metrics {url}: {exc}")
            continue
        t, r = parse_counters(response.text)
        for name, value in t.items():
            totals[name] = totals.get(name, 0.0) + value
        for name, by in r.items():
            into = reasons.setdefault(name, {})
            for key, value in by.items():
                into[key] = into.get(key, 0.0) + value
    return totals, reasons, problems


def error_prefix_counts(zone: Zone, settings: ZoneSettings) -> dict[str, int]:
    """Error records in the zone's error prefix by ``errorCode`` (Firehose's format)."""
    counts: Counter[str] = Counter()
    for obj in zone.list(settings.s3_bucket, settings.s3_error_prefix):
        for line in gunzip(zone.read(obj.url), obj.url).split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                counts["unreadable"] += 1
                continue
            code = record.get("errorCode") if isinstance(record, dict) else None
            counts[str(code or "unknown")] += 1
    return dict(counts)


def default_zone() -> tuple[Zone, ZoneSettings]:
    """The configured S3 zone."""
    return S3Zone(aws=AwsSettings()), ZoneSettings()


ReconcileFn = Callable[[], ReconcileReport]


def default_reconcile(read_stream: bool = False) -> ReconcileFn:
    """``sluice reconcile``'s data function over the whole zone and warehouse."""

    def run() -> ReconcileReport:
        return reconcile_pipeline(read_stream=read_stream)

    return run


def describe_failure(exc: BaseException) -> str:
    """One line for a source that failed this round (shown on the page)."""
    kind = "retrying" if isinstance(exc, RetryableError) else "failed"
    return f"{type(exc).__name__} ({kind}): {exc}"


def as_json(value: Any) -> Any:
    """JSON-safe numbers (NaN becomes ``None``)."""
    if isinstance(value, float) and value != value:
        return None
    return value
