"""``sluice load --follow --metrics-port``: the loader's Prometheus counters, scraped from
a fresh process while it loads the local stack's zone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.base import free_port
from sluice.cli import main
from sluice.config import ZoneSettings
from sluice.zonestore import S3Zone
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.zonefixtures import put_batch

pytestmark = pytest.mark.integration

SLUICE = str(Path(sys.executable).with_name("sluice"))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_follow_serves_rows_loaded_by_outcome(
    stack: Any,
    settings_env: dict[str, str],
    pg_schema_factory: Any,
    zone_settings: ZoneSettings,
    s3_zone: S3Zone,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = pg_schema_factory("metrics")
    monkeypatch.setenv("SLUICE_WAREHOUSE_SCHEMA", schema)
    monkeypatch.setenv("SLUICE_S3_BUCKET", zone_settings.s3_bucket)
    assert main(["warehouse", "init", "--json"]) == 0
    rows = [ft_row() for _ in range(5)]
    put_batch(s3_zone, zone_settings.s3_bucket, "financial-transaction", "m1", [rows, [b"{bad"]])
    port = free_port()
    proc = subprocess.Popen(
        [
            SLUICE,
            "load",
            "--follow",
            "--grace",
            "0",
            "--interval",
            "0.5",
            "--metrics-port",
            str(port),
            "--json",
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    inserted = ("sluice_loader_rows_total", (("outcome", "inserted"),))
    rejected = ("sluice_loader_rows_total", (("outcome", "rejected"),))
    samples: dict[Any, float] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and samples.get(inserted) != 5:
            time.sleep(0.3)
            try:
                samples = _samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            except httpx.HTTPError:
                continue
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert samples.get(inserted) == 5, err
    assert samples[rejected] == 1
    assert samples[("sluice_loader_loads_total", (("state", "completed"),))] == 1
    assert samples[("sluice_loader_files_total", ())] == 2
    assert samples[("sluice_loader_last_load_timestamp_seconds", ())] > 0
    assert proc.returncode == 0, err
