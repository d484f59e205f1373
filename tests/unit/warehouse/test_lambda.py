"""The S3-notification Lambda handler with a recorded event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sluice.config import ZoneSettings
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.zonefixtures import ndjson_gz
from warehouse.exceptions import WarehouseUnavailableError
from warehouse.lambda_function import handle_event, manifest_urls_from_event
from warehouse.loader import Loader, LoaderOptions
from warehouse.memory import MemoryWarehouse
from warehouse.models import ManifestEntry
from warehouse.zone import MemoryZone, build_manifest

EVENT = Path(__file__).parents[2] / "events" / "s3-put-manifest.json"


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(EVENT.read_text())


def setup(event: dict[str, Any]) -> tuple[Loader, MemoryWarehouse, MemoryZone]:
    wh = MemoryWarehouse()
    wh.migrate()
    zone = MemoryZone()
    key = event["Records"][0]["s3"]["object"]["key"]
    data_url = "s3://sluice-zone/clean/event_type=financial-transaction/dt=2026-11-22/x.gz"
    zone.write(data_url, ndjson_gz([ft_row(), ft_row()]))
    zone.write(f"s3://sluice-zone/{key}", build_manifest([ManifestEntry(data_url, True)]))
    loader = Loader(
        wh,
        zone,
        zone_settings=ZoneSettings(),
        options=LoaderOptions(retry_delays=()),
        sleep=lambda s: None,
    )
    return loader, wh, zone


def test_only_manifest_keys_are_loaded(event: dict[str, Any]) -> None:
    wanted, other = manifest_urls_from_event(event, "manifests/")
    assert wanted == [
        "s3://sluice-zone/manifests/financial-transaction/"
        "sluice-financial-transaction-1-2026-11-22-03-20-05-kafka-3f2a9c4d5e6f7a8b.manifest"
    ]
    # keys arrive URL-encoded in S3 events
    assert other[0].startswith("s3://sluice-zone/clean/event_type=financial-transaction/dt=")


def test_handler_loads_and_a_redelivery_adds_nothing(event: dict[str, Any]) -> None:
    loader, wh, _ = setup(event)
    report = handle_event(event, loader=loader)
    assert [(o["state"], o["inserted"]) for o in report["loads"]] == [("completed", 2)]
    assert len(report["skipped"]) == 1
    again = handle_event(copy.deepcopy(event), loader=loader)
    assert again["loads"][0]["state"] == "already-loaded-or-running"
    assert wh.count("financial_transactions") == 2


def test_handler_raises_so_lambda_retries(event: dict[str, Any]) -> None:
    loader, wh, _ = setup(event)
    wh.fail_on["merge"] = WarehouseUnavailableError("down")
    with pytest.raises(WarehouseUnavailableError):
        handle_event(event, loader=loader)
    del wh.fail_on["merge"]
    report = handle_event(event, loader=loader)
    assert report["loads"][0]["state"] == "completed" and report["loads"][0]["attempt"] == 2
