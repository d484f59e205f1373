"""The dashboard's collector and app with in-memory sources (no services)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from consumers.lag import LagReport, LagWindow
from consumers.metrics import ConsumerMetrics
from consumers.models import LagStatus, PartitionLag
from ingest_api.metrics import ApiMetrics
from sluice.config import ZoneSettings
from sluice.dashboard.app import create_app
from sluice.dashboard.collector import Collector
from sluice.dashboard.config import DashboardSettings
from sluice.dashboard.sources import parse_counters
from sluice.errors import RetryableError
from sluice.zone import error_record, ndjson
from sluice.zonestore import MemoryZone
from warehouse.metrics import LoaderMetrics
from warehouse.reconcile import Sighting, Window, reconcile


@dataclass
class FakeLag:
    """A LagSource stand-in: hands out prepared rows through the real LagWindow."""

    group: str
    lags: list[int]
    window: LagWindow = field(default_factory=LagWindow)
    now: float = 1_000.0
    fail: bool = False

    def read(self) -> LagReport:
        if self.fail:
            raise RetryableError("broker unreachable", code="kafka")
        lag = self.lags.pop(0)
        self.now += 1
        row = PartitionLag(
            backend="kafka",
            group=self.group,
            stream="orders",
            partition="0",
            committed=100,
            end=100 + lag,
            lag_records=lag,
            lag_seconds=float(lag) / 10,
            last_commit_at=None,
            owner="m1",
        )
        return LagReport(self.group, self.now, tuple(self.window.add([row], self.now)))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def _settings(**kw: object) -> DashboardSettings:
    return DashboardSettings(dashboard_refresh_s=1, dashboard_history_s=5, **kw)  # type: ignore[arg-type]


def test_snapshot_carries_the_lag_report_unchanged_and_history_stays_bounded() -> None:
    source = FakeLag("g1", [7] * 20)
    clock = Clock()
    collector = Collector(_settings(), [source], clock=clock)  # type: ignore[list-item]
    for _ in range(20):
        clock.t += 1
        collector.sample()
    snap = collector.snapshot()
    (group,) = snap["groups"]
    assert group["lag"]["total_lag_records"] == 7
    assert group["lag"]["partitions"][0]["end"] == "107"
    assert group["lag"]["status"] == group["partitions"][0]["status"]
    assert len(group["partitions"][0]["points"]) == 5  # 5 s of history at 1 s
    assert group["partitions"][0]["points"][-1][1:] == [7.0, 0.7]
    assert snap["samples"] == 20


def test_a_failing_group_is_a_problem_on_the_page_not_a_crash() -> None:
    source = FakeLag("g1", [], fail=True)
    collector = Collector(_settings(), [source])  # type: ignore[list-item]
    collector.sample()
    snap = collector.snapshot()
    assert snap["groups"][0]["lag"] is None
    assert snap["problems"] == ["lag of g1: RetryableError (retrying): broker unreachable [kafka]"]


def test_exported_counters_become_stage_rates_and_reasons() -> None:
    api, consumer, loader = ApiMetrics(), ConsumerMetrics("g", "kafka"), LoaderMetrics()
    api.accept("financial-transaction", 10)
    api.reject("financial-transaction", "schema_invalid", 3)
    consumer.records.labels("g", "kafka").inc(4)
    consumer.dead_letter_reasons.labels("g", "kafka", "DecodeError").inc(2)
    loader.record({"inserted": 5, "updated": 1, "staged": 9}, failed=0)
    from prometheus_client import generate_latest

    text = b"".join(generate_latest(m.registry) for m in (api, consumer, loader)).decode()
    totals, reasons = parse_counters(text)
    assert totals["api_accepted"] == 10
    assert totals["api_rejected"] == 3
    assert totals["records_consumed"] == 4
    assert totals["rows_loaded"] == 6  # inserted + updated, not staged
    assert reasons["sluice_consumer_dlq_reasons_total"] == {"DecodeError": 2}
    assert reasons["sluice_api_events_rejected_total"] == {"schema_invalid": 3}


def test_rates_come_from_two_scrapes() -> None:
    api = ApiMetrics()
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=api.render())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    collector = Collector(
        _settings(dashboard_metrics_urls="http://api/metrics"), [], http=http, clock=clock
    )
    api.accept("financial-transaction", 5)
    collector.sample()
    clock.t += 2
    api.accept("financial-transaction", 8)
    collector.sample()
    stages = collector.snapshot()["throughput"]["stages"]
    assert stages["api_accepted"]["rate"] == 4.0
    assert stages["api_accepted"]["points"] == [[clock.t, 4.0]]


def test_reconcile_and_error_prefix_on_the_page() -> None:
    zone, zs = MemoryZone(), ZoneSettings(s3_bucket="b")
    import gzip

    body = ndjson(
        [
            error_record(
                raw=b"x",
                arrival_ms=1,
                error_code=code,
                error_message="m",
                attempts=1,
                attempt_ending_ms=2,
                lambda_arn="arn",
            )
            for code in ("schema_invalid", "schema_invalid", "pii_unmaskable")
        ]
    )
    zone.write(f"s3://b/{zs.s3_error_prefix}2026/01/01/00/x.gz", gzip.compress(body))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    report = reconcile(
        Window(start, start + timedelta(hours=1)),
        {
            "stream": [Sighting("a", start), Sighting("b", start)],
            "s3_clean": [Sighting("a", start)],
            "s3_errors": [],
            "warehouse": [Sighting("a", start)],
        },
    )
    collector = Collector(_settings(), [], reconcile=lambda: report, zone=lambda: (zone, zs))
    collector.reconcile()
    snap = collector.snapshot()
    assert snap["reasons"]["error_prefix"] == {"schema_invalid": 2, "pii_unmaskable": 1}
    assert snap["reconcile"]["stages"][2]["missing_ids"] == ["b"]
    assert snap["reconcile"]["ok"] is False


@pytest.fixture
def client() -> Iterator[TestClient]:
    collector = Collector(_settings(), [FakeLag("g1", [3, 3])])  # type: ignore[list-item]
    collector.sample()
    with TestClient(create_app(collector, run_threads=False)) as c:
        yield c


def test_app_serves_the_page_its_assets_and_the_data(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/dashboard.js">' in page.text
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "http" not in script.text.replace("http://www.w3.org/2000/svg", "")  # offline
    assert client.get("/static/../config.py").status_code == 404
    data = client.get("/api/data").json()
    assert data["groups"][0]["lag"]["total_lag_records"] == 3
    assert data["groups"][0]["lag"]["status"] in {s.value for s in LagStatus}


class Broken:
    group = "g1"

    def read(self) -> LagReport:
        raise RuntimeError("unexpected")


def test_an_unexpected_failure_is_logged_and_shown_and_sampling_goes_on() -> None:
    collector = Collector(
        DashboardSettings(dashboard_refresh_s=0.02, dashboard_reconcile_every_s=0),
        [Broken()],  # type: ignore[list-item]
    )
    collector.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not collector.snapshot()["problems"]:
            time.sleep(0.02)
    finally:
        collector.stop()
    assert collector.snapshot()["problems"] == ["sample: RuntimeError: unexpected"]
    assert all(not t.is_alive() for t in collector._threads)
