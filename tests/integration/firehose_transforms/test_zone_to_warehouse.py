"""The S3 zone contract end to end: what the delivery writes, the warehouse loader
loads, each event exactly once, even after the same events were delivered twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from firehose_transforms.delivery import run_delivery
from firehose_transforms.models import DeliveryOptions, SourceKind
from producers.base import build_outgoing_record
from sluice.config import EventType, ZoneSettings
from tests.integration.firehose_transforms.helpers import publish
from tests.unit.firehose_transforms import builders as b

pytestmark = pytest.mark.integration


@pytest.fixture
def warehouse(stack: Any, pg_schema_factory: Callable[..., str]) -> Iterator[Any]:
    from warehouse.postgres import PostgresWarehouse

    wh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_schema_factory("fh"))
    wh.migrate()
    yield wh
    wh.close()


def test_delivered_zone_loads_into_the_warehouse_exactly_once(
    stack: Any,
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    topic_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    warehouse: Any,
) -> None:
    from sluice.zonestore import S3Zone
    from warehouse.loader import Loader, LoaderOptions

    monkeypatch.setenv("SLUICE_PII_HMAC_KEY", b.HMAC_KEY)
    topic = topic_factory(partitions=2)
    zone = ZoneSettings(s3_bucket=bucket_factory())
    events = [b.claim(claimant_national_id="123-45-6789") for _ in range(40)]
    records = [build_outgoing_record("insurance-claim", e, b.as_avro(e)) for e in events]
    publish("kafka", topic, records[:25])
    publish("kafka", topic, records[20:])  # 5 events published twice

    def deliver(group: str) -> Any:
        options = DeliveryOptions(
            source=SourceKind.KAFKA,
            event_type=EventType.INSURANCE_CLAIM,
            buffer_mib=1,
            buffer_seconds=1,
            once=True,
            max_seconds=60,
            stream=topic,
            group_id=group,
        )
        return run_delivery(options, zone=zone)

    first = deliver(f"g-{uuid.uuid4().hex[:8]}")
    # a second, independent delivery of the whole topic: every event in the zone twice
    second = deliver(f"g-{uuid.uuid4().hex[:8]}")
    assert first.ok + first.dropped == second.ok + second.dropped == 45

    loader = Loader(
        warehouse,
        S3Zone(client=stack.aws_client("s3")),
        zone_settings=zone,
        options=LoaderOptions(retry_delays=(0.0,), sweep_grace=0.0),
        sleep=lambda _s: None,
    )
    summary = loader.run_once()
    assert summary.outcomes and not summary.failed
    assert warehouse.count("insurance_claims") == 40
    assert summary.totals()["rejected"] == 0
