"""The loader Lambda handler (SQS event source mapping, partial batch responses).

The event is AWS's own S3-notification-through-SQS sample, taken unchanged from
aws-powertools/powertools-lambda-python, ``tests/events/s3SqsEvent.json`` (commit
fa1c29f2d497a7c233f06eb69d0f7ee1b187a9e4), stored as
``tests/events/sqs-s3-object-created.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from sluice.config import ZoneSettings
from sluice.zonestore import MemoryZone
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.zonefixtures import ndjson_gz
from warehouse.exceptions import BadEventError, WarehouseUnavailableError
from warehouse.lambda_function import handle_event, messages_from_event
from warehouse.loader import Loader, LoaderOptions
from warehouse.memory import MemoryWarehouse

EVENT = Path(__file__).parents[2] / "events" / "sqs-s3-object-created.json"
BUCKET = "xxx"  # the bucket of the sample event
KEY = (
    "clean/event_type=financial-transaction/dt=2026-11-22/"
    "sluice-financial-transaction-1-2026-11-22-03-20-05-0b9f0c8e-3d55-4a4e-9d0e-6f7f3b2f7c11.gz"
)


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(EVENT.read_text())


def naming(event: dict[str, Any], key: str) -> dict[str, Any]:
    """The sample event with its one S3 record's key replaced (URL-encoded, as S3 sends)."""
    out = copy.deepcopy(event)
    body = json.loads(out["Records"][0]["body"])
    body["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    out["Records"][0]["body"] = json.dumps(body)
    return out


def setup() -> tuple[Loader, MemoryWarehouse, MemoryZone]:
    wh = MemoryWarehouse()
    wh.migrate()
    zone = MemoryZone()
    zone.write(f"s3://{BUCKET}/{KEY}", ndjson_gz([ft_row(), ft_row()]))
    loader = Loader(
        wh,
        zone,
        zone_settings=ZoneSettings(s3_bucket=BUCKET),
        options=LoaderOptions(retry_delays=()),
        sleep=lambda s: None,
    )
    return loader, wh, zone


def test_sample_event_parses_and_names_no_clean_object(event: dict[str, Any]) -> None:
    loader, wh, _ = setup()
    messages = messages_from_event(event)
    assert [m.message_id for m in messages] == ["ca3e7a89-c358-40e5-8aa0-5da01403c267"]
    # the sample's object (test.pdf) is not under the clean prefix: done, nothing loaded
    assert handle_event(event, loader=loader) == {"batchItemFailures": []}
    assert wh.count("financial_transactions") == 0


def test_clean_object_is_loaded_and_a_redelivery_adds_nothing(event: dict[str, Any]) -> None:
    loader, wh, zone = setup()
    ev = naming(event, KEY)
    assert handle_event(ev, loader=loader) == {"batchItemFailures": []}
    assert wh.count("financial_transactions") == 2
    # the loader wrote its own manifest (Firehose writes none)
    assert any(u.endswith(".manifest") and "/manifests/" in u for u in zone.objects)
    assert handle_event(copy.deepcopy(ev), loader=loader) == {"batchItemFailures": []}
    assert wh.count("financial_transactions") == 2
    assert wh.count("load_audit") == 1


def test_a_key_with_spaces_arrives_url_encoded_and_is_decoded(event: dict[str, Any]) -> None:
    loader, wh, zone = setup()
    spaced = KEY.replace("dt=2026-11-22", "dt=2026-11-22 copy")
    zone.write(f"s3://{BUCKET}/{spaced}", ndjson_gz([ft_row()]))
    ev = naming(event, spaced)
    assert "+" in json.loads(ev["Records"][0]["body"])["Records"][0]["s3"]["object"]["key"]
    assert handle_event(ev, loader=loader) == {"batchItemFailures": []}
    assert wh.count("financial_transactions") == 1


def test_failed_load_reports_the_message_and_a_retry_loads_once(event: dict[str, Any]) -> None:
    loader, wh, _ = setup()
    ev = naming(event, KEY)
    wh.fail_on["merge"] = WarehouseUnavailableError("down")
    answer = handle_event(ev, loader=loader)
    assert answer == {"batchItemFailures": [{"itemIdentifier": ev["Records"][0]["messageId"]}]}
    assert wh.count("financial_transactions") == 0
    del wh.fail_on["merge"]
    assert handle_event(ev, loader=loader) == {"batchItemFailures": []}
    assert wh.count("financial_transactions") == 2


def test_a_body_that_is_no_s3_event_is_reported(event: dict[str, Any]) -> None:
    loader, _, _ = setup()
    bad = copy.deepcopy(event)
    bad["Records"][0]["body"] = "not json"
    answer = handle_event(bad, loader=loader)
    assert answer["batchItemFailures"] == [{"itemIdentifier": bad["Records"][0]["messageId"]}]


def test_s3_test_event_is_done(event: dict[str, Any]) -> None:
    loader, _, _ = setup()
    test_event = copy.deepcopy(event)
    test_event["Records"][0]["body"] = json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    )
    assert handle_event(test_event, loader=loader) == {"batchItemFailures": []}


def test_a_record_that_is_not_from_sqs_is_refused(event: dict[str, Any]) -> None:
    loader, _, _ = setup()
    bad = copy.deepcopy(event)
    bad["Records"][0]["eventSource"] = "aws:s3"
    with pytest.raises(BadEventError, match="aws:sqs"):
        handle_event(bad, loader=loader)
